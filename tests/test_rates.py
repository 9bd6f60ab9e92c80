"""Rates per 100,000 children aged 0-17 (docs/statistics.md "Rates"), worked out by hand.

One local authority (201), one period (1 April 2023 - 31 March 2024, population year 2024). The crafted
population has, for each sex, 20 children aged 0, 30 at each age 1-4, 40 at each age 5-9, 100 at each
age 10-15 and 30 at each of 16 and 17: 1,000 girls and 1,000 boys, 2,000 children.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd
import pytest

from icare.population import PopulationError, load_population
from icare.statistics import StatisticsSettingsError, compute_statistics, load_statistics_settings
from icare.statistics.compute import EPISODE_COLUMNS
from icare.statistics.settings import AgeBand
from tests.statistics_builders import CLASSIFICATION, SETTINGS, SOURCE, ep, periods

# Children per single year of age 0-17, the same for both sexes (see the module docstring).
AGES = [20] + [30] * 4 + [40] * 5 + [100] * 6 + [30] * 2
GIRLS = BOYS = sum(AGES)


def write_population(
    folder: Path,
    cells: dict[tuple[str, int, str], list[int]] | None = None,
    *,
    rows: list[dict[str, object]] | None = None,
    description: str | None = None,
) -> Path:
    """A described population file: ``cells`` maps (area, year, sex) to the 18 single-year figures."""
    folder.mkdir(parents=True, exist_ok=True)
    if rows is None:
        cells = cells if cells is not None else {("201", 2024, "F"): AGES, ("201", 2024, "M"): AGES}
        rows = [
            {"source": SOURCE, "area_code": area, "year": year, "sex": sex, "age": age, "population": n}
            for (area, year, sex), figures in cells.items()
            for age, n in enumerate(figures)
        ]
    columns = list(rows[0]) if rows else ["source", "area_code", "year", "sex", "age", "population"]
    with (folder / "population.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    path = folder / "population.yaml"
    path.write_text(
        description
        or 'population_source: "crafted test population"\nvintage: "test-1"\ndata: population.csv\n',
        encoding="utf-8",
    )
    return path


def rates_for(rows, population_path: Path | None, settings=SETTINGS, areas=("201",)) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(EPISODE_COLUMNS))
    for column in ("birth_month", "episode_start", "episode_end"):
        frame[column] = pd.to_datetime(frame[column])
    population = load_population([population_path]).table if population_path else None
    in_periods = pd.concat([periods(2024, area=area) for area in areas], ignore_index=True)
    tables = compute_statistics(
        frame, in_periods, CLASSIFICATION, settings, {SOURCE: 0}, population=population
    )
    return tables["rates"].to_pandas()


def pick(rates: pd.DataFrame, measure: str, code: str, sex: str | None, band: str, area: str = "201") -> dict:
    chosen = rates[
        (rates["area_code"] == area)
        & (rates["measure"] == measure)
        & (rates["icare_code"] == code)
        & (rates["sex"].isna() if sex is None else rates["sex"] == sex)
        & (rates["age_band"] == band)
    ]
    assert len(chosen) == 1, (measure, code, sex, band, len(chosen))
    return chosen.iloc[0].to_dict()


# In care on 31/03/2024: two girls aged 11 (AC.F12, AC.F11), a boy aged 4 (AC.F12), a young man aged 19
# (AC.F12: 18 and over, so not in the rates). Entries in the period: the first girl and the boy.
EPISODES = [
    ep("a", "01/05/2023", born="01/06/2012", sex="F", code="AC.F12", new="care_entry"),
    ep("b", "14/03/2021", born="01/06/2012", sex="F", code="AC.F11", new="care_entry"),
    ep("c", "01/06/2023", born="01/01/2020", sex="M", code="AC.F12", new="care_entry"),
    ep("d", "01/01/2023", born="01/01/2005", sex="M", code="AC.F12", new="care_entry"),
]


@pytest.fixture
def rates(tmp_path) -> pd.DataFrame:
    return rates_for(EPISODES, write_population(tmp_path / "population"))


def test_headline_rate_of_children_in_care(rates):
    # 3 children aged 0-17 in care (d is 19), 2,000 children: 100,000 x 3 / 2,000 = 150.
    row = pick(rates, "stock", "total", "total", "total")
    assert (row["children"], row["population"], row["population_year"]) == (3, 2000, 2024)
    assert row["rate_per_100000"] == pytest.approx(150.0)
    assert pd.isna(row["rate_missing_reason"])
    assert (row["population_source"], row["population_vintage"]) == ("crafted test population", "test-1")
    assert row["period_start"].isoformat() == "2023-04-01" and row["period_end"].isoformat() == "2024-03-31"


def test_age_bands_sum_single_years(rates):
    # Girls aged 10-15: 6 x 100 = 600 children, 2 in care: 333.33...
    girls = pick(rates, "stock", "total", "F", "10-15")
    assert (girls["children"], girls["population"]) == (2, 600)
    assert girls["rate_per_100000"] == pytest.approx(100_000 * 2 / 600)
    # Boys aged 1-4: 4 x 30 = 120 children, 1 in care: 833.33...
    boys = pick(rates, "stock", "total", "M", "1-4")
    assert (boys["children"], boys["population"]) == (1, 120)
    assert boys["rate_per_100000"] == pytest.approx(100_000 / 120)
    # Both sexes aged 10-15: 1,200 children.
    both = pick(rates, "stock", "total", "total", "10-15")
    assert (both["children"], both["population"]) == (2, 1200)


def test_finest_codes_carry_their_roll_ups(rates):
    foster = pick(rates, "stock", "AC.F12", "total", "total")
    assert (foster["children"], foster["population"], foster["rate_per_100000"]) == (2, 2000, 100.0)
    assert (foster["icare_level1"], foster["icare_level2"]) == ("AC.F", "AC.F1")
    kinship = pick(rates, "stock", "AC.F11", "F", "10-15")
    assert kinship["rate_per_100000"] == pytest.approx(100_000 / 600)
    total = pick(rates, "stock", "total", "total", "total")
    assert pd.isna(total["icare_level1"]) and pd.isna(total["icare_level2"])


def test_children_aged_18_and_over_are_left_out(rates):
    assert set(rates["age_band"]) <= {"under 1", "1-4", "5-9", "10-15", "16-17", "total"}
    assert "18 and over" not in set(rates["age_band"]) and "unknown" not in set(rates["age_band"])
    boys = pick(rates, "stock", "total", "M", "total")
    assert (boys["children"], boys["population"]) == (1, BOYS)  # d (19) is not counted


def test_entries_and_an_exit_free_period(rates):
    entries = pick(rates, "entries", "total", "total", "total")
    assert (entries["children"], entries["rate_per_100000"]) == (2, 100.0)
    # No child left care: the headline row is there, with a rate of 0.
    exits = pick(rates, "exits", "total", "total", "total")
    assert (exits["children"], exits["population"], exits["rate_per_100000"]) == (0, 2000, 0.0)
    assert set(rates.loc[rates["measure"] == "exits", "icare_code"]) == {"total"}


def test_an_exit_is_a_rate_of_the_children_leaving(tmp_path):
    left = ep("a", "01/05/2023", "01/09/2023", born="01/06/2012", sex="F", new="care_entry")
    rates = rates_for([left], write_population(tmp_path / "population"))
    row = pick(rates, "exits", "AC.F12", "F", "10-15")
    assert (row["children"], row["population"]) == (1, 600)
    assert pick(rates, "stock", "total", "total", "total")["rate_per_100000"] == 0.0


def test_missing_population_gives_an_empty_rate_and_its_reason(tmp_path):
    # Area 202 has children in care but no population; 201's figures are unaffected.
    other = ep("z", "01/05/2023", born="01/06/2012", sex="F", area="202", new="care_entry")
    rates = rates_for([*EPISODES, other], write_population(tmp_path / "population"), areas=("201", "202"))
    row = pick(rates, "stock", "total", "total", "total", area="202")
    assert row["children"] == 1
    assert pd.isna(row["population"]) and pd.isna(row["rate_per_100000"])
    assert row["rate_missing_reason"] == "no_population"
    assert pd.isna(row["population_source"])
    assert pick(rates, "stock", "total", "total", "total")["rate_per_100000"] == pytest.approx(150.0)


def test_population_year_follows_the_setting(tmp_path):
    # With offset -1 the 2023 estimate is used; the file has only 2024, so no rate, and says so.
    population = write_population(tmp_path / "population")
    rates = rates_for(EPISODES, population, SETTINGS.with_options(population_year_offset=-1))
    row = pick(rates, "stock", "total", "total", "total")
    assert row["population_year"] == 2023
    assert row["rate_missing_reason"] == "no_population" and pd.isna(row["rate_per_100000"])
    # Give 2023 (10 children at every age and sex: 360) and it is used.
    cells = {("201", 2023, sex): [10] * 18 for sex in ("F", "M")} | {
        ("201", 2024, sex): AGES for sex in ("F", "M")
    }
    rates = rates_for(
        EPISODES,
        write_population(tmp_path / "both", cells),
        SETTINGS.with_options(population_year_offset=-1),
    )
    row = pick(rates, "stock", "total", "total", "total")
    assert (row["population_year"], row["population"]) == (2023, 360)
    assert row["rate_per_100000"] == pytest.approx(100_000 * 3 / 360)


def test_sex_not_recorded_is_counted_in_the_total_only(tmp_path):
    unknown = ep("u", "01/05/2023", born="01/06/2012", sex=None, new="care_entry")
    rates = rates_for([*EPISODES, unknown], write_population(tmp_path / "population"))
    row = pick(rates, "stock", "total", None, "10-15")
    assert row["children"] == 1 and pd.isna(row["rate_per_100000"])
    assert row["rate_missing_reason"] == "sex_not_recorded"
    total = pick(rates, "stock", "total", "total", "total")
    assert (total["children"], total["population"]) == (4, 2000)
    assert total["rate_per_100000"] == pytest.approx(200.0)


def test_sex_u_without_its_own_population(tmp_path):
    u = ep("u", "01/05/2023", born="01/06/2012", sex="U", new="care_entry")
    rates = rates_for([u], write_population(tmp_path / "population"))
    assert pick(rates, "stock", "total", "U", "10-15")["rate_missing_reason"] == "no_population"
    assert pick(rates, "stock", "total", "total", "total")["rate_per_100000"] == pytest.approx(50.0)


def test_zero_population_gives_no_rate(tmp_path):
    girls = [*AGES[:16], 0, 0]  # no girls aged 16 or 17
    population = write_population(
        tmp_path / "population", {("201", 2024, "F"): girls, ("201", 2024, "M"): AGES}
    )
    sixteen = ep("s", "01/05/2023", born="01/01/2007", sex="F", new="care_entry")
    row = pick(rates_for([sixteen], population), "stock", "total", "F", "16-17")
    assert (row["children"], row["population"]) == (1, 0)
    assert pd.isna(row["rate_per_100000"]) and row["rate_missing_reason"] == "zero_population"


def test_other_age_bands_are_summed_from_the_same_file(tmp_path):
    unicef = load_statistics_settings(age_bands="unicef")
    rates = rates_for(EPISODES, write_population(tmp_path / "population"), unicef)
    # The boy aged 4 is in band 3-5: boys aged 3, 4 and 5 are 30 + 30 + 40 = 100.
    row = pick(rates, "stock", "total", "M", "3-5")
    assert (row["children"], row["population"], row["rate_per_100000"]) == (1, 100, 1000.0)
    # Girls aged 6-11: 40 x 4 + 100 x 2 = 360.
    assert pick(rates, "stock", "total", "F", "6-11")["population"] == 360
    assert set(rates["age_band"]) <= {"0-2", "3-5", "6-11", "12-14", "15-17", "total"}


def test_without_a_population_the_tables_are_empty():
    frame = pd.DataFrame(EPISODES, columns=list(EPISODE_COLUMNS))
    for column in ("birth_month", "episode_start", "episode_end"):
        frame[column] = pd.to_datetime(frame[column])
    tables = compute_statistics(frame, periods(2024), CLASSIFICATION, SETTINGS, {SOURCE: 0})
    assert tables["rates"].num_rows == 0 and tables["population"].num_rows == 0
    assert tables["stock"].num_rows > 0


def test_population_table_is_published_as_given(tmp_path):
    frame = pd.DataFrame(EPISODES, columns=list(EPISODE_COLUMNS))
    for column in ("birth_month", "episode_start", "episode_end"):
        frame[column] = pd.to_datetime(frame[column])
    population = load_population([write_population(tmp_path / "population")])
    tables = compute_statistics(
        frame, periods(2024), CLASSIFICATION, SETTINGS, {SOURCE: 0}, population=population.table
    )
    published = tables["population"].to_pandas()
    assert len(published) == 36
    assert published.groupby("sex")["population"].sum().to_dict() == {"F": GIRLS, "M": BOYS}
    assert set(published["population_vintage"]) == {"test-1"}


def test_a_band_across_17_and_18_cannot_have_rates(tmp_path):
    bands = (*SETTINGS.age_bands[:4], AgeBand("16-20", 16, 20), AgeBand("21+", 21, None))
    settings = SETTINGS.with_options(age_bands=bands)
    with pytest.raises(StatisticsSettingsError, match="'16-20' holds ages on both sides of 17/18"):
        rates_for(EPISODES, write_population(tmp_path / "population"), settings)


# -- malformed population files -------------------------------------------------------------------


def _good_rows() -> list[dict[str, object]]:
    return [
        {"source": SOURCE, "area_code": "201", "year": 2024, "sex": sex, "age": age, "population": n}
        for sex in ("F", "M")
        for age, n in enumerate(AGES)
    ]


def _changed(row: int, **values: object) -> list[dict[str, object]]:
    """The good rows with data row ``row`` (0 = the first, file row 2) changed."""
    rows = _good_rows()
    rows[row] = rows[row] | values
    return rows


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([*_good_rows(), _good_rows()[4]], ["row 6, column 'age': rule duplicate", "row 38, column 'age'"]),
        (_changed(2, population=-5), ["row 4, column 'population': rule population_count", "value '-5'"]),
        (_changed(17, age=18), ["row 19, column 'age': rule age_range", "value '18'"]),
        (_changed(20, sex="X"), ["row 22, column 'sex': rule sex_code", "value 'X'"]),
        (_changed(3, population=""), ["row 5, column 'population': rule not_nullable", "(empty)"]),
        (_changed(0, population="1,000"), ["row 2, column 'population': rule population_count", "'1,000'"]),
        (_changed(1, source="ssda999"), ["row 3, column 'source': rule unknown_source", "'ssda999'"]),
        (_changed(1, year="24"), ["row 3, column 'year': rule year_format", "value '24'"]),
        (
            [{k: v for k, v in row.items() if k != "population"} for row in _good_rows()],
            ["column 'population' is missing (rule missing_column)"],
        ),
        (
            [row for row in _good_rows() if not (row["sex"] == "M" and row["age"] in (3, 4, 5, 9))],
            [
                "source ssda903, area_code 201, year 2024, sex M: rule incomplete_ages: "
                "ages 3-5, 9 are missing"
            ],
        ),
        (
            [row for row in _good_rows() if row["sex"] == "F"],
            ["sex M: rule incomplete_ages: ages 0-17 are missing"],
        ),
    ],
    ids=[
        "duplicate",
        "negative",
        "age_18",
        "unknown_sex",
        "empty_population",
        "thousands_separator",
        "unknown_source",
        "two_digit_year",
        "missing_column",
        "missing_ages",
        "missing_sex",
    ],
)
def test_malformed_population_file_names_file_row_column_rule_and_value(tmp_path, rows, expected):
    path = write_population(tmp_path / "population", rows=rows)
    with pytest.raises(PopulationError) as error:
        load_population([path])
    message = str(error.value)
    assert str(tmp_path / "population" / "population.csv") in message
    for text in expected:
        assert text in message


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ('population_source: "x"\ndata: population.csv\n', "required key 'vintage' is missing"),
        ('population_source: "x"\nvintage: "1"\n', "required key 'data' is missing"),
        ('population_source: "x"\nvintage: "1"\ndata: other.csv\n', "other.csv does not exist"),
        (
            'population_source: "x"\nvintage: "1"\ndata: population.csv\nlicense: y\n',
            "unknown key(s) ['license']",
        ),
    ],
)
def test_malformed_description(tmp_path, description, expected):
    path = write_population(tmp_path / "population", description=description)
    with pytest.raises(PopulationError, match=r"population\.yaml") as error:
        load_population([path])
    assert expected in str(error.value)


def test_the_csv_given_instead_of_its_description(tmp_path):
    path = write_population(tmp_path / "population")
    with pytest.raises(PopulationError, match="give the YAML description"):
        load_population([path.with_name("population.csv")])


def test_two_files_may_not_give_the_same_area_and_year(tmp_path):
    first = write_population(tmp_path / "one")
    second = write_population(tmp_path / "two")
    with pytest.raises(PopulationError, match="both give source ssda903, area_code 201, year 2024"):
        load_population([first, second])


def test_population_year_offset_setting_is_checked(tmp_path):
    import yaml

    raw = yaml.safe_load(SETTINGS.path.read_text(encoding="utf-8"))
    raw["population_year_offset"] = "last year"
    path = tmp_path / "statistics.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(StatisticsSettingsError, match="population_year_offset must be a whole number"):
        load_statistics_settings(path)
    raw.pop("population_year_offset")
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(StatisticsSettingsError, match="required key 'population_year_offset' is missing"):
        load_statistics_settings(path)
    assert SETTINGS.population_year_offset == 0


# -- the command, the sample population and the run ------------------------------------------------


def test_bundled_sample_population_is_the_documented_command(tmp_path):
    from icare.sources.spec import load_source_spec
    from icare.sources.ssda903.synthetic_population import main

    bundled = load_source_spec("ssda903").sample_population.parent
    assert main([str(tmp_path)]) == 0  # the defaults, as sample_population/README.md says
    for name in ("population.csv", "population.yaml"):
        assert (tmp_path / name).read_bytes() == (bundled / name).read_bytes(), name
    population = load_population([bundled / "population.yaml"]).table.to_pandas()
    assert set(population["area_code"]) == {"201", "202"}
    assert set(population["year"]) == set(range(2021, 2026))  # offsets 0 and -1 for 2022-2025


def test_own_returns_without_a_population_publish_empty_rates(tmp_path, run_on):
    from tests.builders import episode, header, write_return

    write_return(tmp_path / "in", 2024, headers=[header("1")], episodes=[episode("1", "01/05/2023")])
    tables = run_on(tmp_path / "in")
    assert tables["rates"].num_rows == 0 and tables["population"].num_rows == 0
    assert tables["stock"].num_rows == 1


def test_own_returns_with_a_population(tmp_path, pseudonym_key):
    from icare.pipeline import RunOptions, run
    from tests.builders import episode, header, write_return

    # Child 1 (born 15/06/2012, aged 11 on 31/03/2024) and child 2 (born 15/06/2015, aged 8), both in
    # care on 31 March 2024 in area 201, of 2,000 children: 100,000 x 2 / 2,000 = 100.
    write_return(
        tmp_path / "in",
        2024,
        headers=[header("1"), header("2", sex="2", dob="15/06/2015")],
        episodes=[episode("1", "01/05/2023"), episode("2", "01/06/2023")],
    )
    population = write_population(tmp_path / "population")
    result = run(RunOptions({"ssda903": tmp_path / "in"}, tmp_path / "out", population_path=population))
    rates = result.tables["rates"].to_pandas()
    row = pick(rates, "stock", "total", "total", "total")
    assert (row["children"], row["population"], row["rate_per_100000"]) == (2, 2000, 100.0)
    assert result.summary["latest_rates"] == [
        {
            "source": SOURCE,
            "area_code": "201",
            "reference_date": "2024-03-31",
            "children": 2,
            "population_year": 2024,
            "population": 2000,
            "rate_per_100000": 100.0,
            "rate_missing_reason": None,
        }
    ]
    runs = result.tables["runs"]
    assert '"vintage": "test-1"' in runs["population"].iloc[0]


@pytest.mark.slow
def test_command_with_a_malformed_population_stops_with_exit_2_and_writes_nothing(tmp_path):
    from tests.test_cli import icare

    path = write_population(tmp_path / "population", rows=_changed(17, age=18))
    done = icare("run", "--population", str(path), "--output", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "icare: error: the population file is malformed" in done.stderr
    assert "population.csv: row 19, column 'age': rule age_range" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    assert "read and validate" not in done.stderr  # stopped before any return was read


@pytest.mark.slow
def test_command_on_own_returns_says_there_are_no_rates(tmp_path):
    from tests.builders import episode, header, write_return
    from tests.conftest import TEST_KEY
    from tests.test_cli import icare

    write_return(tmp_path / "in", 2024, headers=[header("1")], episodes=[episode("1", "01/05/2023")])
    done = icare(
        "run",
        "--quiet",
        "--source",
        f"ssda903={tmp_path / 'in'}",
        "--output",
        str(tmp_path / "o"),
        key=TEST_KEY,
    )
    assert done.returncode == 0, done.stderr
    assert "Rates: none (no population file; give --population FILE" in done.stdout
    population = write_population(tmp_path / "population")
    done = icare(
        "run",
        "--quiet",
        "--source",
        f"ssda903={tmp_path / 'in'}",
        "--population",
        str(population),
        "--output",
        str(tmp_path / "o"),
        key=TEST_KEY,
    )
    assert done.returncode == 0, done.stderr
    assert "Population: crafted test population" in done.stdout
    # One child aged 11 in care on 31/03/2024, of 2,000 children: 50.0 per 100,000.
    assert re.search(r"ssda903 +201 +1 / +2,000 = +50\.0\n", done.stdout), done.stdout


def test_dagster_settings_choose_the_population_as_the_command_does(tmp_path, monkeypatch):
    from pipelines.resources import IcareSettings

    monkeypatch.delenv("ICARE_POPULATION", raising=False)
    monkeypatch.delenv("ICARE_LANDING_DIR", raising=False)
    sample = IcareSettings().population()  # the bundled sample: its population
    assert sample is not None and sample.files[0].vintage.startswith("icare-synthetic")
    assert IcareSettings(sources={"ssda903": str(tmp_path)}).population() is None  # own returns: none
    crafted = write_population(tmp_path / "population")
    monkeypatch.setenv("ICARE_POPULATION", str(crafted))
    assert IcareSettings().run_options().population_path == crafted
    assert [f.vintage for f in IcareSettings().population().files] == ["test-1"]
    other = write_population(
        tmp_path / "other", description='population_source: "b"\nvintage: "2"\ndata: population.csv\n'
    )
    assert [f.vintage for f in IcareSettings(population_path=str(other)).population().files] == ["2"]
