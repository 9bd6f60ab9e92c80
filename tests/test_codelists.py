"""SSDA903 code lists by collection year (sources/ssda903/codelists.csv) and their loader."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from icare import resources
from icare.codelists import (
    CODELIST_COLUMNS,
    CodelistError,
    code_is_valid,
    load_codelists,
    valid_codes,
    year_rows,
    years,
)
from tests.builders import SSDA903_YEARS

CODELISTS = resources.source_dir("ssda903") / "codelists.csv"
YEARS = SSDA903_YEARS
assert set(range(2017, 2027)) <= set(YEARS)

PLACE_2017_2023 = {
    *("A3", "A4", "A5", "A6", "H5", "K1", "K2", "P1", "P2", "P3", "R1", "R2", "R3", "R5", "S1"),
    *("T0", "T1", "T2", "T3", "T4", "U1", "U2", "U3", "U4", "U5", "U6", "Z1"),
}


@pytest.fixture(scope="module")
def codelists() -> pd.DataFrame:
    return load_codelists(CODELISTS)


def test_file_has_exactly_the_documented_columns():
    header = CODELISTS.read_text(encoding="utf-8").splitlines()[0]
    assert header.split(",") == CODELIST_COLUMNS


def test_fields(codelists):
    assert set(codelists["field"]) == {
        "SEX",
        "ETHNIC",
        "RNE",
        "LS",
        "CIN",
        "PLACE",
        "PLACE_PROVIDER",
        "REC",
        "REASON_PLACE_CHANGE",
    }
    assert codelists["label"].str.len().min() > 0
    assert years(codelists)[0] == YEARS[0]
    assert years(codelists, up_to=YEARS[-1]) == YEARS


@pytest.mark.parametrize("year", range(2017, 2024))
def test_place_has_the_same_27_codes_2017_to_2023(codelists, year):
    codes = valid_codes(codelists, "PLACE", year)
    assert len(codes) == 27
    assert codes == PLACE_2017_2023


def test_place_changes_from_2024(codelists):
    p24 = valid_codes(codelists, "PLACE", 2024)
    p25 = valid_codes(codelists, "PLACE", 2025)
    p26 = valid_codes(codelists, "PLACE", 2026)
    assert p24 == PLACE_2017_2023 | {"K3"}
    assert p25 == p24
    assert p26 == (PLACE_2017_2023 - {"H5", "P2", "Z1"}) | {"K3", "Z11", "Z12", "Z13", "Z14"}
    assert "K3" not in valid_codes(codelists, "PLACE", 2023)
    for code in ("Z11", "Z12", "Z13", "Z14"):
        assert code not in p25


@pytest.mark.parametrize("year", [2024, 2025])
def test_only_p2_carries_the_28_october_2023_date_limit(codelists, year):
    rows = year_rows(codelists, "PLACE", year).set_index("code")
    assert rows.loc["P2", "ended_on_or_before"] == pd.Timestamp("2023-10-28")
    assert pd.isna(rows.loc["P2", "started_before"])
    # H5 has no date limit: rule 230 only asks for a URN (national-sources.md corrections 2026-12, 3.3)
    assert "H5" in rows.index
    # every other PLACE code has no date limit
    others = rows.drop(index=["P2"])
    assert others["started_before"].isna().all() and others["ended_on_or_before"].isna().all()


def test_no_date_limits_before_2024(codelists):
    rows = year_rows(codelists, "PLACE", 2023)
    assert rows["started_before"].isna().all() and rows["ended_on_or_before"].isna().all()


def test_sex_codes_change_in_2025(codelists):
    for year in range(2017, 2025):
        assert valid_codes(codelists, "SEX", year) == {"1", "2"}
    for year in (2025, 2026):
        assert valid_codes(codelists, "SEX", year) == {"M", "F", "U"}


def test_rec_special_guardianship_split_in_2019(codelists):
    for year in (2017, 2018):
        rec = valid_codes(codelists, "REC", year)
        assert {"E43", "E44"} <= rec
        assert not rec & {"E45", "E46", "E47", "E48"}
    for year in range(2019, 2027):
        rec = valid_codes(codelists, "REC", year)
        assert {"E45", "E46", "E47", "E48"} <= rec
        assert not rec & {"E43", "E44"}
    always = {"X1", "E11", "E12", "E2", "E3", "E4A", "E4B", "E13", "E41"}
    always |= {"E5", "E6", "E7", "E8", "E9", "E14", "E15", "E16", "E17"}
    for year in YEARS:
        assert always <= valid_codes(codelists, "REC", year)
        assert len(valid_codes(codelists, "REC", year)) == (20 if year <= 2018 else 22)


def test_reason_place_change_custod_from_2019(codelists):
    base = {"CARPL", "CLOSE", "ALLEG", "STAND", "APPRR", "CREQB", "CREQO", "CHILD", "LAREQ", "PLACE", "OTHER"}
    for year in (2017, 2018):
        assert valid_codes(codelists, "REASON_PLACE_CHANGE", year) == base
    for year in range(2019, 2027):
        assert valid_codes(codelists, "REASON_PLACE_CHANGE", year) == base | {"CUSTOD"}


@pytest.mark.parametrize("year", YEARS)
def test_stable_lists(codelists, year):
    ethnic = valid_codes(codelists, "ETHNIC", year)
    assert len(ethnic) == 20 and {"WBRI", "NOBT", "REFU", "WROM", "MWBC", "CHNE"} <= ethnic
    assert valid_codes(codelists, "LS", year) == {
        *("C1", "C2", "D1", "E1", "V2", "V3", "V4", "L1", "L2", "L3", "J1", "J2", "J3"),
    }
    assert valid_codes(codelists, "RNE", year) == {"S", "L", "P", "T", "B", "U"}
    assert valid_codes(codelists, "CIN", year) == {f"N{i}" for i in range(1, 9)}
    assert valid_codes(codelists, "PLACE_PROVIDER", year) == {f"PR{i}" for i in range(6)}


def test_local_codes_are_not_valid(codelists):
    assert not {"E99", "LIIAF"} & set(codelists["code"])


def test_ethnic_labels_follow_the_england_list(codelists):
    labels = codelists[codelists["field"] == "ETHNIC"].set_index("code")["label"]
    assert labels["WBRI"] == "White British"
    assert labels["NOBT"] == "Information not yet obtained"
    assert labels["WIRT"] == "Traveller of Irish heritage"


def test_code_is_valid_applies_year_and_date_limits(codelists):
    codes = pd.Series(["P2", "P2", "P2", "H5", "H5", "H5", "K3", "K3", "Z1", "XX", None])
    year = pd.Series([2024, 2024, 2024, 2024, 2024, 2023, 2024, 2023, 2026, 2024, 2024])
    start = pd.to_datetime(
        pd.Series(
            [
                "2022-01-01",
                "2022-01-01",
                "2022-01-01",
                "2023-10-27",
                "2023-10-28",
                "2023-12-01",
                "2024-01-01",
                "2023-01-01",
                "2025-06-01",
                "2024-01-01",
                "2024-01-01",
            ]
        )
    )
    end = pd.to_datetime(
        pd.Series(["2023-10-28", "2023-10-29", None, None, None, None, None, None, None, None, None])
    )
    valid = code_is_valid(codelists, "PLACE", codes, year, start=start, end=end)
    # H5 is valid whenever it started (rows 4-6); only P2 is limited by date
    assert valid.tolist() == [True, False, False, True, True, True, True, False, False, False, False]
    # without dates only the year is checked
    assert code_is_valid(codelists, "PLACE", codes, year).tolist()[:3] == [True, True, True]


# -- loader errors ----------------------------------------------------------------------------------

HEADER = ",".join(CODELIST_COLUMNS)


def _write(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "codelists.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_loader_rejects_overlapping_years(tmp_path):
    path = _write(tmp_path, "PLACE,K3,Registered,2024,,,,", "PLACE,K3,Registered,2025,2026,,,")
    with pytest.raises(CodelistError, match=r"line 3 .*'K3'.*overlap line 2"):
        load_codelists(path)


def test_loader_accepts_adjacent_ranges(tmp_path):
    path = _write(tmp_path, "PLACE,P2,Ind,2017,2023,,,", "PLACE,P2,Ind,2024,2025,,2023-10-28,")
    frame = load_codelists(path)
    assert valid_codes(frame, "PLACE", 2025) == {"P2"}
    assert valid_codes(frame, "PLACE", 2026) == frozenset()


def test_loader_rejects_wrong_columns(tmp_path):
    path = tmp_path / "codelists.csv"
    path.write_text("field,code,label,first_year\nPLACE,K3,x,2024\n", encoding="utf-8")
    with pytest.raises(CodelistError, match="columns must be exactly"):
        load_codelists(path)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("PLACE,K3,Registered,24,,,,", "first_year must be a four-digit year"),
        ("PLACE,K3,Registered,2024,2020,,,", "last_year is before first_year"),
        ("PLACE,K3,Registered,2024,,28/10/2023,,", "started_before must be blank or an ISO date"),
        ("PLACE,,Registered,2024,,,,", "code is empty"),
    ],
)
def test_loader_rejects_bad_rows(tmp_path, row, problem):
    with pytest.raises(CodelistError, match=problem) as info:
        load_codelists(_write(tmp_path, "PLACE,K2,Home,2017,,,,", row))
    assert "line 3" in str(info.value) and "codelists.csv" in str(info.value)
