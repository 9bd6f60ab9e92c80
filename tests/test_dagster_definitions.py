"""The Dagster code location: it loads, has one asset per stage, and publishes what ``icare run`` does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from icare.pipeline import RunOptions, bundled_samples, run
from icare.publish import DATABASE, PARQUET_DIR, RUN_SUMMARY
from icare.sources.registry import UnknownSourceError, available_sources
from icare.sources.ssda903.synthetic import generate_returns
from pipelines.assets import build_assets, checksums_digest
from pipelines.definitions import ASSETS, defs
from pipelines.resources import IcareSettings

REPO = Path(__file__).resolve().parents[1]
# Published tables whose content may differ between two runs on the same input (timings, clock).
RUN_DEPENDENT = {"runs"}


def _key(name: str) -> dg.AssetKey:
    return dg.AssetKey(name)


def _expected_graph(sources) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for s in sources:
        graph[f"{s}_inputs"] = set()
        graph[f"{s}_harmonised"] = {f"{s}_inputs"}
    graph["harmonised_tables"] = {f"{s}_harmonised" for s in sources}
    graph["statistics_tables"] = {"harmonised_tables"} | {f"{s}_harmonised" for s in sources}
    graph["published_outputs"] = {"harmonised_tables", "statistics_tables"} | {
        f"{s}_harmonised" for s in sources
    }
    return graph


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert repository.get_job("icare_full_run") is not None
    assert isinstance(defs.resources["icare_settings"], IcareSettings)


def test_asset_graph_has_every_stage_for_every_registered_source():
    sources = sorted(available_sources())
    assert "ssda903" in sources
    graph = defs.get_repository_def().asset_graph
    expected = _expected_graph(sources)
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == set(expected)
    for name, parents in expected.items():
        node = graph.get(_key(name))
        assert {p.to_user_string() for p in node.parent_keys} == parents, name
        assert node.description, f"{name} has no description"
    groups = {name: graph.get(_key(name)).group_name for name in expected}
    assert groups["published_outputs"] == "publication"
    assert groups["harmonised_tables"] == "harmonisation"
    for s in sources:
        assert groups[f"{s}_inputs"] == "ingestion"
        assert groups[f"{s}_harmonised"] == "harmonisation"


def test_full_run_job_selects_every_asset():
    job = defs.resolve_job_def("icare_full_run")
    assert set(job.asset_layer.executable_asset_keys) == {
        _key(name) for name in _expected_graph(available_sources())
    }


def test_a_new_source_folder_gives_new_assets(tmp_path, monkeypatch):
    """The factory loops over the registry: a new ``sources/<id>/source.yaml`` is enough."""
    data = tmp_path / "data"
    shutil.copytree(REPO / "classifications", data / "classifications")
    spec = (REPO / "sources" / "ssda903" / "source.yaml").read_text(encoding="utf-8")
    for name in ("ssda903", "other"):
        (data / "sources" / name).mkdir(parents=True)
        (data / "sources" / name / "source.yaml").write_text(
            spec.replace("id: ssda903", f"id: {name}"), encoding="utf-8"
        )
    monkeypatch.setenv("ICARE_DATA_DIR", str(data))
    keys = {a.key.to_user_string() for a in build_assets()}
    assert keys == set(_expected_graph(["other", "ssda903"]))


def test_a_source_left_out_of_the_settings_produces_nothing(tmp_path):
    assets = [a for a in build_assets(["other", "ssda903"]) if a.key.to_user_string().startswith("other_")]
    result = dg.materialize(
        assets,
        resources={
            "icare_settings": IcareSettings(sources={"ssda903": str(tmp_path)}),
            "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "storage")),
        },
    )
    assert result.success
    for name in ("other_inputs", "other_harmonised"):
        assert result.output_for_node(name) is None
        assert result.asset_materializations_for_node(name)[0].metadata["selected"].value is False


def test_settings_defaults(monkeypatch):
    monkeypatch.delenv("ICARE_OUTPUT_DIR", raising=False)
    settings = IcareSettings()
    assert settings.source_paths() == bundled_samples()
    assert settings.output_path() == Path("outputs")
    monkeypatch.setenv("ICARE_OUTPUT_DIR", "/somewhere/else")
    assert settings.output_path() == Path("/somewhere/else")
    assert IcareSettings(output_dir="explicit").output_path() == Path("explicit")


def test_settings_reject_an_unknown_source():
    with pytest.raises(UnknownSourceError, match="ssda903"):
        IcareSettings(sources={"atlantis": "returns/"}).source_paths()


def test_sample_needs_no_key_but_real_returns_do(tmp_path, monkeypatch):
    monkeypatch.delenv("ICARE_PSEUDONYM_KEY", raising=False)
    assert IcareSettings().pseudonymiser().development
    from icare.pseudonymise import MissingKeyError

    with pytest.raises(MissingKeyError):
        IcareSettings(sources={"ssda903": str(tmp_path)}).pseudonymiser()


def _read_duckdb(path: Path) -> dict[str, pd.DataFrame]:
    connection = duckdb.connect(str(path), read_only=True)
    try:
        names = [row[0] for row in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        return {name: connection.execute(f'SELECT * FROM "{name}" ORDER BY ALL').df() for name in names}
    finally:
        connection.close()


def _read_parquet(folder: Path) -> dict[str, pd.DataFrame]:
    return {path.stem: pd.read_parquet(path) for path in sorted(folder.glob("*.parquet"))}


@pytest.mark.slow
@pytest.mark.parametrize("case", ["bundled_sample", "own_returns_with_defects"])
def test_materialised_outputs_equal_those_of_icare_run(case, tmp_path, monkeypatch):
    """Same input, same functions: every published table but ``runs`` is identical, row for row."""
    monkeypatch.delenv("ICARE_OUTPUT_DIR", raising=False)
    if case == "bundled_sample":
        monkeypatch.delenv("ICARE_PSEUDONYM_KEY", raising=False)  # the development key, both ways
        sources, configured = bundled_samples(), {}
    else:
        monkeypatch.setenv("ICARE_PSEUDONYM_KEY", "a-test-key-for-the-dagster-tests-0123456789")
        returns = generate_returns(tmp_path / "returns", children=120, fmt="xlsx", defects=True).root
        sources = {"ssda903": returns}
        configured = {"ssda903": str(returns)}
    cli_dir, dagster_dir = tmp_path / "cli", tmp_path / "dagster"
    cli = run(RunOptions(sources, cli_dir))

    result = dg.materialize(
        ASSETS,
        resources={
            "icare_settings": IcareSettings(sources=configured, output_dir=str(dagster_dir)),
            "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "storage")),
        },
    )
    assert result.success

    for read, location in ((_read_duckdb, DATABASE), (_read_parquet, PARQUET_DIR)):
        expected, actual = read(cli_dir / location), read(dagster_dir / location)
        assert set(actual) == set(expected), location
        assert {"episodes", "children", "quarantine", "reconciliation", "runs"} <= set(actual)
        assert len(actual["episodes"]) > 0
        for name in sorted(set(expected) - RUN_DEPENDENT):
            pd.testing.assert_frame_equal(actual[name], expected[name], obj=f"{location}: {name}")
        runs = actual["runs"]
        assert runs["run_id"].tolist() == [cli.run_id]
        assert bool(runs["development_key"].iloc[0]) == (case == "bundled_sample")
        assert (
            runs["pseudonym_key_fingerprint"].tolist()
            == expected["runs"]["pseudonym_key_fingerprint"].tolist()
        )
    if case != "bundled_sample":
        assert len(actual["quarantine"]) > 0  # the defects took the quarantine path on both sides

    cli_summary = json.loads((cli_dir / RUN_SUMMARY).read_text(encoding="utf-8"))
    dagster_summary = json.loads((dagster_dir / RUN_SUMMARY).read_text(encoding="utf-8"))
    assert dagster_summary == cli_summary

    published = result.asset_materializations_for_node("published_outputs")[0].metadata
    assert published["run_id"].value == cli.run_id
    assert published["output_path"].value == str(dagster_dir.resolve())
    assert published["episodes"].value == len(cli.tables["episodes"])
    assert published["classification_version"].value == cli.summary["classification_version"]
    inputs = cli.tables["inputs"]
    assert published["input_files"].value == len(inputs)

    harmonised = result.asset_materializations_for_node("ssda903_harmonised")[0].metadata
    rows = cli.summary["rows"]["ssda903"]
    for column in ("rows_read", "rows_accepted", "rows_quarantined", "rows_superseded"):
        assert harmonised[column].value == rows[column], column
    extraction = result.asset_materializations_for_node("ssda903_inputs")[0].metadata
    assert extraction["input_files"].value == int((inputs["source"] == "ssda903").sum())
    assert extraction["input_checksums_digest"].value == harmonised["input_checksums_digest"].value


def test_checksums_digest_ignores_order():
    from icare.sources.base import InputFile

    a = InputFile("s", Path("a"), "a.csv", 2024, "201", "00", 1)
    b = InputFile("s", Path("b"), "b.csv", 2024, "201", "11", 1)
    assert checksums_digest([a, b]) == checksums_digest([b, a]) != checksums_digest([a])


@pytest.mark.slow
def test_dg_check_defs_passes_with_telemetry_off(tmp_path):
    dg_command = Path(sys.executable).with_name("dg")
    if not dg_command.exists():
        dg_command = Path(shutil.which("dg") or "dg")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "VIRTUAL_ENV": str(Path(sys.executable).parent.parent),
    }
    completed = subprocess.run(
        [str(dg_command), "check", "defs"],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "All definitions loaded successfully" in completed.stdout + completed.stderr
    # With telemetry on, Dagster would have written its instance id and action log here.
    assert not (home / ".telemetry").exists()
    assert not (home / "logs").exists()
