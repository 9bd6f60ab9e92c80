"""Bad input: each problem gives a clear quarantine record (file, row, column, rule, value) or a clear
error, and the reconciliation still adds up."""

from __future__ import annotations

import pytest

from icare.pipeline import RunOptions, run
from icare.sources.base import SourceInputError
from tests.builders import (
    EPISODE_COLUMNS,
    HEADER_COLUMNS,
    episode,
    header,
    write_csv,
    write_return,
    write_workbook,
)


def assert_reconciles(tables):
    r = tables["reconciliation"]
    assert (
        r["rows_read"]
        == r[["rows_accepted", "rows_quarantined", "rows_superseded", "rows_not_harmonised"]].sum(axis=1)
    ).all()
    quarantined_rows = (
        tables["quarantine"].dropna(subset=["row_number"]).drop_duplicates(["file", "sheet", "row_number"])
    )
    assert r["rows_quarantined"].sum() == len(quarantined_rows)
    assert (
        r["rows_accepted"].sum()
        == len(tables["episodes"])
        + len(tables["children"])
        + sum(r.loc[r["table_name"] == "uasc", "rows_accepted"])
        - 0
    )


@pytest.mark.parametrize("bad_date", ["01/04/23", "2023-04-01", "1/4/2023", "31/02/2023", "01-04-2023"])
def test_strict_quarantines_every_other_date_form(tmp_path, run_on, bad_date):
    write_return(
        tmp_path / "in",
        2024,
        headers=[header("1"), header("2")],
        episodes=[episode("1", "01/05/2023"), episode("2", bad_date)],
    )
    tables = run_on(tmp_path / "in", strict=True)
    q = tables["quarantine"]
    assert q[["file", "row_number", "column_name", "rule", "value"]].values.tolist() == [
        ["2024/201/episodes.csv", 3, "DECOM", "date_format", bad_date]
    ]
    assert "not a date in the format dd/mm/YYYY" in q["message"].iloc[0]
    assert len(tables["episodes"]) == 1
    assert_reconciles(tables)


@pytest.mark.parametrize(
    ("bad_date", "rule"),
    [
        ("01/04/23", "date_two_digit_year"),
        ("2023-04-01", "date_iso"),
        ("1/4/2023", "date_day_month_year"),
        ("01-04-2023", "date_day_month_year"),
        ("01/04/2023 00:00:00", "date_with_time"),
        ("45017", "date_excel_serial"),
    ],
)
def test_unambiguous_date_forms_are_normalised_and_recorded(tmp_path, run_on, bad_date, rule):
    write_return(
        tmp_path / "in",
        2024,
        headers=[header("1"), header("2")],
        episodes=[episode("1", "01/05/2023"), episode("2", bad_date)],
    )
    tables = run_on(tmp_path / "in")
    assert tables["quarantine"].empty
    fixes = tables["corrections"]
    assert fixes[
        ["row_number", "column_name", "rule", "value", "action", "harmonised_value"]
    ].values.tolist() == [[3, "DECOM", rule, bad_date, "normalised", "01/04/2023"]]
    assert sorted(tables["episodes"]["episode_start"].dt.strftime("%Y-%m-%d")) == ["2023-04-01", "2023-05-01"]
    assert tables["reconciliation"]["rows_accepted_with_corrections"].sum() == 1
    assert_reconciles(tables)


def test_an_impossible_date_is_still_quarantined(tmp_path, run_on):
    write_return(
        tmp_path / "in",
        2024,
        headers=[header("1"), header("2")],
        episodes=[episode("1", "01/05/2023"), episode("2", "31/02/2023")],
    )
    tables = run_on(tmp_path / "in")
    q = tables["quarantine"]
    assert q[["row_number", "column_name", "rule", "value"]].values.tolist() == [
        [3, "DECOM", "date_format", "31/02/2023"]
    ]
    assert len(tables["episodes"]) == 1 and tables["corrections"].empty
    assert_reconciles(tables)


def test_several_errors_in_one_row_are_all_reported_and_the_row_counted_once(tmp_path, run_on):
    write_return(
        tmp_path / "in",
        2024,
        headers=[header("1")],
        episodes=[episode("1", "01/05/2023", place="XX", ls="ZZ", dec="01/04/2023", rec="E4A")],
    )
    tables = run_on(tmp_path / "in")
    q = tables["quarantine"]
    assert sorted(zip(q["column_name"], q["rule"], strict=True)) == [
        ("DEC", "before_start"),
        ("LS", "code_list"),
        ("PLACE", "code_list"),
    ]
    assert tables["reconciliation"]["rows_quarantined"].sum() == 1
    assert_reconciles(tables)


def test_surrounding_white_space_is_reported_not_trimmed_in_strict_mode(tmp_path, run_on):
    write_return(
        tmp_path / "in", 2024, headers=[header("1")], episodes=[episode("1", "01/05/2023", place=" U4")]
    )
    q = run_on(tmp_path / "in", strict=True)["quarantine"]
    assert set(q["rule"]) == {"surrounding_space", "code_list"}
    assert set(q["value"]) == {" U4"}


def test_spaces_and_lower_case_are_normalised_and_recorded(tmp_path, run_on):
    write_return(
        tmp_path / "in",
        2024,
        headers=[header("1 ", ethnic="wbri")],
        episodes=[episode("1", "01/05/2023", place="u4\u00a0", ls=" C2")],
    )
    tables = run_on(tmp_path / "in")
    assert tables["quarantine"].empty
    fixes = tables["corrections"].sort_values(["table_name", "column_name"])
    assert fixes[["table_name", "column_name", "rule", "harmonised_value"]].values.tolist() == [
        ["episodes", "LS", "surrounding_space", "C2"],
        ["episodes", "PLACE", "lower_case_code", "U4"],
        ["header", "CHILD", "surrounding_space", fixes["harmonised_value"].iloc[2]],
        ["header", "ETHNIC", "lower_case_code", "WBRI"],
    ]
    # the child id is an identifier: never shown, only its key
    assert fixes["value"].iloc[2].startswith("<pseudonymised:")
    assert fixes["harmonised_value"].iloc[2] == f"<pseudonymised:{tables['children']['child_key'].iloc[0]}>"
    episodes = tables["episodes"]
    assert episodes[["place", "ls", "icare_code"]].values.tolist() == [["U4", "C2", "AC.F12"]]
    assert tables["children"]["ethnicity"].tolist() == ["WBRI"]
    assert_reconciles(tables)


def test_sex_codes_follow_the_collection_year(tmp_path, run_on):
    write_return(
        tmp_path / "in",
        2025,
        headers=[header("1", sex="M"), header("2", sex="1"), header("3", sex="U")],
        episodes=[episode("1", "01/05/2024"), episode("3", "01/05/2024")],
    )
    tables = run_on(tmp_path / "in", strict=True)
    q = tables["quarantine"]
    assert q.loc[q["table_name"] == "header", ["row_number", "column_name", "value"]].values.tolist() == [
        [3, "SEX", "1"]
    ]
    assert sorted(tables["children"]["sex"]) == ["M", "U"]


def test_missing_column_quarantines_the_table_with_a_clear_reason(tmp_path, run_on):
    write_return(tmp_path / "in", 2024, headers=[header("1")], episodes=[episode("1", "01/05/2023")])
    columns = [c for c in EPISODE_COLUMNS if c != "REC"]
    write_csv(
        tmp_path / "in" / "2024" / "202" / "episodes.csv",
        columns,
        [{k: v for k, v in episode("9", "01/05/2023").items() if k != "REC"}] * 2,
    )
    tables = run_on(tmp_path / "in", allow_incomplete=True)  # area 202's return is incomplete
    q = tables["quarantine"]
    assert q[["file", "row_number", "column_name", "rule"]].values.tolist() == [
        ["2024/202/episodes.csv", 2, "REC", "missing_column"],
        ["2024/202/episodes.csv", 3, "REC", "missing_column"],
    ]
    assert "lacks required column(s) REC" in q["message"].iloc[0]
    assert_reconciles(tables)


def test_empty_files_are_recorded(tmp_path, run_on):
    write_return(tmp_path / "in", 2024, headers=[header("1")], episodes=[episode("1", "01/05/2023")])
    (tmp_path / "in" / "2024" / "201" / "zero.csv").write_text("")
    write_csv(tmp_path / "in" / "2024" / "201" / "uasc.csv", ["CHILD", "SEX", "DOB", "DUC"], [])
    tables = run_on(tmp_path / "in")
    q = tables["quarantine"]
    # A file with no header at all is reported; a table with a header and no rows is a valid
    # empty table (a return with no UASC child), counted with 0 rows and not reported.
    assert q[["file", "rule"]].values.tolist() == [["2024/201/zero.csv", "empty_table"]]
    assert q["row_number"].isna().all()
    assert "no header row" in q["message"].iloc[0]
    r = tables["reconciliation"].set_index("file")
    assert r.loc["2024/201/zero.csv", "rows_read"] == 0
    assert r.loc["2024/201/uasc.csv", ["table_name", "rows_read"]].tolist() == ["uasc", 0]
    assert_reconciles(tables)


def test_workbook_with_an_unexpected_sheet(tmp_path, run_on):
    write_workbook(
        tmp_path / "in" / "2024" / "ssda903_201.xlsx",
        {
            "Header": (HEADER_COLUMNS, [header("007")]),
            "Episodes": (EPISODE_COLUMNS, [episode("007", "01/05/2023")]),
            "Notes": (["Comment"], [{"Comment": "checked by J. Smith"}, {"Comment": "second note"}]),
        },
    )
    tables = run_on(tmp_path / "in")
    q = tables["quarantine"]
    assert q[["sheet", "row_number", "rule"]].values.tolist() == [
        ["Notes", 2, "unrecognised_table"],
        ["Notes", 3, "unrecognised_table"],
    ]
    assert "match no ssda903 table" in q["message"].iloc[0]
    assert len(tables["episodes"]) == 1
    assert tables["episodes"]["area_code"].tolist() == ["201"]
    assert tables["episodes"]["sheet"].tolist() == ["Episodes"]
    assert_reconciles(tables)


def test_file_without_a_collection_year_is_quarantined_with_advice(tmp_path, run_on):
    write_return(tmp_path / "in", 2024, headers=[header("1")], episodes=[episode("1", "01/05/2023")])
    write_csv(tmp_path / "in" / "extra" / "episodes.csv", EPISODE_COLUMNS, [episode("2", "01/05/2023")])
    tables = run_on(tmp_path / "in")
    q = tables["quarantine"]
    assert q[["file", "rule"]].values.tolist() == [["extra/episodes.csv", "unknown_collection_year"]]
    assert "2024/" in q["message"].iloc[0]
    assert_reconciles(tables)


def test_no_recognisable_table_stops_the_run(tmp_path, pseudonym_key):
    write_csv(tmp_path / "in" / "2024" / "x.csv", ["A", "B"], [{"A": "1", "B": "2"}])
    with pytest.raises(SourceInputError, match="no recognisable table"):
        run(RunOptions({"ssda903": tmp_path / "in"}, tmp_path / "out"))
    assert not (tmp_path / "out" / "icare.duckdb").exists()


def test_xlsx_and_csv_give_the_same_episodes(tmp_path, run_on):
    headers = [header("007"), header("0201", sex="2")]
    episodes = [
        episode("007", "01/05/2023", dec="01/06/2023", rec="X1"),
        episode("007", "01/06/2023", rne="P", place="K2"),
        episode("0201", "02/02/2024", place="U1"),
    ]
    write_return(tmp_path / "csv", 2024, headers=headers, episodes=episodes)
    write_workbook(
        tmp_path / "xlsx" / "2024" / "201" / "return.xlsx",
        {"Sheet A": (HEADER_COLUMNS, headers), "Sheet B": (EPISODE_COLUMNS, episodes)},
    )
    from_csv = run_on(tmp_path / "csv", tmp_path / "out-csv")["episodes"]
    from_xlsx = run_on(tmp_path / "xlsx", tmp_path / "out-xlsx")["episodes"]
    ignore = ["file", "sheet"]
    assert from_csv.drop(columns=ignore).equals(from_xlsx.drop(columns=ignore))
    assert len(from_csv) == 3


def test_stray_or_unusable_later_files_do_not_close_open_episodes(tmp_path, run_on):
    write_return(tmp_path / "in", 2024, headers=[header("1")], episodes=[episode("1", "01/05/2023")])
    write_csv(tmp_path / "in" / "2030" / "201" / "notes.csv", ["Comment"], [{"Comment": "to do"}])
    columns = [c for c in EPISODE_COLUMNS if c != "REC"]  # a later episodes table rejected whole
    write_csv(tmp_path / "in" / "2025" / "201" / "episodes.csv", columns, [])
    tables = run_on(tmp_path / "in", allow_incomplete=True)  # 2025 and 2030 incomplete, 2026-2029 missing
    episodes = tables["episodes"]
    assert episodes["repair_rule"].isna().all()
    assert episodes["episode_end"].isna().all()  # still open, as the only usable return says
    assert tables["coverage"][["collection_year", "completeness"]].values.tolist() == [
        [2024, "complete"],
        [2025, "incomplete"],
        *([year, "missing"] for year in range(2026, 2030)),
        [2030, "incomplete"],
    ]
    assert_reconciles(tables)


def test_conflicting_rows_in_a_later_return_hold_back_the_older_version(tmp_path, run_on):
    write_return(tmp_path / "in", 2023, headers=[header("1")], episodes=[episode("1", "01/05/2022")])
    write_return(
        tmp_path / "in",
        2024,
        headers=[header("1")],
        episodes=[
            episode("1", "01/05/2022", dec="01/06/2023", rec="E4A"),
            episode("1", "01/05/2022", dec="01/07/2023", rec="E4A"),
        ],
    )
    tables = run_on(tmp_path / "in")
    q = tables["quarantine"].sort_values(["file", "row_number"])
    assert q[["file", "row_number", "rule"]].values.tolist() == [
        ["2023/201/episodes.csv", 2, "later_version_quarantined"],
        ["2024/201/episodes.csv", 2, "conflicting_duplicate"],
        ["2024/201/episodes.csv", 3, "conflicting_duplicate"],
    ]
    assert tables["episodes"].empty
    assert_reconciles(tables)
