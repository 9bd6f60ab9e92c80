-- The spells that ended in a period, one row each, with the facts durations are counted by: read by
-- 16_durations.sql (the published cells) and 16_durations_totals.sql (the quartiles of the release's
-- margin rows). Care spells whose start lies outside the periods the data covers (first episode not
-- an entry to care, starting before the first period or in a year whose return is missing or
-- incomplete) are left out of the quartiles and counted in spells_start_unknown. docs/statistics.md
-- "Durations".
CREATE TABLE ended_spells AS
WITH ended AS (
    SELECT
        s.source, s.area_code, 'care_spell' AS unit, s.spell_end AS end_date,
        s.icare_code_end AS icare_code, s.sex, s.birth_month, s.duration_days,
        NOT s.starts_with_entry AND NOT EXISTS (
            SELECT 1 FROM periods AS c
            WHERE c.source = s.source AND c.area_code IS NOT DISTINCT FROM s.area_code
                AND s.spell_start BETWEEN c.period_start AND c.period_end
        ) AS start_unknown
    FROM care_spells AS s
    WHERE s.end_type = 'exit'
    UNION ALL
    SELECT
        ps.source, ps.area_code, 'placement_spell', ps.placement_end,
        ps.icare_code_start, ps.sex, ps.birth_month, ps.duration_days,
        false
    FROM placement_spells AS ps
    WHERE ps.placement_end IS NOT NULL
)
SELECT
    p.source, p.area_code, p.period_start, p.period_end, e.unit, e.icare_code, e.sex,
    coalesce(a.age_band, 'unknown') AS age_band, e.duration_days, e.start_unknown
FROM periods AS p
JOIN ended AS e
    ON e.source = p.source AND e.area_code IS NOT DISTINCT FROM p.area_code
    AND e.end_date BETWEEN p.period_start AND p.period_end
LEFT JOIN age_lookup AS a ON a.age = date_sub('year', e.birth_month, e.end_date)
