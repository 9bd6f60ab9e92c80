"""Issue 14, "Trustworthy figures from imperfect returns": icare run on damaged copies of a synthetic
corpus must publish the true figures (``tests/truth.py``, computed from the clean copy) or stop with
exit code 2 and a message naming the file; never a traceback, never exit 0 with a wrong figure.

The damage is ``icare.sources.ssda903.damage`` (docs/damaged-returns.md). One clean corpus is made per
session: 2 areas, 400 children, collection years 2017-2025 (so REC E45-E48 can be put in a 2017/18
return and P2 on an episode open after 28 Oct 2023). Every kind is run through the CLI in-process.

A case that fails on today's code is marked ``xfail(strict=True)`` with the issue-14 work item that
will make it pass; when that lands the case XPASSes, fails strictly, and the marker is removed. The
items: 1 failure policy by field, normalisation of values and the ``corrections`` record (lead);
2 file-reading robustness; 3 completeness gate; 4 episode rules; 5 safe operation.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from icare.pseudonymise import KEY_ENVIRONMENT_VARIABLE
from icare.sources.ssda903.damage import KINDS, damage_corpus
from icare.sources.ssda903.synthetic import generate_returns
from tests import truth
from tests.damaged_run import (
    KEY,
    Outcome,
    assert_no_traceback,
    assert_reconciles,
    assert_stops_naming,
    assert_true_figures,
    compare_stock,
    on_record,
    run_icare,
)

CHILDREN, FIRST_YEAR, LAST_YEAR, AREAS, SEED = 400, 2017, 2025, ("201", "202"), 14
REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def clean_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("damaged-returns") / "clean"
    generate_returns(
        root, children=CHILDREN, first_year=FIRST_YEAR, last_year=LAST_YEAR, areas=AREAS, seed=SEED
    )
    return root


@pytest.fixture(scope="session")
def true_figures(clean_corpus) -> dict[str, pd.DataFrame]:
    return {
        "stock": truth.stock(clean_corpus),
        "stock_level1": truth.stock(clean_corpus, by_level1=True),
        "flows": truth.flows(clean_corpus),
    }


# ---- The clean corpus: the truth is icare's own figures ------------------------------------------


def test_truth_by_hand(tmp_path):
    """The yardstick itself, on returns small enough to count by hand."""
    from tests.builders import EPISODE_COLUMNS, episode, write_csv

    rows_2021 = [
        # Child 1: enters 01/05/2020, moves (X1), goes to hospital (T1) over 31/03/2021, back home later.
        episode("1", "01/05/2020", place="U4", dec="01/09/2020", rec="X1"),
        episode("1", "01/09/2020", rne="P", place="K2", dec="25/03/2021", rec="X1"),
        episode("1", "25/03/2021", rne="P", place="T1", provider="", dec="", rec=""),
        # Child 2: leaves on 31/03/2021 (an exit, not in the stock), re-enters on 31/03/2021.
        episode("2", "01/06/2019", place="P1", dec="31/03/2021", rec="E4A"),
        episode("2", "31/03/2021", place="U6"),
    ]
    rows_2022 = [
        episode("1", "25/03/2021", rne="P", place="T1", provider="", dec="02/04/2021", rec="E4A"),
        episode("2", "31/03/2021", place="U6", dec="01/01/2022", rec="E13"),
    ]
    write_csv(tmp_path / "2021" / "201" / "episodes.csv", EPISODE_COLUMNS, rows_2021)
    write_csv(tmp_path / "2022" / "201" / "episodes.csv", EPISODE_COLUMNS, rows_2022)
    stock = truth.stock(tmp_path, by_level1=True)
    # On 31/03/2021: child 1 on a temporary move from K2 (AC.F), child 2 in U6 (AC.F); none on 31/03/2022.
    assert stock[["reference_date", "level1", "children"]].values.tolist() == [
        [pd.Timestamp("2021-03-31"), "AC.F", 2]
    ]
    assert truth.stock(tmp_path)["children"].tolist() == [2, 0]
    flows = truth.flows(tmp_path)
    # 2021: child 1's spell and child 2's second spell start (child 2's first began on 01/06/2019,
    # before the first period), child 2's first spell ends. 2022: the two open spells end.
    assert flows[["year", "entries", "exits"]].values.tolist() == [[2021, 2, 1], [2022, 0, 2]]


def test_clean_corpus_gives_the_true_figures(clean_corpus, true_figures, tmp_path):
    """The first thing to get right: on clean returns icare's stock (in total and by level-1
    category), entries and exits are exactly the independent computation's."""
    outcome = run_icare(clean_corpus, tmp_path / "out")
    assert_true_figures(outcome, true_figures)
    level1 = compare_stock(outcome.tables, true_figures, by_level1=True)
    assert (level1["children_true"] == level1["children_icare"]).all(), level1
    assert true_figures["stock"]["children"].sum() > 500  # a corpus large enough to mean something


# ---- Each kind of damage -------------------------------------------------------------------------

TRUTH, DEFECTIVE, STOP, TRUTH_OR_STOP = "truth", "defective", "stop", "truth_or_stop"
# The run finishes and every damaged file is named in return_findings: ids that lost their leading
# zeros are two children unless the source declares child_id_compare: ignore_leading_zeros (off for
# SSDA903, where 0012 and 12 may be two children); tests/test_return_manifest.py runs it declared.
FLAGGED = "flagged"


@dataclass(frozen=True)
class Case:
    expect: str  # TRUTH: exact stock; DEFECTIVE: stock within 0.5%; STOP: exit 2 naming the file
    recorded: bool = False  # the changed values or set-aside parts must be on record, naming the file
    missing: str | None = None  # why it fails on today's code: "issue 14 item N: ..."


CASES = {
    "two_digit_year_end_dates": Case(DEFECTIVE, recorded=True),
    "open_episodes_with_end_reasons": Case(DEFECTIVE, recorded=True),
    "defective_form": Case(DEFECTIVE, recorded=True),
    "lower_case_codes": Case(TRUTH, recorded=True),
    "padded_codes": Case(TRUTH, recorded=True),
    "dates_with_midnight": Case(TRUTH, recorded=True),
    "iso_dates": Case(TRUTH, recorded=True),
    "dates_without_leading_zeros": Case(TRUTH, recorded=True),
    "ids_without_leading_zeros": Case(FLAGGED, recorded=True),
    "rec_codes_before_they_existed": Case(TRUTH, recorded=True),
    "p2_open_after_cutoff": Case(TRUTH, recorded=True),
    "unknown_provider_and_ethnic": Case(TRUTH, recorded=True),
    "bad_sex_and_dob": Case(TRUTH, recorded=True),
    "utf16_with_bom": Case(TRUTH),
    "windows_1252": Case(TRUTH),
    "semicolon_separated": Case(TRUTH),
    "tab_separated": Case(TRUTH),
    "title_and_blank_lines": Case(TRUTH),
    "xlsx_merged_title": Case(TRUTH),
    "xlsx_hidden_draft_sheet": Case(TRUTH, recorded=True),
    "xlsx_serial_dates": Case(TRUTH, recorded=True),
    "xlsx_truncated": Case(STOP),
    "empty_file": Case(STOP),
    "header_only_file": Case(STOP),
    "missing_required_column": Case(STOP),
    "postcodes_absent": Case(TRUTH),
    "file_named_for_another_year": Case(TRUTH_OR_STOP, recorded=True),
    "symlinked_year_folder": Case(TRUTH),
    "duplicated_column_header": Case(TRUTH_OR_STOP),
    "duplicate_file_copies": Case(TRUTH),  # and every row of the copies superseded, below
}


def _params():
    for kind, case in CASES.items():
        marks = [pytest.mark.xfail(strict=True, reason=case.missing)] if case.missing else []
        yield pytest.param(kind, marks=marks, id=kind)


def test_every_kind_of_damage_has_a_case():
    assert set(CASES) == set(KINDS)


@pytest.mark.parametrize("kind", ["xlsx_hidden_draft_sheet", "padded_codes", "symlinked_year_folder"])
def test_damage_is_deterministic(kind, clean_corpus, tmp_path):
    first = damage_corpus(clean_corpus, tmp_path / "a" / "in", kind, seed=SEED)
    second = damage_corpus(clean_corpus, tmp_path / "b" / "in", kind, seed=SEED)
    assert first == second
    for change in first:
        path = tmp_path / "a" / "in" / change.file
        assert path.exists(), change
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "b" / "in" / change.file).read_bytes()


def test_command_line_writes_the_copies_and_the_record(tmp_path, capsys):
    import json

    from icare.sources.ssda903.damage import main as damage_main

    argv = [str(tmp_path), "--children", "60", "--first-year", "2017", "--last-year", "2019"]
    assert damage_main([*argv, "--kind", "iso_dates", "--kind", "empty_file"]) == 0
    record = json.loads((tmp_path / "damage.json").read_text())
    assert {c["kind"] for c in record} == {"iso_dates", "empty_file"}
    # The middle year is the one damaged (episodes run into it and out of it).
    assert all(c["file"].startswith("2018/") for c in record)
    emptied = [c["file"] for c in record if c["kind"] == "empty_file"]
    assert (tmp_path / "empty_file" / emptied[0]).stat().st_size == 0
    assert (tmp_path / "clean" / emptied[0]).stat().st_size > 0
    # iso_dates: the episodes and header files (no UASC date in that year), empty_file: 1
    assert "3 changes in 2 damaged copies" in capsys.readouterr().out


def test_damage_changes_what_it_records_and_nothing_else(clean_corpus, tmp_path):
    """Padded codes: exactly the recorded number of values differ from the clean file, all in code
    columns, each the clean value followed by spaces or a non-breaking space."""
    from icare.sources.ssda903.damage_files import CODE_COLUMNS, read_table

    changes = damage_corpus(clean_corpus, tmp_path / "in", "padded_codes", seed=SEED)
    for change in changes:
        table = change.file.rsplit("/", 1)[1].removesuffix(".csv")
        clean, damaged = read_table(clean_corpus / change.file), read_table(tmp_path / "in" / change.file)
        assert damaged.columns == clean.columns
        differ = [
            (name, d)
            for c_row, d_row in zip(clean.rows, damaged.rows, strict=True)
            for name, c, d in zip(clean.columns, c_row, d_row, strict=True)
            if c != d
        ]
        assert len(differ) == change.count
        assert {name for name, _ in differ} <= set(CODE_COLUMNS[table])
        assert all(d != d.rstrip(" \u00a0") for _, d in differ)


@pytest.mark.slow  # one icare run per kind, several seconds each
@pytest.mark.parametrize("kind", list(_params()))
def test_damaged_returns_give_the_true_figures_or_stop(kind, clean_corpus, true_figures, tmp_path):
    case = CASES[kind]
    changes = damage_corpus(clean_corpus, tmp_path / "in", kind, seed=SEED)
    files = sorted({c.file for c in changes if c.count})
    assert files, f"{kind} changed nothing"
    outcome = run_icare(tmp_path / "in", tmp_path / "out")
    if case.expect == FLAGGED:
        assert_no_traceback(outcome)
        assert outcome.exit_code == 0, outcome.output
        findings = outcome.tables["return_findings"]
        flagged = set(findings.loc[findings["finding"] == "child_id_differs_by_leading_zeros", "file"])
        assert set(files) <= flagged, (files, flagged)
        assert_reconciles(outcome.tables)
        return
    if case.expect == STOP or (case.expect == TRUTH_OR_STOP and outcome.exit_code != 0):
        assert_stops_naming(outcome, files[0])
        return
    tolerance = 0.005 if case.expect == DEFECTIVE else 0.0
    assert_true_figures(outcome, true_figures, stock_tolerance=tolerance)
    if case.recorded:
        unrecorded = [f for f in files if not on_record(outcome.tables, f)]
        assert not unrecorded, f"changes to these files are on no record: {unrecorded}"
    if kind == "duplicate_file_copies":  # of each file and its copy, one is wholly superseded
        r = outcome.tables["reconciliation"].set_index("file")
        for copy in files:
            pair = r.loc[[copy, copy.replace(" - Copy", "")]]
            assert (pair["rows_read"] > 0).all()
            assert (pair["rows_superseded"] == pair["rows_read"]).any(), pair


# ---- Faults of operation -------------------------------------------------------------------------


def _cli(input_dir: Path, output_dir: Path, **popen) -> subprocess.Popen:
    env = {**os.environ, KEY_ENVIRONMENT_VARIABLE: KEY, "PYTHONPATH": str(REPOSITORY)}
    command = [sys.executable, "-m", "icare.cli", "run", "--quiet", "--source", f"ssda903={input_dir}"]
    return subprocess.Popen(
        [*command, "--output", str(output_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def _published(output_dir: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in sorted((output_dir / "parquet").glob("*.parquet"))}


@pytest.mark.slow
def test_two_runs_at_once_into_one_output_folder(clean_corpus, true_figures, tmp_path):
    """Both finish, or one stops with exit 2 because the other holds the folder; never a traceback,
    and the outputs left are whole and true."""
    runs = [_cli(clean_corpus, tmp_path / "out") for _ in range(2)]
    results = [(run.wait(timeout=300), *run.communicate()) for run in runs]
    for code, _, stderr in results:
        assert "Traceback" not in stderr
        assert code in (0, 2), stderr
    assert 0 in [code for code, _, _ in results]
    outcome = Outcome(0, "", None, _published(tmp_path / "out"))
    assert_true_figures(outcome, true_figures)


def _limit_file_size() -> None:
    # A file-size limit makes writes past it fail (EFBIG) as they fail on a full disk (ENOSPC).
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.slow
def test_a_full_disk_stops_the_run_and_keeps_the_previous_outputs(clean_corpus, true_figures, tmp_path):
    first = _cli(clean_corpus, tmp_path / "out")
    assert first.wait(timeout=300) == 0, first.communicate()[1]
    summary = (tmp_path / "out" / "run.json").read_bytes()
    second = _cli(clean_corpus, tmp_path / "out", preexec_fn=_limit_file_size)
    code = second.wait(timeout=300)
    stderr = second.communicate()[1]
    assert "Traceback" not in stderr
    assert code == 2, stderr
    assert str(tmp_path / "out") in stderr  # the message says where it could not write
    assert (tmp_path / "out" / "run.json").read_bytes() == summary
    assert_true_figures(Outcome(0, "", None, _published(tmp_path / "out")), true_figures)
