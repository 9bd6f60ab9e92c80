"""What every reader shares: file checksums, header names, table recognition and the header row.

Every cell is read as text: codes and identifiers keep their leading zeros, and validation (not the
reader) decides what a value means. CSV and TXT files are read by ``icare.reading_csv`` (pyarrow),
workbooks by ``icare.reading_workbook`` (fastexcel); each file is parsed once. Row numbers are the
true line (CSV) or row (sheet) numbers in the file, whatever stands above the header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

CSV_SUFFIXES = frozenset({".csv", ".txt"})
WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls"})
# Rows above the header that a title, notes or blank rows may take before the header is given up.
HEADER_SEARCH_ROWS = 20
Tables = Mapping[str, Iterable[str]]


class UnreadableFileError(ValueError):
    """A file that cannot be parsed at all (not a table, broken workbook, wrong encoding)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    return digest.hexdigest()


def normalise_header(name: object) -> str:
    """Headers are compared without surrounding white space and case (``decom `` is DECOM)."""
    return str(name).strip().upper()


@dataclass(frozen=True)
class Recognition:
    table: str | None
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    message: str


def recognise_table(
    columns: Iterable[str], tables: Tables, optional: Mapping[str, Iterable[str]] | None = None
) -> Recognition:
    """Name the table whose column set the headers carry.

    A table is recognised when all its required columns are present (its ``optional`` columns may
    be absent; extra columns are ignored and reported). When no table is complete, the closest one
    (most shared columns, at least half of its required columns) is named with its missing columns
    so the error can say what to fix.
    """
    present = {normalise_header(c) for c in columns}
    optional = optional or {}
    best: tuple[float, str] | None = None
    for name, all_columns in tables.items():
        expected = [c for c in all_columns if c not in set(optional.get(name, ()))]
        wanted = set(expected)
        if wanted <= present:
            extra = tuple(sorted(present - set(all_columns)))
            return Recognition(name, (), extra, "")
        share = len(wanted & present) / len(wanted)
        if share >= 0.5 and (best is None or share > best[0]):
            best = (share, name)
    if best is not None:
        name = best[1]
        skippable = set(optional.get(name, ()))
        missing = tuple(c for c in tables[name] if c not in present and c not in skippable)
        return Recognition(
            name,
            missing,
            tuple(sorted(present - set(tables[name]))),
            f"looks like the {name} table but lacks column(s) {', '.join(missing)}",
        )
    shown = ", ".join(sorted(present)) or "(no columns)"
    return Recognition(None, (), (), f"columns {shown} match no known table")


def is_blank_row(cells: Sequence[object]) -> bool:
    return all(cell is None or not str(cell).strip() for cell in cells)


def header_row_index(
    rows: Sequence[Sequence[object]], recognises: Callable[[list[str]], bool] | None
) -> int | None:
    """Position of the header among the first rows of a file or sheet, or None when all are blank.

    The header is the first row whose cells ``recognises`` as a table of the source (all or most
    of its columns, as ``recognise_table`` judges), so title, note and blank rows above it are passed
    over; when no row does, it is the first non-blank row (the table is then reported unrecognised).
    """
    first = None
    for position, cells in enumerate(rows[:HEADER_SEARCH_ROWS]):
        if is_blank_row(cells):
            continue
        if first is None:
            first = position
        names = [c for c in cells if c is not None and str(c).strip()]
        if recognises is None or recognises(names):
            return position
    return first


def duplicated_headers(columns: Iterable[object]) -> list[str]:
    """Headers that occur more than once once case and surrounding space are ignored."""
    names = pd.Series([normalise_header(c) for c in columns], dtype=object)
    return sorted(set(names[names.duplicated()]))


def text_frame(frame: pd.DataFrame, first_row: int) -> pd.DataFrame:
    """``frame`` indexed by row number in the file, its first data row being ``first_row``."""
    frame.index = pd.RangeIndex(first_row, first_row + len(frame), name="row_number")
    return frame
