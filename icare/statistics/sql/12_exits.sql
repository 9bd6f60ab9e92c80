-- Care spells ending in each period, by the category at exit and the harmonised exit destination.
-- A child with several exits in a period is counted in `children` once, at the last.
-- docs/statistics.md "Exits".
CREATE TABLE exits AS
WITH events AS (
    SELECT
        p.source, p.area_code, p.period_start, p.period_end, s.child_id,
        s.icare_code_end AS icare_code, s.exit_destination, s.sex,
        coalesce(a.age_band, 'unknown') AS age_band,
        row_number() OVER (
            PARTITION BY p.period_start, s.child_id ORDER BY s.spell_end DESC, s.care_spell_no DESC
        ) = 1 AS last_of_child
    FROM periods AS p
    JOIN care_spells AS s
        ON s.source = p.source AND s.area_code IS NOT DISTINCT FROM p.area_code
        AND s.spell_end BETWEEN p.period_start AND p.period_end
    LEFT JOIN age_lookup AS a ON a.age = date_sub('year', s.birth_month, s.spell_end)
)
SELECT
    source, area_code, period_start, period_end, icare_code, exit_destination, sex, age_band,
    count(*) FILTER (WHERE last_of_child) AS children,
    count(*) AS spells
FROM events
GROUP BY ALL
