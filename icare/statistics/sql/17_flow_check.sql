-- The flow identity for each source, area and period, counting care spells:
-- stock at the end = stock at the start (the day before the period) + entries - exits.
-- Stocks are children, and a child's care spells never overlap (overlapping records join one spell),
-- so the identity holds exactly unless something is wrong; `difference` is then non-zero and
-- `balance` says "difference". The extra records a raw count of open records would include on the
-- two dates (overlaps) are published as the documented adjustment.
-- docs/statistics.md "Flow check".
CREATE TABLE flow_check AS
WITH dates AS (
    SELECT period_id, source, area_code, period_start, period_end FROM period_ids
),
stocks AS (
    -- the children open on the day before the period and on its last day, and their records beyond
    -- one (05_child_periods.sql: a child's records open on each date)
    SELECT
        period_id,
        count(*) FILTER (WHERE records_start > 0) AS stock_start,
        count(*) FILTER (WHERE records_end > 0) AS stock_end,
        coalesce(sum(records_start - 1) FILTER (WHERE records_start > 0), 0)::BIGINT AS set_aside_start,
        coalesce(sum(records_end - 1) FILTER (WHERE records_end > 0), 0)::BIGINT AS set_aside_end
    FROM child_periods
    GROUP BY period_id
),
flows AS (
    SELECT
        d.source, d.area_code, d.period_start,
        count(*) FILTER (WHERE s.spell_start BETWEEN d.period_start AND d.period_end) AS entries,
        count(*) FILTER (WHERE s.spell_end BETWEEN d.period_start AND d.period_end) AS exits
    FROM dates AS d
    JOIN care_spells AS s
        ON s.source = d.source AND s.area_code IS NOT DISTINCT FROM d.area_code
        AND s.spell_start <= d.period_end AND (s.spell_end IS NULL OR s.spell_end >= d.period_start)
    GROUP BY ALL
),
overlaps_cut AS (
    SELECT d.source, d.area_code, d.period_start, count(*) AS in_period
    FROM dates AS d
    JOIN timeline AS t
        ON t.source = d.source AND t.area_code IS NOT DISTINCT FROM d.area_code AND t.overlaps_next
        AND t.next_start BETWEEN d.period_start AND d.period_end
    GROUP BY ALL
)
SELECT
    d.source, d.area_code, d.period_start, d.period_end,
    coalesce(st.stock_start, 0) AS stock_start,
    coalesce(f.entries, 0) AS entries,
    coalesce(f.exits, 0) AS exits,
    coalesce(st.stock_end, 0) AS stock_end,
    coalesce(st.stock_end, 0) - (coalesce(st.stock_start, 0) + coalesce(f.entries, 0) - coalesce(f.exits, 0))
        AS difference,
    coalesce(st.set_aside_start, 0) AS overlap_records_set_aside_start,
    coalesce(st.set_aside_end, 0) AS overlap_records_set_aside_end,
    coalesce(o.in_period, 0) AS overlaps_resolved_in_period,
    CASE
        WHEN coalesce(st.stock_end, 0)
            = coalesce(st.stock_start, 0) + coalesce(f.entries, 0) - coalesce(f.exits, 0) THEN 'balanced'
        ELSE 'difference'
    END AS balance
FROM dates AS d
LEFT JOIN stocks AS st USING (period_id)
LEFT JOIN flows AS f
    ON f.source = d.source AND f.area_code IS NOT DISTINCT FROM d.area_code
    AND f.period_start = d.period_start
LEFT JOIN overlaps_cut AS o
    ON o.source = d.source AND o.area_code IS NOT DISTINCT FROM d.area_code
    AND o.period_start = d.period_start
