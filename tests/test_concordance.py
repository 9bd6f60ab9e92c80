"""The SSDA903 -> ICare concordance (sources/ssda903/concordance/) and the generic engine."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from icare import resources
from icare.classification import load_classification
from icare.codelists import load_codelists, valid_codes
from icare.concordance import (
    ANY_VALUE,
    RULE_UNMAPPED,
    RULE_UNMAPPED_YEAR,
    UNMAPPED_COLUMNS,
    ConcordanceError,
    load_concordance,
    resolve_all,
)
from tests.builders import SSDA903_YEARS

FOLDER = resources.source_dir("ssda903") / "concordance"
YEARS = SSDA903_YEARS
assert set(range(2017, 2027)) <= set(YEARS)
COLUMNS = ["PLACE", "LS", "PLACE_PROVIDER", "REC", "RNE", "URN"]


@pytest.fixture(scope="module")
def classification():
    return load_classification()


@pytest.fixture(scope="module")
def concordance(classification):
    return load_concordance(FOLDER, classification)


@pytest.fixture(scope="module")
def codelists():
    return load_codelists(resources.source_dir("ssda903") / "codelists.csv")


@pytest.fixture(scope="module")
def resolved(concordance, codelists):
    return {year: resolve_all(concordance, codelists, year) for year in YEARS}


def episodes(*rows: dict, year: int = 2024, index=None) -> pd.DataFrame:
    """Episodes with the concordance's columns; unspecified columns are valid, unremarkable codes."""
    base = {"PLACE": "U4", "LS": "C2", "PLACE_PROVIDER": "PR1", "REC": None, "RNE": "P", "URN": None}
    frame = pd.DataFrame([{**base, **row} for row in rows], index=index)
    frame[COLUMNS] = frame[COLUMNS].astype("str")
    if "collection_year" not in frame:
        frame["collection_year"] = year
    return frame


# -- structure ---------------------------------------------------------------------------------------


def test_identity_and_columns(concordance, classification):
    assert concordance.version_id == "ssda903-icare@2026.2"
    assert concordance.classification_version == classification.version_id
    assert concordance.targets == [
        "icare_code",
        "purpose",
        "duration_intent",
        "regulated",
        "legal_basis",
        "provider_sector",
        "exit_destination",
        "new_episode_type",
    ]
    assert concordance.input_columns == COLUMNS
    assert {t: concordance.target(t).required for t in concordance.targets} == {
        "icare_code": True,
        "purpose": False,
        "duration_intent": False,
        "regulated": False,
        "legal_basis": True,
        "provider_sector": False,
        "exit_destination": True,
        "new_episode_type": True,
    }


# -- completeness over every valid code of every collection year ---------------------------------


@pytest.mark.parametrize("year", YEARS)
def test_every_valid_place_with_every_valid_ls_maps_to_exactly_one_icare_code(
    year, resolved, codelists, classification
):
    rows = resolved[year][resolved[year]["target"] == "icare_code"]
    # A blank PLACE or LS (set unknown by the failure policy) has its own cases: test_blank_inputs.
    rows = rows[rows["PLACE"].notna() & rows["LS"].notna()]
    places = valid_codes(codelists, "PLACE", year)
    legal = valid_codes(codelists, "LS", year)
    # every (PLACE, LS) combination is there, once per URN state (URN is a rule condition)
    assert set(zip(rows["PLACE"], rows["LS"], strict=True)) == {(p, ls) for p in places for ls in legal}
    assert not rows.duplicated(["PLACE", "LS", "URN"]).any()
    assert set(rows["URN"].dropna()) == {"XXXXXXX", ANY_VALUE}
    # ... and each maps to exactly one code that exists in the classification
    assert rows["message"].isna().all(), rows.loc[rows["message"].notna(), "message"].iloc[0]
    assert rows["value"].notna().all()
    assert all(code in classification for code in rows["value"].unique())
    # the ICare code never depends on URN (only `regulated` does)
    assert (rows.groupby(["PLACE", "LS"])["value"].nunique() == 1).all()


@pytest.mark.parametrize("year", YEARS)
def test_place_dimensions_are_complete(year, resolved, classification):
    for target in ("purpose", "duration_intent", "regulated"):
        rows = resolved[year][resolved[year]["target"] == target]
        assert rows["message"].isna().all()
        assert rows["value"].notna().all(), target
        assert set(rows["value"]) <= classification.dimensions[target].codes()


@pytest.mark.parametrize("year", YEARS)
def test_every_valid_rec_except_x1_maps_to_exactly_one_exit_destination(
    year, resolved, codelists, classification
):
    rows = resolved[year][resolved[year]["target"] == "exit_destination"]
    assert set(rows["REC"].dropna()) == valid_codes(codelists, "REC", year)
    assert rows["message"].isna().all()
    exits = rows[rows["REC"].notna() & (rows["REC"] != "X1")]
    assert exits["value"].notna().all()
    assert (exits.groupby("REC")["value"].nunique() == 1).all()
    assert set(exits["value"]) <= classification.exit_destinations.codes()
    # X1 (same-day continuation) and blank (open episode) are not exits
    assert rows.loc[rows["REC"] == "X1", "value"].isna().all()
    assert rows.loc[rows["REC"].isna(), "value"].isna().all()


@pytest.mark.parametrize("year", YEARS)
def test_every_ls_rne_and_provider_maps_to_one_value(year, resolved, codelists, classification):
    checks = {
        "legal_basis": ("LS", classification.dimensions["legal_basis"].codes()),
        "new_episode_type": ("RNE", classification.new_episode_types.codes()),
        "provider_sector": ("PLACE_PROVIDER", classification.dimensions["provider_sector"].codes()),
    }
    for target, (column, domain) in checks.items():
        rows = resolved[year][resolved[year]["target"] == target]
        coded = rows[rows[column].notna()]
        assert set(coded[column]) == valid_codes(codelists, column, year)
        assert coded["message"].isna().all() and coded["value"].notna().all()
        assert (coded.groupby(column)["value"].nunique() == 1).all(), target
        assert set(rows["value"].dropna()) <= domain


def test_expected_single_column_mappings(concordance):
    frame = episodes(
        {"PLACE": "A3"},
        {"PLACE": "K2"},
        {"PLACE": "K3"},
        {"PLACE": "P1"},
        {"PLACE": "P2"},
        {"PLACE": "P3"},
        {"PLACE": "R2"},
        {"PLACE": "R3"},
        {"PLACE": "S1"},
        {"PLACE": "T2"},
        {"PLACE": "U1"},
        {"PLACE": "U5"},
        {"PLACE": "H5"},
        {"PLACE": "Z1"},
        year=2024,
    )
    values = concordance.apply(frame).values
    assert values["icare_code"].tolist() == [
        *("AC.F132", "AC.F29", "AC.F3", "AC.X1", "AC.F3", "AC.F9", "AC.X3", "AC.F29", "AC.X4"),
        *("AC.X6", "AC.F11", "AC.F12", "AC.F3", "AC.F9"),
    ]
    assert values.loc[7, "purpose"] == "parent_and_child"
    assert values.loc[9, "purpose"] == "temporary_move"
    assert values.loc[2, "regulated"] == "registered"  # K3
    assert values.loc[12, "regulated"] == "unregistered"  # H5 without URN
    assert values.loc[10, "duration_intent"] == "long_term"  # U1
    assert values.loc[11, "purpose"] == "pre_adoptive"  # U5
    assert values["concordance_rule"].isna().all()


def test_exit_destinations_of_ambiguous_rec_codes(concordance):
    frame = episodes(*({"REC": rec} for rec in ("E3", "E13", "E14", "E15", "E16", "E17", "E9", "E4B")))
    assert concordance.apply(frame).values["exit_destination"].tolist() == [
        *("transfer_agency", "relatives_kin", "other", "other", "other", "remained_with_carers"),
        *("youth_justice_custody", "reunification"),
    ]


# -- conditional rules ----------------------------------------------------------------------------


def test_conditional_rules(concordance):
    frame = episodes(
        {"PLACE": "K1", "LS": "J1"},
        {"PLACE": "K1", "LS": "J2"},
        {"PLACE": "K1", "LS": "C2"},
        {"PLACE": "K1", "LS": "J3"},
        {"PLACE": "U6", "LS": "V3"},
        {"PLACE": "K2", "LS": "V4"},
        {"PLACE": "R5", "LS": "C2"},
        {"PLACE": "R5", "LS": "V3"},
        {"PLACE": "U4", "LS": "J1"},
    )
    values = concordance.apply(frame).values
    assert values["icare_code"].tolist() == [
        *("AC.X2", "AC.X2", "AC.F29", "AC.F29", "AC.X7", "AC.X7", "AC.X2", "AC.X2", "AC.F12"),
    ]
    assert values["purpose"].tolist() == [
        *("youth_justice", "youth_justice", "secure_welfare", "secure_welfare", "respite", "respite"),
        *("youth_justice", "youth_justice", "general_care"),
    ]
    assert values["concordance_rule"].fillna("-").tolist() == [
        *("k1_youth_justice_secure", "k1_youth_justice_secure", "-", "-", "short_breaks", "short_breaks"),
        *("r5_youth_custody", "r5_youth_custody", "-"),
    ]
    assert values.loc[0, "concordance_rule"] == "k1_youth_justice_secure"
    assert pd.isna(values.loc[2, "concordance_rule"])
    assert values.loc[4, "concordance_rule"] == "short_breaks"
    assert values.loc[7, "concordance_rule"] == "r5_youth_custody"  # first match wins
    # the legal basis is unaffected by rules
    assert values.loc[0, "legal_basis"] == "youth_justice"
    assert values.loc[4, "legal_basis"] == "voluntary_short_breaks"


def test_h5_urn_rule(concordance):
    frame = episodes(
        {"PLACE": "H5", "URN": "SC123456"},
        {"PLACE": "H5", "URN": "XXXXXXX"},
        {"PLACE": "H5", "URN": "  "},
        {"PLACE": "H5", "URN": None},
        {"PLACE": "K2", "URN": "SC123456"},
        year=2024,
    )
    values = concordance.apply(frame).values
    assert values["regulated"].tolist() == [
        "registered",
        "unregistered",
        "unregistered",
        "unregistered",
        "registered",
    ]
    assert values["icare_code"].tolist() == ["AC.F3"] * 4 + ["AC.F29"]
    assert values.loc[0, "concordance_rule"] == "h5_with_urn_registered"
    assert values.loc[1:, "concordance_rule"].isna().all()


def test_x1_is_not_an_exit_even_when_a_placement_rule_fires(concordance):
    frame = episodes({"PLACE": "K1", "LS": "J1", "REC": "X1"}, {"PLACE": "K1", "LS": "J1", "REC": "E9"})
    result = concordance.apply(frame)
    assert result.values["icare_code"].tolist() == ["AC.X2", "AC.X2"]
    assert pd.isna(result.values.loc[0, "exit_destination"])
    assert result.values.loc[1, "exit_destination"] == "youth_justice_custody"
    assert result.unmapped.empty


# -- unmapped codes are reported, never defaulted -----------------------------------------------


def test_unknown_codes_are_reported_and_not_defaulted(concordance):
    frame = episodes(
        {"PLACE": "Q9"},
        {"REC": "E99"},
        {"LS": "ZZ"},
        {"RNE": "X"},
        {"PLACE_PROVIDER": "PR9"},
        {"PLACE": "Q9", "LS": "V3"},  # a rule never rescues an unknown code
        index=["a", "b", "c", "d", "e", "f"],
    )
    result = concordance.apply(frame)
    values, unmapped = result.values, result.unmapped
    assert list(unmapped.columns) == UNMAPPED_COLUMNS
    assert values.index.equals(frame.index)
    got = set(zip(unmapped["index"], unmapped["column"], unmapped["value"], unmapped["target"], strict=True))
    assert got == {
        ("a", "PLACE", "Q9", "icare_code"),
        ("b", "REC", "E99", "exit_destination"),
        ("c", "LS", "ZZ", "legal_basis"),
        ("d", "RNE", "X", "new_episode_type"),
        ("f", "PLACE", "Q9", "icare_code"),
    }
    assert (unmapped["rule"] == RULE_UNMAPPED).all()
    message = unmapped.set_index("index").loc["a", "message"]
    assert "PLACE 'Q9'" in message and "ssda903-icare@2026.2" in message and "not defaulted" in message
    for row, target in (
        ("a", "icare_code"),
        ("b", "exit_destination"),
        ("c", "legal_basis"),
        ("d", "new_episode_type"),
    ):
        assert pd.isna(values.loc[row, target])
    assert pd.isna(values.loc["f", "icare_code"]) and pd.isna(values.loc["f", "purpose"])
    assert values.loc["f", "concordance_rule"] == "short_breaks"
    # PLACE-derived dimensions of an unknown PLACE are null but reported once (under icare_code)
    assert pd.isna(values.loc["a", "purpose"]) and pd.isna(values.loc["a", "regulated"])
    # an unknown provider is not required: value null, listed as a warning, not quarantined
    assert pd.isna(values.loc["e", "provider_sector"])
    assert result.warnings[["index", "column", "value", "target"]].values.tolist() == [
        ["e", "PLACE_PROVIDER", "PR9", "provider_sector"]
    ]


def test_blank_inputs(concordance):
    frame = episodes(
        {"PLACE": None},
        {"PLACE": "  "},
        {"PLACE": "T1", "PLACE_PROVIDER": None},
        {"PLACE": "Z1", "PLACE_PROVIDER": ""},
        {"PLACE": "U4", "PLACE_PROVIDER": None},
        {"PLACE": "P1", "PLACE_PROVIDER": " "},
        {"PLACE": "T1", "PLACE_PROVIDER": "PR4"},
        {"REC": None},
        {"REC": " "},
        {"PLACE": None, "LS": "V3"},
        {"LS": None},
        year=2024,
    )
    result = concordance.apply(frame)
    values, unmapped = result.values, result.unmapped
    assert values.loc[2:6, "provider_sector"].tolist() == [
        *("not_applicable", "not_applicable", "unknown", "unknown", "private"),
    ]
    # a blank REC is an open episode: no destination and nothing to quarantine
    assert values.loc[7:8, "exit_destination"].isna().all()
    # A blank PLACE (left blank, or set unknown by the failure policy) is the "not stated" category
    # with unknown placement dimensions, unless a rule says otherwise (V3 short breaks); a blank LS
    # is an unknown legal basis. Nothing is quarantined.
    assert values.loc[[0, 1], "icare_code"].tolist() == ["AC.U", "AC.U"]
    assert values.loc[9, "icare_code"] == "AC.X7"
    assert values.loc[[0, 1], ["purpose", "duration_intent", "regulated"]].eq("unknown").all(axis=None)
    assert values.loc[10, "legal_basis"] == "unknown"
    assert unmapped.empty


def test_surrounding_space_is_ignored_for_matching(concordance):
    values = concordance.apply(episodes({"PLACE": " K2 ", "LS": "C2 "})).values
    assert values.loc[0, "icare_code"] == "AC.F29"
    assert values.loc[0, "legal_basis"] == "judicial_order"


def test_object_dtype_input_gives_the_same_result(concordance):
    frame = episodes({"PLACE": "K1", "LS": "J1"}, {"PLACE": "Q9"}, {"PLACE": None})
    as_object = frame.astype({c: object for c in COLUMNS})
    a, b = concordance.apply(frame), concordance.apply(as_object)
    pd.testing.assert_frame_equal(a.values, b.values)
    pd.testing.assert_frame_equal(a.unmapped, b.unmapped)


def test_missing_column_is_an_error(concordance):
    frame = episodes({"PLACE": "K2"}).drop(columns=["URN"])
    with pytest.raises(KeyError, match="URN"):
        concordance.apply(frame)


def test_empty_frame(concordance):
    result = concordance.apply(episodes({"PLACE": "K2"}).iloc[0:0])
    assert result.values.empty and list(result.values.columns) == [*concordance.targets, "concordance_rule"]
    assert result.unmapped.empty and list(result.unmapped.columns) == UNMAPPED_COLUMNS


# -- collection years -------------------------------------------------------------------------------


def test_year_ranged_mappings(concordance):
    frame = pd.concat(
        [
            episodes({"PLACE": "K3"}, year=2023),
            episodes({"PLACE": "K3"}, year=2024),
            episodes({"REC": "E43"}, year=2018),
            episodes({"REC": "E43"}, year=2019),
            episodes({"REC": "E45"}, year=2018),
            episodes({"REC": "E45"}, year=2019),
            episodes({"PLACE": "Z1"}, year=2026),
            episodes({"PLACE": "Z12"}, year=2026),
            episodes({"PLACE": "Z12"}, year=2025),
        ],
        ignore_index=True,
    )
    result = concordance.apply(frame)
    values = result.values
    # Codes outside their years are mapped by the row of the nearest year (outside_years:
    # nearest_year): validation records them as corrections before they get here.
    assert values.loc[0, "icare_code"] == "AC.F3" and values.loc[1, "icare_code"] == "AC.F3"
    assert values.loc[2, "exit_destination"] == "guardianship_order"
    assert values.loc[3, "exit_destination"] == "guardianship_order"  # E43 (to 2018) in 2019
    assert values.loc[4, "exit_destination"] == "guardianship_order"  # E45 (from 2019) in 2018
    assert values.loc[5, "exit_destination"] == "guardianship_order"
    assert values.loc[6, "icare_code"] == "AC.F9" and values.loc[7, "icare_code"] == "AC.F9"
    assert values.loc[8, "icare_code"] == "AC.F9"
    assert result.unmapped.empty


def test_codes_outside_their_years_are_unmapped_when_the_concordance_says_report(classification, tmp_path):
    folder = tmp_path / "concordance"
    shutil.copytree(FOLDER, folder)
    _edit(folder / "concordance.yaml", "outside_years: nearest_year", "outside_years: report")
    frame = pd.concat(
        [episodes({"PLACE": "K3"}, year=2023), episodes({"REC": "E45"}, year=2018)], ignore_index=True
    )
    result = load_concordance(folder, classification).apply(frame)
    assert pd.isna(result.values.loc[0, "icare_code"]) and pd.isna(result.values.loc[1, "exit_destination"])
    unmapped = result.unmapped.set_index("index")
    assert set(unmapped.index) == {0, 1}
    assert (unmapped["rule"] == RULE_UNMAPPED_YEAR).all()
    assert "collection year 2023" in unmapped.loc[0, "message"] and "2024-" in unmapped.loc[0, "message"]
    assert "2019-" in unmapped.loc[1, "message"]


def test_a_mapping_can_change_by_year(tmp_path, classification):
    folder = _copy(tmp_path)
    table = folder / "placement.csv"
    lines = table.read_text(encoding="utf-8").splitlines()
    s1 = next(i for i, line in enumerate(lines) if line.startswith("S1,"))
    old = lines[s1]
    lines[s1] = old.replace("S1,2017,,AC.X4,", "S1,2017,2020,AC.X4,")
    lines.insert(s1 + 1, old.replace("S1,2017,,AC.X4,", "S1,2021,,AC.F29,"))
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    variant = load_concordance(folder, classification)
    frame = pd.concat([episodes({"PLACE": "S1"}, year=y) for y in (2020, 2021)], ignore_index=True)
    assert variant.apply(frame).values["icare_code"].tolist() == ["AC.X4", "AC.F29"]


def test_year_limited_rule(tmp_path, classification):
    folder = _copy(tmp_path)
    _edit(
        folder / "concordance.yaml",
        "  - id: short_breaks\n",
        "  - id: short_breaks\n    first_year: 2022\n",
    )
    variant = load_concordance(folder, classification)
    frame = pd.concat([episodes({"LS": "V3"}, year=y) for y in (2021, 2022)], ignore_index=True)
    assert variant.apply(frame).values["icare_code"].tolist() == ["AC.F12", "AC.X7"]


def test_crosswalk_repoints_output_codes_without_touching_the_concordance(tmp_path, classification):
    crosswalk = tmp_path / "crosswalk.csv"
    rows = [f"{code},{'AC.F29' if code == 'AC.X4' else code}" for code in classification.codes()]
    crosswalk.write_text("from_code,to_code\n" + "\n".join(rows) + "\n", encoding="utf-8")
    translated = load_classification(crosswalk=crosswalk)
    variant = load_concordance(FOLDER, translated)
    values = variant.apply(episodes({"PLACE": "S1"}, {"PLACE": "K2"})).values
    assert values["icare_code"].tolist() == ["AC.F29", "AC.F29"]
    table = variant.to_frame()
    s1 = table[(table["kind"] == "mapping") & (table["target"] == "icare_code") & (table["code"] == "S1")]
    assert s1[["value", "output_value"]].values.tolist() == [["AC.X4", "AC.F29"]]
    assert (table["classification_version"] == translated.version_id).all()


# -- the published concordance table and the decisions in the data ------------------------------


def test_to_frame(concordance):
    table = concordance.to_frame()
    assert (table["concordance_version"] == "ssda903-icare@2026.2").all()
    assert table["classification_version"].notna().all()
    rules = table[table["kind"] == "rule"]
    assert rules["rule_id"].tolist() == [
        "r5_youth_custody",
        "k1_youth_justice_secure",
        "short_breaks",
        "h5_with_urn_registered",
    ]
    assert rules["priority"].tolist() == [1, 2, 3, 4]
    k1 = rules.set_index("rule_id").loc["k1_youth_justice_secure"]
    assert k1["condition"] == "PLACE in [K1] and LS in [J1, J2]"
    assert k1["value"] == "icare_code=AC.X2; purpose=youth_justice"
    mappings = table[table["kind"] == "mapping"]
    expected = sum(len(concordance.tables[concordance.target(t).table].rows) for t in concordance.targets)
    assert len(mappings) == expected
    assert not mappings.duplicated(["target", "code", "first_year"]).any()
    assert mappings["reason"].str.len().min() > 20
    x1 = mappings[(mappings["target"] == "exit_destination") & (mappings["code"] == "X1")]
    assert x1["value"].isna().all() and (x1["decision"] == "not_an_exit").all()
    blank = table[table["kind"] == "on_blank"]
    assert set(blank["target"]) == {
        *("icare_code", "purpose", "duration_intent", "regulated", "legal_basis"),
        *("provider_sector", "exit_destination", "new_episode_type"),
    }
    not_stated = blank[blank["target"] == "icare_code"]
    assert not_stated["value"].tolist() == ["AC.U"] and not_stated["reason"].str.contains("not stated").all()


AMBIGUOUS_PLACE = [
    "A3",
    "A4",
    "A5",
    "A6",
    "H5",
    "K1",
    "P2",
    "P3",
    "R3",
    "S1",
    "Z1",
    "Z11",
    "Z12",
    "Z13",
    "Z14",
]


def test_ambiguous_codes_carry_an_explicit_decision(concordance):
    table = concordance.to_frame()
    icare = table[(table["kind"] == "mapping") & (table["target"] == "icare_code")].set_index("code")
    for code in AMBIGUOUS_PLACE:
        decisions = set(icare.loc[[code], "decision"])
        assert decisions and decisions <= {"ambiguous", "residual", "provisional"}, code
    for code in ("P1", "R2", "R5", "T0", "T1", "T2", "T3", "T4"):
        assert set(icare.loc[[code], "decision"]) == {"boundary"}, code
    exits = table[(table["kind"] == "mapping") & (table["target"] == "exit_destination")].set_index("code")
    for code in ("E3", "E13", "E14", "E15", "E16"):
        assert exits.loc[code, "decision"] == "ambiguous"


# -- loader errors ------------------------------------------------------------------------------------


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "concordance"
    shutil.copytree(FOLDER, folder)
    return folder


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_loader_rejects_a_target_code_missing_from_the_classification(tmp_path, classification):
    folder = _copy(tmp_path)
    _edit(folder / "placement.csv", "K2,2017,,AC.F29,", "K2,2017,,AC.F99,")
    with pytest.raises(
        ConcordanceError, match=r"placement\.csv: line \d+ \(code 'K2'\): icare_code 'AC\.F99'"
    ):
        load_concordance(folder, classification)


def test_loader_rejects_a_dimension_value_missing_from_the_classification(tmp_path, classification):
    folder = _copy(tmp_path)
    _edit(folder / "reason_ended.csv", "E2,2017,,death,", "E2,2017,,deceased,")
    with pytest.raises(ConcordanceError, match=r"reason_ended\.csv: line \d+ \(code 'E2'\).*'deceased'"):
        load_concordance(folder, classification)


def test_loader_rejects_overlapping_years(tmp_path, classification):
    folder = _copy(tmp_path)
    _edit(folder / "placement.csv", "K3,2024,,", "K3,2023,,")
    with open(folder / "placement.csv", "a", encoding="utf-8") as handle:
        handle.write("K3,2017,2023,AC.F3,general_care,unknown,registered,direct,duplicate on purpose\n")
    with pytest.raises(ConcordanceError, match=r"placement\.csv: line \d+ \(code 'K3'\): years .* overlap"):
        load_concordance(folder, classification)


def test_loader_rejects_a_rule_on_an_unknown_column(tmp_path, classification):
    folder = _copy(tmp_path)
    _edit(folder / "concordance.yaml", "when: {LS: [V3, V4]}", "when: {LEGAL: [V3, V4]}")
    with pytest.raises(ConcordanceError, match=r"rule 'short_breaks'.*unknown column 'LEGAL'"):
        load_concordance(folder, classification)


def test_loader_rejects_a_rule_code_missing_from_the_mapping_table(tmp_path, classification):
    folder = _copy(tmp_path)
    _edit(folder / "concordance.yaml", "when: {LS: [V3, V4]}", "when: {LS: [V3, V5]}")
    with pytest.raises(ConcordanceError, match=r"rule 'short_breaks'.*LS names code\(s\) V5"):
        load_concordance(folder, classification)


def test_loader_rejects_a_rule_setting_an_unknown_value(tmp_path, classification):
    folder = _copy(tmp_path)
    _edit(folder / "concordance.yaml", "set: {regulated: registered}", "set: {regulated: licensed}")
    with pytest.raises(ConcordanceError, match=r"rule 'h5_with_urn_registered'.*'licensed'"):
        load_concordance(folder, classification)


def test_loader_rejects_an_empty_value_cell(tmp_path, classification):
    folder = _copy(tmp_path)
    _edit(folder / "reason_ended.csv", "X1,2017,,(none),", "X1,2017,,,")
    with pytest.raises(ConcordanceError, match=r"line 2 \(code 'X1'\): exit_destination is empty.*\(none\)"):
        load_concordance(folder, classification)


def test_loader_rejects_another_classification(tmp_path, classification):
    folder = _copy(tmp_path)
    _edit(
        folder / "concordance.yaml", "classification: icare-ac-provisional", "classification: icare-official"
    )
    with pytest.raises(ConcordanceError, match="targets classification 'icare-official'"):
        load_concordance(folder, classification)


def test_loader_rejects_an_unquoted_version(tmp_path, classification):
    folder = _copy(tmp_path)
    _edit(folder / "concordance.yaml", 'version: "2026.2"', "version: 2026.2")
    with pytest.raises(ConcordanceError, match="'version' must be a non-empty string"):
        load_concordance(folder, classification)
