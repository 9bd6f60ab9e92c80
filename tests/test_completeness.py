"""The completeness gate: a return whose header or episodes cannot be used gives no figures.

One area, four collection years (2022-2025), six children whose figures are worked out by hand
below. Each test breaks one return: by default the run stops (exit code 2 from the CLI) and writes
nothing; with ``allow_incomplete`` the broken return's year has no stock and no flows, the
``coverage`` table says why, and every other year's figures are exactly those of the complete run.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from icare.coverage import IncompleteReturnsError
from icare.pipeline import RunOptions, run
from pipelines.assets import coverage_check
from tests.builders import (
    EPISODE_COLUMNS,
    HEADER_COLUMNS,
    episode,
    header,
    write_csv,
    write_return,
    write_workbook,
)
from tests.conftest import TEST_KEY
from tests.test_cli import icare

YEARS = (2022, 2023, 2024, 2025)
# Children and their episodes (area 201):
#   A  in care from 01/05/2021, throughout;
#   B  enters 01/06/2022, leaves 01/02/2024;
#   C  enters 10/10/2023, stays;
#   D  in care from 01/01/2021, leaves 01/03/2022;
#   E  enters 01/07/2024, leaves 01/12/2024;
#   F  enters 01/02/2022, moves (a new episode, RNE P) 01/08/2022, leaves 01/01/2025.
A = episode("A", "01/05/2021")
B_OPEN, B_CLOSED = episode("B", "01/06/2022"), episode("B", "01/06/2022", dec="01/02/2024", rec="E4A")
C = episode("C", "10/10/2023")
D = episode("D", "01/01/2021", dec="01/03/2022", rec="E4A")
E = episode("E", "01/07/2024", dec="01/12/2024", rec="E4A")
F1_OPEN, F1_CLOSED = episode("F", "01/02/2022"), episode("F", "01/02/2022", dec="01/08/2022", rec="X1")
F2_OPEN = episode("F", "01/08/2022", rne="P")
F2_CLOSED = episode("F", "01/08/2022", rne="P", dec="01/01/2025", rec="E4A")
# Each return holds every episode open at some time in its year (1 April to 31 March).
EPISODES = {
    2022: [A, D, F1_OPEN],
    2023: [A, B_OPEN, F1_CLOSED, F2_OPEN],
    2024: [A, B_CLOSED, C, F2_OPEN],
    2025: [A, C, E, F2_CLOSED],
}
# By hand, per period ending 31 March: stock at the start, entries, exits, stock at the end.
#   2021/22: D in care; A and F enter; D leaves        -> 1, 2, 1, 2 (A, F)
#   2022/23: B enters                                  -> 2, 1, 0, 3 (A, B, F)
#   2023/24: C enters, B leaves                        -> 3, 1, 1, 3 (A, C, F)
#   2024/25: E enters and leaves, F leaves             -> 3, 1, 2, 2 (A, C)
FLOWS = {
    dt.date(2022, 3, 31): (1, 2, 1, 2),
    dt.date(2023, 3, 31): (2, 1, 0, 3),
    dt.date(2024, 3, 31): (3, 1, 1, 3),
    dt.date(2025, 3, 31): (3, 1, 2, 2),
}
FIGURES = ("stock", "entries", "exits", "moves", "transitions", "durations", "flow_check")
ADVICE = "--allow-incomplete"


def headers(year: int) -> list[dict[str, str]]:
    children = sorted({row["CHILD"] for row in EPISODES[year]})
    return [header(child, sex="M" if year >= 2025 else "1") for child in children]  # M/F from 2024/25


def write_returns(root: Path) -> Path:
    for year in YEARS:
        write_return(root, year, headers=headers(year), episodes=EPISODES[year])
    return root


def options(root: Path, output: Path, allow_incomplete: bool = False) -> RunOptions:
    return RunOptions({"ssda903": root}, output, allow_incomplete=allow_incomplete)


def published(result) -> dict[str, pd.DataFrame]:
    return {name: _frame(result.tables[name]) for name in (*FIGURES, "coverage")}


def _frame(table: object) -> pd.DataFrame:
    frame = table.to_pandas() if hasattr(table, "to_pandas") else table
    return frame.reset_index(drop=True)


def _dates(frame: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_datetime(frame[column]).dt.date


def period_column(table: str) -> str:
    return "reference_date" if table == "stock" else "period_end"


@pytest.fixture(scope="module")
def complete(tmp_path_factory) -> dict[str, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("complete")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ICARE_PSEUDONYM_KEY", TEST_KEY)
        return published(run(options(write_returns(folder / "in"), folder / "out")))


def test_the_complete_returns_give_the_figures_worked_out_by_hand(complete):
    flows = complete["flow_check"]
    assert {
        d: tuple(int(v) for v in row)
        for d, row in zip(
            _dates(flows, "period_end"),
            flows[["stock_start", "entries", "exits", "stock_end"]].itertuples(index=False),
            strict=True,
        )
    } == FLOWS
    assert complete["coverage"][["collection_year", "completeness"]].values.tolist() == [
        [year, "complete"] for year in YEARS
    ]
    assert complete["coverage"]["reason"].isna().all()


def _break_episodes_missing(root: Path) -> None:
    (root / "2024" / "201" / "episodes.csv").unlink()


def _break_header_missing(root: Path) -> None:
    (root / "2024" / "201" / "header.csv").unlink()


def _break_episodes_empty(root: Path) -> None:
    write_csv(root / "2024" / "201" / "episodes.csv", EPISODE_COLUMNS, [])


def _break_episodes_unreadable(root: Path) -> None:
    # A workbook cut short (an interrupted copy): no reader can open it.
    (root / "2024" / "201" / "episodes.csv").unlink()
    path = write_workbook(
        root / "2024" / "201" / "episodes.xlsx", {"Episodes": (EPISODE_COLUMNS, EPISODES[2024])}
    )
    path.write_bytes(path.read_bytes()[:300])


def _break_episodes_column(root: Path) -> None:
    columns = [c for c in EPISODE_COLUMNS if c != "REC"]
    rows = [{k: v for k, v in row.items() if k != "REC"} for row in EPISODES[2024]]
    write_csv(root / "2024" / "201" / "episodes.csv", columns, rows)


def _break_middle_year_missing(root: Path) -> None:
    shutil.rmtree(root / "2024")


BROKEN = {
    "episodes file missing": (_break_episodes_missing, "incomplete", "episodes: missing"),
    "header file missing": (_break_header_missing, "incomplete", "header: missing"),
    "episodes header-only": (
        _break_episodes_empty,
        "incomplete",
        "episodes: 2024/201/episodes.csv has a header row but no data rows (empty)",
    ),
    "episodes unreadable": (_break_episodes_unreadable, "incomplete", "2024/201/episodes.xlsx: "),
    "episodes lack a column": (
        _break_episodes_column,
        "incomplete",
        "episodes: 2024/201/episodes.csv: the episodes table lacks required column(s) REC",
    ),
    "middle year missing": (
        _break_middle_year_missing,
        "missing",
        "no file for collection year 2024, though area 201 has returns before and after it (2022 to 2025)",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_an_unusable_return_stops_the_run_and_writes_nothing(tmp_path, pseudonym_key, case):
    damage, status, reason = BROKEN[case]
    root = write_returns(tmp_path / "in")
    damage(root)
    with pytest.raises(IncompleteReturnsError) as raised:
        run(options(root, tmp_path / "out"))
    message = str(raised.value)
    assert f"ssda903 area 201, collection year 2024 (2023-04-01 to 2024-03-31): {status}: " in message
    assert reason in message
    assert ADVICE in message
    assert message.count("\n  - ") == 1  # only the broken return is named
    # nothing written: at most the output folder claimed (with its lock file) before the input was read
    out = tmp_path / "out"
    assert not out.exists() or {p.name for p in out.iterdir()} <= {".icare-lock"}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_allowed_an_unusable_return_leaves_its_year_out_and_nothing_else(
    tmp_path, pseudonym_key, complete, case
):
    damage, status, reason = BROKEN[case]
    root = write_returns(tmp_path / "in")
    damage(root)
    result = run(options(root, tmp_path / "out", allow_incomplete=True))
    tables = published(result)
    coverage = tables["coverage"]
    assert coverage[["source", "area_code", "collection_year", "completeness"]].values.tolist() == [
        ["ssda903", "201", year, status if year == 2024 else "complete"] for year in YEARS
    ]
    assert reason in coverage.loc[coverage["collection_year"] == 2024, "reason"].iloc[0]
    left_out = dt.date(2024, 3, 31)
    for table in FIGURES:
        column = period_column(table)
        got, want = tables[table], complete[table]
        assert left_out not in set(_dates(got, column)), table
        others = want[_dates(want, column) != left_out].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, others, check_dtype=False, obj=table)
    assert result.summary["not_complete"] == [
        {
            "source": "ssda903",
            "area_code": "201",
            "collection_year": 2024,
            "completeness": status,
            "reason": coverage["reason"].iloc[2],
        }
    ]
    released = result.release["coverage"].to_pandas()
    pd.testing.assert_frame_equal(released, coverage, check_dtype=False)


def test_a_gap_is_not_filled_from_the_return_before_it(tmp_path, pseudonym_key):
    """With 2023/24 unreadable, B's episode, open in the 2022/23 return, is closed by R2 on 1 April
    2023 (the 2024/25 return does not have B): its exit falls in the year left out, and no stock on
    31 March 2024 is published from the 2022/23 return's open episodes."""
    root = write_returns(tmp_path / "in")
    _break_episodes_unreadable(root)
    tables = run(options(root, tmp_path / "out", allow_incomplete=True)).tables
    episodes = tables["episodes"].to_pandas()
    repaired = episodes.loc[
        episodes["repair_rule"].notna(), ["collection_year", "episode_start", "repair_rule"]
    ]
    assert repaired.astype(str).values.tolist() == [["2023", "2022-06-01", "R2_not_in_later_return"]]
    assert dt.date(2024, 3, 31) not in set(_dates(_frame(tables["stock"]), "reference_date"))


@pytest.mark.slow
def test_the_cli_exits_2_naming_the_return_and_keeps_the_previous_outputs(tmp_path):
    root = write_returns(tmp_path / "in")
    out = tmp_path / "out"
    first = icare("run", "--quiet", "--source", f"ssda903={root}", "--output", str(out), key=TEST_KEY)
    assert first.returncode == 0, first.stderr
    before = (out / "run.json").read_bytes()
    _break_episodes_column(root)
    done = icare("run", "--quiet", "--source", f"ssda903={root}", "--output", str(out), key=TEST_KEY)
    assert done.returncode == 2
    assert done.stderr.startswith("icare: error: 1 return(s) cannot give figures")
    assert "area 201, collection year 2024" in done.stderr and "lacks required column(s) REC" in done.stderr
    assert (out / "run.json").read_bytes() == before
    allowed = icare(
        "run",
        "--quiet",
        "--allow-incomplete",
        "--source",
        f"ssda903={root}",
        "--output",
        str(out),
        key=TEST_KEY,
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "1 return(s) not complete: no stock or flows for their years (coverage table):" in allowed.stdout
    assert "201        2024  incomplete: episodes: 2024/201/episodes.csv" in allowed.stdout


def test_the_dagster_check_blocks_unless_incomplete_returns_are_allowed():
    coverage = pd.DataFrame(
        {
            "source": ["ssda903", "ssda903"],
            "area_code": ["201", "201"],
            "collection_year": [2023, 2024],
            "completeness": ["complete", "missing"],
            "reason": [None, "no file for collection year 2024"],
        }
    )
    blocked = coverage_check(coverage, allow_incomplete=False)
    assert (blocked.passed, blocked.severity.value) == (False, "ERROR")
    assert blocked.metadata["failures"].value == 1
    allowed = coverage_check(coverage, allow_incomplete=True)
    assert (allowed.passed, allowed.severity.value) == (False, "WARN")  # a warning does not block
    assert coverage_check(coverage.iloc[:1], allow_incomplete=False).passed


def test_header_and_episodes_are_required_but_a_notes_sheet_is_not(tmp_path, pseudonym_key):
    write_workbook(
        tmp_path / "in" / "2024" / "ssda903_201.xlsx",
        {
            "Header": (HEADER_COLUMNS, [header("A")]),
            "Episodes": (EPISODE_COLUMNS, [A]),
            "Notes": (["Comment"], [{"Comment": "checked"}]),
        },
    )
    tables = run(options(tmp_path / "in", tmp_path / "out")).tables
    assert tables["coverage"][["collection_year", "completeness"]].values.tolist() == [[2024, "complete"]]


def test_a_care_spell_that_began_in_a_missing_year_has_an_unknown_duration(tmp_path, pseudonym_key):
    """G enters care on 01/06/2023 (the 2023/24 return), moves on 01/09/2023 and leaves on 01/06/2024.
    Without the 2023/24 return the data starts G's spell at the move: its start is not known."""
    g1 = episode("G", "01/06/2023", dec="01/09/2023", rec="X1")
    g2_open, g2_closed = (
        episode("G", "01/09/2023", rne="P"),
        episode("G", "01/09/2023", rne="P", dec="01/06/2024", rec="E4A"),
    )
    returns = {2023: [A], 2024: [A, g1, g2_open], 2025: [A, g2_closed]}

    def durations(root: Path, years: tuple[int, ...], output: Path) -> pd.DataFrame:
        for year in years:
            children = sorted({row["CHILD"] for row in returns[year]})
            heads = [header(child, sex="M" if year >= 2025 else "1") for child in children]
            write_return(root, year, headers=heads, episodes=returns[year])
        table = _frame(run(options(root, output, allow_incomplete=True)).tables["durations"])
        ended = table[(table["unit"] == "care_spell") & (_dates(table, "period_end") == dt.date(2025, 3, 31))]
        return ended[["spells", "spells_start_unknown", "days_median"]].drop_duplicates()

    whole = durations(tmp_path / "whole", (2023, 2024, 2025), tmp_path / "out-whole")
    assert whole.values.tolist() == [[1, 0, 366.0]]  # 01/06/2023 to 01/06/2024
    gap = durations(tmp_path / "gap", (2023, 2025), tmp_path / "out-gap")
    assert gap["spells"].tolist() == [1] and gap["spells_start_unknown"].tolist() == [1]
    assert gap["days_median"].isna().all()  # not 274 days from the move


@pytest.mark.slow
def test_dagster_blocks_publication_on_an_incomplete_return_unless_allowed(tmp_path, monkeypatch):
    from pipelines.resources import IcareSettings
    from tests.test_dagster_definitions import PUBLISH_NODE, materialise_everything

    monkeypatch.setenv("ICARE_PSEUDONYM_KEY", TEST_KEY)
    root = write_returns(tmp_path / "in")
    _break_episodes_column(root)
    output = tmp_path / "out"
    settings = {"sources": {"ssda903": str(root)}, "output_dir": str(output)}
    _, blocked = materialise_everything(tmp_path / "blocked", IcareSettings(**settings), raise_on_error=False)
    check = {c.check_name: c for c in blocked.get_asset_check_evaluations()}["returns_complete"]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert "REC" in check.metadata["sample"].value
    assert not blocked.asset_materializations_for_node(PUBLISH_NODE)
    assert not output.exists()
    _, allowed = materialise_everything(
        tmp_path / "allowed", IcareSettings(**settings, allow_incomplete=True)
    )
    check = {c.check_name: c for c in allowed.get_asset_check_evaluations()}["returns_complete"]
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    coverage = pd.read_parquet(output / "release" / "coverage.parquet")
    assert coverage[["collection_year", "completeness"]].values.tolist() == [
        [year, "incomplete" if year == 2024 else "complete"] for year in YEARS
    ]
    stock = pd.read_parquet(output / "parquet" / "stock.parquet")
    assert dt.date(2024, 3, 31) not in set(_dates(stock, "reference_date"))
