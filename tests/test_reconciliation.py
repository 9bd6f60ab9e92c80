"""Reconciliation counts each row read once, by its one outcome (icare.reconciliation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from icare.reconciliation import ReconciliationError, _count_dense, _count_outcomes, reconcile
from icare.sources.base import InputFile, RawTable


def _table(file: str, sheet: str | None, rows: int) -> RawTable:
    source = InputFile("ssda903", Path(file), file, 2024, "201", "0" * 64, 1)
    return RawTable(
        source, sheet, "episodes", pd.DataFrame({"CHILD": ["1"] * rows}, index=range(2, rows + 2))
    )


def _rows(file: str, sheet: str | None, numbers: list[int], outcome: str) -> pd.DataFrame:
    return pd.DataFrame({"file": file, "sheet": sheet, "row_number": numbers, "outcome": outcome})


def _sorted_counts(counts: pd.DataFrame) -> pd.DataFrame:
    return counts.sort_values(["file", "sheet", "outcome"]).reset_index(drop=True)


def test_dense_counts_equal_the_sorted_counts_and_count_a_repeated_row_once() -> None:
    rng = np.random.default_rng(7)
    parts = []
    for outcome, tables in [("rows_accepted", ["a.csv", "b.xlsx"]), ("rows_superseded", ["b.xlsx", "c.csv"])]:
        for file in tables:
            sheet = "Sheet1" if file.endswith("xlsx") else None
            numbers = rng.choice(np.arange(2, 500) + (0 if outcome == "rows_accepted" else 1000), 300)
            parts.append(_rows(file, sheet, numbers.tolist(), outcome))  # repeats: counted once
    dense = _count_dense(parts)
    outcomes = pd.concat(parts, ignore_index=True)
    outcomes["sheet"] = outcomes["sheet"].astype(object).where(outcomes["sheet"].notna(), "")
    counts, clashes = _count_outcomes(outcomes)
    assert clashes.empty
    pd.testing.assert_frame_equal(_sorted_counts(dense), _sorted_counts(counts), check_dtype=False)


def test_sparse_row_numbers_fall_back_to_sorting() -> None:
    parts = [_rows("a.csv", None, [2, 10_000_000], "rows_accepted")]
    assert _count_dense(parts) is None


def test_a_row_with_two_outcomes_stops_the_run() -> None:
    tables = [_table("a.csv", None, 3)]
    accepted = _rows("a.csv", None, [2, 3, 4], "rows_accepted")[["file", "sheet", "row_number"]]
    superseded = _rows("a.csv", None, [3], "rows_superseded")[["file", "sheet", "row_number"]]
    quarantined = _rows("a.csv", None, [], "rows_quarantined")[["file", "sheet", "row_number"]]
    with pytest.raises(ReconciliationError, match="more than one outcome"):
        reconcile(tables, {"episodes"}, accepted, quarantined, superseded)


def test_every_row_read_has_its_outcome_counted() -> None:
    tables = [_table("a.csv", None, 3), _table("b.xlsx", "Sheet1", 2)]
    accepted = pd.DataFrame(
        {"file": ["a.csv", "a.csv", "b.xlsx"], "sheet": [None, None, "Sheet1"], "row_number": [2, 3, 2]}
    )
    superseded = pd.DataFrame({"file": ["a.csv", "b.xlsx"], "sheet": [None, "Sheet1"], "row_number": [4, 3]})
    quarantined = pd.DataFrame({"file": pd.Series([], dtype="str"), "sheet": [], "row_number": []})
    table = reconcile(tables, {"episodes"}, accepted, quarantined, superseded)
    assert table[["file", "rows_read", "rows_accepted", "rows_superseded"]].values.tolist() == [
        ["a.csv", 3, 2, 1],
        ["b.xlsx", 2, 1, 1],
    ]
