"""Outputs are written all or nothing, with explicit types, and a re-run gives identical tables."""

from __future__ import annotations

import json
import threading

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from icare import pipeline, publish
from icare.output_folder import LOCK_FILE
from icare.vectorised import plain_text
from schemas.outputs import RELEASE_TABLES, TABLES, arrow_schema, release_name
from tests.builders import episode, header, write_return


@pytest.fixture
def returns(tmp_path):
    root = tmp_path / "in"
    write_return(
        root,
        2024,
        headers=[header("1"), header("2", sex="2")],
        episodes=[
            episode("1", "01/05/2023", dec="01/06/2023", rec="X1"),
            episode("1", "01/06/2023", rne="P", place="K2"),
            episode("2", "02/02/2024", place="U1"),
            episode("3", "bad date"),
        ],
    )
    return root


def read_database(path):
    with duckdb.connect(str(path), read_only=True) as connection:
        # The tables of the main schema, without the label views (docs/database.md).
        tables = connection.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'")
        names = [row[0] for row in tables.fetchall()]
        # SQL tables have no row order (publish.py loads them in parallel): read them in one
        return {name: connection.execute(f'SELECT * FROM "{name}" ORDER BY ALL').df() for name in names}


def test_every_table_is_in_duckdb_and_parquet_with_the_declared_arrow_schema(returns, run_on, tmp_path):
    run_on(returns, tmp_path / "out")
    database = read_database(tmp_path / "out" / "icare.duckdb")
    for table in TABLES:
        parquet = pq.read_table(tmp_path / "out" / "parquet" / f"{table}.parquet")
        assert parquet.schema.equals(arrow_schema(table), check_metadata=False), table
        assert len(database[table]) == parquet.num_rows, table
    assert set(database) == set(TABLES) | {"data_dictionary"}
    dictionary = database["data_dictionary"]
    assert set(dictionary["table_name"]) == set(TABLES) | {release_name(t) for t in RELEASE_TABLES}
    assert dictionary["description"].str.len().gt(0).all()


def test_classification_version_is_recorded_with_the_outputs(returns, run_on, tmp_path):
    tables = run_on(returns, tmp_path / "out")
    version = tables["runs"]["classification_version"].iloc[0]
    assert version == "icare-ac-provisional@0.2.0"
    assert set(tables["episodes"]["classification_version"]) == {version}
    assert set(tables["icare_classification"]["classification_version"]) == {version}
    assert set(tables["concordance"]["classification_version"]) == {version}
    for table in TABLES:
        metadata = pq.read_schema(tmp_path / "out" / "parquet" / f"{table}.parquet").metadata
        assert metadata[b"icare.classification_version"] == version.encode()
        assert metadata[b"icare.run_id"] == tables["runs"]["run_id"].iloc[0].encode()


def test_rerun_on_the_same_input_gives_identical_tables(returns, run_on, tmp_path):
    run_on(returns, tmp_path / "a")
    run_on(returns, tmp_path / "b")
    first, second = (
        read_database(tmp_path / "a" / "icare.duckdb"),
        read_database(tmp_path / "b" / "icare.duckdb"),
    )
    for table in set(first) - {"runs"}:
        pd.testing.assert_frame_equal(first[table], second[table], obj=table)
    assert first["runs"]["run_id"].equals(second["runs"]["run_id"])
    for table in TABLES:
        if table != "runs":
            a = (tmp_path / "a" / "parquet" / f"{table}.parquet").read_bytes()
            assert a == (tmp_path / "b" / "parquet" / f"{table}.parquet").read_bytes(), table
    for name in [*(f"{table}.parquet" for table in RELEASE_TABLES), "disclosure.json"]:
        a = (tmp_path / "a" / "release" / name).read_bytes()
        assert a == (tmp_path / "b" / "release" / name).read_bytes(), name


def _writer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(("icare-writer", "icare-parquet"))]


def _record_parquet_files(monkeypatch, written: list[str]) -> None:
    real_write = publish._write_parquet

    def recorded(table, path, stop=None):
        written.append(path.stem)
        return real_write(table, path, stop)

    monkeypatch.setattr(publish, "_write_parquet", recorded)


def _fail_in_the_writer(monkeypatch, written: list[str]) -> threading.Event:
    """Loading the children into DuckDB fails, while the statistics wait until it has."""
    _record_parquet_files(monkeypatch, written)
    real_load, real_statistics = publish.StagedOutputs._load, pipeline.statistics_tables
    failed = threading.Event()

    def broken(staging, qualified_name, table):
        if qualified_name != '"children"':
            return real_load(staging, qualified_name, table)
        failed.set()
        raise OSError("disk full")

    def statistics_after_the_failure(*args, **kwargs):
        assert failed.wait(30)
        return real_statistics(*args, **kwargs)

    monkeypatch.setattr(publish.StagedOutputs, "_load", broken)
    monkeypatch.setattr(pipeline, "statistics_tables", statistics_after_the_failure)
    return failed


def _fail_in_the_statistics(monkeypatch, written: list[str]) -> None:
    """The statistics fail while the writer is writing the episodes (which waits for the failure)."""
    real_write = publish._write_parquet
    writing, raised = threading.Event(), threading.Event()

    def held(table, path, stop=None):
        written.append(path.stem)
        if path.stem == "episodes":
            writing.set()
            assert raised.wait(30)
        return real_write(table, path, stop)

    def broken(*args, **kwargs):
        assert writing.wait(30)
        raised.set()
        raise ArithmeticError("statistics failed")

    monkeypatch.setattr(publish, "_write_parquet", held)
    monkeypatch.setattr(pipeline, "statistics_tables", broken)


def _fail_in_disclosure_control(monkeypatch, written: list[str]) -> None:
    def broken(tables, rules, settings=None):
        raise ValueError("disclosure failed")

    monkeypatch.setattr(pipeline, "release_tables", broken)


@pytest.mark.parametrize(
    ("fail", "error", "message"),
    [
        (_fail_in_the_writer, OSError, "disk full"),
        (_fail_in_the_statistics, ArithmeticError, "statistics failed"),
        (_fail_in_disclosure_control, ValueError, "disclosure failed"),
    ],
)
def test_failed_run_leaves_previous_outputs_intact(
    returns, run_on, tmp_path, monkeypatch, fail, error, message
):
    """A failure in the writer or on the main thread while it writes: the original error, the
    previous outputs as they were, no staging folder, the writer stopped and joined."""
    out = tmp_path / "out"
    first = run_on(returns, out)
    before, summary = read_database(out / "icare.duckdb"), (out / "run.json").read_text()
    write_return(returns, 2025, headers=[header("9", sex="M")], episodes=[episode("9", "01/05/2024")])
    written: list[str] = []
    fail(monkeypatch, written)
    with pytest.raises(error, match=message):
        run_on(returns, out)
    after = read_database(out / "icare.duckdb")
    pd.testing.assert_frame_equal(before["episodes"], after["episodes"])
    assert len(pq.read_table(out / "parquet" / "episodes.parquet")) == len(first["episodes"])
    assert (out / "run.json").read_text() == summary
    assert sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE) == [
        "icare.duckdb",
        "parquet",
        "release",
        "run.json",
    ]
    assert _writer_threads() == []
    if fail is not _fail_in_disclosure_control:
        # The tables written beside the failing one may have started (two load lanes); the
        # statistics tables, handed over after the failure, never are.
        started = {"episodes", "children"} if fail is _fail_in_the_writer else {"episodes"}
        assert started <= set(written)
        assert not {"care_spells", "placement_spells", "stock"} & set(written)


def test_a_failure_after_the_writer_failed_is_raised_with_a_note(returns, run_on, tmp_path, monkeypatch):
    """The statistics fail after the writer has failed on its own: the statistics' error is raised,
    and says that the writer had failed too."""
    written: list[str] = []
    failed = _fail_in_the_writer(monkeypatch, written)

    def broken(*args, **kwargs):
        assert failed.wait(30)
        raise ArithmeticError("statistics failed")

    monkeypatch.setattr(pipeline, "statistics_tables", broken)
    with pytest.raises(ArithmeticError, match="statistics failed") as raised:
        run_on(returns, tmp_path / "out")
    assert any("writer had failed too: OSError('disk full')" in note for note in raised.value.__notes__)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [LOCK_FILE]
    assert _writer_threads() == []


def test_an_error_while_duckdb_loads_interrupts_the_load(tmp_path):
    """Leaving the staging by an error stops a load under way (here an endless one) and raises that
    error, not DuckDB's interruption."""
    loading = threading.Event()
    batch = pa.record_batch({"n": pa.array(range(1000), pa.int64())})

    def endless():
        loading.set()
        while True:
            yield batch

    endless_reader = pa.RecordBatchReader.from_batches(batch.schema, endless())
    with (
        pytest.raises(KeyError, match="statistics"),
        publish.StagedOutputs(tmp_path, "run", "version") as staging,
    ):
        staging._submit(staging._load, '"endless"', endless_reader)
        assert loading.wait(30)
        raise KeyError("statistics")
    assert [p.name for p in tmp_path.iterdir()] == [LOCK_FILE]
    assert _writer_threads() == []


def test_runs_records_the_write_that_overlapped(returns, run_on, tmp_path):
    """The writer's own time and the run's wait for it are both in ``runs.timings``."""
    tables = run_on(returns, tmp_path / "out")
    timings = json.loads(tables["runs"]["timings"].iloc[0])
    assert {"statistics", "write outputs: writer busy", "write outputs: wait for the writer"} <= set(timings)
    assert timings["write outputs: writer busy"] > 0


@pytest.mark.parametrize("failing", ["parquet", "release"])
def test_failure_while_swapping_restores_previous_outputs(returns, run_on, tmp_path, monkeypatch, failing):
    out = tmp_path / "out"
    run_on(returns, out)
    before = (out / "run.json").read_text()
    released_before = (out / "release" / "stock.parquet").read_bytes()
    write_return(returns, 2025, headers=[header("9", sex="M")], episodes=[episode("9", "01/05/2024")])
    real_replace = publish.os.replace

    def flaky_replace(src, dst):
        if "staging" in str(src) and str(dst).endswith(failing):
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(publish.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="rename failed"):
        run_on(returns, out)
    assert (out / "run.json").read_text() == before
    assert (out / "parquet" / "episodes.parquet").exists()
    assert read_database(out / "icare.duckdb")["episodes"].shape[0] == 3
    assert (out / "release" / "stock.parquet").read_bytes() == released_before
    assert sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE) == [
        "icare.duckdb",
        "parquet",
        "release",
        "run.json",
    ]


def test_dictionary_text_is_written_as_codes_and_reads_back_as_plain_text(monkeypatch, tmp_path):
    """Several row groups, a null, unused dictionary entries, dates and UTC timestamps: the file reads
    back as the decoded table, with the published types and the table's metadata."""
    monkeypatch.setattr(publish, "ROW_GROUP_ROWS", 2)
    codes = pa.DictionaryArray.from_arrays(
        pa.array([1, 0, None, 1, 3], type=pa.int32()), pa.array(["AC.F", "AC.X", "never used", "AC.R"])
    )
    schema = pa.schema(
        [
            pa.field("icare_code", pa.dictionary(pa.int32(), pa.string())),
            pa.field("start_date", pa.date32(), nullable=False),
            pa.field("written_at", pa.timestamp("us", tz="UTC")),
        ],
        metadata={b"icare.run_id": b"0123456789abcdef"},
    )
    table = pa.table(
        [
            codes,
            pa.array(range(19000, 19005), pa.int32()).cast(pa.date32()),
            pa.array([0, 1, 2, 3, None], pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        ],
        schema=schema,
    )
    path = tmp_path / "table.parquet"
    publish._write_parquet(table, path)

    read = pq.read_table(path)
    assert pq.ParquetFile(path).num_row_groups == 3
    assert read.schema.field("icare_code").type == pa.string()
    assert read.column("icare_code").to_pylist() == ["AC.X", "AC.F", None, "AC.X", "AC.R"]
    assert read.equals(plain_text(table), check_metadata=True)
    assert read.schema.metadata == {b"icare.run_id": b"0123456789abcdef"}
