"""The US AFCARS source's data files (sources/afcars/): spec, code lists, concordance, generator, sample.

No reader exists yet (issue 17); these tests keep the files that a future reader will consume
consistent with each other, with the classification and with the synthetic generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from icare.classification import load_classification
from icare.codelists import load_codelists, valid_codes
from icare.concordance import load_concordance, resolve_all
from icare.resources import data_root
from icare.sources.afcars.defects import FILE_KINDS, ROW_KINDS
from icare.sources.afcars.model import add_years, age_at, fiscal_year, fy_start
from icare.sources.afcars.synthetic import generate
from icare.sources.registry import available_sources
from icare.sources.spec import load_source_spec

SOURCE = data_root() / "sources" / "afcars"
YEARS = range(2000, 2024)


@pytest.fixture(scope="module")
def spec():
    return load_source_spec("afcars")


@pytest.fixture(scope="module")
def raw_spec():
    return yaml.safe_load((SOURCE / "source.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def codelists():
    return load_codelists(SOURCE / "codelists.csv")


@pytest.fixture(scope="module")
def classification():
    return load_classification()


@pytest.fixture(scope="module")
def concordance(classification):
    return load_concordance(SOURCE / "concordance", classification)


# -- the spec and the registry ----------------------------------------------------------------------


def test_the_data_only_source_is_not_offered_to_the_pipeline(raw_spec):
    assert raw_spec["status"] == "data-only"
    assert "reader" not in raw_spec
    assert "afcars" not in available_sources()
    assert "ssda903" in available_sources()


def test_the_spec_loads_like_ssda903s_with_the_fiscal_year(spec, raw_spec):
    assert spec.id == "afcars"
    assert spec.period(2023) == (pd.Timestamp("2022-10-01").date(), pd.Timestamp("2023-09-30").date())
    assert spec.date_format == "%m/%d/%Y"
    assert spec.sex_codes == {"1": "M", "2": "F", "9": "U"}
    assert raw_spec["input_kind"] == "snapshot"
    assert raw_spec["file"]["delimiter"] == "\t"
    assert raw_spec["reference_date"] == {"month": 9, "day": 30}


def test_every_column_has_a_type_and_every_coded_column_a_code_list(spec, raw_spec, codelists):
    table = raw_spec["tables"]["foster_care"]
    assert list(table["types"]) == table["columns"] == list(spec.tables["foster_care"].columns)
    coded = {c for c, t in table["types"].items() if t in ("code", "flag")}
    assert coded == set(codelists["field"])
    assert set(table["types"].values()) <= {"year", "fips", "id", "date", "integer", "code", "flag"}


def test_capability_gaps_are_declared_with_reasons(raw_spec):
    gaps = raw_spec["capabilities"]["not_available"]
    for gap in ("pathways", "first_placement_category", "entries_by_category", "transitions"):
        assert isinstance(gaps[gap], str) and gaps[gap].strip()
    available = raw_spec["capabilities"]["available"]
    assert {"stock_at_reference_date", "entries", "exits", "exits_by_destination"} <= set(available)
    assert not set(available) & set(gaps)


# -- code lists -------------------------------------------------------------------------------------


def test_code_lists_hold_the_reference_codes(codelists):
    def codes(field: str) -> set[str]:
        return set(valid_codes(codelists, field, 2022))

    assert codes("CURPLSET") == {"1", "2", "3", "4", "5", "6", "7", "8", "99"}
    assert codes("DISREASN") == {str(c) for c in range(9)} | {"99"}
    assert codes("MANREM") == {"1", "2", "3"}
    assert codes("SEX") == {"1", "2", "9"}
    assert codes("CLINDIS") == {"1", "2", "3"}
    assert codes("PLACEOUT") == {"0", "1", "2", "3"}
    for flag in ("NEGLECT", "HOUSING", "MR", "OTHERMED", "InAtEnd", "Entered", "Exited", "AgedOut"):
        assert codes(flag) == {"0", "1"}
    assert codelists["note"].str.contains("2026-12").all()


def test_missing_value_codes_are_codes_of_their_lists(raw_spec, codelists):
    for field, missing in raw_spec["missing_codes"].items():
        if field in set(codelists["field"]):
            assert set(missing) <= set(valid_codes(codelists, field, 2022)), field


# -- concordance ------------------------------------------------------------------------------------


def test_the_concordance_loads_against_the_classification(concordance):
    assert concordance.version_id == "afcars-icare@2026.1"
    assert concordance.classification.id == "icare-ac-provisional"
    assert concordance.targets == [
        "icare_code",
        "purpose",
        "regulated",
        "legal_basis",
        "location",
        "exit_destination",
    ]


@pytest.mark.parametrize("year", [2000, 2012, 2023])
def test_every_code_of_every_mapped_column_maps_to_exactly_one_value(year, concordance, codelists):
    resolved = resolve_all(concordance, codelists, year)
    assert resolved["rule"].isna().all(), resolved[resolved["rule"].notna()]
    assert len(resolved) == len(resolved.drop_duplicates(["target", *concordance.input_columns]))


def test_mapping_tables_cover_exactly_the_code_lists(concordance, codelists):
    for table in concordance.tables.values():
        listed = set(valid_codes(codelists, table.column, 2022))
        assert set(table.rows["code"]) == listed, table.column
        assert (table.rows["reason"].str.len() > 20).all()


def test_the_placement_settings_and_discharge_reasons(concordance):
    frame = pd.DataFrame(
        {
            "CURPLSET": ["1", "2", "3", "4", "5", "6", "7", "8", "99", "", "3", "3"],
            "MANREM": ["2"] * 12,
            "PLACEOUT": ["2"] * 12,
            "DISREASN": ["0", "1", "2", "3", "4", "5", "6", "7", "8", "99", "", ""],
            "DODFCDT": ["", *["09/30/2022"] * 10, ""],
            "collection_year": [2022] * 12,
        }
    )
    values = concordance.apply(frame).values
    assert values["icare_code"].tolist() == [
        "AC.F132", "AC.F11", "AC.F12", "AC.F21", "AC.F22", "AC.F3", "AC.X5", "AC.X1", "AC.U", "AC.U",
        "AC.F12", "AC.F12",
    ]  # fmt: skip
    destinations = values["exit_destination"].fillna("-").tolist()
    assert destinations[:10] == [
        "-", "reunification", "relatives_kin", "adoption", "other", "guardianship_order",
        "transfer_agency", "missing", "death", "not_known",
    ]  # fmt: skip
    # a blank reason: not_known when a discharge date is given, no exit without one
    assert destinations[10:] == ["not_known", "-"]


def test_unknown_codes_are_reported_not_defaulted(concordance):
    frame = pd.DataFrame(
        {"CURPLSET": ["9"], "MANREM": ["4"], "PLACEOUT": ["2"], "DISREASN": ["11"], "DODFCDT": ["01/02/2022"]}
    ).assign(collection_year=2022)
    result = concordance.apply(frame)
    assert set(result.unmapped["target"]) == {"icare_code", "legal_basis", "exit_destination"}
    assert result.values[["icare_code", "legal_basis", "exit_destination"]].isna().all(axis=None)


def test_ambiguous_codes_carry_their_decision(concordance):
    def decision(column: str, code: str) -> str:
        table = next(t for t in concordance.tables.values() if t.column == column)
        return table.rows.set_index("code").loc[code, "decision"]

    for column, code in [
        ("CURPLSET", "1"),
        ("CURPLSET", "4"),
        ("CURPLSET", "5"),
        ("DISREASN", "4"),
        ("DISREASN", "6"),
    ]:
        assert decision(column, code) == "ambiguous"
    assert decision("CURPLSET", "7") == decision("CURPLSET", "8") == "boundary"


# -- the synthetic generator ------------------------------------------------------------------------

SMALL = {
    "first_year": 2019,
    "last_year": 2022,
    "states": ("TX", "CA", "WI"),
    "stock": 40,
    "entries": 30,
    "seed": 5,
}


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def read_file(path: Path) -> pd.DataFrame:
    """A generated file as text (BOM, title row and CRLF tolerated, as a reader must)."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    skip = 0 if lines[0].startswith("FY\t") else 1
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, skiprows=skip, encoding="utf-8-sig")


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("afcars-clean"), **SMALL)


@pytest.fixture(scope="module")
def clean_rows(clean):
    return pd.concat([read_file(p) for p in clean.files], ignore_index=True)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("afcars-damaged"), **SMALL, defects=True)


def test_calendar_helpers_by_hand():
    def days(text: str) -> np.ndarray:
        return np.array([np.datetime64(text, "D").astype(np.int64)])

    assert fiscal_year(days("2022-09-30"))[0] == 2022
    assert fiscal_year(days("2022-10-01"))[0] == 2023
    assert fy_start(2023) == days("2022-10-01")[0]
    assert age_at(days("2022-03-14"), days("2004-03-15"))[0] == 17
    assert age_at(days("2022-03-15"), days("2004-03-15"))[0] == 18
    assert add_years(days("2004-02-29"), 18)[0] == days("2022-03-01")[0]


def test_the_generator_is_deterministic(tmp_path, clean, damaged):
    assert _files(generate(tmp_path / "a", **SMALL).root) == _files(clean.root)
    assert _files(generate(tmp_path / "b", **SMALL, defects=True).root) == _files(damaged.root)
    assert _files(generate(tmp_path / "c", **{**SMALL, "seed": 6}).root) != _files(clean.root)


def test_files_have_the_columns_and_formats_of_the_spec(clean, clean_rows, spec, codelists):
    assert [p.name for p in clean.files] == ["FC19v1.tab", "FC20v1.tab", "FC21v1.tab", "FC22v1.tab"]
    types = yaml.safe_load((SOURCE / "source.yaml").read_text(encoding="utf-8"))["tables"]["foster_care"][
        "types"
    ]
    for path in clean.files:
        raw = path.read_bytes()
        assert raw.startswith(b"FY\t") and b"\r" not in raw and b'"' not in raw
        frame = read_file(path)
        assert list(frame.columns) == list(spec.tables["foster_care"].columns)
        assert (frame["FY"] == f"20{path.name[2:4]}").all()
    rows = clean_rows
    for column, kind in types.items():
        values = rows[column]
        if kind == "date":
            filled = values[values != ""]
            assert filled.str.fullmatch(spec.date_pattern).all(), column
            pd.to_datetime(filled, format=spec.date_format)  # every date is a real date
        elif kind in ("code", "flag"):
            assert set(values) <= set(valid_codes(codelists, column, 2022)), column
        elif kind in ("integer", "year"):
            assert values.str.fullmatch(r"\d+").all(), column
        else:
            assert (values != "").all(), column
    assert rows["FIPSCODE"].str.fullmatch(r"\d{5}").all()
    assert (rows["STFCID"] == rows["ST"] + rows["RECNUMBR"]).all()
    assert not rows.duplicated(["STFCID", "FY"]).any()
    assert (rows["DODFCDT"] == "").sum() > 0 and (rows["DLSTFCDT"] == "").sum() > 0


def _dates(rows: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_datetime(rows[column].replace("", None), format="%m/%d/%Y")


def test_ndacan_flags_agree_with_the_dates(clean_rows):
    rows = clean_rows
    fy = rows["FY"].astype(int)
    start = pd.to_datetime((fy - 1).astype(str) + "-10-01")
    end = pd.to_datetime(fy.astype(str) + "-09-30")
    removal, discharge = _dates(rows, "LATREMDT"), _dates(rows, "DODFCDT")
    flag = {
        name: rows[name] == "1" for name in ("InAtStart", "InAtEnd", "Entered", "Exited", "Served", "AgedOut")
    }
    assert (removal <= end).all() and (discharge.isna() | (discharge >= start)).all()
    assert (flag["Entered"] == (removal >= start)).all()
    assert (flag["InAtStart"] == (removal < start)).all()
    assert (flag["Exited"] == discharge.between(start, end)).all()
    assert (flag["InAtEnd"] == ((removal <= end) & (discharge.isna() | (discharge > end)))).all()
    assert (flag["InAtStart"].astype(int) + flag["Entered"] - flag["Exited"] == flag["InAtEnd"]).all()
    assert flag["Served"].all()
    assert ((rows["DISREASN"] == "0") == discharge.isna()).all()
    assert (flag["AgedOut"] == (flag["Exited"] & (rows["DISREASN"] == "4"))).all()
    setting_start = _dates(rows, "CURSETDT")
    assert (setting_start >= removal).all() and (setting_start <= discharge.fillna(end)).all()
    assert (_dates(rows, "REM1DT") <= removal).all()
    assert ((rows["DLSTFCDT"] == "") == (rows["TOTALREM"] == "1")).all()
    assert (_dates(rows, "DLSTFCDT").dropna() < removal[rows["DLSTFCDT"] != ""]).all()
    age_end = rows["AgeAtEnd"].astype(int)
    assert (age_end[flag["AgedOut"]] >= 18).all() and (age_end[~flag["Exited"]] <= 20).all()


def test_children_persist_across_years_with_the_same_id(clean_rows):
    rows = clean_rows.assign(FY=clean_rows["FY"].astype(int))
    stayed = rows[rows["InAtEnd"] == "1"].assign(FY=lambda f: f["FY"] + 1)
    stayed = stayed[stayed["FY"] <= rows["FY"].max()]
    following = stayed.merge(rows, on=["STFCID", "FY"], suffixes=("", "_next"))
    assert len(following) == len(stayed)
    assert (following["LATREMDT"] == following["LATREMDT_next"]).all()
    assert (following["InAtStart_next"] == "1").all()
    came_back = rows[rows["TOTALREM"].astype(int) > 1].merge(
        rows[["STFCID", "FY", "DODFCDT"]], on="STFCID", suffixes=("", "_earlier")
    )
    in_window = came_back[came_back["DLSTFCDT"] == came_back["DODFCDT_earlier"]]
    assert len(in_window) > 0  # re-entries inside the window keep their id
    assert (in_window["FY_earlier"].astype(int) < in_window["FY"]).all()


def test_file_counts_and_true_counts_agree(clean, clean_rows):
    truth = clean.true_counts.set_index(["fiscal_year", "state", "measure", "code"])["count"]
    rows = clean_rows.assign(fiscal_year=clean_rows["FY"].astype(int), state=clean_rows["ST"])
    keys = ["fiscal_year", "state"]
    from_file = {
        "stock_start": rows[rows["InAtStart"] == "1"].groupby(keys).size(),
        "entries": rows[rows["Entered"] == "1"].groupby(keys).size(),
        "exits": rows[rows["Exited"] == "1"].groupby(keys).size(),
        "stock_end": rows[rows["InAtEnd"] == "1"].groupby(keys).size(),
    }
    for measure, counts in from_file.items():
        expected = truth.xs((measure, "_T"), level=("measure", "code"))
        assert counts.reindex(expected.index, fill_value=0).tolist() == expected.tolist(), measure
    by = {
        "stock_end_by_setting": (rows["InAtEnd"] == "1", "CURPLSET"),
        "exits_by_destination": (rows["Exited"] == "1", "DISREASN"),
        "exits_by_setting": (rows["Exited"] == "1", "CURPLSET"),
    }
    for measure, (mask, column) in by.items():
        counts = rows[mask].groupby([*keys, column]).size()
        expected = truth.xs(measure, level="measure")
        assert counts.reindex(expected.index, fill_value=0).tolist() == expected.tolist(), measure
    # stock(end) = stock(start) + entries - exits, per state and year
    wide = clean.true_counts[clean.true_counts["code"] == "_T"].pivot_table(
        index=keys, columns="measure", values="count"
    )
    assert (wide["stock_start"] + wide["entries"] - wide["exits"] == wide["stock_end"]).all()
    stock = wide["stock_end"].groupby("state").shift()
    assert (stock.dropna() == wide["stock_start"][stock.notna()]).all()
    assert wide.loc[(2019, "TX"), "stock_start"] == 40


def test_defects_appear_when_asked_and_not_otherwise(clean, damaged):
    assert clean.defects.empty and not (clean.root / "defects.csv").exists()
    found = damaged.defects
    assert set(found["kind"]) == set(ROW_KINDS) | set(FILE_KINDS)
    assert pd.read_csv(damaged.root / "defects.csv", dtype=str, keep_default_na=False).shape == found.shape
    # the true counts describe the model, not the damaged files
    assert damaged.true_counts.equals(clean.true_counts)
    first, second = damaged.files[0].read_bytes(), damaged.files[1].read_bytes()
    assert first.startswith(b"AFCARS Foster Care File FY2019 (synthetic)\nFY\t")
    assert second.startswith(b"\xef\xbb\xbfFY\t") and b"\r\n" in second
    rows = {p.name: read_file(p) for p in damaged.files}
    for defect in found[found["STFCID"] != ""].itertuples():
        file_rows = rows[defect.file]
        child = file_rows[file_rows["STFCID"] == defect.STFCID]
        if defect.kind in ("duplicate_row", "conflicting_duplicate"):
            assert len(child) == 2, defect
            assert child.iloc[0].equals(child.iloc[1]) == (defect.kind == "duplicate_row")
        else:
            assert child[defect.column].tolist() == [defect.written], defect
            assert defect.written != defect.original
    clean_rows = sum(len(read_file(p)) for p in clean.files)
    extra = found["kind"].isin(["duplicate_row", "conflicting_duplicate"]).sum()
    assert sum(len(r) for r in rows.values()) == clean_rows + extra


def test_the_bundled_sample_is_the_documented_command(tmp_path):
    sample = SOURCE / "sample"
    fresh = generate(tmp_path)  # the defaults = the command in sources/afcars/sample/README.md
    bundled = {name: data for name, data in _files(sample).items() if name != "README.md"}
    assert _files(fresh.root) == bundled
    assert 300 <= fresh.child_years <= 1000
    readme = (sample / "README.md").read_text(encoding="utf-8")
    assert "python -m icare.sources.afcars.synthetic sources/afcars/sample" in readme and "seed 17" in readme
    assert f"{fresh.child_years} child-years" in readme
