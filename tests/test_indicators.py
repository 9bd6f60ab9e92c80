"""Indicators (config/indicators.yaml, release.indicators): every reportable indicator computed by
hand on crafted released tables, withheld values carried through, config errors named, and a run on
the bundled sample whose indicators equal the released figures they come from."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml

from icare.disclosure import load_disclosure_rules
from icare.indicators.compute import compute_indicators
from icare.indicators.config import IndicatorConfigError, check_against_rules, load_indicator_config
from schemas.outputs import INT, RELEASE_COUNTS, RELEASE_TABLES, STRING, release_name, to_arrow

RULES = load_disclosure_rules()
CONFIG = load_indicator_config()
START, END = date(2023, 4, 1), date(2024, 3, 31)
_DEFAULTS = {
    "source": "ssda903",
    "area_code": "A1",
    "reference_date": END,
    "period_start": START,
    "period_end": END,
    "transition": "move",
    "unit": "care_spell",
    "is_total": True,
    "classification_version": "test",
    "balance": "balanced",
    "difference": 0,
}

_SUMMED = {
    "sex",
    "age_band",
    "provider_sector",
    "exit_destination",
    "moves_in_period",
    "from_code",
    "to_code",
}


def _released(table: str, rows: list[dict]) -> pa.Table:
    """Rows in the released shape: every dimension not given at ``total``, every count not given 0
    and published (F), no population."""
    filled = []
    for row in rows:
        full = {}
        for col in RELEASE_TABLES[table]:
            if col.name in row:
                full[col.name] = row[col.name]
            elif col.name == "icare_level1" and str(row.get("icare_code", "")).startswith("AC."):
                full[col.name] = row["icare_code"][:4]  # AC.F or AC.X
            elif col.name in _DEFAULTS:
                full[col.name] = _DEFAULTS[col.name]
            elif col.name.endswith("_status"):
                full[col.name] = "F"
            elif col.name in RELEASE_COUNTS[table]:
                full[col.name] = 0
            elif col.type == STRING and (not col.nullable or col.name in _SUMMED):
                full[col.name] = "total"
            elif col.type == INT and not col.nullable:
                full[col.name] = 0
            else:
                full[col.name] = None
        filled.append(full)
    frame = pd.DataFrame(filled, columns=[c.name for c in RELEASE_TABLES[table]])
    for col in RELEASE_TABLES[table]:
        if col.type == INT:
            frame[col.name] = frame[col.name].astype("Int64")
    return to_arrow(frame, release_name(table))


def _withheld(status: str) -> dict:
    return {"children": None, "children_status": status}


def _crafted() -> dict[str, pa.Table]:
    fam, res = (
        {"icare_level": "level2", "icare_code": "AC.F1"},
        {"icare_level": "level2", "icare_code": "AC.F2"},
    )
    formal = {"icare_level": "level1", "icare_code": "AC.F"}
    stock = [
        {"children": 40},
        {**formal, "children": 30},
        {**formal, "age_band": "under 18", "children": 28, "population": 10_000},
        {
            **formal,
            "sex": "F",
            "age_band": "under 18",
            "area_code": "total",
            "children": 13,
            "population": 4_000,
        },
        {**formal, "provider_sector": "private", "children": 12},
        {**fam, "children": 20},
        {**fam, "sex": "F", "children": 9},
        {**fam, "sex": "M", "children": 11},
        {**res, "children": 6},
        {**res, "sex": "F", **_withheld("A")},
        {**res, "sex": "M", **_withheld("D")},
        {**res, "provider_sector": "private", "children": 5},
        {"icare_level": "code", "icare_code": "AC.F11", "children": 8},
        {
            "icare_level": "code",
            "icare_code": "AC.F11",
            "sex": "M",
            "children": 8,
        },  # no girls in kinship care
        {"icare_level": "code", "icare_code": "AC.F12", "children": 12},
        {"icare_level": "code", "icare_code": "AC.F29", "children": 6},
        {"icare_level": "code", "icare_code": "AC.F3", "children": 4},
        {"icare_level": "level1", "icare_code": "AC.X", "children": 10},
        {"icare_level": "code", "icare_code": "AC.X1", "children": 10},
    ]
    entries = [
        {"spells": 12, "children": 11, "re_entries": 3},
        {"sex": "F", "spells": 5, "children": 5, "re_entries": 0},
        {"sex": "M", "spells": 7, "children": 6, "re_entries": None, "re_entries_status": "A"},
        {**formal, "spells": 10, "children": 9},
        {**formal, "age_band": "under 18", "spells": 10, "children": 9, "population": 10_000},
        {**fam, "spells": 7, "children": 7},
    ]
    exits = [
        {**formal, "spells": 10, "children": 10},
        {**formal, "age_band": "under 18", "spells": 6, "children": 6, "population": 10_000},
        {**formal, "exit_destination": "reunification", "spells": 5, "children": 5},
        {**formal, "exit_destination": "guardianship_order", "spells": 2, "children": 2},
        {**formal, "exit_destination": "adoption", "spells": 1, "children": 1},
        {**formal, "exit_destination": "other", "spells": 2, "children": 2},
        {**fam, "area_code": "total", "age_band": "18 and over", "spells": 4, "children": 4},
        {
            **fam,
            "area_code": "total",
            "age_band": "18 and over",
            "exit_destination": "remained_with_carers",
            "spells": 3,
            "children": 3,
        },
    ]
    durations = [
        {**formal, "spells": 20, "days_q1": 100.0, "days_median": 200.5, "days_q3": 400.0},
        {**formal, "sex": "F", "spells": None, "spells_status": "A", "days_status": "A"},
    ]
    moves = [
        {"children": 50, "moves": 20},
        {"moves_in_period": "2", "children": 5, "moves": 10},
        {"moves_in_period": "3 or more", "children": 3, "moves": 10},
    ]
    moved = {"from_level1": "AC.F", "to_level1": "AC.F"}
    transitions = [
        {
            **moved,
            "from_code": "AC.F29",
            "from_level2": "AC.F2",
            "to_code": "AC.F12",
            "to_level2": "AC.F1",
            "transitions": 3,
        },
        {
            **moved,
            "from_code": "AC.F29",
            "from_level2": "AC.F2",
            "to_code": "AC.F11",
            "to_level2": "AC.F1",
            "transitions": 2,
        },
        {
            **moved,
            "from_code": "AC.F12",
            "from_level2": "AC.F1",
            "to_code": "AC.F29",
            "to_level2": "AC.F2",
            "transitions": 4,
        },
        {"transitions": 9},
    ]
    flow = [{"stock_start": 35, "entries": 12, "exits": 10, "stock_end": 37, "is_total": False}]
    tables = {
        "stock": stock,
        "entries": entries,
        "exits": exits,
        "durations": durations,
        "moves": moves,
        "transitions": transitions,
        "pathways": [],
        "flow_check": flow,
    }
    return {table: _released(table, rows) for table, rows in tables.items()}


@pytest.fixture(scope="module")
def crafted() -> pd.DataFrame:
    return compute_indicators(_crafted(), CONFIG, RULES).to_pandas()


def _one(frame: pd.DataFrame, indicator: str, area: str = "A1", **where) -> pd.Series:
    rows = frame[(frame["indicator_id"] == indicator) & (frame["area_code"] == area)]
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, (indicator, where, rows)
    return rows.iloc[0]


@pytest.mark.parametrize(
    ("indicator", "where", "expected", "numerator", "denominator"),
    [
        ("IC01", {}, 280.0, 28, 10_000),  # 100,000 x 28 / 10,000
        ("IC02", {"icare_code": "AC.F"}, 30, 30, None),  # the AC.F subtotal as released
        ("IC02", {"icare_code": "AC.X1"}, 10, 10, None),  # a boundary category beside formal care
        ("IC02_SHARE", {"icare_code": "AC.F12"}, 40.0, 12, 30),  # 100 x 12 / 30
        ("IC03", {"sex": "total"}, 23.076923, 6, 26),  # 100 x 6 / (AC.F1 20 + AC.F2 6)
        ("IC04", {"sex": "total"}, 40.0, 8, 20),  # 100 x 8 / 20
        ("IC04", {"sex": "M"}, 72.727273, 8, 11),  # 100 x 8 / 11
        ("IC04", {"sex": "F"}, 0.0, 0, 9),  # no row for girls in AC.F11: 0 of 9
        ("IC05", {}, 40.0, 12, 30),  # 100 x 12 / 30
        ("IC05_RES", {}, 83.333333, 5, 6),  # 100 x 5 / 6
        ("IC06", {}, 90.0, 9, 10_000),  # 100,000 x 9 / 10,000
        ("IC07", {"sex": "total"}, 70.0, 7, 10),  # 100 x 7 / 10
        ("IC08", {"sex": "total"}, 25.0, 3, 12),  # 100 x 3 / 12
        ("IC08", {"sex": "F"}, 0.0, 0, 5),  # 100 x 0 / 5
        ("IC09", {}, 60.0, 6, 10_000),  # 100,000 x 6 / 10,000
        ("IC09_DEST", {"exit_destination": "reunification"}, 50.0, 5, 10),  # 100 x 5 / 10
        ("IC10", {}, 80.0, 8, 10),  # 100 x (reunification 5 + guardianship 2 + adoption 1) / 10
        ("IC12", {"sex": "total"}, 200.5, 200.5, None),  # the released median
        ("IC14", {"sex": "total"}, 16.0, 8, 50),  # 100 x (2 moves: 5 + 3 or more: 3) / 50
        ("IC15", {}, 5, 5, None),  # AC.F29 -> AC.F12 3 + AC.F29 -> AC.F11 2 (not AC.F12 -> AC.F29)
        ("IC17_STOCK_START", {}, 35, 35, None),
        ("IC17_ENTRIES", {}, 12, 12, None),
        ("IC17_EXITS", {}, 10, 10, None),
        ("IC17_STOCK_END", {}, 37, 37, None),  # 35 + 12 - 10 = 37
    ],
)
def test_each_indicator_equals_its_hand_computed_value(
    crafted, indicator, where, expected, numerator, denominator
):
    row = _one(crafted, indicator, **where)
    assert row["value"] == pytest.approx(expected, abs=1e-6)
    assert row["value_status"] == "F" and row["reportable"] and pd.isna(row["missing_reason"])
    assert row["numerator"] == numerator
    if denominator is None:
        assert pd.isna(row["denominator"])
    else:
        assert row["denominator"] == denominator


def test_national_indicators_come_from_the_national_rows(crafted):
    rate = _one(crafted, "IC01_SEX", area="total", sex="F")
    assert rate["value"] == pytest.approx(325.0)  # 100,000 x 13 / 4,000
    staying = _one(crafted, "IC11", area="total")
    assert staying["value"] == pytest.approx(75.0)  # 100 x 3 / 4
    assert not (crafted.loc[crafted["indicator_id"] == "IC11", "area_code"] == "A1").any()


def test_a_withheld_numerator_or_denominator_withholds_the_value(crafted):
    girls = _one(crafted, "IC03", sex="F")  # numerator AC.F2 girls withheld as a small count
    assert (girls["value_status"], girls["numerator_status"], girls["missing_reason"]) == (
        "A",
        "A",
        "withheld",
    )
    assert math.isnan(girls["value"]) and math.isnan(girls["numerator"])
    # the denominator AC.F1 + AC.F2 of girls sums a withheld value: withheld too, never a number
    assert girls["denominator_status"] == "D" and math.isnan(girls["denominator"])
    boys = _one(crafted, "IC08", sex="M")  # re-entries of boys withheld (A), spells published
    assert (boys["value_status"], boys["denominator"]) == ("A", 7)
    assert math.isnan(boys["value"])
    median = _one(crafted, "IC12", sex="F")
    assert median["value_status"] == "A" and math.isnan(median["value"])


def test_a_share_with_a_withheld_denominator_is_withheld_as_secondary():
    tables = _crafted()
    stock = tables["stock"].to_pandas()
    private = (
        (stock["icare_code"] == "AC.F")
        & (stock["provider_sector"] == "total")
        & (stock["age_band"] == "total")
    )
    stock.loc[private, ["children", "children_status"]] = [None, "D"]
    stock["children"] = stock["children"].astype("Int64")
    tables["stock"] = to_arrow(stock, release_name("stock"))
    row = _one(compute_indicators(tables, CONFIG, RULES).to_pandas(), "IC05")
    assert (row["value_status"], row["numerator_status"], row["denominator_status"]) == ("D", "F", "D")
    assert math.isnan(row["value"]) and row["numerator"] == 12


def test_indicators_not_reportable_are_listed_with_their_reason(crafted):
    disability = crafted[crafted["indicator_id"] == "IC18"]
    assert len(disability) == 1
    row = disability.iloc[0]
    assert not row["reportable"] and row["missing_reason"] == "not_reportable"
    assert "no disability field" in row["not_reportable_reason"]
    assert pd.isna(row["value"]) and pd.isna(row["value_status"])
    location = crafted[crafted["indicator_id"] == "IC16"].iloc[0]
    assert "PL_LA" in location["not_reportable_reason"]


# Every indicator of issue 16 item 1, by the id that gives it (reportable or with a reason).
ISSUE_LIST = {
    "rate per 100,000 children in formal alternative care": "IC01",
    "children in care by ICare type (boundary categories beside)": "IC02",
    "share in residential care": "IC03",
    "share in kinship care": "IC04",
    "share with private for-profit providers": "IC05",
    "entry rate": "IC06",
    "first placement family-based": "IC07",
    "re-entry within 12 months": "IC08",
    "exit rate": "IC09",
    "exits by destination": "IC09_DEST",
    "exits to family permanence": "IC10",
    "staying with carers after 18": "IC11",
    "median time in care at exit": "IC12",
    "placement stability (3 or more placements)": "IC14",
    "moves from residential to family-based care": "IC15",
    "placed outside the home area": "IC16",
    "disability": "IC18",
    "flow balance, stock at the start": "IC17_STOCK_START",
    "flow balance, entries": "IC17_ENTRIES",
    "flow balance, exits": "IC17_EXITS",
    "flow balance, stock at the end": "IC17_STOCK_END",
}


def test_every_indicator_of_the_issue_is_defined_or_says_why_not():
    defined = {i.id: i for i in CONFIG.indicators}
    assert set(ISSUE_LIST.values()) <= set(defined)
    for indicator in defined.values():
        assert indicator.numerator is not None or indicator.not_reportable.get("ssda903"), indicator.id
        assert indicator.definition.strip() and indicator.definition_source.strip()
    check_against_rules(CONFIG, RULES)


def test_the_re_entry_indicator_matches_the_statistics_window():
    from icare.statistics import load_statistics_settings

    assert load_statistics_settings().re_entry_months == 12  # IC08 says "within 12 months"


def _config_file(tmp_path: Path, indicator: dict) -> Path:
    path = tmp_path / "indicators.yaml"
    path.write_text(yaml.safe_dump({"id": "t", "version": "1", "indicators": [indicator]}), encoding="utf-8")
    return path


_BASE = {"id": "X1", "name": "x", "definition": "x", "definition_source": "x", "unit": "count"}


@pytest.mark.parametrize(
    ("indicator", "message"),
    [
        ({**_BASE, "numerator": {"table": "nope", "column": "children"}}, "key indicators.X1.numerator: "),
        ({**_BASE, "numerator": {"table": "stock", "column": "kids"}}, "column 'kids' is not a value"),
        (
            {
                **_BASE,
                "numerator": {"table": "stock", "column": "children", "filters": {"icare_code": "AC.F"}},
            },
            "needs icare_level too",
        ),
        (
            {**_BASE, "unit": "share_percent", "numerator": {"table": "stock", "column": "children"}},
            "needs denominator",
        ),
        ({**_BASE}, "must say why in not_reportable"),
    ],
)
def test_config_errors_name_the_file_the_key_and_the_problem(tmp_path, indicator, message):
    path = _config_file(tmp_path, indicator)
    with pytest.raises(IndicatorConfigError) as error:
        load_indicator_config(path)
    assert (
        str(path) in str(error.value) and "indicators.X1" in str(error.value) and message in str(error.value)
    )


def test_a_selection_outside_the_released_breakdowns_is_refused_naming_the_table(tmp_path):
    # category by sex by provider sector: no breakdown of stock releases it
    filters = {"icare_level": "level1", "icare_code": "AC.F", "sex": "F", "provider_sector": "private"}
    path = _config_file(
        tmp_path, {**_BASE, "numerator": {"table": "stock", "column": "children", "filters": filters}}
    )
    with pytest.raises(IndicatorConfigError, match=r"indicators\.X1\.numerator: no breakdown of stock"):
        check_against_rules(load_indicator_config(path), RULES)
    national = {"icare_level": "level1", "icare_code": "AC.F", "sex": "F", "age_band": "under 18"}
    path = _config_file(
        tmp_path, {**_BASE, "numerator": {"table": "stock", "column": "children", "filters": national}}
    )
    with pytest.raises(IndicatorConfigError, match="set national_only: true"):
        check_against_rules(load_indicator_config(path), RULES)


@pytest.mark.slow
def test_on_the_bundled_sample_indicators_equal_the_released_figures(tmp_path):
    from icare.pipeline import RunOptions, bundled_samples, run

    result = run(RunOptions(bundled_samples(), tmp_path / "out"))
    indicators = result.release["indicators"].to_pandas()
    stock = result.release["stock"].to_pandas()
    formal = stock[
        (stock["icare_code"] == "AC.F")
        & (stock["icare_level"] == "level1")
        & (stock["age_band"] == "under 18")
        & (stock["sex"] == "total")
        & (stock["provider_sector"] == "total")
    ]
    rates = indicators[(indicators["indicator_id"] == "IC01") & (indicators["value_status"] == "F")]
    merged = rates.merge(
        formal, left_on=["area_code", "period_end"], right_on=["area_code", "reference_date"]
    )
    assert len(merged) >= 4  # each year nationally, at least
    assert merged["value"].to_numpy() == pytest.approx(merged["rate_per_100000"].to_numpy())
    assert (merged["numerator"] == merged["children"]).all()
    flow = result.release["flow_check"].to_pandas()
    ends = indicators[indicators["indicator_id"] == "IC17_STOCK_END"].merge(
        flow, on=["area_code", "period_end"]
    )
    assert len(ends) == len(flow) and (ends["value"] == ends["stock_end"]).all()
    # no value is shown where its numerator is withheld
    withheld = indicators["numerator_status"].isin(["A", "D"])
    assert indicators.loc[withheld, "value"].isna().all()
