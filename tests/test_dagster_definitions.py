"""The Dagster code location: it loads, has one asset per stage, and publishes what ``icare run`` does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from icare.checks import unmapped_codes
from icare.discovery import discover
from icare.pipeline import RunOptions, bundled_samples, run
from icare.publish import DATABASE, PARQUET_DIR, RELEASE_DIR, RUN_SUMMARY
from icare.sources.base import SourceInputError
from icare.sources.registry import UnknownSourceError, available_sources
from icare.sources.spec import load_source_spec
from icare.sources.ssda903.synthetic import generate_returns
from icare.statistics import STATISTICS_TABLES
from pipelines import assets as assets_module
from pipelines.assets import (
    build_assets,
    checksums_digest,
    files_by_partition,
    published_tables,
    quarantine_check,
    release_key,
    table_key,
)
from pipelines.definitions import ASSETS, defs
from pipelines.resources import IcareSettings
from schemas.outputs import (
    RELEASE_COUNTS,
    RELEASE_DESCRIPTIONS,
    RELEASE_TABLES,
    TABLES,
    column_names,
    release_name,
)

REPO = Path(__file__).resolve().parents[1]
# Published tables whose content may differ between two runs on the same input (timings, clock).
RUN_DEPENDENT = {"runs"}
# The step that writes every published table, the database and the release in one swap.
PUBLISH_NODE = "publish_outputs"


def _key(name: str) -> dg.AssetKey:
    return dg.AssetKey(name)


def _expected_graph(sources) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for s in sources:
        graph[f"{s}_returns"] = set()
        graph[f"{s}_harmonised"] = {f"{s}_returns"}
    graph["harmonised_tables"] = {f"{s}_harmonised" for s in sources}
    graph["statistics_tables"] = {"harmonised_tables"} | {f"{s}_harmonised" for s in sources}
    harmonised = {f"{s}_harmonised" for s in sources}
    tables = {f"icare/{table}" for table in published_tables()}
    for table in tables:
        graph[table] = {"harmonised_tables"}
    for table in STATISTICS_TABLES:
        graph[f"icare/{table}"] = {"statistics_tables"}
    graph["icare/runs"] = {"harmonised_tables", "statistics_tables"} | harmonised
    graph["icare/data_dictionary"] = set()
    released = {f"icare_release/{table}" for table in RELEASE_DESCRIPTIONS}
    for table in RELEASE_DESCRIPTIONS:
        graph[f"icare_release/{table}"] = {f"icare/{table}"}
    # the indicators are computed from the released count tables (docs/indicators.md)
    graph["icare_release/indicators"] = {f"icare_release/{table}" for table in RELEASE_COUNTS}
    graph["icare_release/disclosure_summary"] = released - {
        "icare_release/disclosure_summary",
        "icare_release/indicators",
    }
    graph["icare_duckdb"] = tables | released
    graph["parquet_release"] = set(tables)
    graph["disclosure_release"] = released
    return graph


def _materialisation(result: dg.ExecuteInJobResult, key: dg.AssetKey) -> dict:
    """The metadata of the one materialisation of ``key`` in a run."""
    (event,) = [m for m in result.asset_materializations_for_node(PUBLISH_NODE) if m.asset_key == key]
    return event.metadata


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    repository = defs.get_repository_def()
    assert repository.get_job("icare_publish") is not None
    assert repository.get_job("ssda903_ingest") is not None
    assert isinstance(defs.resources["icare_settings"], IcareSettings)
    sensor = repository.get_sensor_def("icare_landing_sensor")
    schedule = repository.get_schedule_def("ssda903_yearly_refresh")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == "0 2 1 8 *"


def test_asset_graph_has_every_stage_for_every_registered_source():
    sources = sorted(available_sources())
    assert "ssda903" in sources
    graph = defs.get_repository_def().asset_graph
    expected = _expected_graph(sources)
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == set(expected)
    for name, parents in expected.items():
        node = graph.get(dg.AssetKey.from_user_string(name))
        assert {p.to_user_string() for p in node.parent_keys} == parents, name
        assert node.description, f"{name} has no description"
        assert node.owners == ["team:icare-statistics"], name
    groups = {name: graph.get(dg.AssetKey.from_user_string(name)).group_name for name in expected}
    assert groups["icare_duckdb"] == groups["parquet_release"] == groups["icare/episodes"] == "publication"
    assert groups["harmonised_tables"] == "harmonisation"
    for s in sources:
        assert groups[f"{s}_returns"] == "ingestion"
        assert groups[f"{s}_harmonised"] == "harmonisation"
        returns = graph.get(_key(f"{s}_returns"))
        assert isinstance(returns.partitions_def, dg.DynamicPartitionsDefinition)
        assert returns.partitions_def.name == f"{s}_collection_years"
        assert graph.get(_key(f"{s}_harmonised")).partitions_def is None
    episodes = graph.get(_key("ssda903_harmonised")).metadata["dagster/column_schema"]
    assert "child_key" in {c.name for c in episodes.columns}
    raw = graph.get(_key("ssda903_returns")).metadata["dagster/column_schema"]
    assert {"CHILD", "DECOM"} <= {c.name for c in raw.columns}
    assert not {"HOME_POST", "PL_POST"} & {c.name for c in raw.columns}  # dropped when sealed


def test_every_published_table_has_an_asset_with_its_columns():
    graph = defs.get_repository_def().asset_graph
    assert set(published_tables()) == {*TABLES, "data_dictionary"}
    for table in published_tables():
        node = graph.get(table_key(table))
        assert node.group_name == "publication" and node.owners == ["team:icare-statistics"], table
        assert node.description and table in node.description, table
        schema = node.metadata["dagster/column_schema"]
        expected = column_names(table) if table in TABLES else list(DATA_DICTIONARY_COLUMNS)
        assert [c.name for c in schema.columns] == expected, table
    for name in ("icare/quarantine", "icare/episodes", "icare/care_spells", "icare/placement_spells"):
        assert dg.AssetKey.from_user_string(name) in graph.get_all_asset_keys()
    assert set(RELEASE_DESCRIPTIONS) == set(RELEASE_TABLES)
    for table in RELEASE_TABLES:
        node = graph.get(release_key(table))
        assert node.group_name == "publication" and release_name(table) in node.description, table
        schema = node.metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == column_names(release_name(table)), table


DATA_DICTIONARY_COLUMNS = ("table_name", "column_name", "type", "nullable", "description")


def test_checks_are_wired_and_blocking_where_figures_would_be_wrong():
    graph = defs.get_repository_def().asset_graph
    specs = {
        (key.asset_key.to_user_string(), key.name): graph.get_check_spec(key)
        for key in graph.asset_check_keys
    }
    blocking = {key for key, spec in specs.items() if spec.blocking}
    assert blocking == {
        ("ssda903_harmonised", "reconciliation_balances"),
        ("ssda903_harmonised", "returns_complete"),
        ("ssda903_harmonised", "no_duplicate_episodes"),
        ("statistics_tables", "flow_identity"),
    }
    assert {("ssda903_returns", "schema_valid"), ("ssda903_harmonised", "codes_mapped")} <= set(specs)
    assert ("disclosure_release", "release_protected") in specs


def test_publishing_is_in_the_one_writer_pool():
    graph = defs.get_repository_def().asset_graph
    for key in (_key("icare_duckdb"), _key("parquet_release"), table_key("episodes")):
        assert graph.get(key).pools == {"icare_duckdb_writer"}
    writers = {k for k in graph.get_all_asset_keys() if graph.get(k).pools}
    assert writers == {
        _key("icare_duckdb"),
        _key("parquet_release"),
        _key("disclosure_release"),
        *map(table_key, published_tables()),
        *map(release_key, RELEASE_TABLES),
    }
    config = yaml.safe_load((REPO / "dagster.yaml").read_text(encoding="utf-8"))
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["telemetry"]["enabled"] is False


@pytest.fixture
def other_source(tmp_path, monkeypatch):
    """A data folder whose registry knows a second source, ``other`` (a copy of ssda903's spec)."""
    data = tmp_path / "data"
    shutil.copytree(REPO / "classifications", data / "classifications")
    spec = (REPO / "sources" / "ssda903" / "source.yaml").read_text(encoding="utf-8")
    for name in ("ssda903", "other"):
        (data / "sources" / name).mkdir(parents=True)
        (data / "sources" / name / "source.yaml").write_text(
            spec.replace("id: ssda903", f"id: {name}"), encoding="utf-8"
        )
    monkeypatch.setenv("ICARE_DATA_DIR", str(data))


def test_a_new_source_folder_gives_new_assets(other_source):
    """The factory loops over the registry: a new ``sources/<id>/source.yaml`` is enough."""
    keys = {key.to_user_string() for a in build_assets() for key in a.keys}
    assert keys == set(_expected_graph(["other", "ssda903"]))


def _resources(tmp_path: Path, settings: IcareSettings) -> dict[str, object]:
    return {
        "icare_settings": settings,
        "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "storage")),
    }


def test_a_source_left_out_of_the_settings_produces_nothing(tmp_path, other_source):
    assets = [
        a
        for a in build_assets(["other", "ssda903"])
        if all(k.to_user_string().startswith("other_") for k in a.keys)
    ]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("other_collection_years", ["2024"])
    resources = _resources(tmp_path, IcareSettings(sources={"ssda903": str(tmp_path)}))
    first = dg.materialize(
        assets, selection=["other_returns"], partition_key="2024", instance=instance, resources=resources
    )
    second = dg.materialize(assets, selection=["other_harmonised"], instance=instance, resources=resources)
    assert first.success and second.success
    assert first.output_for_node("other_returns") is None
    assert second.output_for_node("other_harmonised") is None
    for result, name in ((first, "other_returns"), (second, "other_harmonised")):
        assert result.asset_materializations_for_node(name)[0].metadata["selected"].value is False


def materialise_everything(
    tmp_path: Path,
    settings: IcareSettings,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
) -> tuple[list[dg.ExecuteInJobResult], dg.ExecuteInJobResult]:
    """What the landing sensor and the automation sensor do, in-process: each collection year of
    every source as its own run, then one run of everything else."""
    instance = instance or dg.DagsterInstance.ephemeral()
    resources = _resources(tmp_path, settings)
    years = []
    for name, path in settings.source_paths().items():
        keys = sorted(files_by_partition(discover(path, load_source_spec(name))))
        instance.add_dynamic_partitions(f"{name}_collection_years", keys)
        for key in keys:
            years.append(
                dg.materialize(
                    ASSETS,
                    selection=[f"{name}_returns"],
                    partition_key=key,
                    instance=instance,
                    resources=resources,
                )
            )
    rest = dg.AssetSelection.all() - dg.AssetSelection.groups("ingestion")
    final = dg.materialize(
        ASSETS, selection=rest, instance=instance, resources=resources, raise_on_error=raise_on_error
    )
    return years, final


def test_settings_defaults(monkeypatch):
    monkeypatch.delenv("ICARE_OUTPUT_DIR", raising=False)
    monkeypatch.delenv("ICARE_LANDING_DIR", raising=False)
    settings = IcareSettings()
    assert settings.source_paths() == bundled_samples()
    assert settings.output_path() == Path("outputs")
    monkeypatch.setenv("ICARE_OUTPUT_DIR", "/somewhere/else")
    assert settings.output_path() == Path("/somewhere/else")
    assert IcareSettings(output_dir="explicit").output_path() == Path("explicit")


def test_settings_from_a_landing_folder(tmp_path, monkeypatch):
    (tmp_path / "ssda903").mkdir()
    monkeypatch.setenv("ICARE_LANDING_DIR", str(tmp_path))
    assert IcareSettings().source_paths() == {"ssda903": tmp_path / "ssda903"}
    assert IcareSettings(sources={"ssda903": "elsewhere"}).source_paths() == {"ssda903": Path("elsewhere")}
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceInputError, match="no source folder"):
        IcareSettings(landing_dir=str(empty)).source_paths()
    monkeypatch.setenv("ICARE_CLASSIFICATION", str(tmp_path / "other.yaml"))
    assert IcareSettings().run_options().classification_path == tmp_path / "other.yaml"


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
    """Every table of the database, by name (``release.<table>`` for the schema ``release``)."""
    connection = duckdb.connect(str(path), read_only=True)
    try:
        names = connection.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        return {
            (table if schema == "main" else f"{schema}.{table}"): connection.execute(
                f'SELECT * FROM "{schema}"."{table}" ORDER BY ALL'
            ).df()
            for schema, table in names
        }
    finally:
        connection.close()


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative path, with its contents."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _read_parquet(folder: Path) -> dict[str, pd.DataFrame]:
    return {path.stem: pd.read_parquet(path) for path in sorted(folder.glob("*.parquet"))}


@pytest.mark.slow
@pytest.mark.parametrize("case", ["bundled_sample", "own_returns_with_defects"])
def test_materialised_outputs_equal_those_of_icare_run(case, tmp_path, monkeypatch):
    """Same input, same functions: every published table but ``runs`` is identical, row for row.

    The bundled sample takes its population by default on both sides; own returns get the population
    as ``--population`` (``RunOptions.population_path``) and as ``$ICARE_POPULATION``.
    """
    monkeypatch.delenv("ICARE_OUTPUT_DIR", raising=False)
    monkeypatch.delenv("ICARE_POPULATION", raising=False)
    population = None
    if case == "bundled_sample":
        monkeypatch.delenv("ICARE_PSEUDONYM_KEY", raising=False)  # the development key, both ways
        sources, configured = bundled_samples(), {}
    else:
        monkeypatch.setenv("ICARE_PSEUDONYM_KEY", "a-test-key-for-the-dagster-tests-0123456789")
        returns = generate_returns(tmp_path / "returns", children=120, fmt="xlsx", defects=True).root
        sources = {"ssda903": returns}
        configured = {"ssda903": str(returns)}
        # The generated returns have the sample's areas and years, so its population fits them.
        population = load_source_spec("ssda903").sample_population
        monkeypatch.setenv("ICARE_POPULATION", str(population))
    cli_dir, dagster_dir = tmp_path / "cli", tmp_path / "dagster"
    cli = run(RunOptions(sources, cli_dir, population_path=population))

    years, result = materialise_everything(
        tmp_path, IcareSettings(sources=configured, output_dir=str(dagster_dir))
    )
    assert len(years) == 4 and all(y.success for y in years)
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
        # Rates were computed on both sides (so the population path is compared, not two empty tables).
        assert len(actual["population"]) > 0 and actual["rates"]["rate_per_100000"].notna().any()
        assert json.loads(runs["population"].iloc[0]) == json.loads(expected["runs"]["population"].iloc[0])
    if case != "bundled_sample":
        assert len(actual["quarantine"]) > 0  # the defects took the quarantine path on both sides
    expected_release = _read_parquet(cli_dir / RELEASE_DIR)
    actual_release = _read_parquet(dagster_dir / RELEASE_DIR)
    assert set(actual_release) == set(expected_release) == set(RELEASE_TABLES)
    for name in sorted(RELEASE_TABLES):
        pd.testing.assert_frame_equal(actual_release[name], expected_release[name], obj=f"release: {name}")
    # The whole release folder, byte for byte: the same files, written by the same code.
    assert _folder_bytes(dagster_dir / RELEASE_DIR) == _folder_bytes(cli_dir / RELEASE_DIR)

    cli_summary = json.loads((cli_dir / RUN_SUMMARY).read_text(encoding="utf-8"))
    dagster_summary = json.loads((dagster_dir / RUN_SUMMARY).read_text(encoding="utf-8"))
    assert dagster_summary == cli_summary

    published = _materialisation(result, _key("icare_duckdb"))
    assert published["run_id"].value == cli.run_id
    assert published["path"].value == str((dagster_dir / DATABASE).resolve())
    in_database = _read_duckdb(dagster_dir / DATABASE)
    assert (
        published["tables"].value
        == sorted(t for t in in_database if "." not in t)
        == sorted(published_tables())
    )
    assert published["release_tables"].value == sorted(t for t in in_database if "." in t)
    assert published["release_tables"].value == sorted(map(release_name, RELEASE_TABLES))
    summary = pd.read_parquet(dagster_dir / RELEASE_DIR / "disclosure_summary.parquet")
    for table in RELEASE_TABLES:
        metadata = _materialisation(result, release_key(table))
        assert metadata["dagster/row_count"].value == len(in_database[release_name(table)]), table
        assert metadata["run_id"].value == cli.run_id
        assert metadata["disclosure_rules"].value == cli.summary["release"]["disclosure_rules"]
        if table in RELEASE_COUNTS:  # not disclosure_summary, nor coverage (no counts)
            rows = summary[summary["table_name"] == table]
            assert metadata["primary_suppressed"].value == rows["primary_suppressed"].sum(), table
            assert metadata["secondary_suppressed"].value == rows["secondary_suppressed"].sum(), table
    folder = _materialisation(result, _key("disclosure_release"))
    assert set(folder["files"].value) == {f"{t}.parquet" for t in RELEASE_TABLES}
    parquet = _read_parquet(dagster_dir / PARQUET_DIR)
    for table in published_tables():
        metadata = _materialisation(result, table_key(table))
        assert metadata["dagster/row_count"].value == len(parquet[table]), table
        assert metadata["path"].value == str((dagster_dir / PARQUET_DIR / f"{table}.parquet").resolve())
        assert metadata["run_id"].value == cli.run_id
        assert metadata["classification_version"].value == cli.summary["classification_version"]
    quarantine = _materialisation(result, table_key("quarantine"))
    assert quarantine["quarantine_records_by_rule"].value == cli.summary["quarantine_by_rule"]
    assert quarantine["quarantined_rows"].value <= len(parquet["quarantine"])
    assert (quarantine["quarantined_rows"].value > 0) == (case != "bundled_sample")
    release = _materialisation(result, _key("parquet_release"))
    assert set(release["files"].value) == {f"{t}.parquet" for t in published_tables()}
    assert release["path"].value == str((dagster_dir / PARQUET_DIR).resolve())
    assert published["output_path"].value == str(dagster_dir.resolve())
    assert published["episodes"].value == len(cli.tables["episodes"])
    assert published["classification_version"].value == cli.summary["classification_version"]
    inputs = cli.tables["inputs"]
    assert published["input_files"].value == len(inputs)

    harmonised = result.asset_materializations_for_node("ssda903_harmonised")[0].metadata
    rows = cli.summary["rows"]["ssda903"]
    for column in ("rows_read", "rows_accepted", "rows_quarantined", "rows_superseded"):
        assert harmonised[column].value == rows[column], column
    per_year = [y.asset_materializations_for_node("ssda903_returns")[0].metadata for y in years]
    assert sum(m["input_files"].value for m in per_year) == int((inputs["source"] == "ssda903").sum())
    assert sum(m["rows_read"].value for m in per_year) == rows["rows_read"]
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    for name in ("reconciliation_balances", "no_duplicate_episodes", "flow_identity"):
        assert checks[name].passed, name
    assert checks["no_quarantine"].passed == (case == "bundled_sample")
    protected = checks["release_protected"]
    assert protected.asset_key == dg.AssetKey("disclosure_release")
    assert protected.metadata["values_that_must_not_be_released"].value == 0
    unprotected = int(
        pq.read_table(dagster_dir / RELEASE_DIR / "disclosure_summary.parquet")["unprotected_groups"]
        .to_numpy()
        .sum()
    )
    assert protected.metadata["unprotected_groups"].value == unprotected
    assert protected.passed == (unprotected == 0)


@pytest.mark.slow
def test_one_partition_alone(tmp_path, monkeypatch):
    """One year is read, validated and sealed on its own; nothing stored holds a child id as received."""
    monkeypatch.setenv("ICARE_PSEUDONYM_KEY", "a-test-key-for-the-dagster-tests-0123456789")
    returns = generate_returns(tmp_path / "returns", children=60, defects=True).root
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("ssda903_collection_years", ["2023", "2024"])
    result = dg.materialize(
        ASSETS,
        selection=["ssda903_returns"],
        partition_key="2024",
        instance=instance,
        resources=_resources(tmp_path, IcareSettings(sources={"ssda903": str(returns)})),
    )
    assert result.success
    extraction = result.output_for_node("ssda903_returns")
    assert extraction.pseudonymised
    assert {f.collection_year for f in extraction.files} == {2024}
    metadata = result.asset_materializations_for_node("ssda903_returns")[0].metadata
    assert metadata["collection_year"].value == "2024"
    assert metadata["rows_read"].value == sum(len(t.rows) for t in extraction.tables) > 0
    # Only this partition was materialised.
    assert instance.get_materialized_partitions(dg.AssetKey("ssda903_returns")) == {"2024"}
    # The pickled value under the IO manager's folder holds child keys, not the ids of the returns.
    stored = b"".join(p.read_bytes() for p in (tmp_path / "storage").rglob("*") if p.is_file())
    received = pd.read_csv(returns / "2024" / "201" / "header.csv", dtype=str)["CHILD"]
    assert not [child for child in received if child.encode() in stored]


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


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, settings: IcareSettings, cursor):
    """One sensor evaluation, with its partition requests applied as the daemon would apply them."""
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"icare_settings": settings},
        repository_def=defs.get_repository_def(),
    )
    data: dg.SensorResult = sensor(context)
    added, deleted = [], []
    for request in data.dynamic_partitions_requests or []:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            added += request.partition_keys
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
            deleted += request.partition_keys
    # Every requested partition exists once the requests are applied (the daemon checks the same).
    job = defs.get_repository_def().get_job("ssda903_ingest")
    known = set(instance.get_dynamic_partitions("ssda903_collection_years"))
    for request in data.run_requests or []:
        assert request.partition_key is None or request.partition_key in known
        assert request.job_name in {job.name, "icare_publish"}
    return data, sorted(added), sorted(deleted)


@pytest.fixture
def instance():
    """A temporary instance with an instance ref, as the sensor daemon has (partition requests)."""
    with dg.instance_for_test() as instance:
        yield instance


def test_landing_sensor_runs_new_and_changed_years_only(tmp_path, instance):
    landing = tmp_path / "landing"
    returns = generate_returns(landing / "ssda903", children=30).root
    settings = IcareSettings(landing_dir=str(landing))
    sensor = defs.get_repository_def().get_sensor_def("icare_landing_sensor")

    first, added, _ = _tick(sensor, instance, settings, None)
    years = ["2022", "2023", "2024", "2025"]
    assert added == years
    assert sorted(r.partition_key for r in first.run_requests) == years
    assert {r.job_name for r in first.run_requests} == {"ssda903_ingest"}
    assert len({r.run_key for r in first.run_requests}) == 4

    unchanged, added, deleted = _tick(sensor, instance, settings, first.cursor)
    assert not unchanged.run_requests and added == deleted == []

    episodes = returns / "2024" / "201" / "episodes.csv"
    episodes.write_bytes(episodes.read_bytes())  # rewritten, same content: still unchanged
    assert not _tick(sensor, instance, settings, unchanged.cursor)[0].run_requests

    episodes.write_bytes(episodes.read_bytes() + b"\n")  # changed content
    changed, added, _ = _tick(sensor, instance, settings, unchanged.cursor)
    assert [r.partition_key for r in changed.run_requests] == ["2024"] and added == []
    assert changed.run_requests[0].run_key not in {r.run_key for r in first.run_requests}

    shutil.copytree(returns / "2025", returns / "2026")  # a new year
    new_year, added, _ = _tick(sensor, instance, settings, changed.cursor)
    assert added == ["2026"]
    assert [r.partition_key for r in new_year.run_requests] == ["2026"]

    shutil.rmtree(returns / "2022")  # a year withdrawn: its partition goes, the tables are republished
    removed, _, deleted = _tick(sensor, instance, settings, new_year.cursor)
    assert deleted == ["2022"]
    assert [r.job_name for r in removed.run_requests] == ["icare_publish"]
    assert sorted(instance.get_dynamic_partitions("ssda903_collection_years")) == [*years[1:], "2026"]


def test_landing_sensor_skips_without_a_source_folder(tmp_path, instance):
    sensor = defs.get_repository_def().get_sensor_def("icare_landing_sensor")
    data, added, _ = _tick(sensor, instance, IcareSettings(landing_dir=str(tmp_path)), None)
    assert not data.run_requests and added == []
    assert "no source folder" in data.skip_reason.skip_message


def test_yearly_refresh_reruns_every_registered_year(instance):
    schedule = defs.get_repository_def().get_schedule_def("ssda903_yearly_refresh")
    when = datetime(2026, 8, 1, 2, tzinfo=UTC)

    def context() -> dg.ScheduleEvaluationContext:
        return dg.build_schedule_context(
            instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
        )

    empty = schedule.evaluate_tick(context())
    assert not empty.run_requests and "no collection year" in empty.skip_message
    instance.add_dynamic_partitions("ssda903_collection_years", ["2024", "2025"])
    data = schedule.evaluate_tick(context())
    assert [r.partition_key for r in data.run_requests] == ["2024", "2025"]
    assert all(r.run_key.startswith("ssda903:refresh:2026-08-01:") for r in data.run_requests)


def _corrupt_harmonised(monkeypatch, corrupt) -> None:
    real = assets_module.harmonise_source

    def corrupted(source, extraction, timer):
        result = real(source, extraction, timer)
        corrupt(result)
        return result

    monkeypatch.setattr(assets_module, "harmonise_source", corrupted)


def _duplicate_an_episode(result) -> None:
    episodes = result.harmonised.episodes
    result.harmonised.episodes = pd.concat([episodes, episodes.iloc[:1]], ignore_index=True)


def _unbalance_reconciliation(result) -> None:
    result.reconciliation.loc[result.reconciliation.index[0], "rows_read"] += 1


def _break_flow_identity(monkeypatch) -> None:
    real = assets_module.statistics_tables

    def broken(*args, **kwargs):
        tables = real(*args, **kwargs)
        flow = tables["flow_check"]
        position = flow.schema.get_field_index("difference")
        field = flow.schema.field("difference")
        tables["flow_check"] = flow.set_column(position, field, pa.array([1] * flow.num_rows, field.type))
        return tables

    monkeypatch.setattr(assets_module, "statistics_tables", broken)


@pytest.mark.slow
@pytest.mark.parametrize(
    "check_name",
    ["no_duplicate_episodes", "reconciliation_balances", "flow_identity"],
)
def test_a_failing_blocking_check_stops_publication(check_name, tmp_path, monkeypatch):
    monkeypatch.delenv("ICARE_PSEUDONYM_KEY", raising=False)
    if check_name == "no_duplicate_episodes":
        _corrupt_harmonised(monkeypatch, _duplicate_an_episode)
    elif check_name == "reconciliation_balances":
        _corrupt_harmonised(monkeypatch, _unbalance_reconciliation)
    else:
        _break_flow_identity(monkeypatch)
    output = tmp_path / "out"
    _, result = materialise_everything(tmp_path, IcareSettings(output_dir=str(output)), raise_on_error=False)
    evaluations = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not evaluations[check_name].passed
    assert evaluations[check_name].severity == dg.AssetCheckSeverity.ERROR
    assert evaluations[check_name].metadata["failures"].value > 0
    assert not result.asset_materializations_for_node(PUBLISH_NODE)
    assert not (output / DATABASE).exists()


@pytest.mark.slow
def test_warning_checks_fail_on_defects_but_publication_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("ICARE_PSEUDONYM_KEY", "a-test-key-for-the-dagster-tests-0123456789")
    returns = generate_returns(tmp_path / "returns", children=60, defects=True).root
    output = tmp_path / "out"
    years, result = materialise_everything(
        tmp_path, IcareSettings(sources={"ssda903": str(returns)}, output_dir=str(output))
    )
    schema = [c for y in years for c in y.get_asset_check_evaluations() if c.check_name == "schema_valid"]
    assert len(schema) == 4 and not all(c.passed for c in schema)
    failed = next(c for c in schema if not c.passed)
    assert failed.severity == dg.AssetCheckSeverity.WARN
    sample = failed.metadata["sample"].value
    assert "| file |" in sample or "file" in sample
    raw_ids = pd.read_csv(next(returns.rglob("header.csv")), dtype=str)["CHILD"]
    assert not [child for child in raw_ids if f"| {child} |" in sample]
    evaluations = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not evaluations["no_quarantine"].passed
    assert evaluations["no_quarantine"].severity == dg.AssetCheckSeverity.WARN
    # every published table, every released table, the database, the Parquet files and the release
    expected = len(published_tables()) + len(RELEASE_TABLES) + 3
    assert len(result.asset_materializations_for_node(PUBLISH_NODE)) == expected
    assert (output / DATABASE).exists() and (output / RELEASE_DIR / "stock.parquet").exists()


def test_unmapped_codes_check_fails_on_crafted_quarantine():
    records = pd.DataFrame(
        {
            "source": ["ssda903", "ssda903"],
            "collection_year": [2024, 2024],
            "file": ["2024/episodes.csv", "2024/episodes.csv"],
            "sheet": [None, None],
            "row_number": [2, 3],
            "column_name": ["PLACE", "LS"],
            "rule": ["concordance_unmapped", "code_list"],
            "value": ["Z9", "Q"],
        }
    )
    result = quarantine_check("codes_mapped", unmapped_codes(records), "records with unmapped codes")
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.metadata["records"].value == 1
    assert result.metadata["by_rule"].value == {"concordance_unmapped": 1}
    assert "Z9" in result.metadata["sample"].value and "| Q |" not in result.metadata["sample"].value


def test_executor_comes_from_the_environment(monkeypatch):
    from pipelines.definitions import executor_from_environment

    monkeypatch.delenv("ICARE_EXECUTOR", raising=False)
    assert executor_from_environment() is dg.multiprocess_executor
    monkeypatch.setenv("ICARE_EXECUTOR", "threads")
    with pytest.raises(ValueError, match="multiprocess, k8s or celery"):
        executor_from_environment()


@pytest.mark.parametrize("path", sorted((REPO / "deploy").glob("*.yaml")), ids=lambda p: p.name)
def test_deploy_examples_are_valid_yaml_with_telemetry_off(path):
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    if path.name.startswith("dagster-"):
        assert config["telemetry"]["enabled"] is False
        assert config["concurrency"]["pools"]["default_limit"] == 1
        assert config["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}


@pytest.mark.slow
def test_automation_publishes_once_every_year_is_ingested(tmp_path):
    """What ``default_automation_condition_sensor`` does after the landing sensor's runs: nothing while
    a collection year is still missing, then harmonisation and every publication asset in one go."""
    instance = dg.DagsterInstance.ephemeral()
    settings = IcareSettings(output_dir=str(tmp_path / "out"))
    resources = _resources(tmp_path, settings)
    sample = settings.source_paths()["ssda903"]
    keys = sorted(files_by_partition(discover(sample, load_source_spec("ssda903"))))
    instance.add_dynamic_partitions("ssda903_collection_years", keys)
    evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    assert evaluation.total_requested == 0  # nothing ingested yet

    def ingest(key: str) -> None:
        dg.materialize(
            ASSETS, selection=["ssda903_returns"], partition_key=key, instance=instance, resources=resources
        )

    for key in keys[:-1]:
        ingest(key)
    evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=evaluation.cursor)
    assert evaluation.total_requested == 0  # one year still missing: harmonising now would be wrong

    ingest(keys[-1])
    evaluation = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=evaluation.cursor)
    downstream = {
        key
        for key in defs.resolve_asset_graph().get_all_asset_keys()
        if key != dg.AssetKey("ssda903_returns")
    }
    requested = {key for key in downstream if evaluation.get_num_requested(key)}
    assert requested == downstream
    assert evaluation.get_num_requested(dg.AssetKey("ssda903_returns")) == 0  # years are not re-run
