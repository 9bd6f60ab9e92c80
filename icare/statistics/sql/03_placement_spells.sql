-- One row per placement spell: a continuous period with the same carer(s) inside a care spell.
-- Legal-status-only and same-carer changes and temporary moves continue it. docs/statistics.md
-- "Placement spells".
CREATE TABLE placement_spells AS
SELECT
    source, area_code, child_key, care_spell_no, placement_spell_no,
    first(sex ORDER BY episode_start) AS sex,
    first(birth_month ORDER BY episode_start) AS birth_month,
    min(episode_start) AS placement_start,
    last(cover_end ORDER BY episode_start) AS placement_end,
    first(stat_code ORDER BY episode_start) AS icare_code_start,
    last(stat_code ORDER BY episode_start) AS icare_code_end,
    first(stat_provider_sector ORDER BY episode_start) AS provider_sector,
    count(*) AS episodes,
    count(*) FILTER (WHERE is_temporary) AS temporary_episodes,
    last(cover_end ORDER BY episode_start) - min(episode_start) AS duration_days
FROM timeline
GROUP BY ALL
