-- Care spells starting in each period, by the category of their first episode. A child with
-- several entries in a period is counted in `children` once, at the first. docs/statistics.md "Entries".
CREATE TABLE entries AS
WITH events AS (
    SELECT
        p.source, p.area_code, p.period_start, p.period_end, s.child_id,
        s.icare_code_start AS icare_code, s.sex,
        coalesce(a.age_band, 'unknown') AS age_band,
        s.re_entry,
        row_number() OVER (
            PARTITION BY p.period_start, s.child_id ORDER BY s.spell_start, s.care_spell_no
        ) = 1 AS first_of_child
    FROM periods AS p
    JOIN care_spells AS s
        ON s.source = p.source AND s.area_code IS NOT DISTINCT FROM p.area_code
        AND s.spell_start BETWEEN p.period_start AND p.period_end
    LEFT JOIN age_lookup AS a ON a.age = date_sub('year', s.birth_month, s.spell_start)
)
SELECT
    source, area_code, period_start, period_end, icare_code, sex, age_band,
    count(*) FILTER (WHERE first_of_child) AS children,
    count(*) AS spells,
    count(*) FILTER (WHERE re_entry) AS re_entries
FROM events
GROUP BY ALL
