"""Running icare on a (damaged) corpus of returns and comparing what it publishes with the truth of
``tests/truth.py``: the checks of ``test_damaged_returns.py`` (issue 14)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from icare.cli import main
from icare.pseudonymise import KEY_ENVIRONMENT_VARIABLE

KEY = "x" * 32
# Tables that name every file read, or every row's file of origin, whatever happened to it: a file
# named there is not a report of a problem.
PROVENANCE_TABLES = {
    "inputs",
    "reconciliation",
    "runs",
    "data_dictionary",
    "episodes",
    "children",
    "superseded",
}


@dataclass
class Outcome:
    exit_code: int
    output: str  # stdout and stderr
    exception: BaseException | None
    tables: dict[str, pd.DataFrame]


def run_icare(input_dir: Path, output_dir: Path) -> Outcome:
    """``icare run`` in this process, as a user runs it; the published tables when it succeeds."""
    result = CliRunner().invoke(
        main,
        ["run", "--quiet", "--source", f"ssda903={input_dir}", "--output", str(output_dir)],
        env={KEY_ENVIRONMENT_VARIABLE: KEY},
    )
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    tables = {}
    if result.exit_code == 0:
        for path in sorted((output_dir / "parquet").glob("*.parquet")):
            tables[path.stem] = pd.read_parquet(path)
    return Outcome(result.exit_code, result.output, exception, tables)


def published_stock(tables: dict[str, pd.DataFrame], *, by_level1: bool = False) -> pd.DataFrame:
    stock = tables["stock"].assign(
        area=lambda t: t["area_code"],
        reference_date=lambda t: pd.to_datetime(t["reference_date"]),
        level1=lambda t: t["icare_code"].str[:4],
    )
    keys = ["area", "reference_date", *(["level1"] if by_level1 else [])]
    return stock.groupby(keys, as_index=False)["children"].sum()


def published_flows(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    def spells(name: str) -> pd.DataFrame:
        frame = tables[name].assign(
            area=lambda t: t["area_code"], year=lambda t: pd.to_datetime(t["period_end"]).dt.year
        )
        return (
            frame.groupby(["area", "year"], as_index=False)["spells"].sum().rename(columns={"spells": name})
        )

    return spells("entries").merge(spells("exits"), on=["area", "year"], how="outer").fillna(0)


def compare_stock(tables, true_figures, *, by_level1: bool = False) -> pd.DataFrame:
    key = "stock_level1" if by_level1 else "stock"
    keys = ["area", "reference_date", *(["level1"] if by_level1 else [])]
    both = true_figures[key].merge(
        published_stock(tables, by_level1=by_level1), on=keys, how="outer", suffixes=("_true", "_icare")
    )
    return both.fillna(0)


def assert_no_traceback(outcome: Outcome) -> None:
    assert outcome.exception is None, f"icare raised {outcome.exception!r}"
    assert "Traceback" not in outcome.output


def assert_reconciles(tables: dict[str, pd.DataFrame]) -> None:
    r = tables["reconciliation"]
    parts = r[["rows_accepted", "rows_quarantined", "rows_superseded", "rows_not_harmonised"]].sum(axis=1)
    wrong = r.loc[r["rows_read"] != parts, ["file", "table_name", "rows_read"]]
    assert wrong.empty, f"rows read do not add up for:\n{wrong}"


def assert_true_figures(outcome: Outcome, true_figures, *, stock_tolerance: float = 0.0) -> None:
    """Exit 0 with the true stock on every 31 March (within ``stock_tolerance`` as a share), the true
    entries and exits within 1%, and a reconciliation that adds up."""
    assert_no_traceback(outcome)
    assert outcome.exit_code == 0, outcome.output
    stock = compare_stock(outcome.tables, true_figures)
    off = stock[
        (stock["children_true"] - stock["children_icare"]).abs() > stock_tolerance * stock["children_true"]
    ]
    assert off.empty, f"stock differs from the truth on:\n{off}"
    flows = (
        true_figures["flows"]
        .merge(published_flows(outcome.tables), on=["area", "year"], how="outer")
        .fillna(0)
    )
    for flow in ("entries", "exits"):
        off = flows[(flows[f"{flow}_x"] - flows[f"{flow}_y"]).abs() > 0.01 * flows[f"{flow}_x"]]
        assert off.empty, f"{flow} differ from the truth by more than 1% in:\n{off}"
    assert_reconciles(outcome.tables)


def assert_stops_naming(outcome: Outcome, file: str) -> None:
    """Exit 2, no traceback, and a message naming the file."""
    assert_no_traceback(outcome)
    assert outcome.exit_code == 2, (
        f"exit {outcome.exit_code}, expected 2 naming {file}:\n{outcome.output[-2000:]}"
    )
    assert file in outcome.output


def on_record(tables: dict[str, pd.DataFrame], file: str) -> bool:
    """Whether a table that reports problems or changes (quarantine, corrections, findings ...) names
    the file: a value changed or a part of a file set aside must be on record."""
    for name, table in tables.items():
        if name in PROVENANCE_TABLES:
            continue
        for column in table.columns:
            values = table[column]
            text = values.dtype == object or pd.api.types.is_string_dtype(values)
            if text and values.astype(str).str.contains(file, regex=False).any():
                return True
    return False
