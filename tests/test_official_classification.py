"""An official classification plus a crosswalk replaces the provisional one without code changes."""

from __future__ import annotations

import pytest
import yaml

from icare import resources
from icare.classification import DEFAULT_CLASSIFICATION, load_classification
from icare.pipeline import RunOptions, run
from tests.builders import episode, header, write_return
from tests.conftest import KEY_ENVIRONMENT_VARIABLE, TEST_KEY

# A toy "official" list: two levels, coarser than AC.*.
OFFICIAL = [
    ("OFF.1", 1, None, "Formal alternative care", False),
    ("OFF.1.1", 2, "OFF.1", "Family-based care", False),
    ("OFF.1.2", 2, "OFF.1", "Residential care", False),
    ("OFF.1.3", 2, "OFF.1", "Independent and other formal care", False),
    ("OFF.2", 1, None, "Informal care", False),
    ("OFF.9", 1, None, "Outside scope", True),
]


def official_for(code: str) -> str:
    """Where each provisional code goes in the toy list (written out as the crosswalk file)."""
    if code.startswith(("AC.F1", "AC.F13")):
        return "OFF.1.1"
    if code.startswith("AC.F2"):
        return "OFF.1.2"
    if code in ("AC.F", "AC.F3", "AC.F9"):
        return "OFF.1.3" if code != "AC.F" else "OFF.1"
    if code.startswith("AC.I"):
        return "OFF.2"
    return "OFF.9"


@pytest.fixture
def official(tmp_path):
    shipped = yaml.safe_load((resources.classifications_dir() / DEFAULT_CLASSIFICATION).read_text())
    data = {key: value for key, value in shipped.items() if key not in ("categories", "crosswalk")}
    data.update(id="icare-official-toy", version="1.0", status="official")
    data["levels"] = {1: "sector", 2: "care type"}
    data["categories"] = [
        {
            "code": code,
            "level": level,
            "parent": parent,
            "label": label,
            "definition": label,
            "basis": "toy",
            "in_alternative_care": not boundary,
            "boundary": boundary,
        }
        for code, level, parent, label, boundary in OFFICIAL
    ]
    path = tmp_path / "official.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    provisional = load_classification()
    crosswalk = tmp_path / "ac-to-official.csv"
    rows = [f"{code},{official_for(code)}" for code in provisional.codes()]
    crosswalk.write_text("from_code,to_code\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path, crosswalk


def test_run_with_an_official_list_and_a_crosswalk(tmp_path, official, monkeypatch):
    monkeypatch.setenv(KEY_ENVIRONMENT_VARIABLE, TEST_KEY)
    write_return(
        tmp_path / "in",
        2024,
        headers=[header("1"), header("2")],
        episodes=[
            episode("1", "01/05/2023", dec="01/06/2023", rec="X1"),  # U4 foster care
            episode("1", "01/06/2023", rne="P", place="K2"),  # children's home
            episode("2", "02/02/2024", place="R5", ls="J1"),  # young offender institution
        ],
    )
    classification, crosswalk = official
    tables = run(RunOptions({"ssda903": tmp_path / "in"}, tmp_path / "out", classification, crosswalk)).tables
    episodes = tables["episodes"].to_pandas(date_as_object=False).sort_values(["child_key", "episode_start"])
    by_child = dict(
        zip(episodes["episode_start"].dt.strftime("%Y-%m-%d"), episodes["icare_code"], strict=True)
    )
    assert by_child == {"2023-05-01": "OFF.1.1", "2023-06-01": "OFF.1.2", "2024-02-02": "OFF.9"}
    assert set(episodes["icare_level1"]) == {"OFF.1", "OFF.9"}
    assert episodes["icare_level3"].isna().all()  # the official list has two levels
    version = "icare-official-toy@1.0+crosswalk:ac-to-official"
    assert set(episodes["classification_version"]) == {version}
    assert tables["runs"]["classification_version"].iloc[0] == version
    assert set(tables["icare_classification"]["code"]) == {code for code, *_ in OFFICIAL}
    concordance = tables["concordance"]
    place_u4 = concordance[
        (concordance["column"] == "PLACE")
        & (concordance["code"] == "U4")
        & (concordance["target"] == "icare_code")
    ]
    assert place_u4[["value", "output_value"]].values.tolist() == [["AC.F12", "OFF.1.1"]]
