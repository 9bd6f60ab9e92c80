-- The flow check's stocks (17_flow_check.sql goes on from these counts): the children open on the day
-- before each period and on its last day, and their records beyond one (overlaps). Counted for one
-- range of children at a time (compute.py, child ranges): a child is counted from its own records,
-- and each range needs a fraction of the working memory; the ranges' counts are summed.
CREATE TABLE children_open AS
WITH dates AS (
    SELECT source, area_code, period_start, period_end, period_start - 1 AS start_date FROM periods
),
open_records AS (
    -- records open on the day before the period and on its last day
    SELECT d.source, d.area_code, d.period_start, 'start' AS side, t.child_id
    FROM dates AS d
    JOIN child_timeline($first_child, $last_child) AS t
        ON t.source = d.source AND t.area_code IS NOT DISTINCT FROM d.area_code
        AND t.episode_start <= d.start_date AND (t.cover_end IS NULL OR t.cover_end > d.start_date)
    UNION ALL
    SELECT d.source, d.area_code, d.period_start, 'end', t.child_id
    FROM dates AS d
    JOIN child_timeline($first_child, $last_child) AS t
        ON t.source = d.source AND t.area_code IS NOT DISTINCT FROM d.area_code
        AND t.episode_start <= d.period_end AND (t.cover_end IS NULL OR t.cover_end > d.period_end)
),
by_child AS (
    -- each child open on a date once, with its number of open records (one grouping, cheaper than
    -- counting distinct children per side)
    SELECT source, area_code, period_start, side, child_id, count(*) AS records
    FROM open_records
    GROUP BY ALL
)
SELECT
    source, area_code, period_start,
    count(*) FILTER (WHERE side = 'start') AS stock_start,
    count(*) FILTER (WHERE side = 'end') AS stock_end,
    coalesce(sum(records - 1) FILTER (WHERE side = 'start'), 0)::BIGINT AS set_aside_start,
    coalesce(sum(records - 1) FILTER (WHERE side = 'end'), 0)::BIGINT AS set_aside_end
FROM by_child
GROUP BY ALL
