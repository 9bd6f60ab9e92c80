"""Disclosure control: the rules file, primary and secondary suppression on crafted tables (expected
values worked out by hand), the release tables and their schemas, and the invariants on the sample.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icare import checks
from icare.disclosure import DisclosureRulesError, control, load_disclosure_rules
from icare.disclosure.control import FREE, PRIMARY, SECONDARY, group_ids, suppress
from icare.disclosure.rules import DerivedRule, TableRules
from icare.disclosure.tables import DisclosureError, control_table, release_tables
from icare.pipeline import RunOptions, bundled_samples, run
from schemas.outputs import (
    RELEASE_COUNTS,
    RELEASE_TABLES,
    OutputSchemaError,
    arrow_schema,
    column_names,
    release_name,
    validate_arrow,
)
from tests.test_cli import icare

SHIPPED_RULES = load_disclosure_rules()
# The shipped rules without their breakdowns: every combination of the summable dimensions released,
# so that a table's own cells (is_total false) are released beside its margin rows.
RULES = replace(SHIPPED_RULES, tables={t: replace(r, breakdowns=()) for t, r in SHIPPED_RULES.tables.items()})
CHILD_BANDS = {"under 1", "1-4", "5-9", "10-15", "16-17"}
F, A, D = "F", "A", "D"
CODES = {FREE: F, PRIMARY: A, SECONDARY: D}


def _statuses(controlled, column: str = "n") -> list[str]:
    return [CODES[s] for s in controlled.status[column]]


def _grid(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["r", "c", "n"])


ONE_MARGIN = TableRules(counts=("n",), margins=(("r",),))
TWO_MARGINS = TableRules(counts=("n",), margins=(("r",), ("c",)))


# -- the rules file --------------------------------------------------------------------------------
def _rules_file(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load(RULES.path.read_text(encoding="utf-8"))
    change(raw)
    path = tmp_path / "disclosure.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_shipped_rules_cover_every_released_table():
    assert RULES.version_id == "icare-disclosure@0.3.0"
    assert RULES.method == "suppress" and RULES.threshold == 5
    assert set(RULES.tables) == set(RELEASE_COUNTS)
    assert RULES.tables["stock"].summable == ("area_code", "icare_code", "sex", "age_band", "provider_sector")
    assert RULES.tables["flow_check"].margins == (("source", "period_end"),)
    assert RULES.tables["flow_check"].identities == (("stock_start", "entries", "exits", "stock_end"),)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("threshold"), "required key 'threshold' is missing"),
        (lambda r: r.update(threshold=0), "threshold must be a whole number of at least 1"),
        (lambda r: r.update(threshold=True), "threshold must be a whole number"),
        (lambda r: r.update(method="blur"), "method 'blur' is not one of suppress, round"),
        (lambda r: r["tables"].pop("moves"), "missing ['moves']"),
        (lambda r: r["tables"].update(runs={"counts": []}), "unknown ['runs']"),
        (
            lambda r: r["tables"]["stock"].update(counts=["children"]),
            "tables.stock.counts must name every count column",
        ),
        (
            lambda r: r["tables"]["flow_check"]["margins"].append(["source", "area_cod"]),
            "tables.flow_check.margins[1]: ['area_cod']",
        ),
        (
            lambda r: r["tables"]["flow_check"]["margins"].append(["source", "entries"]),
            "tables.flow_check.margins[1]: ['entries']",
        ),
        (
            lambda r: r["tables"]["stock"]["summable"].append("reference_date"),
            "tables.stock.summable: ['reference_date']",
        ),
        (lambda r: r["tables"]["stock"].pop("summable"), "required key tables.stock.'summable' is missing"),
        (
            lambda r: r["tables"]["stock"].update(margins=[["source"]]),
            "tables.stock: margins and summable exclude each other",
        ),
        (
            lambda r: r["tables"]["entries"]["follow"].update(re_entries=["spell"]),
            "tables.entries.follow.re_entries: ['spell'] are not counts",
        ),
        (
            lambda r: r["tables"]["durations"]["derived"][0].update(min_observations=0),
            "tables.durations.derived[0].min_observations must be a whole number of at least 1",
        ),
        (lambda r: r["tables"]["durations"].pop("derived"), "tables.durations.derived must cover"),
    ],
)
def test_malformed_rules_name_the_file_and_the_key(tmp_path, change, message):
    path = _rules_file(tmp_path, change)
    with pytest.raises(DisclosureRulesError) as raised:
        load_disclosure_rules(path)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


def test_cli_stops_with_exit_2_on_bad_rules_and_writes_nothing(tmp_path):
    path = _rules_file(tmp_path, lambda r: r.update(threshold="five"))
    done = icare("run", "--disclosure", str(path), "--output", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "icare: error:" in done.stderr and "threshold" in done.stderr and str(path) in done.stderr
    assert not (tmp_path / "out").exists()
    assert "read and validate" not in done.stderr  # refused before any input was read


# -- suppression on crafted tables ------------------------------------------------------------------
def test_a_lone_small_cell_gets_the_smallest_other_cell_as_secondary_partner():
    # group a: 3 is small; the smallest published non-zero cell beside it (7) is withheld too.
    frame = _grid([("a", "x", 3), ("a", "y", 9), ("a", "z", 7), ("b", "x", 6), ("b", "y", 8)])
    controlled = suppress(frame, ONE_MARGIN, threshold=5)
    assert _statuses(controlled) == [A, F, D, F, F]


def test_zeros_stay_published_and_are_never_partners():
    frame = _grid([("a", "x", 2), ("a", "y", 0), ("a", "z", 6), ("a", "w", 8)])
    controlled = suppress(frame, ONE_MARGIN, threshold=5)
    assert _statuses(controlled) == [A, F, D, F]


def test_two_small_cells_whose_sum_reaches_the_threshold_need_no_secondary():
    # 3 + 4 = 7 >= 5: the group total tells only that the two withheld cells add up to 7.
    frame = _grid([("a", "x", 3), ("a", "y", 4), ("a", "z", 10)])
    assert _statuses(suppress(frame, ONE_MARGIN, threshold=5)) == [A, A, F]


def test_two_small_cells_whose_sum_is_below_the_threshold_get_a_partner():
    # 1 + 1 = 2: from the total, each withheld cell must be 1 (zeros are published), so 10 goes too.
    frame = _grid([("a", "x", 1), ("a", "y", 1), ("a", "z", 10), ("a", "w", 12)])
    assert _statuses(suppress(frame, ONE_MARGIN, threshold=5)) == [A, A, D, F]


def test_secondary_suppression_cascades_across_two_margins():
    #        x   y   z           x  y  z
    #   a    2   6   9      a    A  D  F
    #   b    7   8  10      b    D  D  F
    # Row a: 2 alone -> 6. Column x: 2 alone -> 7. Column y: 6 alone -> 8. Then every row and column
    # withholds two cells summing to at least 5.
    frame = _grid([("a", "x", 2), ("a", "y", 6), ("a", "z", 9), ("b", "x", 7), ("b", "y", 8), ("b", "z", 10)])
    assert _statuses(suppress(frame, TWO_MARGINS, threshold=5)) == [A, D, F, D, D, F]


def test_ties_are_broken_by_row_order_and_a_rerun_gives_the_same_result():
    frame = _grid([("a", "x", 2), ("a", "y", 6), ("a", "z", 6)])
    first = _statuses(suppress(frame, ONE_MARGIN, threshold=5))
    assert first == [A, D, F]
    assert _statuses(suppress(frame.copy(), ONE_MARGIN, threshold=5)) == first
    swapped = frame.iloc[[0, 2, 1]].reset_index(drop=True)
    assert _statuses(suppress(swapped, ONE_MARGIN, threshold=5)) == [A, D, F]  # the first 6 in order


def test_empty_values_of_a_margin_column_form_their_own_group():
    frame = pd.DataFrame(
        {"r": pd.array(["a", None, None], dtype="str"), "c": ["x", "y", "z"], "n": [2, 3, 9]}
    )
    assert group_ids(frame, ["r"]).tolist() == [0, 1, 1]
    assert _statuses(suppress(frame, ONE_MARGIN, threshold=5)) == [A, A, D]


def test_a_subset_count_is_withheld_with_the_count_it_is_part_of():
    frame = pd.DataFrame({"r": ["a", "a", "a"], "spells": [3, 9, 12], "re_entries": [0, 6, 2]})
    rules = TableRules(("spells", "re_entries"), (("r",),), follow={"re_entries": ("spells",)})
    controlled = suppress(frame, rules, threshold=5)
    assert _statuses(controlled, "spells") == [A, D, F]
    # Row 0: a zero stays published although its spells are withheld. Row 1: 6 is not small, but its
    # 9 spells are withheld, so it goes with them (it would show that spells >= 6). Row 2: 2 is small.
    # re_entries' group then withholds 6 + 2 = 8 >= 5: nothing more.
    assert _statuses(controlled, "re_entries") == [F, D, A]


def test_one_withheld_term_of_the_flow_identity_gets_a_partner_in_the_row():
    # stock_start 40 + entries 3 - exits 8 = stock_end 35: entries alone would be recovered.
    frame = pd.DataFrame(
        {"area": ["201", "202"], "start": [40, 50], "entries": [3, 9], "exits": [8, 7], "end": [35, 52]}
    )
    rules = TableRules(
        ("start", "entries", "exits", "end"), (), identities=(("start", "entries", "exits", "end"),)
    )
    controlled = suppress(frame, rules, threshold=5)
    assert [_statuses(controlled, c) for c in ("start", "entries", "exits", "end")] == [
        [F, F],
        [A, F],
        [D, F],
        [F, F],
    ]


# -- durations: quartiles withheld with their count -------------------------------------------------
def _durations(rows: list[dict]) -> pa.Table:
    base = {
        "source": "ssda903",
        "area_code": "201",
        "period_start": pd.Timestamp("2023-04-01").date(),
        "period_end": pd.Timestamp("2024-03-31").date(),
        "unit": "care_spell",
        "icare_level1": "AC.F",
        "icare_level2": "AC.F1",
        "sex": "F",
        "spells_start_unknown": 0,
        "days_q1": None,
        "days_median": None,
        "days_q3": None,
        "classification_version": "icare-ac-provisional@0.2.0",
    }
    records = [base | row for row in rows]
    return pa.Table.from_pylist(records).select(column_names("durations")).cast(arrow_schema("durations"))


def test_duration_quartiles_are_withheld_with_their_count_or_below_the_minimum_of_spells():
    rules = TableRules(
        counts=("spells", "spells_start_unknown"),
        margins=(("source", "area_code", "period_end", "unit"),),
        follow={"spells_start_unknown": ("spells",)},
        derived=(
            DerivedRule(
                ("days_q1", "days_median", "days_q3"), "days_status", "spells", "spells_start_unknown", 10
            ),
        ),
    )
    quartiles = {"days_q1": 10.0, "days_median": 20.0, "days_q3": 30.0}
    table = _durations(
        [
            {"icare_code": "AC.F11", "age_band": "1-4", "spells": 3, **quartiles},  # small: A
            {"icare_code": "AC.F12", "age_band": "1-4", "spells": 12, **quartiles},  # partner of 3: D
            # alone in its group (another unit), published, but 8 spells < 10: quartiles A
            {"icare_code": "AC.F13", "age_band": "1-4", "unit": "placement_spell", "spells": 8, **quartiles},
            {"icare_code": "AC.F14", "age_band": "1-4", "spells": 15, "spells_start_unknown": 6, **quartiles},
            {"icare_code": "AC.F15", "age_band": "1-4", "spells": 20, **quartiles},  # published
        ]
    )
    released, summary = control_table("durations", table, _rules_with("durations", rules))
    frame = released.to_pandas()
    assert frame["spells_status"].tolist() == [A, D, F, F, F]
    assert frame["spells"].tolist()[2:] == [8, 15, 20] and frame["spells"].isna().tolist()[:2] == [True, True]
    # the 15 spells with 6 of unknown start have 9 days values behind their quartiles: A.
    assert frame["days_status"].tolist() == [A, D, A, A, F]
    assert frame["days_median"].isna().tolist() == [True, True, True, True, False]
    assert frame["days_median"].iloc[4] == 20.0
    days = next(row for row in summary if row["column_name"] == "days_q1, days_median, days_q3")
    assert (days["published"], days["primary_suppressed"], days["secondary_suppressed"]) == (1, 3, 1)


def _rules_with(table: str, table_rules: TableRules):
    from dataclasses import replace

    return replace(RULES, tables={**RULES.tables, table: table_rules})


def test_rounding_rounds_every_count_and_withholds_nothing():
    from dataclasses import replace

    rounding = replace(RULES, method="round", rounding_base=5)
    table = _durations(
        [
            {"icare_code": "AC.F11", "age_band": "1-4", "spells": 0},
            {"icare_code": "AC.F12", "age_band": "1-4", "spells": 2},
            {"icare_code": "AC.F13", "age_band": "1-4", "spells": 3},
            {"icare_code": "AC.F14", "age_band": "1-4", "spells": 12, "days_median": 40.0},
            {"icare_code": "AC.F15", "age_band": "1-4", "spells": 13},
        ]
    )
    frame = control_table("durations", table, rounding)[0].to_pandas()
    # the margin rows (all categories: 0 + 2 + 3 + 12 + 13 = 30 ...) are rounded on their own
    assert (
        frame.loc[frame["icare_level"] == "total", "spells"].tolist() == [30] * 8
    )  # 2 areas x 2 sexes x 2 ages
    frame = frame.loc[~frame["is_total"]]
    assert frame["spells"].tolist() == [0, 0, 5, 10, 15]
    assert set(frame["spells_status"]) == {F}
    assert frame["days_status"].tolist() == [A, A, A, F, F]  # quartiles of fewer than 10 spells withheld


# -- the release tables and their schemas -----------------------------------------------------------
def test_a_release_table_that_breaks_its_schema_is_refused():
    table = _durations([{"icare_code": "AC.F11", "age_band": "1-4", "spells": 7}])
    released, _ = control_table("durations", table, RULES)
    broken = released.set_column(
        released.column_names.index("spells_status"),
        "spells_status",
        pa.array(["X"] * released.num_rows, pa.string()),
    )
    with pytest.raises(OutputSchemaError, match=r"spells_status: values \['X'\]"):
        validate_arrow(broken, release_name("durations"))
    missing = released.set_column(
        released.column_names.index("days_status"),
        "days_status",
        pa.array([None] * released.num_rows, pa.string()),
    )
    with pytest.raises(ValueError, match="days_status"):  # an empty status is refused
        validate_arrow(missing, release_name("durations"))


def _sample_run(folder: Path, disclosure_path: Path | None = None):
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("ICARE_PSEUDONYM_KEY", raising=False)
        return run(RunOptions(bundled_samples(), folder / "out", disclosure_path=disclosure_path))


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """``icare run`` on the bundled sample (development key) with the shipped rules less their
    breakdowns (``RULES``: every cell of the internal tables released beside its margin rows), once
    for the tests below."""
    folder = tmp_path_factory.mktemp("sample")
    raw = yaml.safe_load(SHIPPED_RULES.path.read_text(encoding="utf-8"))
    for table in raw["tables"].values():
        table.pop("breakdowns", None)
        table.pop("national_breakdowns", None)
    rules = folder / "every_combination.yaml"
    rules.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = _sample_run(folder, rules)
    return result, folder / "out"


@pytest.mark.slow
def test_on_the_sample_the_shipped_breakdowns_publish_more_and_give_nothing_away(sample_run, tmp_path):
    """The shipped rules (two-way breakdowns) against every combination, on the same sample: no small
    count published, no withheld value recoverable from a released total, a larger share published."""
    everything, _ = sample_run
    shipped = _sample_run(tmp_path)
    counts = {t: RELEASE_COUNTS[t] for t in SHIPPED_RULES.tables}
    summable = {t: r.summable for t, r in SHIPPED_RULES.tables.items() if r.summable}
    assert checks.release_recoveries(shipped.release, counts, summable, CHILD_BANDS).empty
    assert checks.release_disclosures(shipped.release, counts, SHIPPED_RULES.threshold).empty

    def share(result) -> float:
        summary = result.release["disclosure_summary"].to_pandas()
        summary = summary.loc[~summary["column_name"].str.startswith("days_")]
        return summary["published"].sum() / summary["cells"].sum()

    assert share(shipped) > share(everything)


@pytest.mark.slow
def test_release_tables_are_written_with_their_schemas_and_metadata(sample_run):
    result, output = sample_run
    runs = result.tables["runs"]
    rules = json.loads(runs["disclosure_rules"].iloc[0])
    assert rules["version_id"] == RULES.version_id and rules["threshold"] == RULES.threshold
    for table in RELEASE_TABLES:
        parquet = pq.read_table(output / "release" / f"{table}.parquet")
        assert parquet.schema.equals(arrow_schema(release_name(table)), check_metadata=False), table
        metadata = parquet.schema.metadata
        assert metadata[b"icare.run_id"] == result.run_id.encode()
        assert metadata[b"icare.classification_version"] == b"icare-ac-provisional@0.2.0"
        assert metadata[b"icare.disclosure_rules"] == RULES.version_id.encode()
        validate_arrow(parquet, release_name(table))
    import duckdb

    with duckdb.connect(str(output / "icare.duckdb"), read_only=True) as connection:
        for table in RELEASE_TABLES:
            rows = connection.execute(f'SELECT count(*) FROM release."{table}"').fetchone()[0]
            assert rows == result.release[table].num_rows, table
    disclosure = json.loads((output / "release" / "disclosure.json").read_text(encoding="utf-8"))
    assert disclosure["run_id"] == result.run_id and disclosure["rules"]["version_id"] == RULES.version_id
    assert set(disclosure["tables"]) == set(RELEASE_COUNTS)


def _released_and_internal(result, table: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    released = result.release[table].to_pandas()
    internal = result.tables[table]
    internal = internal.to_pandas() if isinstance(internal, pa.Table) else internal
    return released, internal


@pytest.mark.slow
@pytest.mark.parametrize("table", sorted(RELEASE_COUNTS))
def test_on_the_sample_no_small_count_is_published_and_no_margin_group_gives_one_away(sample_run, table):
    result, _ = sample_run
    released, internal = _released_and_internal(result, table)
    threshold = RULES.threshold
    table_rules = RULES.tables[table]
    if "is_total" in released:  # the cells are the detail rows, first and in today's order
        totals = released.loc[released["is_total"]]
        released = released.loc[~released["is_total"]].reset_index(drop=True)
        assert (released["icare_level"] == "code").all() if "icare_level" in released else True
        assert len(totals) > 0 and (totals.index >= len(released)).all()
    assert len(released) == len(internal) > 0
    derived = {c for rule in table_rules.derived for c in rule.columns}
    unchanged = [c for c in column_names(table) if c not in {*RELEASE_COUNTS[table], *derived}]
    pd.testing.assert_frame_equal(released[unchanged], internal[unchanged])
    summary = result.release["disclosure_summary"].to_pandas().set_index(["table_name", "column_name"])
    for column in table_rules.counts:
        values, status = internal[column].to_numpy(), released[f"{column}_status"].to_numpy()
        withheld = status != F
        published = released[column]
        assert published.isna().to_numpy().tolist() == withheld.tolist(), column
        assert (published[~withheld].to_numpy() == values[~withheld]).all(), column  # unchanged
        assert not ((values[~withheld] >= 1) & (values[~withheld] < threshold)).any(), column
        assert ((values[status == A] >= 1) & (values[status == A] < threshold)).all(), column
        assert (values[status == D] > 0).all(), column
        unprotected = 0
        for margin in table_rules.margins:
            groups = internal.groupby(list(margin), dropna=False, sort=False).ngroup().to_numpy()
            frame = pd.DataFrame(
                {"g": groups, "w": withheld, "wv": np.where(withheld, values, 0), "v": values}
            )
            frame["partner"] = ~frame["w"] & (frame["v"] > 0)
            per_group = frame.groupby("g").agg(
                n=("w", "sum"), s=("wv", "sum"), t=("v", "sum"), p=("partner", "any")
            )
            exposed = (per_group["n"] == 1) | ((per_group["n"] >= 2) & (per_group["s"] < threshold))
            # A recoverable group is one with nothing left to withhold: its total is what it withholds.
            assert not (exposed & per_group["p"]).any(), (column, margin)
            unprotected += int((exposed & (per_group["t"] >= threshold)).sum())
        for identity in table_rules.identities:
            if column in identity:
                terms = np.column_stack([released[f"{c}_status"].to_numpy() != F for c in identity])
                unprotected += int(((terms.sum(axis=1) == 1) & withheld).sum())
        if not table_rules.summable:
            assert summary.loc[(table, column), "unprotected_groups"] == unprotected, column
        counted = summary.loc[(table, column)]
        every = result.release[table].column(f"{column}_status").to_pandas()
        assert counted["primary_suppressed"] == (every == A).sum()
        assert counted["secondary_suppressed"] == (every == D).sum()
        assert counted["published"] + counted["primary_suppressed"] + counted["secondary_suppressed"] == len(
            every
        )
    for column, parents in table_rules.follow.items():
        for parent in parents:
            followed = (released[f"{parent}_status"] != F) & (internal[column] > 0)
            assert (released.loc[followed, f"{column}_status"] != F).all(), (column, parent)
    for rule in table_rules.derived:
        behind = internal[rule.count] - internal[rule.excluded]
        shown = released[rule.status] == F
        assert (behind[shown] >= rule.min_observations).all()
        assert (released.loc[shown, f"{rule.count}_status"] == F).all()
        for name in rule.columns:
            assert released.loc[~shown, name].isna().all(), name
    recovered = checks.release_recoveries(
        result.release,
        {t: RELEASE_COUNTS[t] for t in RULES.tables},
        {table: table_rules.summable},
        CHILD_BANDS,
    )
    assert recovered.empty if table_rules.summable else True


@pytest.mark.slow
def test_on_the_sample_flow_check_and_rates_agree_with_the_totals_and_the_internal_rates(sample_run):
    result, _ = sample_run
    release = {t: result.release[t].to_pandas() for t in ("stock", "entries", "exits", "flow_check")}
    flow = release["flow_check"]
    for column, table, count in (("stock_end", "stock", "children"), ("entries", "entries", "spells")):
        frame = release[table]
        date = "reference_date" if table == "stock" else "period_end"
        others = [d for d in RULES.tables[table].summable if d not in ("area_code", "icare_code")]
        area = frame.loc[(frame["icare_level"] == "total") & (frame[others] == "total").all(axis=1)]
        area = area.loc[area["area_code"] != "total"]
        merged = flow.merge(area, left_on=["area_code", "period_end"], right_on=["area_code", date])
        assert len(merged) == len(flow)
        assert (merged[f"{column}_status"] == merged[f"{count}_status"]).all(), column
        assert np.array_equal(merged[column].fillna(-1).astype(float), merged[count].fillna(-1).astype(float))
    rates = result.tables["rates"]
    rates = rates.to_pandas() if isinstance(rates, pa.Table) else rates
    stock = release["stock"]
    stock = stock.loc[stock["icare_level"].isin(["code", "total"]) & (stock["provider_sector"] == "total")]
    stock = stock.loc[(stock["area_code"] != "total") & (stock["age_band"] != "total")].assign(
        age_band=stock["age_band"].replace({"under 18": "total"}), period_end=stock["reference_date"]
    )
    internal = rates.loc[rates["measure"] == "stock"]
    keys = ["area_code", "period_end", "icare_code", "sex", "age_band"]
    merged = internal.merge(stock, on=keys, suffixes=("_internal", ""))
    assert len(merged) == len(internal) > 0
    given = merged["rate_per_100000"].notna()
    assert given.any()
    assert np.allclose(merged.loc[given, "rate_per_100000"], merged.loc[given, "rate_per_100000_internal"])
    assert (merged.loc[given, "population"] == merged.loc[given, "population_internal"]).all()
    assert (
        merged["rate_per_100000"].isna()
        == ((merged["children_status"] != F) | merged["rate_per_100000_internal"].isna())
    ).all()


@pytest.mark.slow
def test_the_internal_tables_are_not_changed_by_disclosure_control(sample_run):
    result, output = sample_run
    for table in RELEASE_COUNTS:
        written = pq.read_table(output / "parquet" / f"{table}.parquet")
        internal = result.tables[table]
        internal = internal if isinstance(internal, pa.Table) else pa.Table.from_pandas(internal)
        assert written.equals(internal.cast(written.schema)), table
        assert written.schema.equals(arrow_schema(table), check_metadata=False)


# -- property: the two invariants on random small tables --------------------------------------------
@st.composite
def small_tables(draw):
    rows = draw(st.integers(1, 4))
    columns = draw(st.integers(1, 4))
    cells = [(f"r{i}", f"c{j}") for i in range(rows) for j in range(columns)]
    kept = draw(st.lists(st.booleans(), min_size=len(cells), max_size=len(cells)))
    cells = [cell for cell, keep in zip(cells, kept, strict=True) if keep] or cells[:1]
    values = draw(st.lists(st.integers(0, 15), min_size=len(cells), max_size=len(cells)))
    threshold = draw(st.integers(2, 6))
    return _grid([(r, c, n) for (r, c), n in zip(cells, values, strict=True)]), threshold


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_tables())
def test_property_no_small_count_published_and_no_group_gives_a_withheld_value_away(drawn):
    frame, threshold = drawn
    rules = TableRules(counts=("n",), margins=(("r",), ("c",), ("r", "c")))
    controlled = suppress(frame, rules, threshold)
    status = controlled.status["n"]
    values = frame["n"].to_numpy()
    published = status == FREE
    assert not ((values[published] >= 1) & (values[published] < threshold)).any()
    assert (status[values == 0] == FREE).all()  # zeros are always published
    for margin in rules.margins:
        frame_g = frame.assign(
            w=~published, wv=np.where(published, 0, values), partner=published & (values > 0)
        )
        per_group = frame_g.groupby(list(margin)).agg(n=("w", "sum"), s=("wv", "sum"), p=("partner", "any"))
        exposed = (per_group["n"] == 1) | ((per_group["n"] >= 2) & (per_group["s"] < threshold))
        assert not (exposed & per_group["p"]).any(), margin
    again = suppress(frame.copy(), rules, threshold)
    assert (again.status["n"] == status).all()  # deterministic


def test_release_tables_of_empty_statistics_are_empty_and_valid():
    empty = {table: arrow_schema(table).empty_table() for table in RELEASE_COUNTS}
    released = release_tables(empty, RULES)
    for table in RELEASE_COUNTS:
        assert released[table].num_rows == 0
        assert released[table].schema.equals(arrow_schema(release_name(table)), check_metadata=False)
    assert released["disclosure_summary"].num_rows == sum(
        len(RULES.tables[t].counts) + len(RULES.tables[t].derived) for t in RELEASE_COUNTS
    )


# -- the guard: a release that shows what its rules withhold is never written ----------------------
def _released(values: list[int | None], status: list[str]) -> dict[str, pa.Table]:
    return {"t": pa.table({"n": pa.array(values, pa.int64()), "n_status": pa.array(status, pa.string())})}


def test_release_check_finds_small_published_counts_and_contradicting_statuses():
    release = _released([0, 3, 5, None, 7, None], [F, F, F, A, D, F])
    found = checks.release_disclosures(release, {"t": ("n",)}, threshold=5)
    # row 1: 3 published below the threshold; row 4: withheld (D) but shown; row 5: empty but "F"
    assert found["row"].tolist() == [1, 4, 5]
    assert found["value"].tolist()[:2] == [3, 7]
    clean = _released([0, 5, None, None], [F, F, A, D])
    assert checks.release_disclosures(clean, {"t": ("n",)}, threshold=5).empty
    # under rounding there is no threshold: a published 3 is not a finding, contradictions still are
    assert checks.release_disclosures(release, {"t": ("n",)}, threshold=None)["row"].tolist() == [4, 5]


def test_broken_suppression_stops_the_release(monkeypatch):
    """If primary suppression withheld nothing, the guard refuses the release instead of writing it."""
    monkeypatch.setattr(control, "primary", lambda values, threshold: np.zeros(len(values), dtype=np.int8))
    empty = {table: arrow_schema(table).empty_table() for table in RELEASE_COUNTS}
    row = {c.name: None for c in arrow_schema("stock")} | {
        "source": "s", "area_code": "1", "reference_date": pd.Timestamp("2025-03-31").date(),
        "icare_code": "AC.F", "icare_level1": "AC.F", "sex": "F", "age_band": "1-4",
        "provider_sector": "public", "children": 2, "temporary_moves_resolved": 0,
        "classification_version": "v",
    }  # fmt: skip
    empty["stock"] = pa.Table.from_pylist([row], schema=arrow_schema("stock"))
    with pytest.raises(DisclosureError, match="must not be released"):
        release_tables(empty, RULES)
