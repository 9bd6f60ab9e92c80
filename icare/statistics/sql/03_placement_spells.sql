-- One row per placement spell: a continuous period with the same carer(s) inside a care spell.
-- Legal-status-only and same-carer changes and temporary moves continue it; it ends when the next
-- placement spell starts or the care spell ends. docs/statistics.md "Placement spells".
CREATE TABLE placement_spells AS
WITH first_episodes AS (
    -- a placement spell's first episode is the one that starts it (timeline.starts_placement_spell):
    -- read directly, cheaper than first(x ORDER BY episode_start) over the spell's episodes
    SELECT
        child_id, care_spell_no, placement_spell_no, sex, birth_month,
        episode_start AS placement_start, stat_code AS icare_code_start,
        stat_provider_sector AS provider_sector
    FROM child_timeline($first_child, $last_child)
    WHERE starts_placement_spell
),
grouped AS (
    SELECT f.*, c.icare_code_end, c.following_start, c.episodes, c.temporary_episodes
    FROM first_episodes AS f
    JOIN (
        SELECT
            child_id, care_spell_no, placement_spell_no,
            -- the last episode's values (a child's episodes are numbered in start order): arg_max_null
            -- keeps one value per spell, where an ordered aggregate buffers every row
            arg_max_null(stat_code, episode_no) AS icare_code_end,
            -- the start of the child's episode after this spell's last one
            arg_max_null(next_start, episode_no) AS following_start,
            count(*) AS episodes,
            count(*) FILTER (WHERE is_temporary) AS temporary_episodes
        FROM child_timeline($first_child, $last_child)
        GROUP BY child_id, care_spell_no, placement_spell_no
    ) AS c USING (child_id, care_spell_no, placement_spell_no)
),
ended AS (
    -- a care spell's episodes are in consecutive placement spells: the episode after the last one of
    -- a placement spell starts the next placement spell, unless this is the care spell's last
    SELECT
        g.*,
        CASE WHEN g.placement_spell_no < s.placement_spells THEN g.following_start ELSE s.spell_end END
            AS placement_end
    FROM grouped AS g
    JOIN care_spells AS s
        ON s.child_id = g.child_id AND s.care_spell_no = g.care_spell_no
)
-- the child's source, area and key are taken by child_id after the read-out (compute.py, _spells)
SELECT
    child_id, care_spell_no, placement_spell_no, sex, birth_month,
    placement_start, placement_end, icare_code_start, icare_code_end, provider_sector,
    episodes, temporary_episodes, placement_end - placement_start AS duration_days
FROM ended
