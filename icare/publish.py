"""Write a run's tables as Parquet and as one DuckDB database, all or nothing.

Everything is first written to a staging folder beside the outputs; only when every table is
written and the database is closed are the previous outputs swapped out, by renames on the same
file system. A run that fails before the swap leaves the previous outputs untouched; a failure
during the swap puts them back.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from schemas.outputs import TABLES, to_arrow

DATABASE = "icare.duckdb"
PARQUET_DIR = "parquet"
RUN_SUMMARY = "run.json"
MANAGED = (DATABASE, PARQUET_DIR, RUN_SUMMARY)


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
        for table, columns in TABLES.items()
        for c in columns
    ]
    return pa.Table.from_pylist(rows)


def write_outputs(frames: Mapping[str, object], summary: dict, output_dir: Path, run_id: str) -> None:
    """Validate and write every table, then replace the previous outputs in one swap.

    Each Parquet file carries the run id and the classification version in its schema metadata,
    so a file copied out of a release still says what it was made with.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = output_dir / f".staging-{run_id}"
    if staging.exists():
        shutil.rmtree(staging)
    (staging / PARQUET_DIR).mkdir(parents=True)
    try:
        release = {
            b"icare.run_id": run_id.encode(),
            b"icare.classification_version": str(summary["classification_version"]).encode(),
        }
        # One table at a time, so only one Arrow copy is in memory; the database is then loaded
        # from the Parquet files, in parallel and within DuckDB.
        for name, frame in [*frames.items(), ("data_dictionary", None)]:
            table = data_dictionary() if frame is None else to_arrow(frame, name)
            pq.write_table(
                table.replace_schema_metadata(release),
                staging / PARQUET_DIR / f"{name}.parquet",
                compression="zstd",
            )
        _write_database(staging / PARQUET_DIR, staging / DATABASE)
        (staging / RUN_SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
        _swap_in(staging, output_dir, run_id)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _write_database(parquet_dir: Path, path: Path) -> None:
    """One table per Parquet file; DuckDB keeps the explicit Arrow types."""
    connection = duckdb.connect(str(path))
    try:
        for parquet in sorted(parquet_dir.glob("*.parquet")):
            # Table names are the project's own constants (TABLES), never user input; the path is a parameter.
            connection.execute(
                f'CREATE TABLE "{parquet.stem}" AS SELECT * FROM read_parquet($path)', {"path": str(parquet)}
            )
        connection.execute("CHECKPOINT")
    finally:
        connection.close()


def _swap_in(staging: Path, output_dir: Path, run_id: str) -> None:
    previous = output_dir / f".previous-{run_id}"
    moved: list[str] = []
    previous.mkdir()
    try:
        for name in MANAGED:
            if (output_dir / name).exists():
                os.replace(output_dir / name, previous / name)
                moved.append(name)
        for name in MANAGED:
            os.replace(staging / name, output_dir / name)
    except OSError:
        for name in MANAGED:  # put the previous outputs back
            if (output_dir / name).exists() and name in moved:
                target = output_dir / name
                shutil.rmtree(target) if target.is_dir() else target.unlink()
        for name in moved:
            os.replace(previous / name, output_dir / name)
        raise
    finally:
        shutil.rmtree(previous, ignore_errors=True)
