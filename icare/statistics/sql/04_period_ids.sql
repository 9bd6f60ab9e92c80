-- A number per reporting period (source, area and period), so that the per-child counts of
-- 05_child_periods.sql are grouped and joined on integers (grouping text is slow). Made once, so
-- every statement reading it sees the same numbers.
CREATE TABLE period_ids AS
SELECT row_number() OVER (ORDER BY source, area_code, period_start, period_end) AS period_id, *
FROM periods
