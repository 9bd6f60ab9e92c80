"""Tests for the classification loader: shipped file, tree API, validation, versions and crosswalks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from icare import resources
from icare.classification import (
    DEFAULT_CLASSIFICATION,
    Category,
    Classification,
    ClassificationError,
    load_classification,
)

# The 25 rows of the table in shared/reference/icare.md section 8.2 (code, level, parent).
EXPECTED_TREE = {
    "AC.F": (1, None),
    "AC.F1": (2, "AC.F"),
    "AC.F11": (3, "AC.F1"),
    "AC.F12": (3, "AC.F1"),
    "AC.F13": (3, "AC.F1"),
    "AC.F131": (4, "AC.F13"),
    "AC.F132": (4, "AC.F13"),
    "AC.F139": (4, "AC.F13"),
    "AC.F2": (2, "AC.F"),
    "AC.F21": (3, "AC.F2"),
    "AC.F22": (3, "AC.F2"),
    "AC.F29": (3, "AC.F2"),
    "AC.F3": (2, "AC.F"),
    "AC.F9": (2, "AC.F"),
    "AC.I": (1, None),
    "AC.I1": (2, "AC.I"),
    "AC.I2": (2, "AC.I"),
    "AC.X": (1, None),
    "AC.X1": (2, "AC.X"),
    "AC.X2": (2, "AC.X"),
    "AC.X3": (2, "AC.X"),
    "AC.X4": (2, "AC.X"),
    "AC.X5": (2, "AC.X"),
    "AC.X6": (2, "AC.X"),
    "AC.X7": (2, "AC.X"),
    "AC.U": (1, None),
}

# statistics.md, "Harmonised exit destinations".
EXIT_DESTINATIONS = [
    "reunification",
    "relatives_kin",
    "adoption",
    "guardianship_order",
    "independent_living_supported",
    "independent_living_unsupported",
    "remained_with_carers",
    "adult_services",
    "transfer_agency",
    "youth_justice_custody",
    "death",
    "missing",
    "other",
    "not_known",
]

# Value codes that the national concordances target.
DIMENSION_CODES = {
    "legal_basis": {
        "judicial_order",
        "judicial_adoption",
        "administrative_decision",
        "voluntary_agreement",
        "voluntary_short_breaks",
        "emergency_protection",
        "assessment_order",
        "youth_justice",
        "none",
        "unknown",
    },
    "provider_sector": {
        "public_own_authority",
        "public_other_authority",
        "public_other",
        "private",
        "voluntary_ngo",
        "parents",
        "not_applicable",
        "unknown",
    },
    "purpose": {
        "general_care",
        "pre_adoptive",
        "therapeutic",
        "secure_welfare",
        "youth_justice",
        "parent_and_child",
        "disability",
        "health",
        "education",
        "respite",
        "temporary_move",
        "unknown",
    },
    "duration_intent": {"emergency_short_term", "medium_term", "long_term", "unknown"},
    "regulated": {"registered", "unregistered", "unknown"},
    "formality": {"formal", "informal"},
    "location": {"own_authority", "other_authority", "abroad", "unknown"},
}

NEW_EPISODE_TYPES = {
    "care_entry",
    "legal_status_change",
    "placement_change",
    "same_carer_setting_change",
    "legal_status_and_placement_change",
    "legal_status_and_same_carer_change",
    "unknown",
}


@pytest.fixture(scope="module")
def clf() -> Classification:
    return load_classification()


@pytest.fixture(scope="module")
def shipped_data() -> dict:
    path = resources.classifications_dir() / DEFAULT_CLASSIFICATION
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _category(code: str, level: int, parent: str | None, **overrides: object) -> dict:
    entry = {
        "code": code,
        "level": level,
        "parent": parent,
        "label": f"Label of {code}",
        "definition": f"Definition of {code}.",
        "basis": "test",
        "in_alternative_care": True,
        "boundary": False,
    }
    entry.update(overrides)
    return entry


def _write_classification(
    tmp_path: Path, shipped_data: dict, categories: list[dict], name: str = "test.yaml", **top: object
) -> Path:
    """A classification file with the shipped dimensions and the given categories."""
    data = {k: v for k, v in shipped_data.items() if k not in ("categories", "levels", "crosswalk")}
    data.update({"id": "test-classification", "version": "9.9.9", "status": "test"})
    data.update(top)
    data["categories"] = categories
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# -- the shipped file ---------------------------------------------------------------------------------


def test_shipped_file_loads_with_the_section_8_tree(clf: Classification) -> None:
    assert clf.id == "icare-ac-provisional"
    assert clf.version == "0.2.0"
    assert clf.status == "provisional"
    assert clf.version_id == "icare-ac-provisional@0.2.0"
    assert clf.path == resources.classifications_dir() / DEFAULT_CLASSIFICATION
    assert clf.codes() == sorted(EXPECTED_TREE)
    assert len(clf) == 26
    for code, (level, parent) in EXPECTED_TREE.items():
        assert clf.get(code).level == level, code
        assert clf.parent(code) == parent, code
    assert clf.max_level == 4
    assert clf.level_names[1] == "sector (formal/informal/boundary)"
    assert "NOT the official ICare" in clf.description


def test_shipped_flags(clf: Classification) -> None:
    for code in clf.codes():
        cat = clf.get(code)
        is_boundary = code.startswith("AC.X")
        assert cat.boundary is is_boundary, code
        # "not stated" (AC.U) is neither alternative care nor a boundary category: it is not known
        assert cat.in_alternative_care is (not is_boundary and code != "AC.U"), code
        assert cat.definition and cat.basis and cat.label, code


def test_shipped_labels_keep_reference_wording(clf: Classification) -> None:
    assert clf.get("AC.F12").label == "Foster care (non-kin, approved carers)"
    assert clf.get("AC.X").label == 'Boundary: outside UN GL scope, but in national "in care" data'
    assert clf.get("AC.X6").label == (
        "Temporary move (holiday, hospital stay, respite while the carer is away). "
        "Keep the child's normal placement."
    )
    assert clf.get("AC.F1").basis == 'UN GL 29(c)(i)–(iii); UNICEF ECA "family-based care"'
    assert "**" not in "".join(clf.get(c).label for c in clf.codes())


def test_all_exit_destinations_present(clf: Classification) -> None:
    assert [v.code for v in clf.exit_destinations.values] == EXIT_DESTINATIONS
    assert clf.exit_destinations.name == "exit_destination"
    assert clf.exit_destinations.get("reunification").label == "Reunification with parents"
    assert all(v.definition for v in clf.exit_destinations.values)


def test_dimension_codes_targeted_by_concordances(clf: Classification) -> None:
    for name, expected in DIMENSION_CODES.items():
        assert clf.dimensions[name].codes() == frozenset(expected), name
    assert "facility_size" in clf.dimensions
    assert clf.new_episode_types.codes() == frozenset(NEW_EPISODE_TYPES)


# -- tree API ------------------------------------------------------------------------------------------


def test_lookups(clf: Classification) -> None:
    cat = clf.get("AC.F12")
    assert isinstance(cat, Category)
    assert cat.level == 3 and cat.parent == "AC.F1"
    assert "AC.F12" in clf
    assert "AC.F4" not in clf
    assert None not in clf
    with pytest.raises(KeyError, match=r"AC\.Z9.*icare-ac-provisional@0\.2\.0"):
        clf.get("AC.Z9")


def test_parent_ancestors_lineage(clf: Classification) -> None:
    assert clf.parent("AC.F") is None
    assert clf.parent("AC.F131") == "AC.F13"
    assert clf.ancestors("AC.F131") == ["AC.F", "AC.F1", "AC.F13"]
    assert clf.ancestors("AC.X") == []
    assert clf.lineage("AC.F131") == ["AC.F", "AC.F1", "AC.F13", "AC.F131"]
    assert clf.lineage("AC.I") == ["AC.I"]


def test_roll_up(clf: Classification) -> None:
    assert clf.roll_up("AC.F131", 2) == "AC.F1"
    assert clf.roll_up("AC.F131", 1) == "AC.F"
    assert clf.roll_up("AC.F131", 4) == "AC.F131"
    assert clf.roll_up("AC.F1", 3) == "AC.F1"
    assert clf.roll_up("AC.X6", 1) == "AC.X"
    with pytest.raises(ValueError, match="level"):
        clf.roll_up("AC.F1", 0)
    with pytest.raises(KeyError, match=r"AC\.nope"):
        clf.roll_up("AC.nope", 1)


def test_children_and_codes_by_level(clf: Classification) -> None:
    assert clf.children() == ["AC.F", "AC.I", "AC.U", "AC.X"]
    assert clf.children("AC.F") == ["AC.F1", "AC.F2", "AC.F3", "AC.F9"]
    assert clf.children("AC.F13") == ["AC.F131", "AC.F132", "AC.F139"]
    assert clf.children("AC.F131") == []
    assert clf.codes(1) == ["AC.F", "AC.I", "AC.U", "AC.X"]
    assert clf.codes(4) == ["AC.F131", "AC.F132", "AC.F139"]
    assert clf.children("AC.X") == [f"AC.X{i}" for i in range(1, 8)]


def test_level_columns_with_nulls_and_repeats(clf: Classification) -> None:
    codes = pd.Series(["AC.F131", None, "AC.X6", "AC.F131", pd.NA, "AC.F12"], index=[10, 11, 12, 13, 14, 15])
    out = clf.level_columns(codes)
    assert list(out.columns) == ["icare_level1", "icare_level2", "icare_level3", "icare_level4"]
    assert list(out.index) == [10, 11, 12, 13, 14, 15]
    assert out.loc[10].tolist() == ["AC.F", "AC.F1", "AC.F13", "AC.F131"]
    assert out.loc[13].tolist() == out.loc[10].tolist()
    assert out.loc[[11, 14]].isna().all().all()
    assert out.loc[12, "icare_level1"] == "AC.X"
    assert out.loc[12, "icare_level2"] == "AC.X6"
    assert pd.isna(out.loc[12, "icare_level3"]) and pd.isna(out.loc[12, "icare_level4"])
    assert out.loc[15, "icare_level3"] == "AC.F12"
    assert pd.isna(out.loc[15, "icare_level4"])
    assert clf.level_columns(codes, prefix="lvl").columns[0] == "lvl1"


def test_level_columns_rejects_unknown_codes(clf: Classification) -> None:
    with pytest.raises(KeyError, match=r"AC\.F7"):
        clf.level_columns(pd.Series(["AC.F1", "AC.F7"]))


def test_to_frame(clf: Classification) -> None:
    frame = clf.to_frame()
    assert list(frame.columns) == [
        "classification_version",
        "code",
        "level",
        "parent",
        "label",
        "definition",
        "basis",
        "in_alternative_care",
        "boundary",
        "level1",
        "level2",
        "level3",
        "level4",
    ]
    assert frame["code"].tolist() == sorted(EXPECTED_TREE)
    assert (frame["classification_version"] == "icare-ac-provisional@0.2.0").all()
    row = frame.set_index("code").loc["AC.F132"]
    assert row["level"] == 4 and row["parent"] == "AC.F13"
    assert row[["level1", "level2", "level3", "level4"]].tolist() == ["AC.F", "AC.F1", "AC.F13", "AC.F132"]
    assert frame["boundary"].dtype == bool
    assert bool(frame.set_index("code").loc["AC.X3", "boundary"])
    assert frame["boundary"].sum() == 8


def test_dimensions_frame(clf: Classification) -> None:
    frame = clf.dimensions_frame()
    assert list(frame.columns) == ["classification_version", "dimension", "code", "label", "definition"]
    assert (frame["classification_version"] == clf.version_id).all()
    got = frame.groupby("dimension")["code"].apply(set).to_dict()
    for name, expected in DIMENSION_CODES.items():
        assert got[name] == expected
    assert got["exit_destination"] == set(EXIT_DESTINATIONS)
    assert got["new_episode_type"] == NEW_EPISODE_TYPES
    assert not frame.duplicated(["dimension", "code"]).any()


def test_translate_is_identity_without_crosswalk(clf: Classification) -> None:
    assert clf.crosswalk is None
    assert clf.translate("AC.F12") == "AC.F12"
    with pytest.raises(KeyError, match=r"AC\.Q"):
        clf.translate("AC.Q")


# -- validation ----------------------------------------------------------------------------------------


def test_duplicate_code_rejected(tmp_path: Path, shipped_data: dict) -> None:
    path = _write_classification(
        tmp_path,
        shipped_data,
        [_category("T.A", 1, None), _category("T.A1", 2, "T.A"), _category("T.A1", 2, "T.A")],
    )
    with pytest.raises(ClassificationError, match=r"T\.A1.*duplicate") as info:
        load_classification(path)
    assert str(path) in str(info.value)


def test_missing_parent_rejected(tmp_path: Path, shipped_data: dict) -> None:
    path = _write_classification(
        tmp_path, shipped_data, [_category("T.A", 1, None), _category("T.B1", 2, "T.B")]
    )
    with pytest.raises(ClassificationError, match=r"T\.B1.*parent 'T\.B' does not exist") as info:
        load_classification(path)
    assert str(path) in str(info.value)


def test_wrong_level_rejected(tmp_path: Path, shipped_data: dict) -> None:
    path = _write_classification(
        tmp_path, shipped_data, [_category("T.A", 1, None), _category("T.A1", 3, "T.A")]
    )
    with pytest.raises(ClassificationError, match=r"T\.A1.*level must be parent level \+ 1"):
        load_classification(path)


def test_root_with_level_above_one_rejected(tmp_path: Path, shipped_data: dict) -> None:
    path = _write_classification(tmp_path, shipped_data, [_category("T.A", 2, None)])
    with pytest.raises(ClassificationError, match=r"T\.A.*level must be 1"):
        load_classification(path)


def test_cycle_rejected(tmp_path: Path, shipped_data: dict) -> None:
    path = _write_classification(
        tmp_path,
        shipped_data,
        [_category("T.R", 1, None), _category("T.A", 2, "T.B"), _category("T.B", 2, "T.A")],
    )
    with pytest.raises(ClassificationError, match=r"T\.A.*cycle.*T\.B"):
        load_classification(path)


def test_self_parent_is_a_cycle(tmp_path: Path, shipped_data: dict) -> None:
    path = _write_classification(tmp_path, shipped_data, [_category("T.A", 1, "T.A")])
    with pytest.raises(ClassificationError, match=r"T\.A.*cycle"):
        load_classification(path)


@pytest.mark.parametrize("flag", ["boundary", "in_alternative_care"])
@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_non_boolean_flag_rejected(tmp_path: Path, shipped_data: dict, flag: str, bad: object) -> None:
    path = _write_classification(tmp_path, shipped_data, [_category("T.A", 1, None, **{flag: bad})])
    with pytest.raises(ClassificationError, match=rf"T\.A.*{flag}.*boolean"):
        load_classification(path)


def test_boundary_child_of_non_boundary_rejected(tmp_path: Path, shipped_data: dict) -> None:
    path = _write_classification(
        tmp_path,
        shipped_data,
        [_category("T.A", 1, None), _category("T.A1", 2, "T.A", boundary=True, in_alternative_care=False)],
    )
    with pytest.raises(ClassificationError, match=r"T\.A1.*boundary code's parent"):
        load_classification(path)


def test_missing_category_key_rejected(tmp_path: Path, shipped_data: dict) -> None:
    entry = _category("T.A", 1, None)
    del entry["definition"]
    path = _write_classification(tmp_path, shipped_data, [entry])
    with pytest.raises(ClassificationError, match=r"T\.A.*'definition' is missing"):
        load_classification(path)


def test_missing_top_level_key_rejected(tmp_path: Path, shipped_data: dict) -> None:
    path = _write_classification(tmp_path, shipped_data, [_category("T.A", 1, None)])
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["exit_destinations"]
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ClassificationError, match="exit_destinations"):
        load_classification(path)


def test_unquoted_numeric_version_rejected(tmp_path: Path, shipped_data: dict) -> None:
    path = _write_classification(tmp_path, shipped_data, [_category("T.A", 1, None)], version=0.2)
    with pytest.raises(ClassificationError, match="version"):
        load_classification(path)


def test_duplicate_dimension_value_rejected(tmp_path: Path, shipped_data: dict) -> None:
    dims = {"regulated": {"label": "Regulation", "values": [
        {"code": "registered", "label": "Registered", "definition": "x"},
        {"code": "registered", "label": "Again", "definition": "y"},
    ]}}  # fmt: skip
    path = _write_classification(tmp_path, shipped_data, [_category("T.A", 1, None)], dimensions=dims)
    with pytest.raises(ClassificationError, match=r"regulated.*'registered'.*duplicate"):
        load_classification(path)


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(ClassificationError, match=r"nothing\.yaml"):
        load_classification(tmp_path / "nothing.yaml")


# -- other versions and crosswalks ---------------------------------------------------------------------


def test_second_version_loads_from_a_path(tmp_path: Path, shipped_data: dict) -> None:
    data = dict(shipped_data)
    data["version"] = "0.2.0"
    extra = _category("AC.F14", 3, "AC.F1", label="A new family-based sub-type")
    data["categories"] = [*shipped_data["categories"], extra]
    path = tmp_path / "icare-ac-provisional-0.2.0.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")

    v2 = load_classification(path)
    assert v2.version_id == "icare-ac-provisional@0.2.0"
    assert v2.path == path
    assert "AC.F14" in v2 and "AC.F14" not in load_classification()
    assert v2.children("AC.F1") == ["AC.F11", "AC.F12", "AC.F13", "AC.F14"]
    assert v2.roll_up("AC.F14", 2) == "AC.F1"
    assert (v2.to_frame()["classification_version"] == "icare-ac-provisional@0.2.0").all()


def _official_toy(tmp_path: Path, shipped_data: dict, **top: object) -> Path:
    categories = [
        _category("ICARE.1", 1, None, label="Formal alternative care"),
        _category("ICARE.1.1", 2, "ICARE.1", label="Family-based care"),
        _category("ICARE.1.2", 2, "ICARE.1", label="Residential care"),
        _category("ICARE.1.9", 2, "ICARE.1", label="Other formal care"),
        _category("ICARE.9", 1, None, label="Out of scope", boundary=True, in_alternative_care=False),
    ]
    return _write_classification(
        tmp_path,
        shipped_data,
        categories,
        name="icare-official.yaml",
        id="icare-official",
        version="1.0",
        **top,
    )


def _write_crosswalk(path: Path, rows: list[tuple[str, str]]) -> Path:
    lines = ["from_code,to_code", *(f"{a},{b}" for a, b in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


TOY_CROSSWALK = [
    ("AC.F11", "ICARE.1.1"),
    ("AC.F12", "ICARE.1.1"),
    ("AC.F132", "ICARE.1.1"),
    ("AC.F29", "ICARE.1.2"),
    ("AC.F9", "ICARE.1.9"),
    ("AC.X2", "ICARE.9"),
]


def test_official_classification_with_crosswalk(tmp_path: Path, shipped_data: dict) -> None:
    official = _official_toy(tmp_path, shipped_data)
    crosswalk = _write_crosswalk(tmp_path / "ac-to-official.csv", TOY_CROSSWALK)

    clf = load_classification(official, crosswalk=crosswalk)
    assert clf.version_id == "icare-official@1.0+crosswalk:ac-to-official"
    assert clf.translate("AC.F12") == "ICARE.1.1"
    assert clf.translate("AC.F29") == "ICARE.1.2"
    assert clf.roll_up(clf.translate("AC.F132"), 1) == "ICARE.1"
    assert clf.get(clf.translate("AC.X2")).boundary is True
    with pytest.raises(KeyError, match=r"AC\.F3"):
        clf.translate("AC.F3")
    translated = clf.translate_series(pd.Series(["AC.F12", None, "AC.F29"]))
    assert translated.iloc[0] == "ICARE.1.1" and pd.isna(translated.iloc[1])
    levels = clf.level_columns(translated)
    assert levels["icare_level1"].tolist()[::2] == ["ICARE.1", "ICARE.1"]
    assert (clf.to_frame()["classification_version"] == clf.version_id).all()


def test_crosswalk_named_inside_the_yaml(tmp_path: Path, shipped_data: dict) -> None:
    (tmp_path / "crosswalks").mkdir()
    _write_crosswalk(tmp_path / "crosswalks" / "ac-to-official.csv", TOY_CROSSWALK)
    official = _official_toy(tmp_path, shipped_data, crosswalk="crosswalks/ac-to-official.csv")

    clf = load_classification(official)
    assert clf.version_id == "icare-official@1.0+crosswalk:ac-to-official"
    assert clf.translate("AC.F11") == "ICARE.1.1"


def test_crosswalk_with_unknown_target_rejected(tmp_path: Path, shipped_data: dict) -> None:
    official = _official_toy(tmp_path, shipped_data)
    crosswalk = _write_crosswalk(tmp_path / "bad.csv", [("AC.F12", "ICARE.1.1"), ("AC.F3", "ICARE.7")])
    with pytest.raises(ClassificationError, match=r"'ICARE\.7'.*AC\.F3") as info:
        load_classification(official, crosswalk=crosswalk)
    assert "bad.csv" in str(info.value)


def test_crosswalk_one_to_many_rejected(tmp_path: Path, shipped_data: dict) -> None:
    official = _official_toy(tmp_path, shipped_data)
    crosswalk = _write_crosswalk(tmp_path / "bad.csv", [("AC.F12", "ICARE.1.1"), ("AC.F12", "ICARE.1.2")])
    with pytest.raises(ClassificationError, match=r"AC\.F12.*exactly one"):
        load_classification(official, crosswalk=crosswalk)


def test_crosswalk_wrong_columns_rejected(tmp_path: Path, shipped_data: dict) -> None:
    official = _official_toy(tmp_path, shipped_data)
    crosswalk = tmp_path / "bad.csv"
    crosswalk.write_text("ac,official\nAC.F12,ICARE.1.1\n", encoding="utf-8")
    with pytest.raises(ClassificationError, match="from_code"):
        load_classification(official, crosswalk=crosswalk)
