"""The US AFCARS source's data files (sources/afcars/): spec, code lists, concordance, generator, sample.

No reader exists yet (issue 17); these tests keep the files that a future reader will consume
consistent with each other, with the classification and with the synthetic generator.
"""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from icare.classification import load_classification
from icare.codelists import load_codelists, valid_codes
from icare.concordance import load_concordance, resolve_all
from icare.resources import data_root
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
