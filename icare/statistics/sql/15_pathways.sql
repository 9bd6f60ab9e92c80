-- Pathways: the sequence of categories of the placement spells of each care spell, rolled up to a
-- level and with consecutive repeats collapsed, for spells that ended in the period ("ended") or
-- were still open at its end ("open"). Pathways with fewer spells than the rare-pathway threshold
-- (over all sexes and age bands of their source, area, period, status and level) become "other".
-- docs/statistics.md "Pathways".
CREATE TABLE pathways AS
WITH steps AS (
    -- every placement spell at every published level (a code shallower than the level kept as is)
    SELECT
        ps.child_id, ps.care_spell_no, ps.placement_spell_no,
        ps.placement_start, l.level_name,
        coalesce(
            CASE l.level WHEN 1 THEN c.level1 WHEN 2 THEN c.level2 WHEN 3 THEN c.level3
                         WHEN 4 THEN c.level4 END,
            ps.icare_code_start
        ) AS step_code
    FROM placement_spells AS ps
    CROSS JOIN pathway_levels AS l
    LEFT JOIN codes AS c ON c.code = ps.icare_code_start
),
collapsed AS (
    -- consecutive repeats collapsed: keep a step only when its category differs from the one before
    SELECT *
    FROM steps
    QUALIFY step_code IS DISTINCT FROM lag(step_code) OVER (
        PARTITION BY child_id, care_spell_no, level_name ORDER BY placement_spell_no
    )
),
full_pathways AS (
    -- list_sort of unordered lists: much faster in DuckDB than an ordered string_agg
    SELECT
        child_id, care_spell_no, level_name,
        array_to_string(
            list_transform(list_sort(list({'n': placement_spell_no, 'c': step_code})), lambda x: x.c), ' > '
        ) AS pathway,
        max(placement_start) AS last_step_start
    FROM collapsed
    GROUP BY ALL
),
spells_in_period AS (
    SELECT
        p.source, p.area_code, p.period_start, p.period_end, s.child_id, s.care_spell_no,
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
truncated AS (
    -- a spell still open at the period end whose later steps started after it: the steps up to then
    SELECT
        sp.child_id, sp.care_spell_no, sp.period_start, c.level_name,
        array_to_string(
            list_transform(list_sort(list({'n': c.placement_spell_no, 'c': c.step_code})), lambda x: x.c), ' > '
        ) AS pathway
    FROM spells_in_period AS sp
    JOIN full_pathways AS f
        ON f.child_id = sp.child_id AND f.care_spell_no = sp.care_spell_no
        AND f.last_step_start > sp.period_end
    JOIN collapsed AS c
        ON c.child_id = sp.child_id AND c.care_spell_no = sp.care_spell_no
        AND c.level_name = f.level_name AND c.placement_start <= sp.period_end
    GROUP BY ALL
),
pathway_ids AS (
    -- the spells are counted by an integer id of their pathway: grouping on the strings is slow
    SELECT pathway, row_number() OVER () AS pathway_id
    FROM (SELECT pathway FROM full_pathways UNION SELECT pathway FROM truncated)
),
per_spell AS (
    SELECT
        sp.source, sp.area_code, sp.period_start, sp.period_end, sp.spell_status, sp.sex, sp.age_band,
        f.level_name, coalesce(ti.pathway_id, fi.pathway_id) AS pathway_id
    FROM spells_in_period AS sp
    JOIN full_pathways AS f ON f.child_id = sp.child_id AND f.care_spell_no = sp.care_spell_no
    JOIN pathway_ids AS fi ON fi.pathway = f.pathway
    LEFT JOIN truncated AS t
        ON t.child_id = sp.child_id AND t.care_spell_no = sp.care_spell_no
        AND t.period_start = sp.period_start AND t.level_name = f.level_name
    LEFT JOIN pathway_ids AS ti ON ti.pathway = t.pathway
),
counted AS (
    SELECT
        source, area_code, period_start, period_end, spell_status, level_name, pathway_id, sex, age_band,
        count(*) AS spells
    FROM per_spell
    GROUP BY ALL
),
flagged AS (
    SELECT
        *,
        sum(spells) OVER (
            PARTITION BY source, area_code, period_start, spell_status, level_name, pathway_id
        ) < $rare_threshold AS rare
    FROM counted
)
SELECT
    source, area_code, period_start, period_end, spell_status, level_name AS pathway_level,
    CASE WHEN rare THEN 'other' ELSE i.pathway END AS pathway,
    sex, age_band,
    sum(spells)::BIGINT AS spells,
    sum(CASE WHEN rare THEN spells ELSE 0 END)::BIGINT AS spells_in_rare_pathways
FROM flagged
JOIN pathway_ids AS i USING (pathway_id)
GROUP BY ALL
