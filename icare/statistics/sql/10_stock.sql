-- Children in care at each reference date (the end of every period the data covers), by the
-- category of the episode open that day (a temporary move attributed to the normal placement).
-- A child with two records open that day (overlap) is counted once, in the later-starting one.
-- docs/statistics.md "Stock".
CREATE TABLE stock AS
WITH latest_open AS (
    -- a child's episodes are numbered in start order: the later-starting record open that day has the
    -- highest number (found on two integers, then its other columns joined once)
    SELECT p.period_end AS reference_date, t.child_id, max(t.episode_no) AS episode_no
    FROM periods AS p
    JOIN timeline AS t
        ON t.source = p.source AND t.area_code IS NOT DISTINCT FROM p.area_code
        AND t.episode_start <= p.period_end AND (t.cover_end IS NULL OR t.cover_end > p.period_end)
    GROUP BY p.period_end, t.child_id
),
open_on_date AS (
    SELECT l.reference_date, t.*
    FROM latest_open AS l
    JOIN timeline AS t ON t.child_id = l.child_id AND t.episode_no = l.episode_no
)
SELECT
    o.source, o.area_code, o.reference_date,
    o.stat_code AS icare_code, o.sex,
    coalesce(a.age_band, 'unknown') AS age_band,
    o.stat_provider_sector AS provider_sector,
    count(*) AS children,
    count(*) FILTER (WHERE o.temporary_resolved) AS temporary_moves_resolved
FROM open_on_date AS o
LEFT JOIN age_lookup AS a ON a.age = date_sub('year', o.birth_month, o.reference_date)
GROUP BY ALL
