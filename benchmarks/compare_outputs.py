"""Compare two runs' outputs table by table, so a speed change can be shown to change no figure.

Usage: ``python benchmarks/compare_outputs.py OLD_OUTPUT_DIR NEW_OUTPUT_DIR``. Every Parquet file of
``parquet/`` and ``release/`` is compared as an Arrow table (schema and values, in published row
order); ``runs`` is skipped because it holds timings. Exits 1 when a table differs or is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.parquet as pq

FOLDERS = ("parquet", "release")
SKIPPED = {"runs"}


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
            before, after = (pq.read_table(p).replace_schema_metadata(None) for p in paths)
            if not before.schema.equals(after.schema):
                found.append(f"{folder}/{name}: schemas differ")
            elif not before.equals(after):
                rows = f"{before.num_rows:,} vs {after.num_rows:,} rows"
                found.append(f"{folder}/{name}: values differ ({rows})")
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
