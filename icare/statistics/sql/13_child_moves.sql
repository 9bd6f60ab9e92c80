-- Moves, first stage (13_moves.sql sums these counts): the children in care in each period by
-- their number of moves and the category of their last episode in it, counted for one range of
-- children at a time (compute.py, child ranges): a child's moves are its own, and each range needs a
-- fraction of the working memory; the ranges' counts are summed.
CREATE TABLE child_moves AS
WITH numbered_periods AS (
    -- a number per period, so that children are grouped on integer keys (grouping text is slow)
    SELECT row_number() OVER (ORDER BY source, area_code, period_start) AS period_id, * FROM periods
),
in_period AS (
    -- a child's episodes are numbered in start order: the last episode in the period has the highest
    -- number (found on integers, then its other columns joined once)
    SELECT
        p.period_id, t.child_id,
        max(t.episode_no) AS last_episode_no,
        count(*) FILTER (
            WHERE t.starts_placement_spell AND NOT t.starts_care_spell
            AND t.episode_start BETWEEN p.period_start AND p.period_end
        ) AS moves
    FROM numbered_periods AS p
    JOIN child_timeline($first_child, $last_child) AS t
        ON t.source = p.source AND t.area_code IS NOT DISTINCT FROM p.area_code
        AND t.episode_start <= p.period_end AND (t.cover_end IS NULL OR t.cover_end >= p.period_start)
    GROUP BY ALL
)
SELECT
    p.source, p.area_code, p.period_start, p.period_end, t.stat_code AS icare_code, t.sex,
    coalesce(a.age_band, 'unknown') AS age_band,
    CASE WHEN m.moves >= 3 THEN '3 or more' ELSE m.moves::VARCHAR END AS moves_in_period,
    count(*) AS children,
    sum(m.moves) AS moves
FROM in_period AS m
JOIN numbered_periods AS p USING (period_id)
JOIN child_timeline($first_child, $last_child) AS t
    ON t.child_id = m.child_id AND t.episode_no = m.last_episode_no
LEFT JOIN age_lookup AS a
    ON a.age = date_sub('year', t.birth_month, least(p.period_end, coalesce(t.cover_end, p.period_end)))
GROUP BY ALL
