-- One row per placement spell: a continuous period with the same carer(s) inside a care spell.
-- Legal-status-only and same-carer changes and temporary moves continue it; it ends when the next
-- placement spell starts or the care spell ends. docs/statistics.md "Placement spells".
-- A placement spell's episodes are consecutive in its child's timeline, so its own values are found
-- in numpy with the timeline (icare/statistics/timeline.py, _PlacementSpells; registered as
-- placement_spell_steps): the first episode's values (the one that starts it), the last episode's
-- category, its episodes and temporary episodes, and its end: the start of the episode after its
-- last one (which starts the care spell's next placement spell), or, for the care spell's last
-- placement spell, the care spell's end.
-- The child's source, area and key are taken by child_id after the read-out (compute.py, _spells).
CREATE TABLE placement_spells AS
SELECT
    s.child_id, s.care_spell_no, s.placement_spell_no, s.sex, s.birth_month::DATE AS birth_month,
    s.placement_start, s.placement_end, s.icare_code_start, s.icare_code_end, s.provider_sector,
    s.episodes, s.temporary_episodes, s.placement_end - s.placement_start AS duration_days
FROM placement_spell_steps AS s
