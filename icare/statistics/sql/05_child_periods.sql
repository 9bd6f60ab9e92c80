-- Each child in care at some time in each period (a record starting by the period's end and still
-- covering its first day), with what stock (10_stock.sql), moves (13_child_moves.sql) and the flow
-- check's stocks (17_flow_check.sql) count of it: one join of the timeline with the periods instead
-- of one per statement. Made for one range of children at a time (compute.py, child ranges): each
-- range needs a fraction of the working memory.
CREATE TABLE child_periods AS
SELECT
    p.period_id, t.child_id,
    -- a child's episodes are numbered in start order: its last episode in the period
    max(t.episode_no) AS last_episode_no,
    -- placement moves: placement spells starting in the period other than a care spell's first
    count(*) FILTER (
        WHERE t.starts_placement_spell AND NOT t.starts_care_spell AND t.episode_start >= p.period_start
    ) AS moves,
    -- records open on the day before the period and on its last day (the join has the other bound)
    count(*) FILTER (WHERE t.episode_start < p.period_start) AS records_start,
    count(*) FILTER (WHERE t.cover_end IS NULL OR t.cover_end > p.period_end) AS records_end,
    -- the later-starting record open on the period's last day (the overlap rule of stock)
    max(t.episode_no) FILTER (WHERE t.cover_end IS NULL OR t.cover_end > p.period_end) AS open_at_end_no
FROM period_ids AS p
JOIN child_timeline($first_child, $last_child) AS t
    ON t.source = p.source AND t.area_code IS NOT DISTINCT FROM p.area_code
    AND t.episode_start <= p.period_end AND (t.cover_end IS NULL OR t.cover_end >= p.period_start)
GROUP BY p.period_id, t.child_id
