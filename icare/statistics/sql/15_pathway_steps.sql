-- Pathways, first stage: the steps of every care spell that ended in a period or was open at its end,
-- counted by period, spell state, sex, age band and steps (15_pathways.sql goes on from these counts).
-- Built for one range of children at a time (compute.py, child ranges): a spell's steps are its
-- child's own, and each range needs a fraction of the working memory; the ranges' counts are summed.
-- Categories are small integers (code_ids) in lists: grouping and comparing strings is slow. Each
-- care spell's steps (its placement spells' starts and category ids, in order, leaving out those
-- whose category is not a classification code; no row for a care spell left without steps) are made
-- with the timeline (icare/statistics/timeline.py, _PlacementSpells.paths; registered as
-- care_spell_paths): a care spell's placement spells are consecutive there, so nothing is grouped
-- or sorted.
CREATE TABLE pathway_steps AS
WITH spells_in_period AS (
    SELECT
        p.source, p.area_code, p.period_start, p.period_end,
        CASE WHEN s.spell_end BETWEEN p.period_start AND p.period_end THEN 'ended' ELSE 'open' END
            AS spell_state,
        s.sex, coalesce(a.age_band, 'unknown') AS age_band,
        -- a spell still open at the period end: the steps that had started by then
        list_transform(list_filter(st.steps, lambda x: x.start <= p.period_end), lambda x: x.code) AS codes
    FROM periods AS p
    JOIN care_spells AS s  -- spells that ended in the period or were open at its end
        ON s.child_id BETWEEN $first_child AND $last_child
        AND s.source = p.source AND s.area_code IS NOT DISTINCT FROM p.area_code
        AND s.spell_start <= p.period_end
        AND (s.spell_end IS NULL OR s.spell_end >= p.period_start)
    JOIN care_spell_paths AS st ON st.child_id = s.child_id AND st.care_spell_no = s.care_spell_no
    LEFT JOIN age_lookup AS a ON a.age = date_sub('year', s.birth_month, s.spell_start)
)
-- spells with the same steps (and period, spell state, sex and age band) have the same pathway at every
-- level: counted first, so each level maps and collapses every distinct list once
SELECT source, area_code, period_start, period_end, spell_state, sex, age_band, codes, count(*) AS spells
FROM spells_in_period
GROUP BY ALL
