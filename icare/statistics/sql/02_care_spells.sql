-- One row per care spell (period of care): the union of the days its episodes cover, chained by
-- "ceased and a new one began the same day" or by overlapping records. docs/statistics.md "Care spells".
CREATE TABLE care_spells AS
WITH first_episodes AS (
    -- a care spell's first episode is the one that starts it (timeline.starts_care_spell): read
    -- directly, cheaper than first(x ORDER BY episode_start) over the spell's episodes
    SELECT
        child_id, care_spell_no, sex, birth_month,
        episode_start AS spell_start, new_episode_type AS first_new_episode_type,
        stat_code AS icare_code_start
    FROM child_timeline($first_child, $last_child)
    WHERE starts_care_spell
),
reaching AS (
    -- reach_order sorts a child's episodes by how far they reach (open: for ever), then by start: the
    -- two DATEs (32-bit day numbers) packed in one BIGINT, compared faster than a list
    SELECT
        *,
        (coalesce(cover_end, DATE '9999-12-31') - DATE '1970-01-01') * 4294967296
            + (episode_start - DATE '1970-01-01') + 2147483648 AS reach_order
    FROM child_timeline($first_child, $last_child)
),
grouped AS (
    SELECT f.*, r.* EXCLUDE (child_id, care_spell_no)
    FROM first_episodes AS f
    JOIN (
        SELECT
            child_id, care_spell_no,
            -- the spell ends when its furthest-reaching episode ends (never while one is open)
            CASE WHEN bool_or(cover_end IS NULL) THEN NULL ELSE max(cover_end) END AS spell_end,
            -- the furthest-reaching episode's values, empty or not (arg_max would skip an empty
            -- destination and take another episode's)
            arg_max_null(episode_end_type, reach_order) AS last_end_type,
            arg_max_null(exit_destination, reach_order) AS last_exit_destination,
            arg_max_null(stat_code, reach_order) AS icare_code_end,
            count(*) AS episodes,
            max(placement_spell_no) AS placement_spells,
            count(*) FILTER (WHERE overlaps_next) AS overlaps_resolved
        FROM reaching
        GROUP BY child_id, care_spell_no
    ) AS r USING (child_id, care_spell_no)
)
-- the child's source, area and key are taken by child_id after the read-out (compute.py, _spells)
SELECT
    g.child_id, g.care_spell_no, g.sex, g.birth_month,
    g.spell_start, g.spell_end,
    CASE WHEN g.spell_end IS NULL THEN 'open' ELSE 'exit' END AS end_type,
    CASE
        WHEN g.spell_end IS NULL THEN NULL
        WHEN g.last_end_type = 'exit' THEN coalesce(g.last_exit_destination, 'not_known')
        ELSE 'not_known'  -- the last episode said "continues" but no episode follows
    END AS exit_destination,
    g.icare_code_start, g.icare_code_end, g.episodes, g.placement_spells,
    g.placement_spells - 1 AS moves,
    g.spell_end - g.spell_start AS duration_days,
    g.first_new_episode_type = 'care_entry' AS starts_with_entry,
    previous.spell_end AS previous_spell_end,
    coalesce(g.spell_start <= previous.spell_end + to_months($re_entry_months::INTEGER), false) AS re_entry,
    g.overlaps_resolved
FROM grouped AS g
-- a child's care spells are numbered 1, 2, ...: the previous one is number - 1 (a join on that is
-- cheaper than a window, which sorts)
LEFT JOIN grouped AS previous
    ON previous.child_id = g.child_id AND previous.care_spell_no = g.care_spell_no - 1
