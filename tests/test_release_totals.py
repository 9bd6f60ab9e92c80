"""Margin rows of the release, their protection and their rates, on small crafted tables.

Expected figures are worked out by hand; the protection is checked by a brute-force checker written
here in plain Python (every equation total = sum of the rows one step finer, in every summed
dimension), independent of ``icare.disclosure``.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from icare import checks
from icare.disclosure import load_disclosure_rules
from icare.disclosure.tables import control_table, release_tables
from schemas.outputs import RELEASE_COUNTS, arrow_schema, column_names

DEFAULT_RULES = load_disclosure_rules()
# The engine on the full cross-classification (the rules without breakdowns: every combination of
# the summable dimensions released), the hardest case for the protection.
RULES = replace(DEFAULT_RULES, tables={t: replace(r, breakdowns=()) for t, r in DEFAULT_RULES.tables.items()})
CHILD_BANDS = ["under 1", "1-4", "5-9", "10-15", "16-17"]
BANDS = [*CHILD_BANDS, "18 and over", "unknown"]
# code -> (level 1, level 2) as the classification gives them (a level-1 code has no level 2)
CODES = {
    "AC.F12": ("AC.F", "AC.F1"),
    "AC.F11": ("AC.F", "AC.F1"),
    "AC.F21": ("AC.F", "AC.F2"),
    "AC.F3": ("AC.F", "AC.F3"),
    "AC.U": ("AC.U", None),
}
VERSION = "icare-ac-provisional@0.2.0"
END_2023, END_2024 = dt.date(2023, 3, 31), dt.date(2024, 3, 31)


def _stock(rows: list[tuple]) -> pa.Table:
    """Internal stock rows: (area, date, code, sex, age band, provider sector, children)."""
    records = [
        {
            "source": "ssda903",
            "area_code": area,
            "reference_date": date,
            "icare_code": code,
            "icare_level1": CODES[code][0],
            "icare_level2": CODES[code][1],
            "sex": sex,
            "age_band": band,
            "provider_sector": sector,
            "children": n,
            "temporary_moves_resolved": 0,
            "classification_version": VERSION,
        }
        for area, date, code, sex, band, sector, n in rows
    ]
    return pa.Table.from_pylist(records).select(column_names("stock")).cast(arrow_schema("stock"))


def _released(table: str, data: pa.Table, threshold: int = 5, rules=RULES) -> pd.DataFrame:
    rules = replace(rules, threshold=threshold)
    return control_table(table, data, rules, CHILD_BANDS)[0].to_pandas()


def _row(frame: pd.DataFrame, **where) -> pd.Series:
    mask = np.ones(len(frame), dtype=bool)
    for column, value in where.items():
        mask &= (frame[column] == value).to_numpy()
    found = frame.loc[mask]
    assert len(found) == 1, (where, len(found))
    return found.iloc[0]


TOTALS = {"area_code": "total", "icare_level": "total", "sex": "total", "age_band": "total"}
EVERYTHING = {**TOTALS, "provider_sector": "total"}


def test_margin_rows_sum_their_cells_through_the_icare_levels_and_under_18():
    stock = _stock(
        [
            ("201", END_2024, "AC.F12", "F", "1-4", "private", 6),
            ("201", END_2024, "AC.F21", "F", "5-9", "private", 7),
            ("201", END_2024, "AC.F3", "M", "18 and over", "private", 8),
            ("202", END_2024, "AC.U", "M", "unknown", "private", 9),
            ("202", END_2024, "AC.F12", "F", "10-15", "private", 10),
        ]
    )
    frame = _released("stock", stock)
    assert (frame["children_status"] == "F").all()
    assert frame.loc[~frame["is_total"], "children"].tolist() == [6, 7, 8, 10, 9]  # today's cells, in order
    assert _row(frame, **EVERYTHING)["children"] == 40
    assert _row(frame, **(EVERYTHING | {"age_band": "under 18"}))["children"] == 6 + 7 + 10
    assert _row(frame, **(EVERYTHING | {"area_code": "201"}))["children"] == 21
    by_level1 = frame.loc[(frame["icare_level"] == "level1") & (frame["area_code"] == "total")]
    by_level1 = by_level1.loc[(by_level1[["sex", "age_band", "provider_sector"]] == "total").all(axis=1)]
    assert dict(zip(by_level1["icare_code"], by_level1["children"], strict=True)) == {"AC.F": 31, "AC.U": 9}
    assert (by_level1["icare_level2"] == "total").all() and (
        by_level1["icare_level1"] == by_level1["icare_code"]
    ).all()
    level2 = _row(frame, **(EVERYTHING | {"icare_level": "level2", "icare_code": "AC.F1"}))
    assert (level2["children"], level2["icare_level1"], level2["icare_level2"]) == (16, "AC.F", "AC.F1")
    # a level-2 code is its own subtotal; a level-1 code is its own level-2 and level-1 subtotal
    for level in ("code", "level2"):
        assert _row(frame, **(EVERYTHING | {"icare_level": level, "icare_code": "AC.F3"}))["children"] == 8
    for level in ("code", "level2", "level1"):
        assert _row(frame, **(EVERYTHING | {"icare_level": level, "icare_code": "AC.U"}))["children"] == 9
    # under 18 of area 202 by sex: the girl aged 10-15 only
    assert (
        _row(frame, **(EVERYTHING | {"area_code": "202", "sex": "F", "age_band": "under 18"}))["children"]
        == 10
    )


def _key(row: dict, keys: list[str]) -> tuple:
    return tuple(None if pd.isna(row[k]) else row[k] for k in keys)


def _one_up(row: dict, dimension: str) -> dict | None:
    """The coordinates of a row's total in one dimension (plain Python: the contract's hierarchy)."""
    up = dict(row)
    if dimension == "icare_code":
        level, code = row["icare_level"], row["icare_code"]
        first = row["icare_level1"] if not pd.isna(row["icare_level1"]) else code
        second = row["icare_level2"] if not pd.isna(row["icare_level2"]) else code
        if level == "total":
            return None
        if level == "code":
            up.update(icare_level="level2", icare_code=second, icare_level1=first, icare_level2=second)
        elif level == "level2":
            up.update(icare_level="level1", icare_code=first, icare_level1=first, icare_level2="total")
        else:
            up.update(icare_level="total", icare_code="total", icare_level1="total", icare_level2="total")
        return up
    if dimension == "age_band":
        if row["age_band"] == "total":
            return None
        up["age_band"] = "under 18" if row["age_band"] in CHILD_BANDS else "total"
        return up
    if row[dimension] == "total":
        return None
    up[dimension] = "total"
    return up


def brute_force_equations(frame: pd.DataFrame, table: str) -> dict[tuple[int, str], list[int]]:
    """(total row, dimension) -> its component rows, found by looking every row's total up."""
    counts = RELEASE_COUNTS[table]
    values = {"is_total", "population", "rate_per_100000", "rate_missing_reason", "days_q1", "days_median"}
    values |= {"days_q3", *counts}
    keys = [c for c in frame.columns if c not in values and not c.endswith("_status")]
    rows = frame.to_dict("records")
    where = {_key(row, keys): i for i, row in enumerate(rows)}
    assert len(where) == len(rows)  # every row is one cell
    equations: dict[tuple[int, str], list[int]] = {}
    for i, row in enumerate(rows):
        for dimension in RULES.tables[table].summable:
            up = _one_up(row, dimension)
            if up is not None:
                equations.setdefault((where[_key(up, keys)], dimension), []).append(i)
    return equations


def _random_stock(seed: int, cells: int) -> pa.Table:
    draw = random.Random(seed)
    chosen = set()
    while len(chosen) < cells:
        chosen.add(
            (
                draw.choice(["201", "202"]),
                draw.choice(list(CODES)),
                draw.choice(["F", "M"]),
                draw.choice(BANDS),
                draw.choice(["private", "public_own_authority"]),
            )
        )
    rows = [
        (a, END_2024, c, s, b, p, draw.choice([0, 1, 2, 3, 4, 5, 6, 8, 12, 20]))
        for a, c, s, b, p in sorted(chosen)
    ]
    return _stock(rows)


@pytest.mark.parametrize("rules", [RULES, DEFAULT_RULES], ids=["every_combination", "breakdowns"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_no_withheld_value_can_be_recovered_from_any_released_total(seed, rules):
    stock = _random_stock(seed, 30)
    truth = _released("stock", stock, threshold=1, rules=rules)  # nothing withheld: true values
    released = _released("stock", stock, rules=rules)
    assert released[list(column_names("release.stock")[:10])].equals(
        truth[list(column_names("release.stock")[:10])]
    )
    equations = brute_force_equations(released, "stock")
    assert len(equations) > 50
    true = {c: truth[c].to_numpy() for c in ("children", "temporary_moves_resolved")}
    withheld = {c: released[f"{c}_status"].ne("F").to_numpy() for c in true}
    for (total, dimension), members in equations.items():
        assert true["children"][total] == sum(true["children"][m] for m in members), (total, dimension)
        for count, values in true.items():
            held = [m for m in members if withheld[count][m]]
            assert len(held) + withheld[count][total] != 1, (count, total, dimension, members)
            held_sum = sum(values[m] for m in held)
            assert withheld[count][total] or not held or held_sum >= 5, (count, total, dimension)
    assert released["children_status"].eq("A").sum() > 0 and released["children_status"].eq("D").sum() > 0
    published = released["children_status"].eq("F").to_numpy()
    values = truth["children"].to_numpy()
    assert not ((values[published] > 0) & (values[published] < 5)).any()


def _detailed(row: pd.Series) -> frozenset[str]:
    """The summable dimensions a released stock row does not sum (areas aside)."""
    detailed = {d for d in ("sex", "age_band", "provider_sector") if row[d] != "total"}
    return frozenset(detailed | ({"icare_code"} if row["icare_level"] != "total" else set()))


def test_breakdowns_release_their_cross_classifications_and_no_other():
    """Default rules: category by sex, by age and by provider sector, and sex by age, per area and
    nationally, and category by sex and age nationally; the full cross of category, sex, age and
    sector is not released."""
    stock = _stock(
        [
            ("201", END_2024, "AC.F12", "F", "1-4", "private", 6),
            ("201", END_2024, "AC.F12", "M", "1-4", "private", 7),
            ("202", END_2024, "AC.F21", "M", "10-15", "public_own_authority", 8),
        ]
    )
    released = _released("stock", stock, threshold=1, rules=DEFAULT_RULES)
    rules = DEFAULT_RULES.tables["stock"]
    breakdowns = [frozenset(b) for b in rules.breakdowns]
    national = [frozenset(b) for b in rules.national_breakdowns]
    by_area = released["area_code"] != "total"
    seen = {_detailed(row) for _, row in released.loc[by_area].iterrows()}
    assert all(any(d <= b for b in breakdowns) for d in seen)
    assert set(breakdowns) <= seen  # each breakdown is released at its finest, per area
    seen_nationally = {_detailed(row) for _, row in released.loc[~by_area].iterrows()}
    assert all(any(d <= b for b in [*breakdowns, *national]) for d in seen_nationally)
    assert set(national) <= seen_nationally and not set(national) & seen  # national only
    assert not released["is_total"].eq(False).any()  # no row crosses every dimension
    # AC.F12 girls in 201: 6; AC.F12 children aged 1-4 nationally: 13; boys aged 1-4 nationally: 7
    girls = _row(released, area_code="201", icare_level="code", icare_code="AC.F12", sex="F",
                 age_band="total", provider_sector="total")  # fmt: skip
    young = _row(released, area_code="total", icare_level="code", icare_code="AC.F12", sex="total",
                 age_band="1-4", provider_sector="total")  # fmt: skip
    boys = _row(released, area_code="total", icare_level="total", sex="M", age_band="1-4",
                provider_sector="total")  # fmt: skip
    assert (girls["children"], young["children"], boys["children"]) == (6, 13, 7)


def test_the_independent_check_finds_a_total_that_gives_a_withheld_value_away():
    stock = _stock(
        [
            ("201", END_2024, "AC.F12", "F", "1-4", "private", 3),
            ("201", END_2024, "AC.F12", "M", "1-4", "private", 9),
        ]
    )
    released = control_table("stock", stock, RULES, CHILD_BANDS)[0]
    counts = {"stock": RELEASE_COUNTS["stock"]}
    summable = {"stock": RULES.tables["stock"].summable}
    assert checks.release_recoveries({"stock": released}, counts, summable, set(CHILD_BANDS)).empty
    frame = released.to_pandas()
    boy = (frame["sex"] == "M") & ~frame["is_total"]
    frame.loc[boy, "children_status"] = "F"  # the 9 published beside the withheld 3: 12 - 9 gives it
    found = checks.release_recoveries({"stock": frame}, counts, summable, set(CHILD_BANDS))
    by_sex = found.loc[found["column_name"] == "children (by sex)", "row"]
    assert len(by_sex) == 1 and frame.iloc[by_sex.iloc[0]]["sex"] == "total"


def _flows(seed: int) -> dict[str, pa.Table]:
    """Stock on two dates, entries and exits of the second period, and flow_check built from them."""
    draw = random.Random(seed)
    stock_rows, entry_rows, exit_rows, flow_rows = [], [], [], []
    for area in ("201", "202"):
        totals = {}
        for date in (END_2023, END_2024):
            cells = {
                (c, s, b)
                for c, s, b in (
                    (draw.choice(list(CODES)), draw.choice("FM"), draw.choice(BANDS)) for _ in range(6)
                )
            }
            values = [draw.choice([1, 2, 3, 6, 9]) for _ in cells]
            stock_rows += [
                (area, date, c, s, b, "private", n)
                for (c, s, b), n in zip(sorted(cells), values, strict=True)
            ]
            totals[date] = sum(values)
        flows = {}
        for name, rows in (("entries", entry_rows), ("exits", exit_rows)):
            cells = sorted(
                {(draw.choice(list(CODES)), draw.choice("FM"), draw.choice(BANDS)) for _ in range(4)}
            )
            spells = [draw.choice([1, 2, 4, 7]) for _ in cells]
            rows += [(area, c, s, b, n) for (c, s, b), n in zip(cells, spells, strict=True)]
            flows[name] = sum(spells)
        start, end = totals[END_2023], totals[END_2024]
        flow_rows.append((area, start, flows["entries"], flows["exits"], end))
    period = {"period_start": dt.date(2023, 4, 1), "period_end": END_2024, "classification_version": VERSION}
    common = {"source": "ssda903"}

    def coded(code):
        return {"icare_code": code, "icare_level1": CODES[code][0], "icare_level2": CODES[code][1]}

    entries = [
        common
        | period
        | coded(c)
        | {"area_code": a, "sex": s, "age_band": b, "children": n, "spells": n, "re_entries": 0}
        for a, c, s, b, n in entry_rows
    ]
    exits = [
        common
        | period
        | coded(c)
        | {"area_code": a, "sex": s, "age_band": b, "exit_destination": "home", "children": n, "spells": n}
        for a, c, s, b, n in exit_rows
    ]
    flow = [
        common | period | {
            "area_code": a, "stock_start": st, "entries": en, "exits": ex, "stock_end": sd,
            "difference": sd - (st + en - ex), "overlap_records_set_aside_start": 0,
            "overlap_records_set_aside_end": 0, "overlaps_resolved_in_period": 0,
            "balance": "balanced" if sd == st + en - ex else "difference",
        }
        for a, st, en, ex, sd in flow_rows
    ]  # fmt: skip
    tables = {t: arrow_schema(t).empty_table() for t in RELEASE_COUNTS}
    tables["stock"] = _stock(stock_rows)
    for name, rows in (("entries", entries), ("exits", exits), ("flow_check", flow)):
        tables[name] = pa.Table.from_pylist(rows).select(column_names(name)).cast(arrow_schema(name))
    return tables


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_flow_check_carries_the_statuses_of_the_area_totals(seed):
    released = release_tables(_flows(seed), RULES)
    flow = released["flow_check"].to_pandas()

    def area_total(table: str, count: str, date_column: str, date: dt.date, area: str) -> tuple:
        frame = released[table].to_pandas()
        summed = {d: "total" for d in RULES.tables[table].summable if d != "icare_code"}
        row = _row(frame, **(summed | {"icare_level": "total", "area_code": area, date_column: date}))
        return row[count], row[f"{count}_status"]

    statuses = []
    for row in flow.itertuples():
        expected = {
            "stock_start": area_total("stock", "children", "reference_date", END_2023, row.area_code),
            "stock_end": area_total("stock", "children", "reference_date", END_2024, row.area_code),
            "entries": area_total("entries", "spells", "period_end", END_2024, row.area_code),
            "exits": area_total("exits", "spells", "period_end", END_2024, row.area_code),
        }
        for column, (value, status) in expected.items():
            assert getattr(row, f"{column}_status") == status, (column, row.area_code)
            assert pd.isna(getattr(row, column)) == pd.isna(value)
            statuses.append(status)
    assert "F" in statuses


def _population(areas: dict[str, int]) -> pa.Table:
    """Each area: that many children at every age 0-17 and sex."""
    rows = [
        {"source": "ssda903", "area_code": area, "year": 2024, "sex": sex, "age": age, "population": n,
         "population_source": "crafted", "population_vintage": "test"}
        for area, n in areas.items() for sex in "FM" for age in range(18)
    ]  # fmt: skip
    return pa.Table.from_pylist(rows).select(column_names("population")).cast(arrow_schema("population"))


def _rates_release(population: dict[str, int], crafted: bool = True) -> pd.DataFrame:
    tables = _flows(21)
    tables["population"] = _population(population)
    if not crafted:
        return release_tables(tables, RULES)["stock"].to_pandas()
    tables["stock"] = _stock(
        [
            ("201", END_2024, "AC.F12", "F", "1-4", "private", 6),
            ("201", END_2024, "AC.F21", "M", "5-9", "private", 7),
            ("201", END_2024, "AC.F3", "F", "18 and over", "private", 8),
            ("201", END_2024, "AC.F12", "F", "10-15", "private", 20),
            ("202", END_2024, "AC.F12", "M", "1-4", "private", 9),
            ("202", END_2024, "AC.U", "F", "10-15", "private", 12),
        ]
    )
    return release_tables(tables, RULES)["stock"].to_pandas()


def test_rates_are_given_with_their_count_and_withheld_exactly_when_it_is():
    random_stock = _rates_release({"201": 100, "202": 50}, crafted=False)
    assert (random_stock["rate_status"] == random_stock["children_status"]).all()
    withheld = random_stock["children_status"] != "F"
    assert withheld.any() and random_stock.loc[withheld, "rate_per_100000"].isna().all()
    children = random_stock["age_band"].isin([*CHILD_BANDS, "under 18"])
    assert (
        random_stock.loc[withheld & children, "rate_missing_reason"].isin(["withheld", "no_population"])
    ).all()
    stock = _rates_release({"201": 100, "202": 50})
    assert (stock["children_status"] == "F").all()
    # girls aged 1-4 in area 201: 6 of 4 ages x 100 girls
    girls = _row(stock, **(EVERYTHING | {"area_code": "201", "sex": "F", "age_band": "1-4"}))
    assert (girls["children"], girls["population"], girls["rate_per_100000"]) == (6, 400, 1500.0)
    # under 18 in both areas: 6 + 7 + 20 + 9 + 12 = 54 of 18 ages x (100 + 50) x 2 sexes
    everyone = _row(stock, **(EVERYTHING | {"age_band": "under 18"}))
    assert (everyone["children"], everyone["population"]) == (54, 5400)
    assert everyone["rate_per_100000"] == pytest.approx(1000.0)
    given = stock["rate_per_100000"].notna()
    expected = 100000 * stock.loc[given, "children"] / stock.loc[given, "population"]
    assert np.allclose(stock.loc[given, "rate_per_100000"], expected)
    adults = stock["age_band"].isin(["18 and over", "unknown", "total"])
    assert (stock.loc[adults, "rate_missing_reason"] == "age_outside_0_17").all()
    assert stock.loc[adults, "population"].isna().all()
    assert stock.loc[~adults, "rate_missing_reason"].isna().all()


def test_an_area_without_population_leaves_the_total_of_areas_without_a_rate():
    stock = _rates_release({"201": 100})
    area = _row(stock, **(EVERYTHING | {"area_code": "201", "age_band": "under 18"}))
    assert (area["children"], area["population"]) == (33, 3600)
    everyone = _row(stock, **(EVERYTHING | {"age_band": "under 18"}))
    assert pd.isna(everyone["population"]) and everyone["rate_missing_reason"] == "no_population"


def test_duration_quartiles_of_margin_rows_come_from_the_spells():
    from tests.statistics_builders import compute, ep

    tables = compute(
        [
            ep("a", "01/05/2023", "11/05/2023", new="care_entry", code="AC.F12"),  # 10 days, a girl
            ep("b", "01/05/2023", "21/05/2023", new="care_entry", code="AC.F21", sex="M"),  # 20 days
            ep("c", "01/05/2023", "09/08/2023", new="care_entry", code="AC.F12", sex="M"),  # 100 days
        ]
    )
    totals = tables["durations_totals"]
    totals = totals.to_pandas() if isinstance(totals, pa.Table) else totals
    care = totals.loc[totals["unit"] == "care_spell"]
    everything = _row(care, area_code="total", icare_level="total", sex="total", age_band="total")
    # the median of 10, 20 and 100 days: 20, not a sum or mean of the cells' medians
    assert (everything["spells"], everything["days_q1"], everything["days_median"]) == (3, 15.0, 20.0)
    boys = _row(care, area_code="201", icare_level="level1", icare_code="AC.F", sex="M", age_band="under 18")
    assert (boys["spells"], boys["days_median"]) == (2, 60.0)
    level2 = _row(
        care, area_code="201", icare_level="level2", icare_code="AC.F1", sex="total", age_band="total"
    )
    assert (level2["spells"], level2["days_median"], level2["icare_level1"]) == (2, 55.0, "AC.F")
    # the cells themselves are durations' rows, not repeated here
    assert not ((care["area_code"] != "total") & (care["icare_level"] == "code") & (care["sex"] != "total")
                & ~care["age_band"].isin(["total", "under 18"])).any()  # fmt: skip
    internal = tables["durations"]
    internal = internal.to_pandas() if isinstance(internal, pa.Table) else internal
    assert internal.loc[internal["unit"] == "care_spell", "spells"].tolist() == [1, 1, 1]
