"""Read the visible sheets of a workbook with every column as text, the header found below any title.

Each sheet is read without a header, from its first row (blank rows included), so that the header can
be found below title, note or merged cells and every row keeps its row number in the sheet. Hidden
and very hidden sheets are not read: they are named, for the record, in ``Workbook.hidden``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import fastexcel
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from icare.reading import HEADER_SEARCH_ROWS, UnreadableFileError, header_row_index, text_frame

# A workbook cell that holds a real date comes back from fastexcel as ISO text with a midnight time.
_EXCEL_DATE_CELL = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) 00:00:00$")


@dataclass
class Workbook:
    """The visible sheets read (name -> cells as text, indexed by row number in the sheet) and the
    hidden ones skipped (name -> ``hidden`` or ``veryhidden``)."""

    sheets: dict[str, pd.DataFrame] = field(default_factory=dict)
    hidden: dict[str, str] = field(default_factory=dict)


def read_workbook(path: Path, recognises: Callable[[list[str]], bool] | None = None) -> Workbook:
    """Read every visible sheet of a workbook with every column as text.

    Cells holding real dates are written back as dd/mm/YYYY text: a typed date cell is unambiguous,
    unlike text, so this is a conversion, not a guess. ``recognises`` tells a header row from the
    title rows above it (``icare.reading.header_row_index``).
    """
    try:
        reader = fastexcel.read_excel(path)
    except Exception as exc:  # fastexcel raises its own error types per problem
        raise UnreadableFileError(f"{path}: not a readable workbook ({_short(exc)})") from None
    workbook = Workbook()
    for name in reader.sheet_names:
        try:
            sheet = reader.load_sheet(name, header_row=None, skip_rows=0, dtypes="string")
            if sheet.visible != "visible":
                workbook.hidden[name] = str(sheet.visible)
                continue
            table = sheet.to_arrow()
        except Exception as exc:
            raise UnreadableFileError(f"{path} sheet {name!r}: cannot be read ({_short(exc)})") from None
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        workbook.sheets[name] = _sheet_frame(table, recognises)
    return workbook


def read_workbook_text(
    path: Path, recognises: Callable[[list[str]], bool] | None = None
) -> dict[str, pd.DataFrame]:
    """The visible sheets of ``read_workbook``."""
    return read_workbook(path, recognises).sheets


def _short(exc: Exception) -> str:
    """The library's message, first line only (some quote internal detail below it)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _sheet_frame(table: pa.Table, recognises: Callable[[list[str]], bool] | None) -> pd.DataFrame:
    """The sheet's rows below its header, named by the header's cells, indexed by sheet row number."""
    head = table.slice(0, HEADER_SEARCH_ROWS).to_pydict()
    rows = list(zip(*head.values(), strict=True)) if head else []
    position = header_row_index(rows, recognises)
    if position is None:
        return pd.DataFrame()
    names = [cell if cell is not None and cell.strip() else None for cell in rows[position]]
    data = table.slice(position + 1)
    # Columns with neither a header nor a value (a title merged across them, formatting) are dropped;
    # a column with values and no header keeps a made-up name and is reported as an extra column.
    keep = [i for i, name in enumerate(names) if name is not None or data.column(i).null_count < len(data)]
    data = pa.table(
        [data.column(i) for i in keep],
        names=[names[i] if names[i] is not None else f"__UNNAMED__{i}" for i in keep],
    )
    return text_frame(_excel_dates_as_text(data).to_pandas(), position + 2)


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
