-- One row per placement spell: a continuous period with the same carer(s) inside a care spell.
-- Legal-status-only and same-carer changes and temporary moves continue it; it ends when the next
-- placement spell starts or the care spell ends. docs/statistics.md "Placement spells".
CREATE TABLE placement_spells AS
WITH first_episodes AS (
    -- a placement spell's first episode is the one that starts it (timeline.starts_placement_spell):
    -- read directly, cheaper than first(x ORDER BY episode_start) over the spell's episodes
    SELECT
        child_id, care_spell_no, placement_spell_no, source, area_code, child_key, sex, birth_month,
        episode_start AS placement_start, stat_code AS icare_code_start,
        stat_provider_sector AS provider_sector
    FROM timeline
    WHERE starts_placement_spell
),
grouped AS (
    SELECT f.*, c.icare_code_end, c.episodes, c.temporary_episodes
    FROM first_episodes AS f
    JOIN (
        SELECT
            child_id, care_spell_no, placement_spell_no,
            last(stat_code ORDER BY episode_start) AS icare_code_end,
            count(*) AS episodes,
            count(*) FILTER (WHERE is_temporary) AS temporary_episodes
        FROM timeline
        GROUP BY child_id, care_spell_no, placement_spell_no
    ) AS c USING (child_id, care_spell_no, placement_spell_no)
),
ended AS (
    -- placement spells are numbered 1, 2, ... in each care spell: the next one is number + 1 (a join
    -- on that is cheaper than a window, which sorts)
    SELECT g.*, coalesce(next.placement_start, s.spell_end) AS placement_end
    FROM grouped AS g
    JOIN care_spells AS s
        ON s.child_id = g.child_id AND s.care_spell_no = g.care_spell_no
    LEFT JOIN grouped AS next
        ON next.child_id = g.child_id AND next.care_spell_no = g.care_spell_no
        AND next.placement_spell_no = g.placement_spell_no + 1
)
SELECT
    child_id, source, area_code, child_key, care_spell_no, placement_spell_no, sex, birth_month,
    placement_start, placement_end, icare_code_start, icare_code_end, provider_sector,
    episodes, temporary_episodes, placement_end - placement_start AS duration_days
FROM ended
