-- Days in care: care spells that ended in the period (by category at exit), and placement spells
-- that ended in it (by their category at start). Days = end date - start date. Care spells whose
-- start is not known are left out of the quartiles and counted in spells_start_unknown
-- (15_spells_ended.sql). docs/statistics.md "Durations".
CREATE TABLE durations AS
SELECT
    source, area_code, period_start, period_end, unit, icare_code, sex, age_band,
    count(*) AS spells,
    count(*) FILTER (WHERE start_unknown) AS spells_start_unknown,
    quantile_cont(duration_days, 0.25) FILTER (WHERE NOT start_unknown) AS days_q1,
    quantile_cont(duration_days, 0.5) FILTER (WHERE NOT start_unknown) AS days_median,
    quantile_cont(duration_days, 0.75) FILTER (WHERE NOT start_unknown) AS days_q3
FROM ended_spells
GROUP BY ALL
