-- One row per harmonised episode, in each child's order, with what the statistics need: the days it
-- covers, the care spell and placement spell it belongs to, and its statistical category.
-- Definitions: docs/statistics.md ("Episodes and overlaps", "Care spells", "Placement spells").
-- The chain of window steps runs on the few columns it needs (a window step moves every column it
-- carries); the other columns are joined back once at the end by the episode's row id.
CREATE TABLE timeline AS
WITH ordered AS (
    SELECT
        e.episode_row, ids.child_id,
        e.episode_start::DATE AS episode_start, e.episode_end::DATE AS episode_end, e.episode_end_type,
        e.icare_code, e.provider_sector, r.care_spell_gap_days,
        coalesce(e.purpose = $temporary_purpose, false) AS is_temporary,
        e.new_episode_type IN (SELECT new_episode_type FROM move_types) AS move_type,
        lead(e.episode_start::DATE) OVER child AS next_start,
        row_number() OVER child AS episode_no
    FROM episodes_in AS e
    JOIN child_ids AS ids
        ON ids.source = e.source AND ids.area_code IS NOT DISTINCT FROM e.area_code
        AND ids.child_key = e.child_key
    JOIN source_rules AS r ON r.source = e.source
    WINDOW child AS (PARTITION BY ids.child_id ORDER BY e.episode_start)
),
covered AS (
    -- The child is in care on every day d with episode_start <= d < cover_end (no end: open). An
    -- episode that "continues" into the next one within the source's tolerated gap covers the gap.
    SELECT
        *,
        CASE
            WHEN episode_end_type = 'continues'
                AND next_start BETWEEN episode_end AND episode_end + care_spell_gap_days::INTEGER
            THEN next_start
            ELSE episode_end
        END AS cover_end
    FROM ordered
),
reach AS (
    -- How far the child's earlier episodes reach, and how the one reaching furthest ended.
    SELECT
        *,
        max(coalesce(cover_end, DATE '9999-12-31')) OVER earlier AS earlier_reach,
        arg_max(episode_end_type, [coalesce(cover_end, DATE '9999-12-31'), episode_start]) OVER earlier
            AS earlier_reach_end_type,
        coalesce(lag(is_temporary) OVER child, false) AS after_temporary
    FROM covered
    WINDOW
        child AS (PARTITION BY child_id ORDER BY episode_start),
        earlier AS (
            PARTITION BY child_id ORDER BY episode_start
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        )
),
spells AS (
    SELECT
        *,
        -- a new care spell unless an earlier episode still runs, or continues into this one
        earlier_reach IS NULL
            OR episode_start > earlier_reach
            OR (episode_start = earlier_reach AND earlier_reach_end_type IS DISTINCT FROM 'continues')
            AS starts_care_spell,
        next_start IS NOT NULL AND next_start < coalesce(cover_end, DATE '9999-12-31') AS overlaps_next
    FROM reach
),
numbered AS (
    SELECT
        *,
        sum(starts_care_spell::INTEGER) OVER (
            PARTITION BY child_id ORDER BY episode_start
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS care_spell_no
    FROM spells
),
normal AS (
    -- The normal placement: the last non-temporary episode of the same care spell before this one.
    SELECT
        *,
        -- one struct, so an empty provider sector of the normal placement is kept, not skipped
        last_value(
            CASE WHEN NOT is_temporary THEN {'code': icare_code, 'sector': provider_sector} END IGNORE NULLS
        ) OVER before_this AS normal_placement
    FROM numbered
    WINDOW before_this AS (
        PARTITION BY child_id, care_spell_no ORDER BY episode_start
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    )
),
placements AS (
    SELECT
        *,
        normal_placement.code AS normal_code,
        normal_placement.sector AS normal_provider_sector,
        starts_care_spell
            OR (NOT is_temporary AND move_type
                AND NOT (after_temporary AND icare_code IS NOT DISTINCT FROM normal_code))
            AS starts_placement_spell,
        is_temporary AND $resolve_temporary AND normal_code IS NOT NULL AS temporary_resolved
    FROM normal
),
core AS (
    SELECT
        episode_row, child_id, episode_no, episode_start, cover_end, next_start, overlaps_next,
        is_temporary, temporary_resolved, normal_code,
        CASE WHEN temporary_resolved THEN normal_code ELSE icare_code END AS stat_code,
        CASE WHEN temporary_resolved THEN normal_provider_sector ELSE provider_sector END
            AS stat_provider_sector,
        starts_care_spell, care_spell_no, starts_placement_spell,
        sum(starts_placement_spell::INTEGER) OVER (
            PARTITION BY child_id, care_spell_no ORDER BY episode_start
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS placement_spell_no
    FROM placements
)
SELECT
    c.child_id, e.source, e.area_code, e.sex, e.birth_month::DATE AS birth_month, c.episode_no,
    c.episode_start, e.episode_end::DATE AS episode_end, c.cover_end, c.next_start, c.overlaps_next,
    e.episode_end_type, e.new_episode_type, e.exit_destination,
    e.icare_code, c.is_temporary, c.temporary_resolved, c.normal_code, c.stat_code, c.stat_provider_sector,
    e.legal_basis, c.starts_care_spell, c.care_spell_no, c.starts_placement_spell, c.placement_spell_no
FROM core AS c
JOIN episodes_in AS e USING (episode_row)
