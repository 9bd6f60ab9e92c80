-- One row per harmonised episode, in each child's order, with what the statistics need:
-- the overlap rule, the care spell and placement spell it belongs to, and its statistical category.
-- Definitions: docs/statistics.md ("Episodes and overlaps", "Care spells", "Placement spells").
CREATE TABLE timeline AS
WITH ordered AS (
    SELECT
        e.source, e.area_code, e.child_key, e.sex, e.birth_month::DATE AS birth_month,
        e.episode_start::DATE AS episode_start, e.episode_end::DATE AS episode_end,
        e.episode_end_type, e.new_episode_type, e.exit_destination,
        e.icare_code, e.provider_sector, e.legal_basis,
        coalesce(e.purpose = $temporary_purpose, false) AS is_temporary,
        e.new_episode_type IN (SELECT new_episode_type FROM move_types) AS move_type,
        lead(e.episode_start::DATE) OVER child AS next_start,
        row_number() OVER child AS episode_no
    FROM episodes_in AS e
    WINDOW child AS (PARTITION BY e.source, e.area_code, e.child_key ORDER BY e.episode_start)
),
overlap_rule AS (
    -- Overlap rule: an episode still running when the child's next episode starts is cut at that
    -- start (the later record wins), so that a child is in at most one episode on any date.
    SELECT
        *,
        next_start IS NOT NULL AND (episode_end IS NULL OR episode_end > next_start) AS cut_by_overlap,
        CASE WHEN next_start IS NOT NULL AND (episode_end IS NULL OR episode_end > next_start)
             THEN next_start ELSE episode_end END AS end_date
    FROM ordered
),
chained AS (
    SELECT
        o.*,
        coalesce(
            o.cut_by_overlap
            OR (o.episode_end_type = 'continues'
                AND o.next_start BETWEEN o.episode_end AND o.episode_end + r.care_spell_gap_days::INTEGER),
            false
        ) AS continues_into_next
    FROM overlap_rule AS o
    JOIN source_rules AS r ON r.source = o.source
),
spells AS (
    SELECT
        *,
        NOT coalesce(lag(continues_into_next) OVER child, false) AS starts_care_spell,
        coalesce(lag(is_temporary) OVER child, false) AS after_temporary
    FROM chained
    WINDOW child AS (PARTITION BY source, area_code, child_key ORDER BY episode_start)
),
numbered AS (
    SELECT
        *,
        sum(starts_care_spell::INTEGER) OVER (
            PARTITION BY source, area_code, child_key ORDER BY episode_start
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS care_spell_no
    FROM spells
),
normal AS (
    -- The normal placement: the last non-temporary episode of the same care spell before this one.
    SELECT
        *,
        last_value(CASE WHEN NOT is_temporary THEN icare_code END IGNORE NULLS) OVER (
            PARTITION BY source, area_code, child_key, care_spell_no ORDER BY episode_start
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS normal_code,
        last_value(CASE WHEN NOT is_temporary THEN provider_sector END IGNORE NULLS) OVER (
            PARTITION BY source, area_code, child_key, care_spell_no ORDER BY episode_start
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS normal_provider_sector,
        lead(episode_start) OVER (
            PARTITION BY source, area_code, child_key, care_spell_no ORDER BY episode_start
        ) AS next_start_in_spell
    FROM numbered
),
placements AS (
    SELECT
        *,
        starts_care_spell
            OR (NOT is_temporary AND move_type
                AND NOT (after_temporary AND icare_code IS NOT DISTINCT FROM normal_code))
            AS starts_placement_spell,
        is_temporary AND $resolve_temporary AND normal_code IS NOT NULL AS temporary_resolved
    FROM normal
)
SELECT
    source, area_code, child_key, sex, birth_month, episode_no,
    episode_start, episode_end, end_date,
    -- Covered until the next episode of the same care spell starts (closes a tolerated gap), or
    -- until the episode's end: the child is in care on every day d with episode_start <= d < cover_end.
    coalesce(next_start_in_spell, end_date) AS cover_end,
    episode_end_type, new_episode_type, exit_destination,
    icare_code, is_temporary, temporary_resolved, normal_code,
    CASE WHEN temporary_resolved THEN normal_code ELSE icare_code END AS stat_code,
    CASE WHEN temporary_resolved THEN normal_provider_sector ELSE provider_sector END AS stat_provider_sector,
    legal_basis, cut_by_overlap, next_start,
    starts_care_spell, continues_into_next, care_spell_no,
    starts_placement_spell,
    sum(starts_placement_spell::INTEGER) OVER (
        PARTITION BY source, area_code, child_key, care_spell_no ORDER BY episode_start
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS placement_spell_no
FROM placements
