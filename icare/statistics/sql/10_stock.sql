-- Children in care at each reference date (the end of every period the data covers), by the
-- category of the episode open that day (a temporary move attributed to the normal placement).
-- A child with two records open that day (overlap) is counted once, in the later-starting one. A
-- child in care whose placement that day is not known (between an episode that "continues" and a
-- later next one) is counted under "type of care not stated" ($not_stated, AC.U), provider sector
-- unknown, so that the categories add up to the children in care; without such a category in the
-- classification, in no row (docs/statistics.md "Stock").
-- docs/statistics.md "Stock".
CREATE TABLE stock AS
WITH latest_open AS (
    -- a child's episodes are numbered in start order: the later-starting record open that day has the
    -- highest number (05_child_periods.sql, per period: the highest of its periods ending that day),
    -- found on integers, then its other columns joined once
    SELECT p.period_end AS reference_date, c.child_id, max(c.open_at_end_no) AS episode_no
    FROM child_periods AS c
    JOIN period_ids AS p USING (period_id)
    WHERE c.open_at_end_no IS NOT NULL
    GROUP BY p.period_end, c.child_id
),
open_on_date AS (
    SELECT
        l.reference_date, t.*,
        coalesce(t.placement_unknown_from <= l.reference_date, false) AS placement_not_known
    FROM latest_open AS l
    JOIN timeline AS t ON t.child_id = l.child_id AND t.episode_no = l.episode_no
    WHERE t.placement_unknown_from IS NULL OR t.placement_unknown_from > l.reference_date
        OR $not_stated IS NOT NULL
)
SELECT
    o.source, o.area_code, o.reference_date,
    CASE WHEN o.placement_not_known THEN $not_stated ELSE o.stat_code END AS icare_code, o.sex,
    coalesce(a.age_band, 'unknown') AS age_band,
    CASE WHEN o.placement_not_known THEN 'unknown' ELSE o.stat_provider_sector END AS provider_sector,
    count(*) AS children,
    count(*) FILTER (WHERE o.temporary_resolved) AS temporary_moves_resolved
FROM open_on_date AS o
LEFT JOIN age_lookup AS a ON a.age = date_sub('year', o.birth_month, o.reference_date)
GROUP BY ALL
