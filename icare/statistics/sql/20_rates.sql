-- Rates per 100,000 children aged 0-17: 100,000 x children / population of the same source, area,
-- population year, sex and age band (statistics.md "Rates"; docs/statistics.md "Rates").
-- Numerators are the `children` of stock (on the reference date = period_end), entries and exits,
-- aged 0-17 (bands inside 0-17: 18 and over and unknown age have no denominator). Rows are the
-- finest codes x sex x age band, plus total rows ('total' in icare_code, sex and/or age_band) over
-- every combination of the three. A period's population year is the calendar year of period_end
-- plus $population_year_offset. Where no population matches, the rate is empty and
-- rate_missing_reason says why; nothing is estimated. Only sources the population file covers.
CREATE TABLE rates AS
WITH child_bands AS (
    SELECT age_band FROM age_lookup GROUP BY age_band HAVING max(age) <= 17
),
counts AS (
    SELECT source, area_code, reference_date AS period_end, 'stock' AS measure, icare_code, sex, age_band,
        children
    FROM stock
    UNION ALL
    SELECT source, area_code, period_end, 'entries', icare_code, sex, age_band, children FROM entries
    UNION ALL
    SELECT source, area_code, period_end, 'exits', icare_code, sex, age_band, children FROM exits
),
summed AS (
    SELECT
        source, area_code, period_end, measure,
        CASE WHEN grouping(icare_code) = 1 THEN 'total' ELSE icare_code END AS icare_code,
        CASE WHEN grouping(sex) = 1 THEN 'total' ELSE sex END AS sex,
        CASE WHEN grouping(age_band) = 1 THEN 'total' ELSE age_band END AS age_band,
        sum(children)::BIGINT AS children
    FROM counts
    WHERE age_band IN (SELECT age_band FROM child_bands)
        AND source IN (SELECT source FROM population_in)
    GROUP BY source, area_code, period_end, measure, CUBE (icare_code, sex, age_band)
),
headline AS (
    -- The total row of every period and measure exists even when no child was counted (rate 0).
    SELECT p.source, p.area_code, p.period_end, m.measure, 'total' AS icare_code, 'total' AS sex,
        'total' AS age_band, 0::BIGINT AS children
    FROM periods AS p
    CROSS JOIN (VALUES ('stock'), ('entries'), ('exits')) AS m(measure)
    WHERE p.source IN (SELECT source FROM population_in)
        AND NOT EXISTS (
            SELECT 1 FROM summed AS s
            WHERE s.source = p.source AND s.area_code IS NOT DISTINCT FROM p.area_code
                AND s.period_end = p.period_end AND s.measure = m.measure
                AND s.icare_code = 'total' AND s.sex = 'total' AND s.age_band = 'total'
        )
),
population_bands AS (
    SELECT
        p.source, p.area_code, p.year,
        CASE WHEN grouping(p.sex) = 1 THEN 'total' ELSE p.sex END AS sex,
        CASE WHEN grouping(a.age_band) = 1 THEN 'total' ELSE a.age_band END AS age_band,
        sum(p.population)::BIGINT AS population,
        any_value(p.population_source) AS population_source,
        any_value(p.population_vintage) AS population_vintage
    FROM population_in AS p
    JOIN age_lookup AS a ON a.age = p.age
    GROUP BY p.source, p.area_code, p.year, CUBE (p.sex, a.age_band)
),
counted AS (
    SELECT *, (year(period_end) + $population_year_offset)::BIGINT AS population_year
    FROM (SELECT * FROM summed UNION ALL SELECT * FROM headline)
)
SELECT
    c.source, c.area_code, per.period_start, c.period_end, c.measure, c.icare_code, c.sex, c.age_band,
    c.children, c.population_year, b.population,
    CASE WHEN b.population > 0 THEN 100000.0 * c.children / b.population END AS rate_per_100000,
    CASE
        WHEN c.sex IS NULL THEN 'sex_not_recorded'
        WHEN b.population IS NULL THEN 'no_population'
        WHEN b.population = 0 THEN 'zero_population'
    END AS rate_missing_reason,
    b.population_source, b.population_vintage
FROM counted AS c
JOIN periods AS per
    ON per.source = c.source AND per.area_code IS NOT DISTINCT FROM c.area_code
    AND per.period_end = c.period_end
LEFT JOIN population_bands AS b
    ON b.source = c.source AND b.area_code IS NOT DISTINCT FROM c.area_code
    AND b.year = c.population_year AND b.sex = c.sex AND b.age_band = c.age_band
