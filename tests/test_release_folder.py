"""The release folder describes itself: a valid Frictionless data package, checksums, code lists
holding every code used, a dataset card, a citation and a changelog naming what changed."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from frictionless import validate

from icare.classification import load_classification
from icare.cli import main
from icare.disclosure import load_disclosure_rules
from icare.pipeline import RunOptions, bundled_samples, run
from icare.pseudonymise import KEY_ENVIRONMENT_VARIABLE
from icare.release import ReleaseContext, write_release_files
from icare.release.card import card
from icare.release.changelog import changelog
from icare.release.datapackage import frictionless_type
from icare.release.settings import ReleaseSettingsError, load_release_settings
from icare.resources import config_dir
from icare.statistics import load_statistics_settings
from schemas.outputs import RELEASE_TABLES, TOTAL
from tests.builders import episode, header, write_return
from tests.conftest import TEST_KEY

OTHER_LICENCE = """
licence:
  id: CC-BY-4.0
  name: Creative Commons Attribution 4.0 International
  url: https://creativecommons.org/licenses/by/4.0/
"""


@pytest.fixture(scope="module")
def sample_release(tmp_path_factory):
    """``icare run`` on the bundled sample (development key) once: the result and its release folder."""
    output = tmp_path_factory.mktemp("sample") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(KEY_ENVIRONMENT_VARIABLE, raising=False)
        result = run(RunOptions(bundled_samples(), output))
    return result, output / "release"


def sample_context(result, folder: Path, started_at: datetime, **changes) -> ReleaseContext:
    """The context ``_publish`` gave the writers for the sample run, rebuilt from its result."""
    runs = result.tables["runs"]
    context = ReleaseContext(
        folder=folder,
        run_id=result.run_id,
        started_at=started_at,
        tables=result.release,
        classification=load_classification(),
        disclosure=load_disclosure_rules(),
        summary=result.summary,
        statistics=load_statistics_settings(),
        concordance_versions=json.loads(runs["concordance_versions"].iloc[0]),
        sample_data=True,
    )
    return replace(context, **changes)


def test_the_data_package_is_valid_and_describes_every_data_file(sample_release):
    result, folder = sample_release
    report = validate(folder / "datapackage.json")
    assert report.valid, report.flatten(["resourceName", "rowNumber", "fieldName", "type", "note"])[:10]
    package = json.loads((folder / "datapackage.json").read_text())
    described = {resource["path"] for resource in package["resources"]}
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    own = {"datapackage.json", "SHA256SUMS", "README.md", "CHANGELOG.md", "CITATION.cff"}
    assert described == files - own
    assert {f"{table}.parquet" for table in RELEASE_TABLES} <= described
    assert package["licenses"] == [
        {
            "name": "OGL-UK-3.0",
            "title": "Open Government Licence v3.0",
            "path": "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/",
        }
    ]
    assert package["version"] == f"{package['created'][:10].replace('-', '.')}+{result.run_id}"
    assert package["icare"]["classification_version"] == "icare-ac-provisional@0.2.0"
    for resource in package["resources"]:
        assert (
            resource["hash"]
            == "sha256:" + hashlib.sha256((folder / resource["path"]).read_bytes()).hexdigest()
        )
        if resource["path"].endswith(".parquet"):
            # Validation reads Parquet as a file only (datapackage.py says why): the fields declared
            # must be the file's own columns and types, with the meanings of schemas/outputs.py.
            schema = pq.read_schema(folder / resource["path"])
            fields = resource["schema"]["fields"]
            assert [(f["name"], f["type"]) for f in fields] == [
                (f.name, frictionless_type(f.type)) for f in schema
            ]
            meanings = {c.name: c.description for c in RELEASE_TABLES[resource["name"]]}
            assert all(f["description"] == meanings[f["name"]] for f in fields)


def test_a_changed_file_makes_the_package_invalid(sample_release, tmp_path):
    _, folder = sample_release
    copy = shutil.copytree(folder, tmp_path / "release")
    with (copy / "stock.parquet").open("ab") as handle:
        handle.write(b"\0")
    report = validate(copy / "datapackage.json")
    assert not report.valid
    assert {error[0] for error in report.flatten(["type"])} == {"hash-count", "byte-count"}


def test_checksums_cover_every_file_and_verify(sample_release):
    _, folder = sample_release
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in lines)
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert set(listed) == files and "datapackage.json" in files and "codelists/icare_codes.csv" in files
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    if shutil.which("sha256sum"):
        done = subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=folder, capture_output=True)
        assert done.returncode == 0, done.stdout


def test_code_lists_hold_every_code_the_release_uses(sample_release):
    result, folder = sample_release
    lists = {
        p.stem: pd.read_csv(p, dtype=str, keep_default_na=False) for p in (folder / "codelists").glob("*.csv")
    }
    assert set(lists) == {"icare_codes", "dimensions", "exit_destinations", "sexes", "age_bands", "areas"}
    classification = load_classification()
    codes = lists["icare_codes"]
    listed = len(classification)
    assert list(codes["code"][:listed]) == classification.codes()
    # Beyond the classification: where an entry's transition starts (exit destinations, where an
    # exit's ends, are in their own list).
    assert set(codes["code"][listed:]) - {TOTAL} == {"out_of_care"}  # total: the margin rows' marker
    assert dict(zip(codes["code"], codes["label"], strict=True))["AC.F"] == "Formal alternative care"
    assert set(codes.loc[codes["level"] == "1", "code"]) == set(classification.codes(level=1))
    # Sex labels from the source's code list (SEX M, F, U of 2024/25).
    assert list(lists["sexes"]["label"][:3]) == ["Male", "Female", "Unknown or indeterminate"]
    bands = list(lists["age_bands"]["code"])
    assert bands[:6] == ["under 1", "1-4", "5-9", "10-15", "16-17", "18 and over"]
    assert set(bands[6:]) <= {TOTAL, "under 18", "unknown"}  # used by the release, not in the settings
    assert set(lists["areas"]["area_code"]) - {TOTAL} == {"201", "202"}
    dimension = lists["dimensions"]
    for name, table in result.release.items():
        for column in table.column_names:
            used = set(table[column].drop_null().to_pylist()) if table[column].type == "string" else set()
            # an indicator summed over several codes names them joined by " + "
            used = {part for value in used for part in value.split(" + ")}
            if column.startswith(("from_", "to_")):
                assert used <= set(codes["code"]) | set(lists["exit_destinations"]["code"]), (name, column)
            elif column == "icare_level":  # which level a row adds up: not a code
                assert used <= {"code", "level2", "level1", TOTAL}, name
            elif column.startswith(("icare_code", "icare_level")):
                assert used <= set(codes["code"]), (name, column)
            elif column == "sex":
                assert used <= set(lists["sexes"]["code"]), name
            elif column == "age_band":
                assert used <= set(lists["age_bands"]["code"]), name
            elif column in ("provider_sector", "exit_destination"):
                assert used <= set(dimension.loc[dimension["dimension"] == column, "code"]), (name, column)
            elif column == "area_code":
                assert used <= set(lists["areas"]["area_code"]), name
    exits = lists["exit_destinations"]
    listed = [v.code for v in classification.exit_destinations.values]
    assert list(exits["code"][: len(listed)]) == listed
    assert set(exits["code"][len(listed) :]) <= {TOTAL}  # the margin rows' marker


def test_the_card_and_citation_say_what_the_release_is(sample_release):
    result, folder = sample_release
    text = (folder / "README.md").read_text()
    version = json.loads((folder / "datapackage.json").read_text())["version"]
    assert f"- Version: {version}" in text
    # The sample: 4 collection years of 2 areas, all complete; stock on 31 March 2022 to 2025.
    assert "- ssda903: complete returns from 2 area(s), collection years 2022 to 2025" in text
    assert "from 2022-03-31 to 2025-03-31" in text
    assert "Figures for synthetic sample data" in text
    assert "Open Government Licence v3.0 (OGL-UK-3.0)" in text
    assert "`icare-ac-provisional@0.2.0` (provisional)" in text
    assert f"| `stock.parquet` | {result.release['stock'].num_rows:,} |" in text
    assert "../shared" not in text
    assert f"icare project ({version[:4]}). {text.split(chr(10))[0][2:]}, version {version}." in text
    citation = (folder / "CITATION.cff").read_text()
    assert "cff-version: 1.2.0" in citation and "license: OGL-UK-3.0" in citation
    assert f"version: {version}" in citation
    assert (
        (folder / "CHANGELOG.md")
        .read_text()
        .endswith("First release in this output folder: there is no earlier release to compare with.\n")
    )


def test_the_card_depends_on_the_run_and_its_day_only(sample_release, tmp_path):
    """The CLI and Dagster start a run at different times: the same run on the same day gives the
    same card, byte for byte, as the one written."""
    result, folder = sample_release
    written = (folder / "README.md").read_text()
    day = datetime.strptime(written.split("- Run: ")[1].split(" of ")[1][:10], "%Y-%m-%d")
    morning = sample_context(result, tmp_path, day.replace(hour=8, tzinfo=UTC))
    evening = sample_context(result, tmp_path, day.replace(hour=23, minute=59, tzinfo=UTC))
    assert card(morning) == card(evening) == written


def test_the_licence_is_chosen_in_the_release_settings(sample_release, tmp_path):
    result, folder = sample_release
    settings_file = tmp_path / "release.yaml"
    settings_file.write_text(
        (config_dir() / "release.yaml").read_text().split("licence:")[0]
        + OTHER_LICENCE
        + "contact:"
        + (config_dir() / "release.yaml")
        .read_text()
        .split("contact:", 1)[1]
        .replace("version: auto", "version: 1.2.0")
    )
    settings = load_release_settings(settings_file)
    target = tmp_path / "release"
    target.mkdir()
    for table in result.release:
        shutil.copy(folder / f"{table}.parquet", target)
    context = sample_context(result, target, datetime(2026, 1, 2, tzinfo=UTC), settings=settings)
    write_release_files(context)
    package = json.loads((target / "datapackage.json").read_text())
    assert package["licenses"][0]["name"] == "CC-BY-4.0" and package["version"] == "1.2.0"
    assert validate(target / "datapackage.json").valid
    text = (target / "README.md").read_text()
    assert "Creative Commons Attribution 4.0 International (CC-BY-4.0)" in text
    assert "Open Government" not in text
    assert "license: CC-BY-4.0" in (target / "CITATION.cff").read_text()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda t: t.replace("  url: https://www.nat", "  link: https://www.nat"),
            ["licence.url: Field required", "licence.link: Extra inputs are not permitted"],
        ),
        (lambda t: t.replace("    - icare project", ""), ["citation.authors: Input should be a valid"]),
        (lambda t: t.replace("version: auto", "version: [1]"), ["version: Input should be a valid string"]),
        (lambda t: "- a list\n", ["expected a mapping of settings"]),
    ],
)
def test_release_settings_errors_name_the_file_and_key(tmp_path, change, named):
    bad = tmp_path / "release.yaml"
    bad.write_text(change((config_dir() / "release.yaml").read_text()))
    with pytest.raises(ReleaseSettingsError) as raised:
        load_release_settings(bad)
    assert str(raised.value).startswith(f"{bad}: ")
    for words in named:
        assert words in str(raised.value)


def test_the_command_stops_on_bad_release_settings_before_reading(tmp_path, monkeypatch):
    bad = tmp_path / "release.yaml"
    bad.write_text("title: x\n")
    monkeypatch.setenv(KEY_ENVIRONMENT_VARIABLE, TEST_KEY)
    done = CliRunner().invoke(
        main, ["run", "--release-config", str(bad), "--output", str(tmp_path / "out"), "--quiet"]
    )
    assert done.exit_code == 2
    assert f"{bad}: " in done.output and "licence: Field required" in done.output
    assert not (tmp_path / "out" / "release").exists()


def seven_children(root: Path, seventh_place: str) -> None:
    """Seven boys aged 11 placed on 1 May 2023 and still in care; the seventh in ``seventh_place``."""
    children = [str(n) for n in range(1, 8)]
    write_return(
        root,
        2024,
        headers=[header(c) for c in children],
        episodes=[episode(c, "01/05/2023", place=seventh_place if c == "7" else "U4") for c in children],
    )


def test_the_changelog_names_what_a_changed_return_changed(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENVIRONMENT_VARIABLE, TEST_KEY)
    licence = tmp_path / "release.yaml"
    licence.write_text((config_dir() / "release.yaml").read_text().replace("version: auto", "version: 2.0.0"))
    seven_children(tmp_path / "in", "U4")  # foster care (AC.F12): 7 in one stock cell
    run(RunOptions({"ssda903": tmp_path / "in"}, tmp_path / "out"))
    seven_children(tmp_path / "in", "K2")  # the seventh now in a children's home (AC.F29)
    run(RunOptions({"ssda903": tmp_path / "in"}, tmp_path / "out", release_path=licence))
    release = tmp_path / "out" / "release"
    text = (release / "CHANGELOG.md").read_text()
    assert text.startswith("# Changes in release 2.0.0\n")
    assert "Unchanged: icare_version, classification_version, concordance_versions" in text
    stock = text.split("### stock\n")[1].split("###")[0]
    # 7 in foster care become 6 there and 1 in a children's home: the 1 is withheld as a small
    # count (A) and the 6 with it (D), as the area total of 7 is published in flow_check. Read at
    # the boys of area 201 by category (the category-by-sex breakdown of the release).
    assert "- children_status: F → D in " in stock
    boys = [
        line
        for line in stock.splitlines()
        if "· 201 · 2024-03-31 · code ·" in line and "· M · total · total ·" in line
    ]
    changed = [line for line in boys if line.startswith("- changed")]
    added = [line for line in boys if line.startswith("- added")]
    assert len(changed) == 1 and "· AC.F12 · AC.F · AC.F1 · M ·" in changed[0]
    assert "children: 7 → empty, children_status: F → D" in changed[0]
    assert len(added) == 1 and "· AC.F29 · AC.F · AC.F2 · M ·" in added[0]
    assert "children: empty, children_status: A" in added[0]
    assert not [line for line in stock.splitlines() if line.startswith("- removed")]
    assert "flow_check" in text.split("No change in: ")[1].split("\n")[0]
    assert validate(release / "datapackage.json").valid


def copy_tables(result, folder: Path, target: Path) -> Path:
    target.mkdir()
    for table in result.release:
        shutil.copy(folder / f"{table}.parquet", target)
    return target


def test_an_earlier_release_without_a_data_package_compares_by_its_tables(sample_release, tmp_path):
    """The same tables again: no figure changed (each table's key names one row), and the versions
    of a release made before data packages are read from its tables."""
    result, folder = sample_release
    previous = copy_tables(result, folder, tmp_path / "previous")
    target = copy_tables(result, folder, tmp_path / "release")
    context = sample_context(result, target, datetime(2026, 1, 2, tzinfo=UTC), previous=previous)
    text = changelog(context)
    assert "Compared with the release it replaced (version unknown)." in text
    assert "- Unchanged: classification_version, disclosure_rules\n" in text
    assert f"No change in: {', '.join(sorted(result.release))}.\n" in text
    assert "###" not in text


def test_other_csv_files_are_described_from_their_header(sample_release, tmp_path):
    """An open-data CSV (withheld values as ``c``) with its meta file, and an SDMX-CSV in a
    sub-folder, as other writers leave them before the data package is written."""
    result, folder = sample_release
    target = copy_tables(result, folder, tmp_path / "release")
    # Names no writer of the release uses, so that the writers leave them as they are.
    (target / "other.csv").write_text("time_period,children\n202425,12\n202425,c\n202425,\n")
    (target / "other.meta.csv").write_text("col_name,col_type,label\nchildren,Indicator,Children in care\n")
    (target / "sdmx").mkdir()
    (target / "sdmx" / "other.csv").write_text("STRUCTURE,OBS_VALUE\ndataflow,3\n")
    write_release_files(sample_context(result, target, datetime(2026, 1, 2, tzinfo=UTC)))
    report = validate(target / "datapackage.json")
    assert report.valid, report.flatten(["resourceName", "rowNumber", "fieldName", "type", "note"])[:10]
    resources = {r["path"]: r for r in json.loads((target / "datapackage.json").read_text())["resources"]}
    other = resources["other.csv"]
    assert other["name"] == "other.csv" and resources["stock.parquet"]["name"] == "stock"
    assert resources["stock.csv"]["name"] == "stock.csv"  # the open-data CSV beside the table
    assert other["schema"]["missingValues"] == ["", "c"]
    assert other["schema"]["fields"] == [
        {"name": "time_period", "type": "string"},
        {"name": "children", "type": "string", "description": "Children in care"},
    ]
    assert resources["other.meta.csv"]["name"] == "other.meta.csv"
    assert resources["sdmx/other.csv"]["name"] == "sdmx-other.csv"
    assert "sdmx/other.csv" in (target / "SHA256SUMS").read_text()
