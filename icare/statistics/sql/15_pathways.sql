-- Pathways: the sequence of categories of the placement spells of each care spell, rolled up to a
-- level and with consecutive repeats collapsed, for spells that ended in the period ("ended") or
-- were still open at its end ("open"). Pathways with fewer spells than the rare-pathway threshold
-- (over all sexes and age bands of their source, area, period, status and level) become "other".
-- docs/statistics.md "Pathways".
CREATE TABLE pathways AS
WITH spells_in_period AS (
    SELECT
        p.source, p.area_code, p.period_start, p.period_end, s.child_key, s.care_spell_no,
        CASE WHEN s.spell_end BETWEEN p.period_start AND p.period_end THEN 'ended' ELSE 'open' END
            AS spell_status,
        s.sex, coalesce(a.age_band, 'unknown') AS age_band
    FROM periods AS p
    JOIN care_spells AS s  -- spells that ended in the period or were open at its end
        ON s.source = p.source AND s.area_code IS NOT DISTINCT FROM p.area_code
        AND s.spell_start <= p.period_end
        AND (s.spell_end IS NULL OR s.spell_end >= p.period_start)
    LEFT JOIN age_lookup AS a ON a.age = date_sub('year', s.birth_month, s.spell_start)
),
steps AS (
    SELECT
        sp.*, l.level_name, ps.placement_spell_no,
        coalesce(
            CASE l.level WHEN 1 THEN c.level1 WHEN 2 THEN c.level2 WHEN 3 THEN c.level3
                         WHEN 4 THEN c.level4 END,
            ps.icare_code_start
        ) AS step_code
    FROM spells_in_period AS sp
    JOIN placement_spells AS ps
        ON ps.source = sp.source AND ps.area_code IS NOT DISTINCT FROM sp.area_code
        AND ps.child_key = sp.child_key AND ps.care_spell_no = sp.care_spell_no
        AND ps.placement_start <= sp.period_end
    CROSS JOIN pathway_levels AS l
    LEFT JOIN codes AS c ON c.code = ps.icare_code_start
),
collapsed AS (
    SELECT
        *,
        step_code IS DISTINCT FROM lag(step_code) OVER (
            PARTITION BY source, area_code, period_start, child_key, care_spell_no, level_name
            ORDER BY placement_spell_no
        ) AS new_step
    FROM steps
),
per_spell AS (
    SELECT
        source, area_code, period_start, period_end, spell_status, level_name, sex, age_band,
        child_key, care_spell_no,
        string_agg(step_code, ' > ' ORDER BY placement_spell_no) FILTER (WHERE new_step) AS pathway
    FROM collapsed
    GROUP BY ALL
),
counted AS (
    SELECT
        source, area_code, period_start, period_end, spell_status, level_name, pathway, sex, age_band,
        count(*) AS spells
    FROM per_spell
    GROUP BY ALL
),
flagged AS (
    SELECT
        *,
        sum(spells) OVER (
            PARTITION BY source, area_code, period_start, spell_status, level_name, pathway
        ) < $rare_threshold AS rare
    FROM counted
)
SELECT
    source, area_code, period_start, period_end, spell_status, level_name AS pathway_level,
    CASE WHEN rare THEN 'other' ELSE pathway END AS pathway,
    sex, age_band,
    sum(spells)::BIGINT AS spells,
    sum(CASE WHEN rare THEN spells ELSE 0 END)::BIGINT AS spells_in_rare_pathways
FROM flagged
GROUP BY ALL
