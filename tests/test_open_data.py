"""Open-data CSVs (docs/open-data.md): the EES layout, checked against the standard's rules
(tests/ees_standard.py) on crafted release tables shaped as the release contract says (total rows,
``icare_level``, ``is_total``, rates) and on the files the pipeline writes for the bundled sample."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from icare import resources
from icare.classification import load_classification
from icare.disclosure import load_disclosure_rules
from icare.release import open_data
from icare.release.folder import WRITERS, ReleaseContext
from icare.release.open_data_config import (
    OpenDataConfig,
    OpenDataConfigError,
    load_area_codes,
    load_open_data_config,
)
from tests.conftest import run_with_test_key
from tests.ees_standard import problems, read_pair

CLASSIFICATION = load_classification()
F11, F12 = "AC.F11", "AC.F12"
LABELS = {  # hand-written: the classification's and config/open_data.yaml's labels of the crafted codes
    "care_sector": {"AC.F": "Formal alternative care"},
    "care_type": {"AC.F1": "Formal family-based care"},
    "care_category": {
        F11: "Formal kinship care (relatives or close family friends)",
        F12: "Foster care (non-kin, approved carers)",
    },
    "sex": {"F": "Female", "M": "Male"},
    "age_band": {"under 18": "Under 18 (0 to 17 years)"},
}
# Children of the finest cells: (area, code, sex) -> count; all aged under 18.
LEAVES = {
    ("201", F11, "F"): 3,
    ("201", F11, "M"): 7,
    ("201", F12, "F"): 10,
    ("201", F12, "M"): 12,
    ("202", F11, "F"): 6,
    ("202", F11, "M"): 8,
    ("202", F12, "F"): 20,
    ("202", F12, "M"): 15,
}
WITHHELD = {("201", F11, "F"): "A", ("201", F12, "F"): "D"}  # code rows of the whole age group
POPULATION = {("201", "F"): 1000, ("201", "M"): 1000, ("202", "F"): 2000}  # 202 M has none


def _with_areas(config: OpenDataConfig, areas: Path | None) -> OpenDataConfig:
    source = config.sources["ssda903"].model_copy(
        update={"area_codes": None if areas is None else str(areas)}
    )
    return config.model_copy(update={"sources": {"ssda903": source}})


@pytest.fixture
def areas_csv(tmp_path) -> Path:
    """An area code list naming area 201 only (202 is left out on purpose)."""
    path = tmp_path / "areas.csv"
    path.write_text(
        "old_la_code,new_la_code,la_name,region_code,region_name\n"
        "201,E09000001,City of London,E12000007,London\n"
    )
    return path


def crafted_stock() -> pa.Table:
    """A release.stock with the contract's margin rows: every area/sex/ICare level/age combination."""
    rows = []
    icare_levels = [("code", F11), ("code", F12), ("level2", "AC.F1"), ("level1", "AC.F"), ("total", "total")]
    for area, sex, (level, code), age in itertools.product(
        ["201", "202", "total"], ["F", "M", "total"], icare_levels, ["under 18", "total"]
    ):
        children = sum(
            n
            for (a, c, s), n in LEAVES.items()
            if area in (a, "total") and sex in (s, "total") and (level != "code" or c == code)
        )
        status = WITHHELD.get((area, code, sex), "F") if level == "code" and age == "under 18" else "F"
        areas = ["201", "202"] if area == "total" else [area]
        sexes = ["F", "M"] if sex == "total" else [sex]
        pops = [POPULATION.get((a, s)) for a in areas for s in sexes]
        population = None if None in pops else sum(pops)
        rate = children / population * 100_000 if population and age == "under 18" else None
        reason = None if rate is not None else ("no_population" if population is None else "all_ages")
        rows.append(
            {
                "source": "ssda903",
                "area_code": area,
                "reference_date": date(2024, 3, 31),
                "icare_code": code,
                "icare_level1": "total" if level == "total" else "AC.F",
                "icare_level2": "total" if level in ("total", "level1") else "AC.F1",
                "icare_level": level,
                "sex": sex,
                "age_band": age,
                "provider_sector": "total",
                "children": None if status != "F" else children,
                "children_status": status,
                "temporary_moves_resolved": 0,
                "temporary_moves_resolved_status": "F",
                "population": population,
                "rate_per_100000": None if status != "F" else rate,
                "rate_status": status,
                "rate_missing_reason": reason if status == "F" else None,
                "is_total": "total" in (area, sex, age) or level != "code",
                "classification_version": CLASSIFICATION.version_id,
            }
        )
    frame = pd.DataFrame(rows)
    types = {"children": "Int64", "temporary_moves_resolved": "Int64", "population": "Int64"}
    return pa.Table.from_pandas(frame.astype(types), preserve_index=False)


def _context(folder: Path, tables: dict[str, pa.Table]) -> ReleaseContext:
    return ReleaseContext(
        folder=folder,
        run_id="test",
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
        tables=tables,
        classification=CLASSIFICATION,
        disclosure=load_disclosure_rules(),
        summary={},
    )


@pytest.fixture
def crafted_files(tmp_path, areas_csv, monkeypatch) -> Path:
    config = _with_areas(load_open_data_config(), areas_csv)
    monkeypatch.setattr(open_data, "load_open_data_config", lambda: config)
    folder = tmp_path / "release"
    folder.mkdir()
    open_data.write_open_data(_context(folder, {"stock": crafted_stock()}))
    return folder


def test_the_writer_is_registered():
    assert ("open-data CSVs (EES layout)", open_data.write_open_data) in WRITERS


def test_crafted_stock_passes_the_standard(crafted_files):
    assert sorted(p.name for p in crafted_files.iterdir()) == ["stock.csv", "stock.meta.csv"]
    data, meta = read_pair(crafted_files / "stock.csv")
    assert problems(data, meta) == []
    # 202 has no entry in the area list: national rows (30) and 201's (30) only.
    assert data["geographic_level"].value_counts().to_dict() == {"National": 30, "Local authority": 30}


NATIONAL = "2024,Reporting year,National,E92000001,England,,,,,"
LA_201 = "2024,Reporting year,Local authority,E92000001,England,E12000007,London,201,E09000001,City of London"
KINSHIP = (
    "Formal alternative care,Formal family-based care,Formal kinship care (relatives or close family friends)"
)


def test_hand_checked_rows(crafted_files):
    lines = (crafted_files / "stock.csv").read_text().splitlines()
    assert lines[0] == (
        "time_period,time_identifier,geographic_level,country_code,country_name,region_code,region_name,"
        "old_la_code,new_la_code,la_name,care_sector,care_type,care_category,sex,age_band,children,"
        "temporary_moves_resolved,population,rate_per_100000"
    )
    under_18 = "Under 18 (0 to 17 years)"
    # National, all categories, girls under 18: 3 + 10 + 6 + 20 = 39 of 1000 + 2000 -> 1300 per 100,000.
    assert f"{NATIONAL},Total,Total,Total,Female,{under_18},39,0,3000,1300" in lines
    # Withheld (A): the count and its rate are c, never a number; the population is public.
    assert f"{LA_201},{KINSHIP},Female,{under_18},c,0,1000,c" in lines
    # A level-2 subtotal is the Total of care_category. 7 + 12 + 8 + 15 = 42 boys; 202 has no
    # population of boys, so the national one is not known: x, as is the rate.
    family = "Formal alternative care,Formal family-based care"
    assert f"{NATIONAL},{family},Total,Male,Total,42,0,x,x" in lines
    # All ages (3 + 7 + 10 + 12 = 32): no rate, for a reason the settings do not list: x, never 0.
    assert f"{LA_201},Total,Total,Total,Total,Total,32,0,2000,x" in lines


def test_meta_lists_the_filters_and_indicators(crafted_files):
    _, meta = read_pair(crafted_files / "stock.csv")
    # provider_sector is only Total here: a filter with one (default) item says nothing and is left out.
    assert meta["col_name"].tolist() == [
        "care_sector",
        "care_type",
        "care_category",
        "sex",
        "age_band",
        "children",
        "temporary_moves_resolved",
        "population",
        "rate_per_100000",
    ]
    rate = meta.set_index("col_name").loc["rate_per_100000"]
    assert (rate["col_type"], rate["indicator_dp"], rate["indicator_unit"], rate["filter_hint"]) == (
        "Indicator",
        "1",
        "",
        "",
    )
    care = meta.set_index("col_name").loc["care_category"]
    assert (care["col_type"], care["label"], care["indicator_dp"], care["filter_default"]) == (
        "Filter",
        "Care category (ICare code)",
        "",
        "",
    )


def test_reading_back_gives_the_released_values(crafted_files):
    data, _ = read_pair(crafted_files / "stock.csv")
    released = crafted_stock().to_pandas()
    released = released[released["area_code"].isin(["201", "total"])]
    label = {**{k: v for m in LABELS.values() for k, v in m.items()}, "total": "Total"}
    # The row a released row becomes: icare_code is the Total item of a subtotal row.
    expected = pd.DataFrame(
        {
            "old_la_code": released["area_code"].replace("total", ""),
            "care_sector": released["icare_level1"].map(label),
            "care_type": released["icare_level2"].map(label),
            "care_category": released["icare_code"]
            .where(released["icare_level"] == "code", "total")
            .map(label),
            "sex": released["sex"].map(label),
            "age_band": released["age_band"].map(label),
            "children": released["children"],
            "children_status": released["children_status"],
        }
    )
    keys = ["old_la_code", "care_sector", "care_type", "care_category", "sex", "age_band"]
    joined = expected.merge(data, on=keys, how="outer", validate="one_to_one", indicator=True)
    assert (joined["_merge"] == "both").all()
    withheld = joined["children_status"] != "F"
    assert (joined.loc[withheld, "children_y"] == "c").all() and withheld.sum() == 2
    published = joined.loc[~withheld]
    assert published["children_y"].astype(int).tolist() == published["children_x"].astype(int).tolist()


def test_a_withheld_status_wins_over_any_value(tmp_path, areas_csv):
    stock = crafted_stock()
    status = pa.array(["A"] * len(stock))
    stock = stock.set_column(
        stock.column_names.index("temporary_moves_resolved_status"), "temporary_moves_resolved_status", status
    )
    config = _with_areas(load_open_data_config(), areas_csv)
    result = open_data.open_data_file("stock", stock, config.tables["stock"], config, CLASSIFICATION)
    assert set(result.data["temporary_moves_resolved"]) == {"c"}


def test_without_an_area_list_only_national_rows_are_written(tmp_path):
    config = _with_areas(load_open_data_config(), None)
    result = open_data.open_data_file(
        "stock", crafted_stock(), config.tables["stock"], config, CLASSIFICATION
    )
    assert set(result.data["geographic_level"]) == {"National"}
    assert "la_name" not in result.data.columns
    assert any("no area code list" in note for note in result.notes)
    assert problems(result.data, result.meta) == []


def test_a_malformed_setting_names_file_and_key(tmp_path):
    text = (resources.config_dir() / "open_data.yaml").read_text()
    bad = tmp_path / "open_data.yaml"
    bad.write_text(text.replace("name: care_category", "name: Care Category"))
    with pytest.raises(OpenDataConfigError, match=r"open_data.yaml: key tables\.stock\.filters\.2\.name"):
        load_open_data_config(bad)
    bad.write_text(text.replace("column: exit_destination", "column: destination"))
    with pytest.raises(OpenDataConfigError, match=r"tables\.exits.*\['destination'\] are not columns"):
        load_open_data_config(bad)


# -- the files the pipeline writes for the bundled sample ------------------------------------------
SAMPLE_TABLES = ("stock", "entries", "exits", "moves", "transitions", "pathways", "durations", "flow_check")


@pytest.fixture(scope="module")
def sample_release(tmp_path_factory) -> Path:
    """One pipeline run on the bundled sample with the bundled settings and area code list."""
    folder = tmp_path_factory.mktemp("open-data")
    run_with_test_key(resources.source_dir("ssda903") / "sample", folder / "out")
    return folder / "out" / "release"


@pytest.mark.parametrize("table", SAMPLE_TABLES)
def test_sample_files_pass_the_standard(sample_release, table):
    data, meta = read_pair(sample_release / f"{table}.csv")
    found = problems(data, meta)
    if "is_total" not in pq.read_schema(sample_release / f"{table}.parquet").names:
        # Until the release carries its total rows, filters that are summed over lack their Total item.
        found = [p for p in found if "has no default item 'Total'" not in p]
    assert found == []


@pytest.mark.parametrize("table", SAMPLE_TABLES)
def test_sample_files_carry_the_released_values(sample_release, table):
    """Each indicator holds the released numbers (as a multiset) and c exactly where withheld."""
    data, meta = read_pair(sample_release / f"{table}.csv")
    released = pq.read_table(sample_release / f"{table}.parquet").to_pandas()
    assert len(data) == len(released)  # both areas are in the bundled area list
    for name in meta.loc[meta["col_type"] == "Indicator", "col_name"]:
        status = {"rate_per_100000": "rate_status"}.get(name, f"{name}_status")
        status = status if status in released else "days_status"
        withheld = released[status].isin(["A", "D"]) if status in released else released[name].isna() & False
        assert (data[name] == "c").sum() == int(withheld.sum()), name
        shown = pd.to_numeric(data.loc[~data[name].isin(["c", "x", "z"]), name])
        assert sorted(shown) == sorted(released.loc[~withheld, name].dropna()), name


def test_sample_never_summed_dimensions_have_their_default(sample_release):
    _, meta = read_pair(sample_release / "transitions.csv")
    assert meta.set_index("col_name").loc["transition", "filter_default"] == "Entry to care"
    _, meta = read_pair(sample_release / "durations.csv")
    assert meta.set_index("col_name").loc["unit", "filter_default"] == "Care spells (days in care)"


def test_sample_local_authority_rows_name_their_authority(sample_release):
    data, _ = read_pair(sample_release / "stock.csv")
    local = data[data["geographic_level"] == "Local authority"]
    places = local[["old_la_code", "new_la_code", "la_name", "region_code", "region_name"]].drop_duplicates()
    assert places.values.tolist() == [
        ["201", "E09000001", "City of London", "E12000007", "London"],
        ["202", "E09000007", "Camden", "E12000007", "London"],
    ]


def test_sample_without_an_area_list_writes_nothing_and_says_why(
    sample_release, tmp_path, caplog, monkeypatch
):
    tables = {t: pq.read_table(sample_release / f"{t}.parquet") for t in SAMPLE_TABLES}
    if "is_total" in tables["stock"].column_names:
        pytest.skip("the release has national total rows: they are written without an area list")
    config = _with_areas(load_open_data_config(), None)
    monkeypatch.setattr(open_data, "load_open_data_config", lambda: config)
    with caplog.at_level(logging.INFO, logger="icare.release.open_data"):
        assert open_data.write_open_data(_context(tmp_path, tables)) == []
    assert "ssda903 has no area code list" in caplog.text
    assert "stock.csv is not written" in caplog.text


def test_the_checker_finds_broken_rules(crafted_files):
    """The checker is not vacuous: each kind of break in a good pair is reported."""
    data, meta = read_pair(crafted_files / "stock.csv")
    broken = data.copy()
    broken.loc[0, "sex"] = ""
    broken.loc[1, "children"] = ":"
    broken.loc[2, "time_identifier"] = "Financial year"
    broken.loc[broken["age_band"] == "Total", "age_band"] = "All ages"
    broken.loc[3, "new_la_code"] = "201"
    found = problems(pd.concat([broken, broken.head(1)]), meta.iloc[:-1])
    expected = [
        "filter sex has blank cells",
        "indicator children has cells",
        "one time identifier per file",
        "do not fit 'Financial year'",
        "filter age_band has no default item 'Total'",
        "new_la_code values ['201']",
        "metadata lists",
        "rows repeat a time, place and filters",
    ]
    assert [e for e in expected if not any(e in p for p in found)] == []


def test_two_codes_with_one_label_show_their_codes(areas_csv):
    config = _with_areas(load_open_data_config(), areas_csv)
    labels = {**config.labels, "icare_short": {F11: "Family care", F12: "Family care"}}
    config = config.model_copy(update={"labels": labels})
    result = open_data.open_data_file(
        "stock", crafted_stock(), config.tables["stock"], config, CLASSIFICATION
    )
    assert set(result.data["care_category"]) == {"Total", "Family care (AC.F11)", "Family care (AC.F12)"}


def test_rows_of_areas_not_in_the_list_are_left_out_and_named(areas_csv):
    stock = crafted_stock()
    area = stock["area_code"].to_pylist()
    area[0] = None  # an area the path did not name
    stock = stock.set_column(stock.column_names.index("area_code"), "area_code", pa.array(area, pa.string()))
    config = _with_areas(load_open_data_config(), areas_csv)
    result = open_data.open_data_file("stock", stock, config.tables["stock"], config, CLASSIFICATION)
    assert "ssda903 areas ['(empty)', '202'] are not in its area code list" in " ".join(result.notes)
    assert set(result.data["old_la_code"]) == {"", "201"}
    assert len(result.data) == 59


# -- the bundled area code list (sources/ssda903/areas.csv) -----------------------------------------
def test_the_bundled_area_list_parses_and_names_the_sample_areas():
    config = load_open_data_config()
    areas = load_area_codes("ssda903", config.sources["ssda903"]).set_index("old_la_code")
    assert areas.loc["201", ["new_la_code", "la_name"]].tolist() == ["E09000001", "City of London"]
    assert areas.loc["202", ["new_la_code", "la_name"]].tolist() == ["E09000007", "Camden"]
    assert areas.loc["213", ["new_la_code", "la_name", "region_name"]].tolist() == [
        "E09000033",
        "Westminster",
        "London",
    ]
    # Northamptonshire (928, split in 2021) and its successors each keep their own row.
    assert areas.loc[["928", "940", "941"], "new_la_code"].tolist() == ["E10000021", "E06000061", "E06000062"]


def test_the_bundled_area_list_has_each_current_authority_once():
    """153 authorities with children's services today, plus the 5 replaced since 2019 (last_year set)."""
    path = resources.data_root() / load_open_data_config().sources["ssda903"].area_codes
    listed = pd.read_csv(path, dtype="str", keep_default_na=False)
    current = listed[listed["last_year"] == ""]
    assert len(current) == 153 and current["new_la_code"].is_unique
    assert sorted(listed.loc[listed["last_year"] != "", "old_la_code"]) == ["835", "836", "837", "909", "928"]
    assert current["new_la_code"].str[:3].value_counts().to_dict() == {
        "E06": 63,
        "E09": 33,
        "E08": 36,
        "E10": 21,
    }


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("201,E07000001,City of London,E12000007,London", r"new_la_code values \['E07000001'\] do not match"),
        ("201,E0900001,City of London,E12000007,London", r"new_la_code values \['E0900001'\]"),
        ("21,E09000001,City of London,E12000007,London", r"old_la_code values \['21'\]"),
        ("201,E09000001,City of London,E13000001,London", r"region_code values \['E13000001'\]"),
        ("201,E09000001, ,E12000007,London", r"columns \['la_name'\] have blank cells"),
        ("202,E09000001,City of London,E12000007,London", r"old_la_code is not unique \(\['202'\] repeat\)"),
    ],
)
def test_a_malformed_area_list_is_refused(tmp_path, row, problem):
    path = tmp_path / "areas.csv"
    path.write_text(
        "old_la_code,new_la_code,la_name,region_code,region_name\n202,E09000007,Camden,E12000007,London\n"
        + row
        + "\n"
    )
    spec = _with_areas(load_open_data_config(), path).sources["ssda903"]
    with pytest.raises(OpenDataConfigError, match=problem):
        load_area_codes("ssda903", spec)
