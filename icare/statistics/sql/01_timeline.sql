-- One row per harmonised episode, in each child's order, with what the statistics need: the days it
-- covers, the care spell and placement spell it belongs to, and its statistical category.
-- Definitions: docs/statistics.md ("Episodes and overlaps", "Care spells", "Placement spells").
-- The per-child steps are computed in numpy over the episodes sorted once (in SQL each step is a
-- window, and each window level a full sort): icare/statistics/timeline.py, registered as the Arrow
-- table timeline_steps with the episode columns the statistics read. A view: each statement scans
-- only the columns it reads, cheaper than copying them all into a table.
CREATE VIEW timeline AS
SELECT
    child_id, source, area_code, child_key, sex, birth_month::DATE AS birth_month, episode_no,
    episode_start, episode_end::DATE AS episode_end, cover_end, placement_unknown_from, next_start, overlaps_next,
    episode_end_type, new_episode_type, exit_destination,
    icare_code, is_temporary, temporary_resolved, normal_code, stat_code, stat_provider_sector,
    legal_basis, starts_care_spell, care_spell_no, starts_placement_spell, placement_spell_no
FROM timeline_steps
