-- Children in care at each reference date (the end of every period the data covers), by the
-- category of the episode open that day (a temporary move attributed to the normal placement).
-- A child with two records open that day (overlap) is counted once, in the later-starting one.
-- docs/statistics.md "Stock".
CREATE TABLE stock AS
WITH open_on_date AS (
    SELECT p.source, p.area_code, p.period_end AS reference_date, t.*
    FROM periods AS p
    JOIN timeline AS t
        ON t.source = p.source AND t.area_code IS NOT DISTINCT FROM p.area_code
        AND t.episode_start <= p.period_end AND (t.cover_end IS NULL OR t.cover_end > p.period_end)
    QUALIFY row_number() OVER (
        PARTITION BY p.period_end, t.child_id ORDER BY t.episode_start DESC
    ) = 1
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
