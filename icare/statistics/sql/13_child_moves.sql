-- Moves, first stage (13_moves.sql sums these counts): the children in care in each period by
-- their number of moves and the category of their last episode in it (05_child_periods.sql),
-- counted for one range of children at a time (compute.py, child ranges): a child's moves are its
-- own, and each range needs a fraction of the working memory; the ranges' counts are summed.
CREATE TABLE child_moves AS
SELECT
    p.source, p.area_code, p.period_start, p.period_end, t.stat_code AS icare_code, t.sex,
    coalesce(a.age_band, 'unknown') AS age_band,
    CASE WHEN m.moves >= 3 THEN '3 or more' ELSE m.moves::VARCHAR END AS moves_in_period,
    count(*) AS children,
    sum(m.moves) AS moves
FROM child_periods AS m
JOIN period_ids AS p USING (period_id)
-- the last episode's other columns, joined once
JOIN child_timeline($first_child, $last_child) AS t
    ON t.child_id = m.child_id AND t.episode_no = m.last_episode_no
LEFT JOIN age_lookup AS a
    ON a.age = date_sub('year', t.birth_month, least(p.period_end, coalesce(t.cover_end, p.period_end)))
WHERE m.child_id BETWEEN $first_child AND $last_child
GROUP BY ALL
