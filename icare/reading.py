"""Read national files as text and recognise their tables by column headers.

Every cell is read as text: codes and identifiers keep their leading zeros, and validation (not the
reader) decides what a value means. CSV goes through pyarrow, workbooks through fastexcel; each file
is parsed once.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import fastexcel
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

CSV_SUFFIXES = frozenset({".csv", ".txt"})
WORKBOOK_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls"})
# A workbook cell that holds a real date comes back from fastexcel as ISO text with a midnight time.
_EXCEL_DATE_CELL = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) 00:00:00$")


class UnreadableFileError(ValueError):
    """A file that cannot be parsed at all (not a table, broken workbook, wrong encoding)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def normalise_header(name: object) -> str:
    """Headers are compared without surrounding white space and case (``decom `` is DECOM)."""
    return str(name).strip().upper()


def _arrow_to_text_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow table of strings -> pandas frame indexed by row number in the file (header = row 1)."""
    frame = table.to_pandas()
    frame.index = pd.RangeIndex(2, 2 + len(frame), name="row_number")
    return frame


def read_csv_text(path: Path) -> pd.DataFrame:
    """Read a CSV file with every column as text; empty fields become null.

    Rows are numbered by their line in the file (the header is line 1), empty lines included. A
    file that cannot be parsed is reported by line number and field counts only: the parser's own
    message quotes the line, identifiers and all.
    """
    try:
        with path.open("rb") as handle:
            # Up to the first line break of any kind: a file saved with CR-only line ends (old Mac
            # format) has no LF, and its whole text would otherwise be taken as the header.
            first_line = handle.readline().split(b"\r", 1)[0]
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot open: {exc}") from exc
    if not first_line.strip():
        return pd.DataFrame()
    for encoding in ("utf-8", "cp1252"):
        try:
            header = first_line.decode(encoding).lstrip("\ufeff").rstrip("\r\n")
            names = next(csv.reader([header]))
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(encoding=encoding, column_names=names, skip_rows=1),
                convert_options=pacsv.ConvertOptions(
                    # Large strings, as pandas holds text: the frame then wraps the parsed
                    # columns instead of copying every value into them.
                    column_types=dict.fromkeys(names, pa.large_string()),
                    strings_can_be_null=True,
                    null_values=[""],
                    quoted_strings_can_be_null=True,
                ),
                parse_options=pacsv.ParseOptions(newlines_in_values=False),
            )
        except UnicodeDecodeError:
            continue
        except pa.ArrowInvalid as exc:
            if "utf8" in str(exc).lower() or "unicode" in str(exc).lower():
                continue
            raise UnreadableFileError(f"{path}: {_describe_bad_line(path, encoding, len(names))}") from None
        frame = _arrow_to_text_frame(table)
        lines = _data_line_numbers(path, len(frame))
        if lines is not None:
            frame.index = pd.Index(lines[: len(frame)], name="row_number")
        return frame
    raise UnreadableFileError(f"{path}: not a readable CSV file (neither UTF-8 nor Windows-1252 text)")


def _data_line_numbers(path: Path, rows: int) -> list[int] | None:
    """Line numbers of the data rows when the file has empty lines (the parser skips them), else None.

    A file without empty lines has one line per data row and the header. Line breaks (LF, CR or
    CRLF) are counted byte by byte, several times faster than searching for an empty line.
    """
    data = path.read_bytes()
    feeds = _count_byte(data, b"\n")
    returns = _count_byte(data, b"\r") if b"\r" in data else 0
    breaks = feeds + returns - (data.count(b"\r\n") if feeds and returns else 0)
    if breaks + (not data.endswith((b"\n", b"\r"))) <= rows + 1:
        return None
    return [number for number, line in enumerate(data.splitlines(), start=1) if line][1:]


def _count_byte(data: bytes, byte: bytes) -> int:
    """``data.count(byte)`` in NumPy: a few times faster, and its comparison runs without the
    interpreter lock (files are read in parallel threads; ``bytes.count`` holds it)."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == ord(byte)))


def _describe_bad_line(path: Path, encoding: str, expected: int) -> str:
    """Which line breaks the CSV structure, without quoting it."""
    with path.open(encoding=encoding, newline="") as handle:
        for number, fields in enumerate(csv.reader(handle), start=1):
            if fields and len(fields) != expected:
                return (
                    f"line {number} has {len(fields)} fields where the header has {expected}; "
                    "fix the line (a missing or extra separator, or an unclosed quote)"
                )
    return "the file is not valid CSV (an unclosed quote or a line break inside a value)"


def read_workbook_text(path: Path) -> dict[str, pd.DataFrame]:
    """Read every sheet of a workbook with every column as text.

    Cells holding real dates are written back as dd/mm/YYYY text: a typed date cell is unambiguous,
    unlike text, so this is a conversion, not a guess.
    """
    try:
        reader = fastexcel.read_excel(path)
    except Exception as exc:  # fastexcel raises its own error types per problem
        raise UnreadableFileError(f"{path}: not a readable workbook ({exc})") from exc
    sheets: dict[str, pd.DataFrame] = {}
    for name in reader.sheet_names:
        try:
            sheet = reader.load_sheet(name, dtypes="string")
            table = sheet.to_arrow()
        except Exception as exc:
            if "empty" in str(exc).lower() or "header" in str(exc).lower():
                sheets[name] = pd.DataFrame()
                continue
            raise UnreadableFileError(f"{path} sheet {name!r}: cannot be read ({exc})") from exc
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        frame = _arrow_to_text_frame(_excel_dates_as_text(table))
        sheets[name] = frame
    return sheets


def _excel_dates_as_text(table: pa.Table) -> pa.Table:
    """Rewrite cells that held real dates (ISO text with a midnight time) as dd/mm/YYYY, in Arrow."""
    columns = []
    for column in table.columns:
        text = column.cast(pa.large_string())
        if not pc.any(pc.match_substring(text, " 00:00:00")).as_py():  # cheap test first
            columns.append(text)
            continue
        is_date_cell = pc.match_substring_regex(text, _EXCEL_DATE_CELL.pattern)
        if pc.any(is_date_cell).as_py():
            as_text = pc.replace_substring_regex(text, _EXCEL_DATE_CELL.pattern, r"\3/\2/\1")
            text = pc.if_else(is_date_cell, as_text, text)
        columns.append(text)
    return pa.table(columns, names=table.column_names)


@dataclass(frozen=True)
class Recognition:
    table: str | None
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    message: str


def recognise_table(columns: Iterable[str], tables: Mapping[str, Iterable[str]]) -> Recognition:
    """Name the table whose column set the headers carry.

    A table is recognised when all its columns are present (extra columns are ignored and reported).
    When no table is complete, the closest one (most shared columns, at least half of its columns)
    is named with its missing columns so the error can say what to fix.
    """
    present = {normalise_header(c) for c in columns}
    best: tuple[float, str] | None = None
    for name, expected in tables.items():
        wanted = set(expected)
        if wanted <= present:
            extra = tuple(sorted(present - wanted))
            return Recognition(name, (), extra, "")
        share = len(wanted & present) / len(wanted)
        if share >= 0.5 and (best is None or share > best[0]):
            best = (share, name)
    if best is not None:
        name = best[1]
        wanted = set(tables[name])
        missing = tuple(c for c in tables[name] if c not in present)
        return Recognition(
            name,
            missing,
            tuple(sorted(present - wanted)),
            f"looks like the {name} table but lacks column(s) {', '.join(missing)}",
        )
    shown = ", ".join(sorted(present)) or "(no columns)"
    return Recognition(None, (), (), f"columns {shown} match no known table")
