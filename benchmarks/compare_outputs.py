"""Compare two runs' outputs table by table, so a speed change can be shown to change no figure.

Usage: ``python benchmarks/compare_outputs.py OLD_OUTPUT_DIR NEW_OUTPUT_DIR``. Every Parquet file of
``parquet/`` and ``release/`` is compared as an Arrow table (schema, values in published row order,
and the file's own metadata such as the run id); every table of ``icare.duckdb`` is compared by its
columns, types and rows (as a multiset: SQL tables have no row order). ``runs`` is skipped because
it holds timings. Exits 1 when a table differs or is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

FOLDERS = ("parquet", "release")
SKIPPED = {"runs"}
DATABASE = "icare.duckdb"
ARROW_SCHEMA_KEY = b"ARROW:schema"  # how pyarrow stores the Arrow types, not the run's metadata


def differences(old: Path, new: Path) -> list[str]:
    """One line per table that is missing on one side or differs."""
    found = []
    for folder in FOLDERS:
        names = {p.stem for side in (old, new) for p in (side / folder).glob("*.parquet")}
        for name in sorted(names - SKIPPED):
            paths = old / folder / f"{name}.parquet", new / folder / f"{name}.parquet"
            if not all(p.exists() for p in paths):
                found.append(f"{folder}/{name}: only in {'new' if paths[1].exists() else 'old'}")
                continue
            before, after = (pq.read_table(p) for p in paths)
            if _file_metadata(before) != _file_metadata(after):
                found.append(f"{folder}/{name}: file metadata differs")
            before, after = before.replace_schema_metadata(None), after.replace_schema_metadata(None)
            if not before.schema.equals(after.schema):
                found.append(f"{folder}/{name}: schemas differ")
            elif not before.equals(after):
                rows = f"{before.num_rows:,} vs {after.num_rows:,} rows"
                found.append(f"{folder}/{name}: values differ ({rows})")
    return found + database_differences(old / DATABASE, new / DATABASE)


def _file_metadata(table: object) -> dict[bytes, bytes]:
    return {k: v for k, v in (table.schema.metadata or {}).items() if k != ARROW_SCHEMA_KEY}


def database_differences(old: Path, new: Path) -> list[str]:
    """One line per DuckDB table missing on one side, or whose columns, types or rows differ."""
    connection = duckdb.connect()
    connection.execute("ATTACH ? AS old (READ_ONLY)", [str(old)])
    connection.execute("ATTACH ? AS new (READ_ONLY)", [str(new)])
    listing = "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY ALL"
    tables = {side: set(connection.execute(listing, [side]).fetchall()) for side in ("old", "new")}
    found = [
        f"{DATABASE} {schema}.{table}: only in {side}"
        for side, other in (("old", "new"), ("new", "old"))
        for schema, table in sorted(tables[side] - tables[other])
    ]
    columns = (
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index"
    )
    for schema, table in sorted(tables["old"] & tables["new"]):
        if table in SKIPPED:
            continue
        shapes = [connection.execute(columns, [side, schema, table]).fetchall() for side in ("old", "new")]
        if shapes[0] != shapes[1]:
            found.append(f"{DATABASE} {schema}.{table}: columns or types differ")
            continue
        # Names come from the databases' own catalogues (quoted), never from user input.
        old_table, new_table = (f'{side}."{schema}"."{table}"' for side in ("old", "new"))
        unmatched = connection.execute(
            f"SELECT (SELECT count(*) FROM (FROM {old_table} EXCEPT ALL FROM {new_table})) "
            f"+ (SELECT count(*) FROM (FROM {new_table} EXCEPT ALL FROM {old_table}))"
        ).fetchone()[0]
        if unmatched:
            found.append(f"{DATABASE} {schema}.{table}: rows differ ({unmatched:,} unmatched)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args()
    found = differences(args.old, args.new)
    for line in found:
        print(line)
    if found:
        sys.exit(1)
    print("identical (all tables but runs)")


if __name__ == "__main__":
    main()
