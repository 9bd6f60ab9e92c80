-- The flow check's stocks (17_flow_check.sql goes on from these counts): the children open on the day
-- before each period and on its last day, and their records beyond one (overlaps). Counted for one
-- range of children at a time (compute.py, child ranges): a child is counted from its own records,
-- and each range needs a fraction of the working memory; the ranges' counts are summed.
CREATE TABLE children_open AS
WITH dates AS (
    -- a number per period, so that children are counted on integer keys (grouping text is slow)
    SELECT
        row_number() OVER (ORDER BY source, area_code, period_start) AS period_id,
        source, area_code, period_start, period_end, period_start - 1 AS start_date
    FROM periods
),
by_child AS (
    -- each child's records open on the day before the period and on its last day: one join on the
    -- records open at some time from the one to the other, counted for both dates
    SELECT
        d.period_id, t.child_id,
        count(*) FILTER (WHERE t.episode_start <= d.start_date) AS records_start,
        count(*) FILTER (WHERE t.cover_end IS NULL OR t.cover_end > d.period_end) AS records_end
    FROM dates AS d
    JOIN child_timeline($first_child, $last_child) AS t
        ON t.source = d.source AND t.area_code IS NOT DISTINCT FROM d.area_code
        AND t.episode_start <= d.period_end AND (t.cover_end IS NULL OR t.cover_end > d.start_date)
    GROUP BY ALL
),
counted AS (
    SELECT
        period_id,
        count(*) FILTER (WHERE records_start > 0) AS stock_start,
        count(*) FILTER (WHERE records_end > 0) AS stock_end,
        coalesce(sum(records_start - 1) FILTER (WHERE records_start > 0), 0)::BIGINT AS set_aside_start,
        coalesce(sum(records_end - 1) FILTER (WHERE records_end > 0), 0)::BIGINT AS set_aside_end
    FROM by_child
    GROUP BY period_id
)
SELECT d.source, d.area_code, d.period_start, c.* EXCLUDE (period_id)
FROM counted AS c
JOIN dates AS d USING (period_id)
