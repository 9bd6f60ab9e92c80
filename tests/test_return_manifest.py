"""Which files make up a return, read robustly: year clashes and conflicting tables stop the run,
exact copies are read once, hidden sheets, optional columns, linked folders and unreadable files are
handled, and the findings are counted in ``return_findings``. The figures of the undamaged children
do not change."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

import pytest
from openpyxl import load_workbook

from icare.cli import format_summary
from icare.discovery import discover
from icare.pipeline import RunOptions, run
from icare.sources.base import SourceInputError
from icare.sources.spec import load_source_spec
from tests.builders import (
    EPISODE_COLUMNS,
    HEADER_COLUMNS,
    episode,
    header,
    write_csv,
    write_return,
    write_workbook,
)
from tests.test_bad_input import assert_reconciles

SPEC = load_source_spec("ssda903")
HEADERS = [header("1"), header("2", sex="2")]
EPISODES = [episode("1", "01/05/2023", dec="01/09/2023", rec="E11"), episode("2", "01/06/2023")]


def _episodes(tables):
    return tables["episodes"][["child_key", "episode_start", "episode_end", "icare_code"]].reset_index(
        drop=True
    )


@pytest.fixture
def clean(tmp_path, run_on):
    """The figures of the two children from clean files."""
    write_return(tmp_path / "clean", 2024, headers=HEADERS, episodes=EPISODES)
    return run_on(tmp_path / "clean", tmp_path / "out-clean")


def test_folder_and_file_name_years_that_disagree_stop_the_run(tmp_path, pseudonym_key):
    write_return(tmp_path / "in", 2024, headers=HEADERS, episodes=EPISODES)
    write_csv(tmp_path / "in" / "2024" / "201" / "ssda903_2022-23_episodes.csv", EPISODE_COLUMNS, EPISODES)
    with pytest.raises(SourceInputError) as error:
        run(RunOptions({"ssda903": tmp_path / "in"}, tmp_path / "out"))
    assert "2024/201/ssda903_2022-23_episodes.csv (folder 2024, file name 2023)" in str(error.value)
    # nothing written: at most the output folder claimed (with its lock file) before the input was read
    out = tmp_path / "out"
    assert not out.exists() or {p.name for p in out.iterdir()} <= {".icare-lock"}


def test_two_different_tables_of_one_kind_for_one_return_stop_the_run(tmp_path, pseudonym_key):
    write_return(tmp_path / "in", 2024, headers=HEADERS, episodes=EPISODES)
    write_csv(tmp_path / "in" / "2024" / "201" / "episodes_v2.csv", EPISODE_COLUMNS, EPISODES[:1])
    with pytest.raises(SourceInputError) as error:
        run(RunOptions({"ssda903": tmp_path / "in"}, tmp_path / "out"))
    message = str(error.value)
    assert "episodes of 2024 (area 201) in 2024/201/episodes.csv and in 2024/201/episodes_v2.csv" in message


def test_an_identical_copy_is_read_once_and_its_rows_superseded(tmp_path, run_on, clean):
    folder = write_return(tmp_path / "in", 2024, headers=HEADERS, episodes=EPISODES)
    shutil.copy(folder / "episodes.csv", folder / "episodes_copy.csv")  # the first by path is kept
    tables = run_on(tmp_path / "in")
    assert _episodes(tables).equals(_episodes(clean))
    copy = tables["superseded"][tables["superseded"]["file"] == "2024/201/episodes_copy.csv"]
    assert copy[["row_number", "reason", "kept_file", "kept_row_number"]].values.tolist() == [
        [2, "identical_copy", "2024/201/episodes.csv", 2],
        [3, "identical_copy", "2024/201/episodes.csv", 3],
    ]
    r = tables["reconciliation"].set_index("file")
    assert r.loc["2024/201/episodes_copy.csv", ["rows_read", "rows_superseded"]].tolist() == [2, 2]
    findings = tables["return_findings"]
    assert findings[["file", "finding", "count"]].values.tolist() == [
        ["2024/201/episodes_copy.csv", "identical_copy", 2]
    ]
    assert_reconciles(tables)


def test_a_copied_workbook_with_other_sheets_still_reconciles(tmp_path, run_on, clean):
    path = write_workbook(
        tmp_path / "in" / "2024" / "201" / "return.xlsx",
        {
            "Header": (HEADER_COLUMNS, HEADERS),
            "Episodes": (EPISODE_COLUMNS, EPISODES),
            "Reviews": (["CHILD", "DOB", "REVIEW", "REVIEW_CODE"], [{"CHILD": "1", "REVIEW": "01/06/2023"}]),
            "Notes": (["Comment"], [{"Comment": "checked"}]),
        },
    )
    shutil.copy(path, path.with_name("return_copy.xlsx"))
    tables = run_on(tmp_path / "in")
    assert _episodes(tables).equals(_episodes(clean))
    r = tables["reconciliation"].set_index(["file", "sheet"])
    copy = "2024/201/return_copy.xlsx"
    assert r.loc[(copy, "Episodes"), ["rows_read", "rows_superseded"]].tolist() == [2, 2]
    assert r.loc[(copy, "Reviews"), ["rows_read", "rows_not_harmonised"]].tolist() == [1, 1]
    assert r.loc[(copy, "Notes"), ["rows_read", "rows_quarantined"]].tolist() == [1, 1]
    q = tables["quarantine"]
    assert q[["file", "sheet", "row_number", "rule"]].values.tolist() == [
        ["2024/201/return.xlsx", "Notes", 2, "unrecognised_table"],
        [copy, "Notes", 2, "unrecognised_table"],
    ]
    findings = tables["return_findings"]
    assert findings[["file", "finding", "count"]].values.tolist() == [[copy, "identical_copy", 4]]
    assert_reconciles(tables)


def test_hidden_sheets_are_skipped_with_a_finding_in_the_summary(tmp_path, pseudonym_key, clean):
    path = write_workbook(
        tmp_path / "in" / "2024" / "201" / "return.xlsx",
        {
            "Header": (HEADER_COLUMNS, HEADERS),
            "Episodes": (EPISODE_COLUMNS, EPISODES),
            "Old episodes": (EPISODE_COLUMNS, [episode("9", "01/05/2023")]),
        },
    )
    workbook = load_workbook(path)
    workbook["Old episodes"].sheet_state = "hidden"
    workbook.save(path)
    result = run(RunOptions({"ssda903": tmp_path / "in"}, tmp_path / "out"))
    tables = result.tables
    assert _episodes(_plain_episodes(tables)).equals(_episodes(clean))
    findings = tables["return_findings"]
    assert findings[["file", "sheet", "finding", "count"]].values.tolist() == [
        ["2024/201/return.xlsx", "Old episodes", "hidden_sheet_skipped", 1]
    ]
    assert "is hidden and was not read" in findings["message"].iloc[0]
    assert "Old episodes" not in set(tables["reconciliation"]["sheet"].dropna())
    assert result.summary["return_findings"] == {"hidden_sheet_skipped": 1}
    summary = format_summary(result.summary, tmp_path / "out", 1.0)
    assert "Findings about the returns" in summary and "hidden_sheet_skipped" in summary


def _plain_episodes(tables):
    return {**tables, "episodes": tables["episodes"].to_pandas(date_as_object=False)}


def test_a_duplicated_column_header_stops_the_run_naming_it(tmp_path, pseudonym_key):
    path = write_return(tmp_path / "in", 2024, headers=HEADERS, episodes=EPISODES) / "episodes.csv"
    text = path.read_text().splitlines()
    text[0] = text[0].replace("URN", "decom ")
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(SourceInputError) as error:
        run(RunOptions({"ssda903": tmp_path / "in"}, tmp_path / "out"))
    assert "2024/201/episodes.csv: the column header(s) DECOM occur more than once" in str(error.value)


def test_optional_columns_may_be_left_out(tmp_path, run_on, clean):
    folder = tmp_path / "in" / "2024" / "201"
    short_header = [c for c in HEADER_COLUMNS if c not in ("UPN", "MOTHER", "MC_DOB")]
    short_episodes = [c for c in EPISODE_COLUMNS if c not in ("HOME_POST", "PL_POST")]
    write_csv(folder / "header.csv", short_header, [{c: r[c] for c in short_header} for r in HEADERS])
    write_csv(folder / "episodes.csv", short_episodes, [{c: r[c] for c in short_episodes} for r in EPISODES])
    tables = run_on(tmp_path / "in")
    assert tables["quarantine"].empty
    assert _episodes(tables).equals(_episodes(clean))
    assert set(tables["reconciliation"]["table_name"]) == {"header", "episodes"}


def test_a_title_above_the_header_keeps_true_line_numbers(tmp_path, run_on):
    folder = write_return(
        tmp_path / "in", 2024, headers=HEADERS, episodes=[*EPISODES, episode("2", "31/02/2024")]
    )
    path = folder / "episodes.csv"
    path.write_text("Episodes 2023-24;;\n\n" + path.read_text().replace(",", ";"))
    tables = run_on(tmp_path / "in")
    q = tables["quarantine"]
    assert q[["file", "row_number", "rule"]].values.tolist() == [["2024/201/episodes.csv", 6, "date_format"]]
    assert sorted(tables["episodes"]["row_number"]) == [4, 5]


def test_linked_folders_are_followed_once_even_when_a_link_loops(tmp_path):
    write_return(tmp_path / "store", 2024, headers=HEADERS, episodes=EPISODES)
    (tmp_path / "in" / "2024").mkdir(parents=True)
    (tmp_path / "in" / "2024" / "201").symlink_to(
        tmp_path / "store" / "2024" / "201", target_is_directory=True
    )
    (tmp_path / "in" / "2024" / "201-again").symlink_to(tmp_path / "store" / "2024" / "201")
    (tmp_path / "store" / "2024" / "201" / "up").symlink_to(tmp_path / "in")  # a loop
    files = discover(tmp_path / "in", SPEC)
    assert [f.file for f in files] == ["2024/201/episodes.csv", "2024/201/header.csv"]
    assert [f.area_code for f in files] == ["201", "201"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("return.xlsx", b"PK\x03\x04 truncated", "not a readable workbook"),
        ("notes.csv", bytes(range(256)) * 20, "not a readable text file"),
        ("notes.txt", b"\x00\x01\x02\x03" * 2000, "not a text file"),
    ],
)
def test_unreadable_files_are_a_record_not_a_traceback(tmp_path, run_on, clean, name, content, message):
    folder = write_return(tmp_path / "in", 2024, headers=HEADERS, episodes=EPISODES)
    (folder / name).write_bytes(content)
    # an unreadable file may hold anything, so its return is incomplete (docs/statistics.md
    # "Coverage"): the run goes on only when told to
    tables = run_on(tmp_path / "in", allow_incomplete=True)
    assert tables["coverage"]["completeness"].tolist() == ["incomplete"]
    q = tables["quarantine"]
    assert q[["file", "rule"]].values.tolist() == [[f"2024/201/{name}", "unreadable_file"]]
    assert message in q["message"].iloc[0]
    assert _episodes(tables).equals(_episodes(clean))
    assert_reconciles(tables)


def test_child_ids_that_differ_by_leading_zeros_are_counted_not_shown(tmp_path, run_on):
    write_return(tmp_path / "in", 2023, headers=[header("0456")], episodes=[episode("0456", "01/05/2022")])
    write_return(tmp_path / "in", 2024, headers=[header("456")], episodes=[episode("456", "01/05/2022")])
    tables = run_on(tmp_path / "in")
    findings = tables["return_findings"]
    zeros = findings[findings["finding"] == "child_id_differs_by_leading_zeros"]
    assert zeros[["file", "table_name", "count"]].values.tolist() == [
        ["2023/201/episodes.csv", "episodes", 1],
        ["2023/201/header.csv", "header", 1],
        ["2024/201/episodes.csv", "episodes", 1],
        ["2024/201/header.csv", "header", 1],
    ]
    assert not findings["message"].str.contains("456").any()  # no id is shown
    assert tables["children"]["child_key"].nunique() == 2  # two children, as the setting is off
    # The 2023 episode is open and its child (0123) has no episode in 2024: the same gap, counted.
    absent = findings[findings["finding"] == "open_episode_absent_from_next_return"]
    assert absent[["file", "count"]].values.tolist() == [["2023/201/episodes.csv", 1]]


def test_ignoring_leading_zeros_makes_one_child(tmp_path, run_on, monkeypatch):
    spec = replace(SPEC, child_id_compare="ignore_leading_zeros")
    monkeypatch.setattr("icare.sources.ssda903.source.load_source_spec", lambda name: spec)
    write_return(tmp_path / "in", 2023, headers=[header("0456")], episodes=[episode("0456", "01/05/2022")])
    write_return(tmp_path / "in", 2024, headers=[header("456")], episodes=[episode("456", "01/05/2022")])
    tables = run_on(tmp_path / "in")
    assert tables["children"]["child_key"].nunique() == 1
    assert len(tables["episodes"]) == 1
    findings = tables["return_findings"]
    assert findings[["file", "finding", "count"]].values.tolist() == [
        ["2023/201/episodes.csv", "child_id_leading_zeros_removed", 1],
        ["2023/201/header.csv", "child_id_leading_zeros_removed", 1],
    ]
    assert_reconciles(tables)


def test_open_episodes_absent_from_the_next_return_are_counted(tmp_path, run_on):
    write_return(
        tmp_path / "in",
        2023,
        headers=[header("1"), header("2"), header("3")],
        episodes=[
            episode("1", "01/05/2022"),  # open, absent in 2024
            episode("2", "01/05/2022"),  # open, present in 2024
            episode("3", "01/05/2022", dec="01/06/2022", rec="E11"),  # closed
        ],
    )
    write_return(tmp_path / "in", 2024, headers=[header("2")], episodes=[episode("2", "01/05/2022")])
    write_return(
        tmp_path / "in", 2024, area="202", headers=[header("5")], episodes=[episode("5", "01/05/2023")]
    )
    tables = run_on(tmp_path / "in")
    findings = tables["return_findings"]
    assert findings[["file", "finding", "count"]].values.tolist() == [
        ["2023/201/episodes.csv", "open_episode_absent_from_next_return", 1]
    ]
    assert "2022/23" in findings["message"].iloc[0] and "2023/24" in findings["message"].iloc[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_a_file_without_read_permission_is_a_record(tmp_path, run_on, clean):
    folder = write_return(tmp_path / "in", 2024, headers=HEADERS, episodes=EPISODES)
    write_csv(folder / "uasc.csv", ["CHILD", "SEX", "DOB", "DUC"], [])
    (folder / "uasc.csv").chmod(0)
    tables = run_on(tmp_path / "in")
    q = tables["quarantine"]
    assert q[["file", "rule"]].values.tolist() == [["2024/201/uasc.csv", "unreadable_file"]]
    assert "cannot be opened" in q["message"].iloc[0]
    assert _episodes(tables).equals(_episodes(clean))
