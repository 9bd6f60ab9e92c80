-- One row per care spell (period of care): the union of the days its episodes cover, chained by
-- "ceased and a new one began the same day" or by overlapping records. docs/statistics.md "Care spells".
-- A care spell's episodes are consecutive in its child's timeline, so its own values are found in
-- numpy with the timeline (icare/statistics/timeline.py, _CareSpells; registered as care_spell_steps):
-- the first episode's values (the one that starts it), the spell's end (when its furthest-reaching
-- episode ends, never while one is open: open episodes reach for ever), the furthest-reaching
-- episode's end type, exit destination and category (the later-starting one on a tie), its
-- episodes, placement spells and resolved overlaps, and the end of the child's previous care spell.
-- The child's source, area and key are taken by child_id after the read-out (compute.py, _spells).
CREATE TABLE care_spells AS
SELECT
    s.child_id, s.care_spell_no, s.sex, s.birth_month::DATE AS birth_month,
    s.spell_start, s.spell_end,
    CASE WHEN s.spell_end IS NULL THEN 'open' ELSE 'exit' END AS end_type,
    CASE
        WHEN s.spell_end IS NULL THEN NULL
        WHEN s.last_end_type = 'exit' THEN coalesce(s.last_exit_destination, 'not_known')
        ELSE 'not_known'  -- the last episode said "continues" but no episode follows
    END AS exit_destination,
    s.icare_code_start, s.icare_code_end, s.episodes, s.placement_spells,
    s.placement_spells - 1 AS moves,
    s.spell_end - s.spell_start AS duration_days,
    s.first_new_episode_type = 'care_entry' AS starts_with_entry,
    s.previous_spell_end,
    coalesce(s.spell_start <= s.previous_spell_end + to_months($re_entry_months::INTEGER), false) AS re_entry,
    s.overlaps_resolved
FROM care_spell_steps AS s
