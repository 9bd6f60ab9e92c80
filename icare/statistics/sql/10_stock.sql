-- Children in care at each reference date (the end of every period the data covers), by the
-- category of the episode open that day (a temporary move attributed to the normal placement).
-- docs/statistics.md "Stock".
CREATE TABLE stock AS
SELECT
    p.source, p.area_code, p.period_end AS reference_date,
    t.stat_code AS icare_code, t.sex,
    coalesce(a.age_band, 'unknown') AS age_band,
    t.stat_provider_sector AS provider_sector,
    count(*) AS children,
    count(*) FILTER (WHERE t.temporary_resolved) AS temporary_moves_resolved
FROM periods AS p
JOIN timeline AS t
    ON t.source = p.source AND t.area_code IS NOT DISTINCT FROM p.area_code
    AND t.episode_start <= p.period_end AND (t.cover_end IS NULL OR t.cover_end > p.period_end)
LEFT JOIN age_lookup AS a ON a.age = date_sub('year', t.birth_month, p.period_end)
GROUP BY ALL
