"""Read a CSV or TXT file with every column as text, whatever its encoding, separator or title rows.

The usual file (UTF-8, commas, the header on line 1) goes straight from disk to pyarrow. The encoding,
the separator and the header line are judged from the first few KB only; a file in another
encoding (UTF-16, Windows-1252) is transcoded to UTF-8 in memory, and a file with rows above its
header is parsed from the line after the header. Rows are numbered by their line in the file.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from icare.reading import HEADER_SEARCH_ROWS, UnreadableFileError, header_row_index, text_frame

SNIFF_BYTES = 16 * 1024
SEPARATORS = (",", ";", "\t")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BYTE_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


@dataclass(frozen=True)
class CsvLayout:
    """How a file is written: its encoding, separator and header (line number and names)."""

    encoding: str
    separator: str
    header_line: int  # 1 = the first line
    names: list[str]

    @property
    def plain(self) -> bool:
        """UTF-8 with commas and the header first: pyarrow reads the file as it is on disk."""
        return self.encoding == "utf-8" and self.separator == "," and self.header_line == 1


def sniff_encoding(head: bytes) -> str:
    """The encoding of a file from its first bytes: a byte order mark, the zero bytes of UTF-16 text
    without one, else UTF-8 when the bytes decode as UTF-8, else Windows-1252."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    if len(head) >= 4:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if odd > len(head) // 4 and even < odd // 8:
            return "utf-16-le"
        if even > len(head) // 4 and odd < even // 8:
            return "utf-16-be"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # a cut character is fine
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _decode(data: bytes, encoding: str, path: Path) -> str:
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        raise UnreadableFileError(
            f"{path}: not a readable text file (it is not {_ENCODING_LABELS.get(encoding, encoding)} text; "
            "save it as CSV, UTF-8)"
        ) from None
    return _refuse_binary(text.removeprefix("\ufeff"), path)


def _refuse_binary(text: str, path: Path) -> str:
    """``text``, unless its start holds control characters that no table written as text has."""
    head = text[:SNIFF_BYTES]
    controls = sum(1 for c in head if c < " " and c not in "\t\r\n")
    if controls > max(2, len(head) // 100):
        raise UnreadableFileError(f"{path}: not a text file (binary content); save it as CSV or XLSX")
    return text


_ENCODING_LABELS = {
    "utf-8": "UTF-8",
    "utf-16": "UTF-16",
    "utf-16-le": "UTF-16",
    "utf-16-be": "UTF-16",
    "cp1252": "UTF-8 or Windows-1252",
}


def sniff_layout(
    head_text: str, complete: bool, recognises: Callable[[list[str]], bool] | None
) -> tuple[str, int, list[str]] | None:
    """Separator, header line and header names from the first lines of a file (None: all blank).

    For each separator the header is the first line that ``recognises`` as a table; the earliest
    such line wins (commas first on a tie). When no line is recognised, the header is the first
    non-blank line, split on the separator it holds most often.
    """
    lines = _LINE_BREAK.split(head_text)
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut by the sniffed size
    lines = lines[:HEADER_SEARCH_ROWS]
    first = header_row_index([_fields(line, ",") for line in lines], None)
    if first is None:
        return None
    best: tuple[int, str] | None = None
    for separator in SEPARATORS if recognises is not None else ():
        rows = [_fields(line, separator) for line in lines]
        position = header_row_index(rows, recognises)
        found = position is not None and recognises(_names(rows[position]))
        if found and (best is None or position < best[0]):
            best = (position, separator)
        if best is not None and best[0] == first:
            break  # no separator can find a header earlier than the first non-blank line
    if best is None:
        line = lines[first]
        separator = max(SEPARATORS, key=lambda s: (line.count(s), s == ","))
        best = (first, separator)
    position, separator = best
    return separator, position + 1, _fields(lines[position], separator)


def _fields(line: str, separator: str) -> list[str]:
    return next(csv.reader([line], delimiter=separator), [])


def _names(cells: list[str]) -> list[str]:
    return [c for c in cells if c.strip()]


def read_csv_layout(path: Path, recognises: Callable[[list[str]], bool] | None = None) -> CsvLayout | None:
    """The file's layout judged from its first ``SNIFF_BYTES`` bytes; None when they are all blank."""
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
            complete = not handle.read(1)
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot be opened ({exc.strerror or exc})") from exc
    encoding = sniff_encoding(head)
    if encoding.startswith("utf-16") and len(head) % 2:
        head = head[:-1]
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=complete)
    except UnicodeDecodeError:
        text = _decode(head, encoding, path)  # raises, naming the file
    sniffed = sniff_layout(_refuse_binary(text.removeprefix("\ufeff"), path), complete, recognises)
    if sniffed is None:
        return None
    separator, header_line, names = sniffed
    return CsvLayout(encoding, separator, header_line, names)


def read_csv_text(path: Path, recognises: Callable[[list[str]], bool] | None = None) -> pd.DataFrame:
    """Read a CSV file with every column as text; empty fields become null.

    Rows are numbered by their line in the file (the header is line 1 unless title or blank lines
    stand above it), empty lines included. ``recognises`` tells a header from a title line (see
    ``sniff_layout``). A file that cannot be parsed is reported by line number and field counts
    only: the parser's own message quotes the line, identifiers and all.
    """
    layout = read_csv_layout(path, recognises)
    if layout is None:
        return pd.DataFrame()
    encoding = layout.encoding
    if layout.plain:
        try:
            return _parse(path, path, layout, None)
        except _NotUtf8:
            encoding = "cp1252"  # UTF-8 in its first KB only
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if encoding == "utf-8":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "cp1252"
    if encoding != "utf-8":
        data = _decode(data, encoding, path).encode("utf-8")
    elif data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    body = data[_line_start(data, layout.header_line + 1) :]
    try:
        return _parse(path, body, layout, data)
    except _NotUtf8:  # cannot happen once transcoded; kept so that no parser message leaks
        raise UnreadableFileError(f"{path}: not a readable CSV file (not UTF-8 text)") from None


class _NotUtf8(Exception):
    """pyarrow found bytes that are not UTF-8 (the sniffed head was)."""


def _parse(path: Path, body: Path | bytes, layout: CsvLayout, data: bytes | None) -> pd.DataFrame:
    """Parse the data lines: ``body`` is the file (header on line 1) or the UTF-8 bytes after the header."""
    names = layout.names
    if isinstance(body, bytes) and not body.strip():  # a header and no data lines: an empty table
        empty = pd.DataFrame({name: pd.Series(dtype="str") for name in names})
        return text_frame(empty, layout.header_line + 1)
    source = body if isinstance(body, Path) else pa.BufferReader(body)
    try:
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if isinstance(body, Path) else 0),
            convert_options=pacsv.ConvertOptions(
                # Large strings, as pandas holds text: the frame then wraps the parsed columns
                # instead of copying every value into them.
                column_types=dict.fromkeys(names, pa.large_string()),
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
            parse_options=pacsv.ParseOptions(delimiter=layout.separator, newlines_in_values=False),
        )
    except pa.ArrowInvalid as exc:
        if "utf8" in str(exc).lower() or "unicode" in str(exc).lower():
            raise _NotUtf8 from None
        text = (data if data is not None else path.read_bytes()).decode("utf-8", errors="replace")
        raise UnreadableFileError(f"{path}: {_describe_bad_line(text, layout)}") from None
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    frame = text_frame(table.to_pandas(), layout.header_line + 1)
    raw = body.read_bytes() if isinstance(body, Path) else body
    lines = _data_line_numbers(raw, len(frame), skip_first=isinstance(body, Path))
    if lines is not None:
        frame.index = pd.Index(lines[: len(frame)] + layout.header_line, name="row_number")
    return frame


def _line_start(data: bytes, line: int) -> int:
    """Byte offset at which line ``line`` (1 = the first) starts; LF, CR and CRLF end a line."""
    offset = 0
    for _ in range(line - 1):
        match = _BYTE_LINE_BREAK.search(data, offset)
        if match is None:
            return len(data)
        offset = match.end()
    return offset


def _data_line_numbers(data: bytes, rows: int, *, skip_first: bool) -> np.ndarray | None:
    """Line numbers (1 = the first line of ``data``, less the header line when ``skip_first``) of the
    data rows when ``data`` has empty lines (the parser skips them), else None.

    Without empty lines every line is a data row. Line breaks (LF, CR or CRLF) are counted byte by
    byte, several times faster than searching for an empty line.
    """
    feeds = _count_byte(data, b"\n")
    returns = _count_byte(data, b"\r") if b"\r" in data else 0
    breaks = feeds + returns - (data.count(b"\r\n") if feeds and returns else 0)
    if breaks + (not data.endswith((b"\n", b"\r"))) <= rows + skip_first:
        return None
    numbers = np.array([n for n, line in enumerate(data.splitlines(), start=1) if line], dtype=np.int64)
    return numbers[1:] - 1 if skip_first else numbers


def _count_byte(data: bytes, byte: bytes) -> int:
    """``data.count(byte)`` in NumPy: a few times faster, and its comparison runs without the
    interpreter lock (files are read in parallel threads; ``bytes.count`` holds it)."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == ord(byte)))


def _describe_bad_line(text: str, layout: CsvLayout) -> str:
    """Which line breaks the CSV structure, without quoting it."""
    expected = len(layout.names)
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""), delimiter=layout.separator)
    for fields in reader:
        if reader.line_num > layout.header_line and fields and len(fields) != expected:
            return (
                f"line {reader.line_num} has {len(fields)} fields where the header has {expected}; "
                "fix the line (a missing or extra separator, or an unclosed quote)"
            )
    return "the file is not valid CSV (an unclosed quote or a line break inside a value)"
