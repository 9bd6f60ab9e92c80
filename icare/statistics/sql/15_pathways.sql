-- Pathways: the sequence of categories of the placement spells of each care spell, rolled up to a
-- level and with consecutive repeats collapsed, for spells that ended in the period ("ended") or
-- were still open at its end ("open": the steps that had started by then). Pathways with fewer
-- spells than the rare-pathway threshold (over all sexes and age bands of their source, area,
-- period, spell state and level) become "other". docs/statistics.md "Pathways".
-- Categories are handled as small integers in lists (grouping and comparing strings is slow); the
-- text of a pathway is built once per published row.
CREATE TABLE pathways AS
WITH level_maps AS (
    -- per published level, the category of every code at that level (list position = code id); a
    -- code shallower than the level is kept as it is
    SELECT
        l.level_name,
        list(t.code_id ORDER BY c.code_id) AS category_of
    FROM pathway_levels AS l
    CROSS JOIN code_ids AS c
    JOIN code_ids AS t
        ON t.code = coalesce(
            CASE l.level WHEN 1 THEN c.level1 WHEN 2 THEN c.level2 WHEN 3 THEN c.level3
                         WHEN 4 THEN c.level4 END,
            c.code
        )
    GROUP BY l.level_name
),
same_steps AS (
    -- the ranges of children's counts (15_pathway_steps.sql), summed
    SELECT
        source, area_code, period_start, period_end, spell_state, sex, age_band, codes,
        sum(spells)::BIGINT AS spells
    FROM pathway_steps
    GROUP BY ALL
),
at_level AS (
    SELECT
        sp.* EXCLUDE (codes), l.level_name,
        list_transform(sp.codes, lambda x: l.category_of[x]) AS categories
    FROM same_steps AS sp
    CROSS JOIN level_maps AS l
),
counted AS (
    SELECT
        source, area_code, period_start, period_end, spell_state, level_name,
        -- consecutive repeats collapsed: a step is kept when its category differs from the one before
        list_filter(categories, lambda x, i: i = 1 OR x <> categories[i - 1]) AS pathway_codes,
        sex, age_band,
        sum(spells)::BIGINT AS spells
    FROM at_level
    GROUP BY ALL
),
flagged AS (
    SELECT
        *,
        sum(spells) OVER (
            PARTITION BY source, area_code, period_start, spell_state, level_name, pathway_codes
        ) < $rare_threshold AS rare
    FROM counted
),
code_names AS (
    SELECT list(code ORDER BY code_id) AS code_of FROM code_ids
)
SELECT
    f.source, f.area_code, f.period_start, f.period_end, f.spell_state, f.level_name AS pathway_level,
    CASE
        WHEN f.rare THEN 'other'
        ELSE array_to_string(list_transform(f.pathway_codes, lambda x: n.code_of[x]), ' > ')
    END AS pathway,
    f.sex, f.age_band,
    sum(f.spells)::BIGINT AS spells,
    sum(CASE WHEN f.rare THEN f.spells ELSE 0 END)::BIGINT AS spells_in_rare_pathways
FROM flagged AS f
CROSS JOIN code_names AS n
GROUP BY ALL
