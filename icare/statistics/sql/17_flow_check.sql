-- The flow identity for each source, area and period, counting care spells:
-- stock at the end = stock at the start (the day before the period) + entries - exits.
-- Stocks are children, and the overlap rule leaves a child in at most one care spell on a date, so
-- the identity holds exactly unless something is wrong; `difference` is then non-zero and
-- `status` says "difference". The records the overlap rule set aside on the two dates (which a
-- count of raw records would include) are published as the documented adjustment.
-- docs/statistics.md "Flow check".
CREATE TABLE flow_check AS
WITH dates AS (
    SELECT source, area_code, period_start, period_end, period_start - 1 AS start_date FROM periods
),
stock_start AS (
    SELECT d.source, d.area_code, d.period_start, count(*) AS children
    FROM dates AS d
    JOIN timeline AS t
        ON t.source = d.source AND t.area_code IS NOT DISTINCT FROM d.area_code
        AND t.episode_start <= d.start_date AND (t.cover_end IS NULL OR t.cover_end > d.start_date)
    GROUP BY ALL
),
stock_end AS (
    SELECT d.source, d.area_code, d.period_start, count(*) AS children
    FROM dates AS d
    JOIN timeline AS t
        ON t.source = d.source AND t.area_code IS NOT DISTINCT FROM d.area_code
        AND t.episode_start <= d.period_end AND (t.cover_end IS NULL OR t.cover_end > d.period_end)
    GROUP BY ALL
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
set_aside AS (
    -- records running on a date but cut by the overlap rule before it
    SELECT
        d.source, d.area_code, d.period_start,
        count(*) FILTER (
            WHERE t.episode_start <= d.start_date AND t.end_date <= d.start_date
            AND (t.episode_end IS NULL OR t.episode_end > d.start_date)
        ) AS at_start,
        count(*) FILTER (
            WHERE t.episode_start <= d.period_end AND t.end_date <= d.period_end
            AND (t.episode_end IS NULL OR t.episode_end > d.period_end)
        ) AS at_end,
        count(*) FILTER (WHERE t.next_start BETWEEN d.period_start AND d.period_end) AS in_period
    FROM dates AS d
    JOIN timeline AS t
        ON t.source = d.source AND t.area_code IS NOT DISTINCT FROM d.area_code AND t.cut_by_overlap
    GROUP BY ALL
)
SELECT
    d.source, d.area_code, d.period_start, d.period_end,
    coalesce(ss.children, 0) AS stock_start,
    coalesce(f.entries, 0) AS entries,
    coalesce(f.exits, 0) AS exits,
    coalesce(se.children, 0) AS stock_end,
    coalesce(se.children, 0) - (coalesce(ss.children, 0) + coalesce(f.entries, 0) - coalesce(f.exits, 0))
        AS difference,
    coalesce(o.at_start, 0) AS overlap_records_set_aside_start,
    coalesce(o.at_end, 0) AS overlap_records_set_aside_end,
    coalesce(o.in_period, 0) AS overlaps_resolved_in_period,
    CASE
        WHEN coalesce(se.children, 0)
            = coalesce(ss.children, 0) + coalesce(f.entries, 0) - coalesce(f.exits, 0) THEN 'balanced'
        ELSE 'difference'
    END AS status
FROM dates AS d
LEFT JOIN stock_start AS ss
    ON ss.source = d.source AND ss.area_code IS NOT DISTINCT FROM d.area_code
    AND ss.period_start = d.period_start
LEFT JOIN stock_end AS se
    ON se.source = d.source AND se.area_code IS NOT DISTINCT FROM d.area_code
    AND se.period_start = d.period_start
LEFT JOIN flows AS f
    ON f.source = d.source AND f.area_code IS NOT DISTINCT FROM d.area_code
    AND f.period_start = d.period_start
LEFT JOIN set_aside AS o
    ON o.source = d.source AND o.area_code IS NOT DISTINCT FROM d.area_code
    AND o.period_start = d.period_start
