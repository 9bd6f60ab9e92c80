-- The durations' margin rows (the release's totals: docs/disclosure.md "Totals"), with quartiles of
-- days computed from the spells themselves: a quartile of a total is not a sum of the cells'
-- quartiles. Summed over areas, the ICare hierarchy (code -> level 2 -> level 1 -> all), sexes and
-- ages (band -> under 18, the bands inside 0-17 -> all); the finest cells are `durations`.
CREATE TABLE durations_totals AS
WITH child_bands AS (
    SELECT age_band FROM age_lookup GROUP BY age_band HAVING max(age) <= 17
),
spells AS (
    SELECT
        e.*,
        coalesce(c.level1, e.icare_code) AS k1,
        coalesce(c.level2, e.icare_code) AS k2,
        CASE WHEN e.age_band IN (SELECT age_band FROM child_bands) THEN $child_ages_band END AS age_group
    FROM ended_spells AS e
    LEFT JOIN codes AS c ON c.code = e.icare_code
),
summed AS (
    SELECT
        source,
        CASE WHEN grouping(area_code) = 1 THEN $total ELSE area_code END AS area_code,
        period_start, period_end, unit,
        CASE WHEN grouping(icare_code) = 0 THEN 'code' WHEN grouping(k2) = 0 THEN 'level2'
            WHEN grouping(k1) = 0 THEN 'level1' ELSE $total END AS icare_level,
        CASE WHEN grouping(icare_code) = 0 THEN icare_code WHEN grouping(k2) = 0 THEN k2
            WHEN grouping(k1) = 0 THEN k1 ELSE $total END AS icare_code,
        CASE WHEN grouping(icare_code) = 0 THEN any_value(c1) WHEN grouping(k1) = 0 THEN k1
            ELSE $total END AS icare_level1,
        CASE WHEN grouping(icare_code) = 0 THEN any_value(c2) WHEN grouping(k2) = 0 THEN k2
            ELSE $total END AS icare_level2,
        CASE WHEN grouping(sex) = 1 THEN $total ELSE sex END AS sex,
        CASE WHEN grouping(age_band) = 0 THEN age_band WHEN grouping(age_group) = 0 THEN age_group
            ELSE $total END AS age_band,
        count(*) AS spells,
        count(*) FILTER (WHERE start_unknown) AS spells_start_unknown,
        -- the three quartiles from one state per group, of 4-byte days: each of the grouping sets
        -- holds every spell's days until its quartiles are computed
        quantile_cont(duration_days::INTEGER, [0.25, 0.5, 0.75]) FILTER (WHERE NOT start_unknown) AS days,
        -- the finest cells (every dimension grouped) are durations' own rows; grouping by the age
        -- group alone also gives the bands outside 0-17 again: both left out
        grouping(area_code, icare_code, sex, age_band) = 0
            OR (grouping(age_band) = 1 AND grouping(age_group) = 0 AND age_group IS NULL) AS left_out
    FROM (SELECT s.*, c.level1 AS c1, c.level2 AS c2 FROM spells AS s LEFT JOIN codes AS c ON c.code = s.icare_code)
    GROUP BY source, period_start, period_end, unit,
        CUBE (area_code, sex), ROLLUP (k1, k2, icare_code), ROLLUP (age_group, age_band)
)
SELECT * EXCLUDE (left_out, days), days[1] AS days_q1, days[2] AS days_median, days[3] AS days_q3
FROM summed
WHERE NOT left_out
