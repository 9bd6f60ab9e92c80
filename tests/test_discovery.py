"""Collection year and area read from paths; missing input stops with a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from icare.discovery import area_code, collection_year, discover
from icare.sources.base import SourceInputError
from icare.sources.spec import SourceSpecError, load_source_spec

SPEC = load_source_spec("ssda903")


@pytest.mark.parametrize(
    ("relative", "year"),
    [
        ("2024/episodes.csv", 2024),
        ("2024/201/episodes.csv", 2024),
        ("ssda903_2023-24_episodes.csv", 2024),
        ("ssda903_2023_24.xlsx", 2024),
        ("returns 2025.xlsx", 2025),
        ("episodes.csv", None),
        ("2023-25/episodes.csv", None),  # not a year folder and no year in the name
    ],
)
def test_collection_year_from_path(relative, year):
    assert collection_year(Path(relative), SPEC) == year


@pytest.mark.parametrize(
    ("relative", "area"),
    [
        ("2024/201/episodes.csv", "201"),
        ("2024/201_episodes.csv", "201"),
        ("2024/ssda903_2024.xlsx", None),  # 903 is part of a word and 2024 has four digits
        ("2024/episodes.csv", None),
    ],
)
def test_area_from_path(relative, area):
    assert area_code(Path(relative), SPEC) == area


def test_discover_sorts_files_and_skips_lock_and_hidden_files(tmp_path):
    for name in ["2024/b.csv", "2023/a.csv", "2023/~$a.xlsx", "2023/.hidden.csv", "2023/notes.md"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("CHILD\n1\n")
    files = discover(tmp_path, SPEC)
    assert [f.file for f in files] == ["2023/a.csv", "2024/b.csv"]
    assert [f.collection_year for f in files] == [2023, 2024]
    assert all(len(f.sha256) == 64 for f in files)


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SourceInputError, match="does not exist"):
        discover(tmp_path / "nowhere", SPEC)


def test_folder_without_tables_is_a_clear_error(tmp_path):
    (tmp_path / "readme.txt.md").write_text("nothing")
    with pytest.raises(SourceInputError, match="no CSV or XLSX files"):
        discover(tmp_path, SPEC)


def test_optional_columns_and_child_id_compare_are_read_from_source_yaml():
    assert SPEC.optional_columns() == {
        "header": ("UPN", "MOTHER", "MC_DOB"),
        "episodes": ("HOME_POST", "PL_POST"),
    }
    assert SPEC.child_id_compare == "exact"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("    optional: [HOME_POST, PL_POST]", "    optional: [HOME_POST, POSTCODE]"), "POSTCODE not among"),
        (("child_id_compare: exact", "child_id_compare: strip"), "'strip' is not one of"),
    ],
)
def test_malformed_reader_settings_name_the_file_and_key(tmp_path, change, message):
    text = (SPEC.folder / "source.yaml").read_text(encoding="utf-8")
    assert change[0] in text
    (tmp_path / "source.yaml").write_text(text.replace(*change), encoding="utf-8")
    with pytest.raises(SourceSpecError, match=message) as error:
        load_source_spec(tmp_path)
    assert "source.yaml" in str(error.value)
