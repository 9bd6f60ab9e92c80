"""Statistics settings: malformed files and settings the classification cannot honour stop the run
with a message naming the file and the key, before anything is read or written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from icare.classification import load_classification
from icare.statistics import StatisticsSettingsError, check_settings, load_statistics_settings
from tests.test_cli import icare

DEFAULT = load_statistics_settings()


def _settings_file(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load(DEFAULT.path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    path = tmp_path / "statistics.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_shipped_settings_load_with_the_england_bands():
    assert DEFAULT.age_band_set == "england"
    assert [b.band for b in DEFAULT.age_bands] == ["under 1", "1-4", "5-9", "10-15", "16-17", "18 and over"]
    assert DEFAULT.age_bands[-1].last_age is None
    assert check_settings(DEFAULT, load_classification()) is DEFAULT


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rare_pathway_threshold": None}, "required key 'rare_pathway_threshold' is missing"),
        ({"rare_pathway_threshold": 0}, "rare_pathway_threshold must be at least 1"),
        ({"pathway_levels": [1, "top"]}, "pathway_levels: 'top'"),
        ({"age_bands": "who"}, "age_bands 'who' is not one of age_band_sets"),
        (
            {
                "age_band_sets": {
                    "england": [{"band": "0-4", "from": 0, "to": 4}, {"band": "6+", "from": 6, "to": None}]
                }
            },
            "'6+': bands must follow each other from 0 without gaps or overlaps",
        ),
        (
            {
                "age_band_sets": {
                    "england": [{"band": "0+", "from": 0, "to": None}, {"band": "5+", "from": 5, "to": None}]
                }
            },
            "only the last band may be open",
        ),
    ],
)
def test_malformed_settings_name_the_file_and_the_key(tmp_path, changes, message):
    path = _settings_file(tmp_path, **changes)
    with pytest.raises(StatisticsSettingsError) as raised:
        load_statistics_settings(path)
    assert str(path) in str(raised.value)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"placement_move_types": ["care_entry", "placement_chnage"]},
            "['placement_chnage'] are not new-episode",
        ),
        ({"pathway_levels": [1, 7]}, "pathway_levels [7] are deeper than"),
    ],
)
def test_settings_the_classification_cannot_honour_are_refused(tmp_path, changes, message):
    path = _settings_file(tmp_path, **changes)
    with pytest.raises(StatisticsSettingsError, match=r"statistics\.yaml") as raised:
        check_settings(load_statistics_settings(path), load_classification())
    assert message in str(raised.value)


def test_cli_stops_with_exit_2_and_writes_nothing(tmp_path):
    path = _settings_file(tmp_path, placement_move_types=["placement_chnage"])
    done = icare("run", "--statistics", str(path), "--output", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert "icare: error:" in done.stderr and "placement_chnage" in done.stderr and str(path) in done.stderr
    assert not (tmp_path / "out" / "icare.duckdb").exists()
    assert "read and validate" not in done.stderr  # refused before any input was read
