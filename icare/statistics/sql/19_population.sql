-- The child population denominators as given (icare/population.py has checked them), published
-- beside the rates with their source and vintage (statistics.md "Rates"). Empty without a file.
CREATE TABLE population AS
SELECT source, area_code, year, sex, age, population, population_source, population_vintage
FROM population_in
