"""How the statistics are read out of DuckDB (icare/statistics/compute.py): the spells are built for
ranges of children in turn and put in their published order in numpy; the result must not depend on
the number of ranges."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from icare.statistics import compute as statistics
from icare.statistics.compute import UNIQUE_LEADING_COLUMNS, _child_ranges, compute_statistics
from schemas.outputs import arrow_schema
from tests.statistics_builders import CLASSIFICATION, SETTINGS, SOURCE, ep, periods


@pytest.mark.parametrize(("children", "rows"), [(0, 0), (1, 5), (3, 10**6), (10, 10**6), (1000, 10**6)])
def test_child_ranges_cover_every_child_once(children: int, rows: int):
    ranges = _child_ranges(children, rows)
    assert 1 <= len(ranges) <= statistics.CHILD_RANGES
    covered = [child for first, last in ranges for child in range(first, last + 1)]
    assert covered == list(range(1, children + 1))  # consecutive, in order, each child once


def _episodes(seed: int) -> pd.DataFrame:
    """Children in two areas and none (a key may repeat across areas), with chains, gaps, overlaps,
    open ends, temporary moves and placement changes."""
    rnd = random.Random(seed)
    rows = []
    for n in range(120):
        area = rnd.choice(["201", "202", None])
        day = date(2021, 1, 1) + timedelta(days=rnd.randrange(400))
        for _ in range(rnd.randrange(1, 6)):
            end = day + timedelta(days=rnd.choice([0, 3, 40, 200]))
            end_type = rnd.choice(["continues", "exit", "exit", "open"])
            rows.append(
                ep(
                    f"c{n % 90}",  # some keys in two areas: the same key, another child
                    day.strftime("%d/%m/%Y"),
                    None if end_type == "open" else end.strftime("%d/%m/%Y"),
                    end_type=end_type,
                    code=rnd.choice(["AC.F12", "AC.R11", "AC.X6"]),
                    new=rnd.choice(["care_entry", "placement_change", "legal_status_change"]),
                    purpose=rnd.choice(["general_care", "temporary_move"]),
                    area=area,
                )
            )
            day = max(day + timedelta(days=1), end + timedelta(days=rnd.choice([0, -2, 5, 90])))
    rnd.shuffle(rows)
    frame = pd.DataFrame(rows, columns=list(statistics.EPISODE_COLUMNS))
    for column in ("birth_month", "episode_start", "episode_end"):
        frame[column] = pd.to_datetime(frame[column])
    return frame


def _all_periods() -> pd.DataFrame:
    return pd.concat([periods(2021, 2022, 2023, area=area) for area in ("201", "202", None)])


def test_spells_made_by_ranges_of_children_equal_one_build(monkeypatch):
    episodes = _episodes(7)
    monkeypatch.setattr(statistics, "CHILD_RANGES", 1)
    whole = compute_statistics(episodes, _all_periods(), CLASSIFICATION, SETTINGS, {SOURCE: 0})
    monkeypatch.setattr(statistics, "CHILD_RANGES", 4)
    monkeypatch.setattr(statistics, "ROWS_PER_CHILD_RANGE", 1)
    assert len(_child_ranges(100, 400)) == 4
    ranged = compute_statistics(episodes, _all_periods(), CLASSIFICATION, SETTINGS, {SOURCE: 0})
    assert ranged["placement_spells"].num_rows > ranged["care_spells"].num_rows > 100
    for name, table in whole.items():
        assert ranged[name].equals(table), name


def test_spells_are_in_the_order_of_their_leading_columns():
    # the order of ORDER BY ALL (nulls last), found in numpy on child_id and the spell numbers
    tables = compute_statistics(_episodes(11), _all_periods(), CLASSIFICATION, SETTINGS, {SOURCE: 0})
    for name, leading in UNIQUE_LEADING_COLUMNS.items():
        table = tables[name]
        assert table["area_code"].null_count > 0, name  # the null area sorts after the others
        ordered = table.sort_by([(column, "ascending", "at_end") for column in leading])
        assert ordered.equals(table), name


def test_roll_ups_are_looked_up_from_the_codes_and_empty_for_unknown_or_empty_codes():
    codes = statistics._codes(CLASSIFICATION)
    known = codes.filter(pc.is_valid(codes["level2"]))["code"][0].as_py()  # a code with both levels
    own = pa.table(
        {
            name: pa.array(values, arrow_schema("stock").field(name).type)
            for name, values in {
                "source": [SOURCE] * 3,
                "area_code": ["201", "201", None],
                "reference_date": [date(2024, 3, 31)] * 3,
                "icare_code": [known, "no such code", None],
                "sex": ["F", "M", None],
                "age_band": ["10-15"] * 3,
                "provider_sector": [None] * 3,
                "children": [1, 2, 3],
                "temporary_moves_resolved": [0, 0, 0],
            }.items()
        }
    )
    assert own.column_names == statistics._own_columns("stock")
    table = statistics._with_roll_ups("stock", own, codes, "test@1")
    assert table.schema.equals(arrow_schema("stock"))
    row = codes.filter(pc.equal(codes["code"], known)).to_pylist()[0]
    assert row["level1"] is not None
    assert table["icare_level1"].to_pylist() == [row["level1"], None, None]
    assert table["icare_level2"].to_pylist() == [row["level2"], None, None]
    assert table["classification_version"].to_pylist() == ["test@1"] * 3


def test_each_published_table_is_handed_over_once_as_soon_as_it_is_made():
    """``on_table`` gets every table once, the same table as returned, and the spells before the
    tables computed from them (so ``icare run`` can write the spells while the rest is computed)."""
    handed: list[tuple[str, pa.Table]] = []
    tables = compute_statistics(
        _episodes(3),
        _all_periods(),
        CLASSIFICATION,
        SETTINGS,
        {SOURCE: 0},
        on_table=lambda name, table: handed.append((name, table)),
    )
    names = [name for name, _ in handed]
    assert sorted(names) == sorted(tables)
    for name, table in handed:
        assert table is tables[name], name
    assert names.index("care_spells") < names.index("stock")
    assert names.index("placement_spells") < names.index("moves")
