"""Tests for the synthetic SSDA903 generator (icare.sources.ssda903.synthetic).

The code-validity rules are written out here from national-sources.md §1.3 on purpose, independently of
the generator's own tables, so that a mistake in the generator cannot hide behind itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from icare import resources
from icare.sources.ssda903.synthetic import (
    DEFECT_KINDS,
    children_for_episode_rows,
    generate_returns,
    main,
)

HEADER = ["CHILD", "SEX", "DOB", "ETHNIC", "UPN", "MOTHER", "MC_DOB"]
EPISODES = [
    "CHILD", "DECOM", "RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "DEC", "REC", "REASON_PLACE_CHANGE",
    "HOME_POST", "PL_POST", "URN",
]  # fmt: skip
UASC = ["CHILD", "SEX", "DOB", "DUC"]
CUTOFF = pd.Timestamp(2023, 10, 28)

# National-sources.md §1.3-1.10, by collection year Y (ending 31 March Y).
PLACE_ALWAYS = {
    "A3", "A4", "A5", "A6", "K1", "K2", "P1", "P3", "R1", "R2", "R3", "R5", "S1", "T0", "T1", "T2", "T3",
    "T4", "U1", "U2", "U3", "U4", "U5", "U6",
}  # fmt: skip
TEMPORARY = {"T0", "T1", "T2", "T3", "T4"}
REC_ALWAYS = {
    "X1", "E11", "E12", "E2", "E3", "E4A", "E4B", "E13", "E41", "E5", "E6", "E7", "E8", "E9", "E14", "E15",
    "E16", "E17",
}  # fmt: skip
REASONS = {"CARPL", "CLOSE", "ALLEG", "STAND", "APPRR", "CREQB", "CREQO", "CHILD", "LAREQ", "PLACE", "OTHER"}
LS = {"C1", "C2", "D1", "E1", "V2", "V3", "V4", "L1", "L2", "L3", "J1", "J2", "J3"}
DATE = re.compile(r"^\d{2}/\d{2}/\d{4}$")


def valid_places(year: int) -> set[str]:
    codes = set(PLACE_ALWAYS)
    if year >= 2024:
        codes.add("K3")
    if year <= 2025:
        codes |= {"H5", "P2", "Z1"}
    else:
        codes |= {"Z11", "Z12", "Z13", "Z14"}
    return codes


def valid_recs(year: int) -> set[str]:
    return REC_ALWAYS | ({"E43", "E44"} if year <= 2018 else {"E45", "E46", "E47", "E48"})


def valid_sex(year: int) -> set[str]:
    return {"1", "2"} if year <= 2024 else {"M", "F", "U"}


def read_returns(root: Path, years, areas) -> dict[str, pd.DataFrame]:
    """Every table of every return, all text (blank = ""), with YEAR and AREA columns."""
    out: dict[str, list[pd.DataFrame]] = {"header": [], "episodes": [], "uasc": []}
    for year in years:
        for area in areas:
            for table in out:
                frame = pd.read_csv(
                    root / str(year) / area / f"{table}.csv",
                    dtype=str,
                    keep_default_na=False,
                    na_filter=False,
                )
                out[table].append(frame.assign(YEAR=year, AREA=area))
    return {k: pd.concat(v, ignore_index=True) for k, v in out.items()}


def day(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series.where(series != ""), format="%d/%m/%Y")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("default")
    return generate_returns(root), read_returns(root, range(2022, 2026), ("201", "202"))


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    """Twelve collection years, so every year-dependent code rule is crossed."""
    root = tmp_path_factory.mktemp("wide")
    result = generate_returns(
        root, children=1500, first_year=2016, last_year=2027, areas=("201", "873"), seed=7
    )
    return result, read_returns(root, result.years, result.areas)


@pytest.fixture(scope="module")
def defect_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("defects")
    result = generate_returns(root, children=600, defects=True, seed=11)
    return result, read_returns(root, result.years, result.areas)


def test_same_arguments_give_identical_bytes(tmp_path):
    for fmt in ("csv", "xlsx"):
        a = generate_returns(tmp_path / fmt / "a", children=80, fmt=fmt, defects=True)
        b = generate_returns(tmp_path / fmt / "b", children=80, fmt=fmt, defects=True)
        files_a = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
        files_b = sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
        assert files_a == files_b and files_a
        for rel in files_a:
            assert (a.root / rel).read_bytes() == (b.root / rel).read_bytes(), rel
    other = generate_returns(tmp_path / "seed", children=80, seed=904)
    assert (other.root / "2023/201/episodes.csv").read_bytes() != (
        tmp_path / "csv/a/2023/201/episodes.csv"
    ).read_bytes()


def test_layout_and_headers(default_run):
    result, _ = default_run
    assert result.years == (2022, 2023, 2024, 2025)
    assert result.areas == ("201", "202")
    assert result.children == 300
    found = sorted(str(p.relative_to(result.root)) for p in result.root.rglob("*") if p.is_file())
    assert found == sorted(
        f"{y}/{a}/{t}.csv" for y in result.years for a in result.areas for t in ("header", "episodes", "uasc")
    )
    for path in result.root.rglob("*.csv"):
        first = path.read_text().splitlines()[0]
        expected = {"header.csv": HEADER, "episodes.csv": EPISODES, "uasc.csv": UASC}[path.name]
        assert first == ",".join(expected)


def test_counts_match_files(default_run):
    result, tables = default_run
    assert result.episode_rows == len(tables["episodes"])
    assert result.header_rows == len(tables["header"])
    assert result.uasc_rows == len(tables["uasc"])
    assert result.uasc_rows > 0
    assert set(result.defects) == set(DEFECT_KINDS) and not any(result.defects.values())
    distinct = tables["episodes"].groupby(["AREA", "CHILD"]).ngroups
    assert distinct == result.children


def check_clean_returns(tables: dict[str, pd.DataFrame]) -> None:
    ep, hd, ua = tables["episodes"], tables["header"], tables["uasc"]
    for year, rows in ep.groupby("YEAR"):
        start, end = pd.Timestamp(year - 1, 4, 1), pd.Timestamp(year, 3, 31)
        bad = set(rows["PLACE"]) - valid_places(year)
        assert not bad, f"PLACE {bad} in {year}"
        recs = set(rows["REC"]) - {""}
        assert recs <= valid_recs(year), f"REC {recs - valid_recs(year)} in {year}"
        reasons = set(rows["REASON_PLACE_CHANGE"]) - {""}
        assert reasons <= (REASONS | {"CUSTOD"} if year >= 2019 else REASONS), year
        assert set(rows["LS"]) <= LS
        assert set(rows["RNE"]) <= {"S", "L", "P", "T", "B", "U"}
        assert set(rows["CIN"]) <= {f"N{i}" for i in range(1, 9)}
        decom, dec = day(rows["DECOM"]), day(rows["DEC"])
        assert rows["DECOM"].str.match(DATE).all()
        assert (rows["DEC"].str.match(DATE) | (rows["DEC"] == "")).all()
        assert (decom <= end).all()
        assert (dec.isna() | ((dec >= start) & (dec <= end) & (dec >= decom))).all()
        assert ((rows["DEC"] == "") == (rows["REC"] == "")).all()
        assert (rows.loc[rows["DEC"] == "", "REASON_PLACE_CHANGE"] == "").all()
        # H5 only for episodes that started before 28 Oct 2023; P2 only for episodes ended by then.
        h5 = rows["PLACE"] == "H5"
        assert (decom[h5] < CUTOFF).all()
        p2 = rows["PLACE"] == "P2"
        assert (dec[p2].isna() | (dec[p2] <= CUTOFF)).all()
        if year >= 2024:
            assert dec[p2].notna().all(), "an open P2 episode from 2023/24"
        assert (decom[rows["PLACE"] == "K3"] >= CUTOFF).all()
        # Providers: PR0 with P1 only; none for temporary moves and other placements.
        prov = rows["PLACE_PROVIDER"]
        assert ((prov == "PR0") == (rows["PLACE"] == "P1")).all()
        none_needed = rows["PLACE"].isin(TEMPORARY) | rows["PLACE"].str.startswith("Z")
        assert (prov[none_needed] == "").all() and (prov[~none_needed] != "").all()
        assert set(prov) <= {"", "PR0", "PR1", "PR2", "PR3", "PR4", "PR5"}
        assert (rows["URN"].str.fullmatch(r"\d{6}") | (rows["URN"] == "")).all()
        assert rows["HOME_POST"].str.fullmatch(r"[A-Z]{2}\d \d[A-Z]{2}").all()
    for year, rows in hd.groupby("YEAR"):
        assert set(rows["SEX"]) <= valid_sex(year), year
        assert rows["DOB"].str.match(DATE).all()
        assert not rows.duplicated(["AREA", "CHILD"]).any()
        assert set(rows["ETHNIC"]) - {""} and rows["UPN"].str.len().isin([3, 13]).all()
    for year, rows in ua.groupby("YEAR"):
        assert set(rows["SEX"]) <= valid_sex(year), year

    # Every episode's child has a header row in that return, and every header row has an episode.
    keys = ["YEAR", "AREA", "CHILD"]
    assert set(map(tuple, ep[keys].drop_duplicates().to_numpy())) == set(map(tuple, hd[keys].to_numpy()))
    assert set(map(tuple, ua[keys].to_numpy())) <= set(map(tuple, hd[keys].to_numpy()))

    # No overlaps, no gaps inside a same-day chain, and X1 exactly when the next episode starts that day.
    ep = ep.assign(_decom=day(ep["DECOM"]), _dec=day(ep["DEC"])).sort_values(
        ["YEAR", "AREA", "CHILD", "_decom"]
    )
    same = (ep[keys].shift(-1) == ep[keys]).all(axis=1)
    next_start = ep["_decom"].shift(-1)
    closed = ep["_dec"].notna()
    assert (~same | ~closed | (next_start >= ep["_dec"])).all(), "overlapping episodes"
    assert (~same | closed).all(), "an open episode followed by another"
    x1 = ep["REC"] == "X1"
    assert (next_start[x1 & same] == ep["_dec"][x1 & same]).all()
    assert (~same | ~closed | x1 | (next_start > ep["_dec"])).all()
    # The episode after an X1 continues the spell; after an exit the child starts again with RNE = S.
    nxt_rne = ep["RNE"].shift(-1)
    assert (nxt_rne[x1 & same] != "S").all()
    assert (nxt_rne[same & closed & ~x1] == "S").all()
    # Temporary moves last 1-7 days and end by going back to the same placement (RNE = P).
    temp = ep["PLACE"].isin(TEMPORARY) & closed & same
    span = (ep["_dec"] - ep["_decom"]).dt.days
    assert span[temp].between(1, 7).all()
    prev_same = (ep[keys].shift(1) == ep[keys]).all(axis=1)
    back = temp & prev_same
    assert (ep["PLACE"].shift(-1)[back] == ep["PLACE"].shift(1)[back]).all()
    assert (nxt_rne[back] == "P").all()


def test_codes_valid_per_year_default(default_run):
    check_clean_returns(default_run[1])


def test_codes_valid_per_year_across_code_changes(wide_run):
    _, tables = wide_run
    check_clean_returns(tables)
    ep, hd = tables["episodes"], tables["header"]
    used = set(ep["PLACE"])
    # The year rules are really exercised: each side of every change occurs.
    assert {"H5", "K3", "P2", "Z1"} <= used and used & {"Z11", "Z12", "Z13", "Z14"}
    assert set(ep["REC"]) & {"E43", "E44"} and set(ep["REC"]) & {"E45", "E46", "E47", "E48"}
    assert "CUSTOD" in set(ep["REASON_PLACE_CHANGE"]) or len(ep) < 5000
    assert {"1", "2", "M", "F"} <= set(hd["SEX"])
    # Ages: K3 only from 16; placed for adoption only under 5; adoption only from A3-A6; out by 18.
    dob = hd.drop_duplicates(["AREA", "CHILD"]).set_index(["AREA", "CHILD"])["DOB"]
    births = day(pd.Series(ep.set_index(["AREA", "CHILD"]).index.map(dob), index=ep.index))
    start = day(ep["DECOM"])
    age = (start - births).dt.days / 365.25
    assert (age[ep["PLACE"] == "K3"] >= 16).all()
    assert (age[ep["PLACE"].isin(["A3", "A4", "A5", "A6"])] < 5).all()
    assert ep.loc[ep["REC"].isin(["E11", "E12"]), "PLACE"].isin(["A3", "A4", "A5", "A6"]).all()
    assert (age < 18).all()
    assert ep.loc[ep["REC"] == "E17", "PLACE"].str.startswith("U").all()
    assert (ep.loc[ep["PLACE"].isin(["R5"]), "LS"].isin(["J1", "J2"])).all()


def test_clean_checks_catch_the_defects(defect_run):
    with pytest.raises(AssertionError):
        check_clean_returns(defect_run[1])


def test_open_episodes_repeat_in_the_next_return(wide_run):
    result, tables = wide_run
    ep = tables["episodes"]
    key = ["AREA", "CHILD", "DECOM"]
    repeated = 0
    for year in result.years[:-1]:
        this = ep[ep["YEAR"] == year]
        nxt = ep[ep["YEAR"] == year + 1].set_index(key)
        open_ = this[this["DEC"] == ""]
        assert len(open_)
        later = nxt.loc[list(map(tuple, open_[key].to_numpy()))]
        assert len(later) == len(open_)  # each open episode once in the next return, same DECOM
        for column in ("RNE", "LS", "CIN"):
            assert (later[column].to_numpy() == open_[column].to_numpy()).all()
        repeated += len(open_)
        # An episode that ended in year Y is not in return Y+1.
        ended = this[this["DEC"] != ""]
        assert not nxt.index.isin(list(map(tuple, ended[key].to_numpy()))).any()
    assert repeated > 100
    last = ep[ep["YEAR"] == result.years[-1]]
    assert (last["DEC"] == "").any()  # some episodes are still open at the end


def test_child_ids(default_run, wide_run):
    for _, tables in (default_run, wide_run):
        ids = tables["header"]["CHILD"]
        assert ids.str.len().le(10).all()
        assert ids.str.match(r"^0\d+$").any(), "no id with leading zeros"
        assert ids.str.fullmatch(r"\d+").mean() > 0.9
        assert (~ids.str.fullmatch(r"\d+")).any(), "no alphanumeric id"


def test_defects_injected_and_counted(defect_run):
    result, tables = defect_run
    assert set(result.defects) == set(DEFECT_KINDS)
    assert all(result.defects[k] >= 1 for k in DEFECT_KINDS), result.defects
    ep, hd = tables["episodes"], tables["header"]
    c = result.defects
    dates = pd.concat([ep["DECOM"], ep["DEC"]])
    assert dates.str.fullmatch(r"\d{2}/\d{2}/\d{2}").sum() == c["two_digit_year"]
    known = set().union(*(valid_places(y) for y in range(2017, 2030)))
    assert (~ep["PLACE"].str.strip().isin(known)).sum() == c["unknown_place"]
    assert (ep["PLACE"] != ep["PLACE"].str.strip()).sum() == c["whitespace_padded_code"]
    open_p2 = (ep["YEAR"] >= 2024) & (ep["PLACE"] == "P2") & (ep["DEC"] == "")
    early_k3 = (ep["YEAR"] < 2024) & (ep["PLACE"] == "K3")
    assert (open_p2 | early_k3).sum() == c["place_invalid_for_year"]
    assert (ep["DECOM"] == "").sum() == c["missing_decom"]
    full_dates = ep["DECOM"].str.match(DATE) & ep["DEC"].str.match(DATE)
    backwards = day(ep["DEC"].where(full_dates, "")) < day(ep["DECOM"].where(full_dates, ""))
    assert backwards.sum() == c["dec_before_decom"]
    assert ep.duplicated(keep="first").sum() == c["duplicate_row"]
    # Nested episodes: a row starting after another of the same child and ending before it ends.
    keys = ["YEAR", "AREA", "CHILD"]
    good = ep[full_dates & ~ep.duplicated(keep="first")]
    good = good.assign(_s=day(good["DECOM"]), _e=day(good["DEC"])).sort_values([*keys, "_s"])
    prev_end = good.groupby(keys)["_e"].shift(1)
    assert (good["_e"] < prev_end).sum() >= c["overlapping_episode"]
    # Children with episodes but no header row.
    ep_children = set(map(tuple, ep[keys].drop_duplicates().to_numpy()))
    assert len(ep_children - set(map(tuple, hd[keys].to_numpy()))) == c["child_without_header"]
    # Open at 31 March Y, absent from Y+1.
    missing = 0
    for year in result.years[:-1]:
        open_children = set(
            map(tuple, ep.loc[(ep["YEAR"] == year) & (ep["DEC"] == ""), ["AREA", "CHILD"]].to_numpy())
        )
        next_children = set(map(tuple, ep.loc[ep["YEAR"] == year + 1, ["AREA", "CHILD"]].to_numpy()))
        missing += len(open_children - next_children)
    assert missing == c["open_episode_child_missing_next_return"]
    assert result.episode_rows == len(ep) and result.header_rows == len(hd)


def test_xlsx_writes_text_cells_matching_the_csv(tmp_path):
    from openpyxl import load_workbook

    csv = generate_returns(tmp_path / "csv", children=120, defects=True)
    xlsx = generate_returns(tmp_path / "xlsx", children=120, defects=True, fmt="xlsx")
    assert (csv.episode_rows, csv.header_rows, csv.defects) == (
        xlsx.episode_rows,
        xlsx.header_rows,
        xlsx.defects,
    )
    assert not list(xlsx.root.rglob("*.csv"))
    leading_zero = False
    for year in xlsx.years:
        for area in xlsx.areas:
            path = xlsx.root / str(year) / area / f"ssda903_{year}.xlsx"
            book = load_workbook(path)
            assert book.sheetnames == ["Header", "Episodes", "UASC"]
            for sheet, table in (("Header", "header"), ("Episodes", "episodes"), ("UASC", "uasc")):
                cells = [c for row in book[sheet].iter_rows() for c in row if c.value is not None]
                assert all(c.data_type == "s" and isinstance(c.value, str) for c in cells)
                rows = [["" if c.value is None else c.value for c in row] for row in book[sheet].iter_rows()]
                text = (csv.root / str(year) / area / f"{table}.csv").read_text().splitlines()
                expected = [line.split(",") for line in text]
                width = len(expected[0])
                assert [r + [""] * (width - len(r)) for r in rows] == expected
                leading_zero |= any(str(c.value).startswith("0") for c in cells if c.column == 1)
    assert leading_zero


def test_children_for_episode_rows(tmp_path):
    n = children_for_episode_rows(6000, 2022, 2025)
    assert 500 < n < 6000
    result = generate_returns(tmp_path, children=n)
    assert abs(result.episode_rows - 6000) / 6000 < 0.15
    assert children_for_episode_rows(6000, 2020, 2025) < n  # more years, more rows per child


def test_command_line(tmp_path, capsys):
    assert (
        main([str(tmp_path), "--children", "40", "--first-year", "2024", "--last-year", "2026", "--defects"])
        == 0
    )
    out = capsys.readouterr().out
    assert "episode rows" in out and "defects:" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2024", "2025", "2026"]
    assert (tmp_path / "2026" / "202" / "episodes.csv").exists()


def test_bundled_sample_is_the_documented_command(tmp_path):
    sample = resources.source_dir("ssda903") / "sample"
    if not sample.is_dir():
        pytest.skip("sample not bundled")
    generate_returns(tmp_path)  # the defaults, as sample/README.md says
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.csv"))
    bundled = sorted(p.relative_to(sample) for p in sample.rglob("*.csv"))
    assert fresh == bundled
    for rel in fresh:
        assert (tmp_path / rel).read_bytes() == (sample / rel).read_bytes(), rel


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        generate_returns(tmp_path, first_year=2025, last_year=2024)
    with pytest.raises(ValueError):
        generate_returns(tmp_path, fmt="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        generate_returns(tmp_path, children=0)
    assert np.isfinite(children_for_episode_rows(1, 2022, 2022))
