"""Write a run's tables as Parquet and as one DuckDB database, all or nothing.

Everything is first written to a staging folder beside the outputs (``StagedOutputs``), by
background threads while the run goes on; only when every table is written and the database is
closed are the previous outputs swapped out, by renames on the same file system. A run that fails
before the swap (in the writer or elsewhere) stops the writer and leaves the previous outputs
untouched; a failure during the swap puts them back, and a swap cut short by a killed process is
finished or undone by the next run (``icare.output_folder``). The folder is claimed for the whole
write, so no other run writes into it meanwhile.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from icare.database_views import MAIN_SCHEMA, add_conveniences, comment_table
from icare.output_folder import PREVIOUS_PREFIX, STAGING_PREFIX, claimed, writing
from schemas.outputs import RELEASE_SCHEMA, RELEASE_TABLES, TABLES, release_name, to_arrow

DATABASE = "icare.duckdb"
# The database file is written in the storage format of DuckDB 1.1, so that every DuckDB from 1.1 on
# (CLI, R, DBeaver, older Python) opens it; the default of a new DuckDB is its own newest format,
# which older clients refuse (docs/database.md). Only new files take this setting.
STORAGE_VERSION = "v1.1.0"
PARQUET_DIR = "parquet"
RUN_SUMMARY = "run.json"
# The disclosure-controlled release: release/<table>.parquet, the DuckDB schema ``release`` and
# release/disclosure.json (docs/disclosure.md).
RELEASE_DIR = "release"
RELEASE_SUMMARY = "disclosure.json"
MANAGED = (DATABASE, PARQUET_DIR, RUN_SUMMARY, RELEASE_DIR)
# Rows per Parquet row group: pyarrow's default (``pq.write_table``), so the files are laid out as before.
ROW_GROUP_ROWS = 1024 * 1024
# Tables loaded at once, each by its own thread and DuckDB cursor with one DuckDB thread. Measured at
# 5,000,000 rows on the five largest tables: the episodes beside the other four took 9.1 s and
# 17.5 CPU-s, one after another 16.1 s and 16.0 CPU-s (a second DuckDB thread in one load instead
# costs twice the CPU: see ``_open_database``).
LOAD_LANES = 2
# What one row of ``data_dictionary`` is (the other tables' descriptions: schemas.outputs.TABLE_DESCRIPTIONS).
DATA_DICTIONARY_DESCRIPTION = (
    "published column: `table_name`, `column_name`, `type`, `nullable`, `description` "
    "(the column reference below, without the lists of allowed values)"
)


@contextmanager
def claim_output(output_dir: Path) -> Iterator[None]:
    """``output_dir`` made, checked, cleared of a killed run's left-overs and locked against other
    runs while the block runs (``icare.output_folder.claimed``)."""
    with claimed(output_dir, MANAGED):
        yield


def data_dictionary() -> pa.Table:
    """One row per published column, so analysts can read the meaning of a column in the database."""
    rows = [
        {
            "table_name": table,
            "column_name": c.name,
            "type": str(c.type),
            "nullable": c.nullable,
            "description": c.description,
        }
        for table, columns in [
            *TABLES.items(),
            *((release_name(t), columns) for t, columns in RELEASE_TABLES.items()),
        ]
        for c in columns
    ]
    return pa.Table.from_pylist(rows)


class StagedOutputs:
    """A run's outputs, written into a staging folder beside them and then swapped in, all or nothing.

    Tables handed to ``write`` are written by background threads, so the caller can go on meanwhile
    (``icare run`` computes the statistics while the harmonised tables are written). The threads
    (``LOAD_LANES``) take the tables in the order given and each loads its table through its own
    cursor of the staging database's one connection (DuckDB allows one process to write a file, and
    several cursors of it to load different tables at once). Used as a context manager: leaving it by
    an exception stops the writer (interrupting DuckDB, skipping what is queued), removes the staging
    folder and lets that exception through; the previous outputs are only replaced by ``finish``.
    The output folder is claimed (``claim_output``) from entering to leaving. A refusal of the
    storage (full, read-only, no permission) is raised as ``OutputWriteError`` naming what it
    could not write.
    """

    def __init__(self, output_dir: Path, run_id: str, classification_version: str) -> None:
        self.output_dir = output_dir
        self.run_id = run_id
        self.folder = output_dir / f"{STAGING_PREFIX}{run_id}"
        # Each Parquet file says what it was made with, even when copied out of a release.
        self.metadata = {
            b"icare.run_id": run_id.encode(),
            b"icare.classification_version": classification_version.encode(),
        }
        self.names: list[str] = []  # the tables handed to the writer, in order
        # The writer threads' time spent writing, summed (overlapping the caller's work).
        self.busy_seconds = 0.0
        self._busy_lock = threading.Lock()
        self._stop = threading.Event()
        self._pending: list[Future[None]] = []
        self._writer = ThreadPoolExecutor(max_workers=LOAD_LANES, thread_name_prefix="icare-writer")
        self._parquet = ThreadPoolExecutor(max_workers=LOAD_LANES, thread_name_prefix="icare-parquet")
        self._connection: duckdb.DuckDBPyConnection | None = None
        self._cursors: dict[int, duckdb.DuckDBPyConnection] = {}  # writer thread id -> its cursor
        self._cursors_lock = threading.Lock()
        self._claim = ExitStack()

    def __enter__(self) -> StagedOutputs:
        with ExitStack() as claim:
            claim.enter_context(claim_output(self.output_dir))
            claim.callback(shutil.rmtree, self.folder, ignore_errors=True)
            with writing(f"the staging folder {self.folder}"):
                if self.folder.exists():
                    shutil.rmtree(self.folder)
                (self.folder / PARQUET_DIR).mkdir(parents=True)
                (self.folder / RELEASE_DIR).mkdir()
                self._connection = _open_database(self.folder / DATABASE)
            self._claim = claim.pop_all()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, *_: object) -> None:
        """Stop and join the writer if leaving by an exception, then remove the staging folder.

        Errors of the cleanup itself are not raised over the exception that is leaving; an error
        the writer had met on its own is noted on it."""
        try:
            if error is not None:
                self._stop_writer()
                self._note_writer_failure(error)
            self._writer.shutdown(wait=True, cancel_futures=True)
            self._parquet.shutdown(wait=True, cancel_futures=True)
            self._close()
        except Exception:
            if kind is None:
                raise
        finally:
            self._claim.close()  # the staging folder removed, then the output folder released

    def write(self, tables: Mapping[str, object]) -> None:
        """Queue ``tables`` (pandas frames or Arrow, validated as they are written) for the writer.

        Raises the writer's error at once if an earlier table failed."""
        self.raise_failure()
        for name, table in tables.items():
            self.names.append(name)
            self._submit(self._write_table, name, table)

    def write_release(
        self, tables: Mapping[str, pa.Table], metadata: Mapping[bytes, bytes], summary: dict
    ) -> None:
        """Queue the disclosure-controlled tables (``release/<table>.parquet`` and ``release.<table>``
        in DuckDB, carrying ``metadata`` too), and write ``release/disclosure.json`` now."""
        self.raise_failure()
        released = self.metadata | dict(metadata)
        self._submit(self._write_release, dict(tables), released)
        disclosure = {
            "run_id": self.run_id,
            "classification_version": released[b"icare.classification_version"].decode(),
            "rules": json.loads(released.get(b"icare.disclosure_rules_json", b"null")),
            "tables": summary.get("release", {}).get("tables", {}),
        }
        path = self.folder / RELEASE_DIR / RELEASE_SUMMARY
        with writing(path):
            path.write_text(json.dumps(disclosure, indent=2, sort_keys=True) + "\n")

    def wait(self) -> None:
        """Until the writer has written everything queued; its first error is raised."""
        wait(self._pending)
        self.raise_failure()

    def raise_failure(self) -> None:
        """The first error the writer met, if any (later tables are then skipped)."""
        for future in self._pending:
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def finish(self, tables: Mapping[str, object], summary: dict) -> None:
        """Write the last ``tables`` and the data dictionary, close the database, write ``run.json``
        and swap the staging folder in for the previous outputs."""
        self.write({**tables, "data_dictionary": None})
        self.wait()
        if self._connection is not None:  # the writer is idle: ordered age bands, label views
            add_conveniences(self._connection)
        self._close()
        with writing(self.folder / RUN_SUMMARY):
            (self.folder / RUN_SUMMARY).write_text(
                json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n"
            )
        with writing(f"the outputs into {self.output_dir}"):
            _swap_in(self.folder, self.output_dir, self.run_id)

    def _submit(self, action: Callable[..., None], *arguments: object) -> None:
        """Queue ``action`` for the writer threads (``_run``)."""
        self._pending.append(self._writer.submit(self._run, action, *arguments))

    def _run(self, action: Callable[..., None], *arguments: object) -> None:
        """One piece of the writer's work, timed; skipped once a piece has failed or the run has."""
        if self._stop.is_set():
            return
        started = time.perf_counter()
        try:
            action(*arguments)
        except BaseException:
            self._stop.set()
            raise
        finally:
            with self._busy_lock:
                self.busy_seconds += time.perf_counter() - started

    def _write_table(self, name: str, frame: object) -> None:
        """One table validated and converted once, then written to Parquet and DuckDB side by side.

        Its Parquet file is written in a second thread while DuckDB loads the same Arrow data (both
        release the interpreter lock). Text held dictionary-encoded stays so: DuckDB reads it as
        VARCHAR, and Parquet stores it as dictionary pages that read back as plain text
        (``_write_parquet``). ``None`` is the data dictionary.
        """
        table = data_dictionary() if frame is None else to_arrow(frame, name, encoded=True)
        table = table.replace_schema_metadata(self.metadata)
        path = self.folder / PARQUET_DIR / f"{name}.parquet"
        if self._stop.is_set():  # the run failed while the table was being converted
            return
        parquet = self._parquet.submit(_write_parquet, table, path, self._stop)
        try:
            self._load(f'"{name}"', table)
            comment_table(self._open_connection(), MAIN_SCHEMA, name, DATA_DICTIONARY_DESCRIPTION)
        except BaseException:
            self._stop.set()  # the Parquet file is thrown away: it stops at its next row group
            raise
        finally:
            wait([parquet])
        parquet.result()

    def _write_release(self, tables: Mapping[str, object], metadata: dict[bytes, bytes]) -> None:
        """The release tables, validated against ``schemas.outputs.RELEASE_TABLES``."""
        self._execute(f'CREATE SCHEMA "{RELEASE_SCHEMA}"')
        for name, data in tables.items():
            table = to_arrow(data, release_name(name)).replace_schema_metadata(metadata)
            _write_parquet(table, self.folder / RELEASE_DIR / f"{name}.parquet")
            # Names are the project's own constants (schemas.outputs.RELEASE_TABLES), never user input.
            self._load(f'"{RELEASE_SCHEMA}"."{name}"', table)
            comment_table(self._open_connection(), RELEASE_SCHEMA, name, DATA_DICTIONARY_DESCRIPTION)

    def _load(self, qualified_name: str, table: pa.Table) -> None:
        """``table`` as a new DuckDB table; ``qualified_name`` is one of the project's table names."""
        connection = self._open_connection()
        connection.register("incoming", table)
        try:
            with writing(f"the table {qualified_name} of {self.folder / DATABASE}"):
                connection.execute(f"CREATE TABLE {qualified_name} AS SELECT * FROM incoming")
        finally:
            connection.unregister("incoming")

    def _execute(self, statement: str) -> None:
        self._open_connection().execute(statement)

    def _open_connection(self) -> duckdb.DuckDBPyConnection:
        """The calling writer thread's own cursor of the staging database (made when first asked)."""
        if self._connection is None:
            raise RuntimeError("the staging database is closed (StagedOutputs is used as a context manager)")
        thread = threading.get_ident()
        with self._cursors_lock:
            if thread not in self._cursors:
                self._cursors[thread] = self._connection.cursor()
            return self._cursors[thread]

    def _stop_writer(self) -> None:
        """Skip what is queued and interrupt what DuckDB is loading, until the writer is idle."""
        self._stop.set()
        for future in self._pending:
            future.cancel()
        while wait(self._pending, timeout=0.05).not_done:
            with self._cursors_lock:
                cursors = list(self._cursors.values())
            for cursor in cursors:
                cursor.interrupt()

    def _note_writer_failure(self, error: BaseException) -> None:
        """Say on ``error`` (raised by the main thread) that the writer had failed too, and how."""
        for future in self._pending:
            if future.cancelled() or not future.done():
                continue
            failure = future.exception()
            if (
                failure is not None
                and failure is not error
                and not isinstance(failure, duckdb.InterruptException)
            ):
                error.add_note(f"the background writer had failed too: {failure!r}")
                return

    def _close(self) -> None:
        """Checkpoint and close the database (the writer is idle: nothing is queued or running)."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with self._cursors_lock:
                cursors, self._cursors = list(self._cursors.values()), {}
            for cursor in cursors:
                cursor.close()
            try:
                if not self._stop.is_set():
                    with writing(self.folder / DATABASE):
                        connection.execute("CHECKPOINT")
            finally:
                connection.close()


def _open_database(path: Path) -> duckdb.DuckDBPyConnection:
    """The staging database's one connection, set up for loading large tables."""
    connection = duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_VERSION})
    # Written blocks are already in the file; without a limit DuckDB keeps them cached until the
    # connection closes (measured: +0.39 GB resident for the 1,000,000-row benchmark, 0.18 GB with
    # this limit, no slower). Larger loads spill to a temporary file beside the database.
    connection.execute("SET memory_limit = '256MB'")
    # One DuckDB thread: the writer runs beside the statistics, which keep the other core busy, and
    # a single-threaded load does the same work with less CPU (measured on the 1,000,000-row
    # benchmark's six largest tables: 2.9 CPU-s including the checkpoint, against 3.5 CPU-s with
    # two threads loading in parallel out of order; at 5,000,000 rows the episodes took 8.8 CPU-s and
    # 8.9 s with one thread, 21.0 CPU-s and 15.3 s with two). Tables keep the published row order.
    connection.execute("SET threads = 1")
    return connection


def _write_parquet(table: pa.Table, path: Path, stop: threading.Event | None = None) -> None:
    """``table`` as a zstd Parquet file that reads back as ``plain_text(table)``, with its metadata.

    Text held dictionary-encoded is written as it is held: Parquet stores text in dictionary pages
    anyway, so the writer takes the codes instead of decoding every value and hashing it again
    (measured on the 1,000,000-row benchmark's six largest tables: 1.07 instead of 1.57 CPU-s; at
    5,000,000 rows the decoding alone took 4.2 s). The Arrow schema is not stored in the file
    (``store_schema=False``), so readers get the published types from Parquet's own ones (plain
    text, not dictionaries; dates, UTC timestamps, nullability); the table's metadata (run id,
    classification version) is added as the file's key-value metadata. Written one row group at a
    time, stopping between row groups once ``stop`` is set (the run failed: the file is thrown away).
    """
    with (
        writing(path),
        pq.ParquetWriter(path, table.schema, compression="zstd", store_schema=False) as parquet,
    ):
        for start in range(0, max(table.num_rows, 1), ROW_GROUP_ROWS):
            if stop is not None and stop.is_set():
                return
            parquet.write_table(table.slice(start, ROW_GROUP_ROWS))
        if table.schema.metadata:
            parquet.add_key_value_metadata(table.schema.metadata)


def _swap_in(staging: Path, output_dir: Path, run_id: str) -> None:
    """The previous outputs moved aside, then the staged ones in; on any failure (or Ctrl-C) the
    staged ones go back to the staging folder and the previous ones back in place. A process killed
    meanwhile leaves ``.previous-<run id>`` for the next run to finish or undo the swap
    (``icare.output_folder.clear_leftovers``)."""
    previous = output_dir / f"{PREVIOUS_PREFIX}{run_id}"
    moved: list[str] = []
    placed: list[str] = []
    previous.mkdir()
    try:
        for name in MANAGED:
            if (output_dir / name).exists():
                os.replace(output_dir / name, previous / name)
                moved.append(name)
        for name in MANAGED:
            os.replace(staging / name, output_dir / name)
            placed.append(name)
    except BaseException:
        for name in reversed(placed):  # the staged outputs back where they were
            os.replace(output_dir / name, staging / name)
        for name in moved:  # and the previous outputs back in place
            os.replace(previous / name, output_dir / name)
        previous.rmdir()
        raise
    shutil.rmtree(previous, ignore_errors=True)
