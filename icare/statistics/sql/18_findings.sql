-- Data-quality findings met while building spells, one row per affected episode or spell, so that
-- every adjustment behind a published figure can be traced. docs/statistics.md "Findings".
CREATE TABLE statistics_findings AS
WITH findings AS (
SELECT
    source, area_code, child_key, care_spell_no, episode_start AS finding_date,
    'overlap_resolved' AS finding,
    'episode from ' || strftime(episode_start, '%Y-%m-%d') || ' was still running when the next one started on '
        || strftime(next_start, '%Y-%m-%d') || '; on the days both run, the later-starting record counts'
        AS detail
FROM timeline
WHERE overlaps_next
UNION ALL
SELECT
    source, area_code, child_key, care_spell_no, episode_end,
    'continues_without_next_episode',
    'episode ended on ' || strftime(episode_end, '%Y-%m-%d')
        || ' as continuing into a new episode, but none starts then; '
        || CASE
            WHEN placement_unknown_from IS NOT NULL THEN
                'the next starts on ' || strftime(next_start, '%Y-%m-%d')
                || ' and is not a new entry: the care spell continues, placement not known in between'
            WHEN next_start IS NOT NULL AND next_start > episode_end THEN
                'the next, on ' || strftime(next_start, '%Y-%m-%d')
                || ', is a new entry: counted as an exit on this date, destination not known'
            ELSE 'no later episode: counted as an exit on this date, destination not known'
        END
FROM timeline
WHERE episode_end_type = 'continues'
    AND (placement_unknown_from IS NOT NULL OR next_start IS NULL OR next_start > cover_end)
UNION ALL
SELECT
    t.source, t.area_code, t.child_key, t.care_spell_no, t.episode_start,
    'care_spell_starts_without_entry',
    'first episode of the care spell has new-episode type ' || coalesce(t.new_episode_type, 'empty')
        || ', not care_entry; '
        || CASE
            WHEN EXISTS (
                SELECT 1 FROM periods AS p
                WHERE p.source = t.source AND p.area_code IS NOT DISTINCT FROM t.area_code
                    AND t.episode_start BETWEEN p.period_start AND p.period_end
            ) THEN 'counted among the entries of its period, with no entry record'
            ELSE 'it starts outside the periods the data covers: not an entry of any period'
        END
FROM timeline AS t
WHERE t.starts_care_spell AND t.new_episode_type IS DISTINCT FROM 'care_entry'
UNION ALL
SELECT
    source, area_code, child_key, care_spell_no, episode_start,
    'temporary_move_without_normal_placement',
    'temporary move with no earlier placement in the care spell to attribute it to; counted in its own category'
FROM timeline
WHERE is_temporary AND normal_code IS NULL
)
SELECT source, area_code, child_key, care_spell_no, finding_date, finding, detail
FROM findings
