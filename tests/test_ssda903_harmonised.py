"""Crafted multi-year SSDA903 returns with hand-checked harmonised episodes.

Two returns of one local authority (201): 2022/23 (folder 2023) and 2023/24 (folder 2024). Each
child exercises one awkward case; the expected episodes were worked out by hand from the rules in
docs/episode-repair.md and docs/mapping-decisions.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import icare.sources.ssda903.source as ssda903_source
from icare.sources.ssda903.source import _distinct_int_pairs, _end_type
from tests.builders import episode, header, write_return
from tests.conftest import TEST_PSEUDONYMISER, child_key, run_with_test_key


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    root = tmp_path_factory.mktemp("crafted") / "returns"
    write_return(
        root,
        2023,
        headers=[
            header("0012"),
            header("12", sex="2", dob="03/02/2007"),
            header("300"),
            header("400"),
            header("500"),
            header("600"),
            header("700"),
            header("800"),
            header("900"),
            header("980"),
        ],
        episodes=[
            # 0012: same-day chain (X1), second episode open at 31/03/2023 and closed in 2024.
            episode("0012", "01/05/2022", dec="01/08/2022", rec="X1", reason_change="CARPL"),
            episode("0012", "01/08/2022", rne="P", place="K2", provider="PR4", urn="123456"),
            # 12 (not 0012): H5 started before 28/10/2023, re-coded K3 by the 2024 return.
            episode("12", "10/10/2022", ls="V2", place="H5", provider="PR4"),
            # 300: open in 2023, absent from the 2024 return -> repaired by R2.
            episode("300", "01/06/2022", place="U6"),
            # 400: temporary move in hospital (T1), then back to the same foster carer.
            episode("400", "01/06/2022", dec="10/06/2022", rec="X1"),
            episode("400", "10/06/2022", rne="P", place="T1", provider="", dec="14/06/2022", rec="X1"),
            episode("400", "14/06/2022", rne="P", dec="20/12/2022", rec="E13"),
            # 500: same-day chain at the year boundary: legal status change on 31/03/2023.
            episode("500", "01/02/2023", ls="C1", place="U6", dec="31/03/2023", rec="X1"),
            episode("500", "31/03/2023", rne="L", ls="C2", place="U6"),
            # 600: overlapping episodes (dirty data): flagged, not cut.
            episode("600", "01/05/2022", dec="01/12/2022", rec="E8"),
            episode("600", "01/07/2022", dec="01/09/2022", rec="E8"),
            # 700: the same row twice in one return.
            episode("700", "05/05/2022", dec="05/07/2022", rec="E4A"),
            episode("700", "05/05/2022", dec="05/07/2022", rec="E4A"),
            # 800: open in 2023; the 2024 row has a two-digit year, so no repair may be guessed.
            episode("800", "01/01/2023"),
            # 900: a code that does not exist.
            episode("900", "01/01/2023", place="Q9"),
            # 980: short breaks (V3) and a secure home under remand (J1 + K1).
            episode("980", "01/04/2022", ls="V3", dec="03/04/2022", rec="X1"),
            episode(
                "980", "03/04/2022", rne="B", ls="J1", place="K1", provider="PR2", dec="01/09/2022", rec="E8"
            ),
            # 990: episodes but no header row anywhere.
            episode("990", "01/01/2023", dec="02/01/2023", rec="E8"),
            # 850: open here; its 2024 version has an unknown code, so this row must not stand in.
            episode("850", "01/01/2023"),
        ],
        uasc=[{"CHILD": "12", "SEX": "2", "DOB": "03/02/2007", "DUC": ""}],
    )
    write_return(
        root,
        2024,
        headers=[
            header("0012"),
            header("12", sex="2", dob="03/02/2007"),
            header("500"),
            header("800"),
            header("950"),
            header("960"),
        ],
        episodes=[
            episode(
                "0012",
                "01/08/2022",
                rne="P",
                place="K2",
                provider="PR4",
                urn="123456",
                dec="15/01/2024",
                rec="E4A",
            ),
            episode("12", "10/10/2022", ls="V2", place="K3", provider="PR4", dec="01/03/2024", rec="E5"),
            episode("500", "31/03/2023", rne="L", ls="C2", place="U6", dec="01/05/2023", rec="E45"),
            episode("800", "01/01/23", dec="01/02/2024", rec="E8"),
            # 950: P2 cannot be used for an episode still open after 28/10/2023.
            episode("950", "01/11/2023", place="P2", provider="PR4"),
            # 960: H5 started after 28/10/2023 is valid; its Ofsted URN makes it registered (rule 230).
            episode("960", "15/11/2023", place="H5", provider="PR4", urn="2654321"),
            episode("850", "01/01/2023", place="Q7", dec="01/02/2024", rec="E8"),
        ],
    )
    return root


@pytest.fixture(scope="module")
def tables(crafted, tmp_path_factory):
    return run_with_test_key(crafted, tmp_path_factory.mktemp("out"))


@pytest.fixture(scope="module")
def strict_tables(crafted, tmp_path_factory):
    """The same returns with ``--strict``: every failing value quarantines its row."""
    return run_with_test_key(crafted, tmp_path_factory.mktemp("strict"), strict=True)


@pytest.fixture
def pseudonym_key():
    return TEST_PSEUDONYMISER


def episodes_of(tables, pseudonym_key, child):
    episodes = tables["episodes"]
    return episodes[episodes["child_key"] == child_key(pseudonym_key, child)].sort_values("episode_start")


def test_same_day_chain_and_latest_return_wins(tables, pseudonym_key):
    rows = episodes_of(tables, pseudonym_key, "0012")
    assert rows["episode_start"].dt.strftime("%Y-%m-%d").tolist() == ["2022-05-01", "2022-08-01"]
    assert rows["episode_end"].dt.strftime("%Y-%m-%d").tolist() == ["2022-08-01", "2024-01-15"]
    assert rows["episode_end_type"].tolist() == ["continues", "exit"]
    assert rows["exit_destination"].tolist()[1] == "reunification"
    assert rows["icare_code"].tolist() == ["AC.F12", "AC.F29"]
    assert rows["provider_sector"].tolist() == ["public_own_authority", "private"]
    assert rows["file"].tolist() == ["2023/201/episodes.csv", "2024/201/episodes.csv"]
    assert rows["repair_rule"].isna().all()
    assert rows["sex"].tolist() == ["M", "M"]
    assert rows["birth_month"].dt.strftime("%Y-%m-%d").tolist() == ["2012-06-01", "2012-06-01"]


def test_leading_zero_identifiers_are_different_children(tables, pseudonym_key):
    assert child_key(pseudonym_key, "0012") != child_key(pseudonym_key, "12")
    rows = episodes_of(tables, pseudonym_key, "12")
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["place"], row["icare_code"], row["regulated"]) == ("K3", "AC.F3", "registered")
    assert row["exit_destination"] == "independent_living_supported"
    assert bool(row["uasc"]) is True
    assert row["sex"] == "F"


def test_open_episode_missing_from_the_later_return_is_repaired_and_flagged(tables, pseudonym_key):
    row = episodes_of(tables, pseudonym_key, "300").iloc[0]
    assert row["repair_rule"] == "R2_not_in_later_return"
    assert row["episode_end"] == pd.Timestamp("2023-04-01")
    assert pd.isna(row["episode_end_reported"])
    assert (row["episode_end_type"], row["exit_destination"]) == ("exit", "not_known")


def test_temporary_move_is_its_own_episode_with_the_temporary_category(tables, pseudonym_key):
    rows = episodes_of(tables, pseudonym_key, "400")
    assert rows["icare_code"].tolist() == ["AC.F12", "AC.X6", "AC.F12"]
    assert rows["provider_sector"].tolist()[1] == "not_applicable"
    assert rows["episode_end_type"].tolist() == ["continues", "continues", "exit"]
    assert rows["exit_destination"].tolist()[2] == "relatives_kin"


def test_chain_across_the_year_boundary(tables, pseudonym_key):
    rows = episodes_of(tables, pseudonym_key, "500")
    assert rows["episode_start"].dt.strftime("%Y-%m-%d").tolist() == ["2023-02-01", "2023-03-31"]
    assert rows["episode_end"].dt.strftime("%Y-%m-%d").tolist() == ["2023-03-31", "2023-05-01"]
    assert rows["new_episode_type"].tolist() == ["care_entry", "legal_status_change"]
    assert rows["legal_basis"].tolist() == ["judicial_order", "judicial_order"]
    assert rows["exit_destination"].tolist()[1] == "guardianship_order"


def test_overlapping_episodes_are_kept_and_flagged(tables, pseudonym_key):
    rows = episodes_of(tables, pseudonym_key, "600")
    assert rows["overlaps_next"].tolist() == [True, False]
    assert rows["episode_end"].dt.strftime("%Y-%m-%d").tolist() == ["2022-12-01", "2022-09-01"]


def test_identical_rows_in_one_return_become_one_episode(tables, pseudonym_key):
    assert len(episodes_of(tables, pseudonym_key, "700")) == 1
    superseded = tables["superseded"]
    copy = superseded[superseded["reason"] == "duplicate_row_in_return"]
    assert copy[["file", "row_number", "kept_row_number"]].values.tolist() == [
        ["2023/201/episodes.csv", 14, 13]
    ]


def test_conditional_rules_short_breaks_and_youth_justice(tables, pseudonym_key):
    rows = episodes_of(tables, pseudonym_key, "980")
    assert rows["icare_code"].tolist() == ["AC.X7", "AC.X2"]
    assert rows["concordance_rule"].tolist() == ["short_breaks", "k1_youth_justice_secure"]
    assert rows["icare_level1"].tolist() == ["AC.X", "AC.X"]


def quarantined(tables, rule):
    q = tables["quarantine"]
    return q[q["rule"] == rule]


def corrected(tables, rule):
    fixes = tables["corrections"]
    return fixes[fixes["rule"] == rule].sort_values(["file", "row_number"])


def test_two_digit_year_is_read_in_the_only_century_that_fits(tables, pseudonym_key):
    fixed = corrected(tables, "date_two_digit_year")
    assert fixed[
        ["file", "row_number", "column_name", "value", "action", "harmonised_value"]
    ].values.tolist() == [["2024/201/episodes.csv", 5, "DECOM", "01/01/23", "normalised", "01/01/2023"]]
    assert quarantined(tables, "repair_blocked").empty
    # the 2024 row now stands for the episode the 2023 return left open: nothing is lost or invented
    rows = episodes_of(tables, pseudonym_key, "800")
    assert rows[["episode_start", "episode_end", "episode_end_type", "exit_destination"]].values.tolist() == [
        [pd.Timestamp("2023-01-01"), pd.Timestamp("2024-02-01"), "exit", "other"]
    ]


def test_strict_two_digit_year_is_quarantined_and_blocks_the_repair_of_the_older_row(
    strict_tables, pseudonym_key
):
    tables = strict_tables
    bad = quarantined(tables, "date_format")
    assert bad[["file", "row_number", "column_name", "value"]].values.tolist() == [
        ["2024/201/episodes.csv", 5, "DECOM", "01/01/23"]
    ]
    assert "dd/mm/YYYY" in bad["message"].iloc[0] and "row 5" in bad["message"].iloc[0]
    blocked = quarantined(tables, "repair_blocked")
    assert blocked[["file", "row_number"]].values.tolist() == [["2023/201/episodes.csv", 15]]
    assert episodes_of(tables, pseudonym_key, "800").empty  # nothing invented


def test_unknown_codes_become_not_stated_and_retired_codes_keep_their_meaning(tables, pseudonym_key):
    unknown = corrected(tables, "code_list")
    assert unknown[["file", "row_number", "column_name", "value", "action"]].values.tolist() == [
        ["2023/201/episodes.csv", 16, "PLACE", "Q9", "set_unknown"],
        ["2024/201/episodes.csv", 8, "PLACE", "Q7", "set_unknown"],
    ]
    assert unknown["harmonised_value"].isna().all()
    rows = episodes_of(tables, pseudonym_key, "900")
    assert rows[["icare_code", "icare_level1"]].values.tolist() == [["AC.U", "AC.U"]]
    assert rows["place"].isna().all() and (rows["legal_basis"] == "judicial_order").all()
    retired = corrected(tables, "retired_by_date")
    assert retired[["row_number", "value", "action", "harmonised_value"]].values.tolist() == [
        [6, "P2", "mapped_by_meaning", "P2"]
    ]
    assert (
        "28/10/2023" in retired["message"].iloc[0] and "mapped by its meaning" in retired["message"].iloc[0]
    )
    assert episodes_of(tables, pseudonym_key, "950")["icare_code"].tolist() == ["AC.F3"]
    # 850 has no header row in any return: its episode still cannot be kept (docs/validation-policy.md)
    assert tables["quarantine"]["rule"].tolist() == ["missing_header", "missing_header"]


def test_strict_unknown_code_and_codes_retired_by_date(strict_tables, pseudonym_key):
    tables = strict_tables
    unknown = quarantined(tables, "code_list").sort_values(["file", "row_number"])
    assert unknown[["file", "row_number", "column_name", "value"]].values.tolist() == [
        ["2023/201/episodes.csv", 16, "PLACE", "Q9"],
        ["2024/201/episodes.csv", 8, "PLACE", "Q7"],
    ]
    retired = quarantined(tables, "retired_by_date").sort_values("row_number")
    assert retired[["file", "row_number", "value"]].values.tolist() == [
        ["2024/201/episodes.csv", 6, "P2"],
    ]
    assert "28/10/2023" in retired["message"].iloc[0]
    # H5 has no date limit (national-sources.md corrections 2026-12, 3.3): kept, registered by its URN
    h5 = episodes_of(tables, pseudonym_key, "960")
    assert h5[["icare_code", "regulated", "concordance_rule"]].values.tolist() == [
        ["AC.F3", "registered", "h5_with_urn_registered"]
    ]


def test_episodes_without_a_header_are_quarantined(tables):
    missing = quarantined(tables, "missing_header").sort_values("file")
    assert missing[["file", "row_number", "column_name"]].values.tolist() == [
        ["2023/201/episodes.csv", 19, "CHILD"],
        ["2024/201/episodes.csv", 8, "CHILD"],
    ]
    # The child id is not shown; its pseudonym is the child key, so the record joins to other tables.
    assert missing["value"].iloc[0] == f"<pseudonymised:{child_key(TEST_PSEUDONYMISER, '990')}>"


def test_every_row_is_accounted_for(tables):
    reconciliation = tables["reconciliation"].set_index("file")
    totals = reconciliation[["rows_accepted", "rows_quarantined", "rows_superseded", "rows_not_harmonised"]]
    assert (reconciliation["rows_read"] == totals.sum(axis=1)).all()
    counted = [
        "rows_read",
        "rows_accepted",
        "rows_accepted_with_corrections",
        "rows_quarantined",
        "rows_superseded",
    ]
    # 19 rows: 990 quarantined (no header anywhere), one copy of 700 and five rows restated by 2024
    # (0012, 12, 500, 800, 850); 900's unknown placement is corrected, not quarantined.
    assert reconciliation.loc["2023/201/episodes.csv", counted].tolist() == [19, 12, 1, 1, 5 + 1]
    # 2024: a two-digit year and P2 past its date corrected and kept, H5 valid as it is; 850's row
    # (its unknown code corrected too) quarantined for want of a header row
    assert reconciliation.loc["2024/201/episodes.csv", counted].tolist() == [7, 6, 2, 1, 0]
    assert len(tables["episodes"]) == 12 + 6


def test_strict_every_row_is_accounted_for(strict_tables):
    tables = strict_tables
    reconciliation = tables["reconciliation"].set_index("file")
    totals = reconciliation[["rows_accepted", "rows_quarantined", "rows_superseded", "rows_not_harmonised"]]
    assert (reconciliation["rows_read"] == totals.sum(axis=1)).all()
    episodes_2023 = reconciliation.loc["2023/201/episodes.csv"]
    # 19 rows: 990, 900 and 850 quarantined, 800 blocked, one copy of 700 and three open rows
    # superseded by 2024.
    assert episodes_2023[["rows_read", "rows_accepted", "rows_quarantined", "rows_superseded"]].tolist() == [
        19,
        11,
        4,
        4,
    ]
    episodes_2024 = reconciliation.loc["2024/201/episodes.csv"]
    # 7 rows: 800 (date), 950 (P2 retired) and 850 (code) quarantined; 960's H5 is accepted.
    assert episodes_2024[["rows_read", "rows_accepted", "rows_quarantined", "rows_superseded"]].tolist() == [
        7,
        4,
        3,
        0,
    ]
    assert len(tables["episodes"]) == 11 + 4


def test_no_identifier_or_postcode_is_published(tables):
    published = " ".join(tables["episodes"].columns) + " " + " ".join(tables["children"].columns)
    for column in ["CHILD", "DOB", "UPN", "HOME_POST", "PL_POST", "home_post", "pl_post", "dob"]:
        assert column not in published.split()
    values = set(tables["episodes"]["child_key"])
    assert not values & {"0012", "12", "300"}


def test_strict_older_row_does_not_stand_in_for_a_quarantined_later_row(strict_tables, pseudonym_key):
    tables = strict_tables
    held = quarantined(tables, "later_version_quarantined")
    assert held[["file", "row_number", "column_name"]].values.tolist() == [
        ["2023/201/episodes.csv", 20, "DECOM"]
    ]
    assert "2024/201/episodes.csv row 8" in held["message"].iloc[0]
    assert episodes_of(tables, pseudonym_key, "850").empty


def test_end_type_is_open_without_an_end_continues_without_a_destination_else_exit():
    end = pd.Series(pd.to_datetime([None, "2020-01-01", "2020-01-01", None]), index=[4, 5, 6, 7])
    destination = pd.Series(["x", None, "not_known", None], dtype="str", index=[4, 5, 6, 7])
    kind = _end_type(end, destination)
    assert kind.tolist() == ["open", "continues", "exit", "open"]
    assert kind.index.tolist() == [4, 5, 6, 7] and kind.dtype == "str"


@pytest.mark.parametrize("cells", [1_000_000, 0])  # counted in a table, or left to np.unique
def test_distinct_int_pairs_are_sorted_and_listed_once(monkeypatch, cells):
    monkeypatch.setattr(ssda903_source, "_PAIR_CELLS", cells)
    area = np.array([1, -1, 1, 0, 1, -1])
    year = np.array([2023, 2022, 2021, 2023, 2023, 2022])
    first, second = _distinct_int_pairs(area, year)
    assert list(zip(first.tolist(), second.tolist(), strict=True)) == [
        (-1, 2022),
        (0, 2023),
        (1, 2021),
        (1, 2023),
    ]
