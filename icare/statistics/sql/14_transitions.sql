-- Transitions in each period: entries (out of care -> first category), placement moves
-- (category before -> category after) and exits (last category -> exit destination).
-- docs/statistics.md "Transitions".
CREATE TABLE transitions AS
WITH events AS (
    SELECT
        s.source, s.area_code, 'entry' AS transition, s.spell_start AS event_date,
        'out_of_care' AS from_code, s.icare_code_start AS to_code, s.sex, s.birth_month
    FROM care_spells AS s
    UNION ALL
    SELECT
        ps.source, ps.area_code, 'move', ps.placement_start,
        previous.icare_code_end, ps.icare_code_start, ps.sex, ps.birth_month
    FROM placement_spells AS ps
    JOIN placement_spells AS previous
        ON previous.child_id = ps.child_id AND previous.care_spell_no = ps.care_spell_no
        AND previous.placement_spell_no = ps.placement_spell_no - 1
    UNION ALL
    SELECT
        s.source, s.area_code, 'exit', s.spell_end,
        s.icare_code_end, s.exit_destination, s.sex, s.birth_month
    FROM care_spells AS s
    WHERE s.end_type = 'exit'
)
SELECT
    p.source, p.area_code, p.period_start, p.period_end, e.transition, e.from_code, e.to_code, e.sex,
    coalesce(a.age_band, 'unknown') AS age_band,
    count(*) AS transitions
FROM periods AS p
JOIN events AS e
    ON e.source = p.source AND e.area_code IS NOT DISTINCT FROM p.area_code
    AND e.event_date BETWEEN p.period_start AND p.period_end
LEFT JOIN age_lookup AS a ON a.age = date_sub('year', e.birth_month, e.event_date)
GROUP BY ALL
