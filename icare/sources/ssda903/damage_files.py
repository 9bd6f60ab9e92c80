"""Reading and rewriting the clean generator's return files, for ``damage.py``.

The clean returns (``synthetic.generate_returns``, CSV) are tiny tables of plain text, so they are read
whole with the csv module and written back as bytes in the damaged form asked for: another encoding,
separator or preamble, or an XLSX workbook built with openpyxl (which can merge cells and hide sheets).
"""

from __future__ import annotations

import csv
import io
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from icare.sources.ssda903.synthetic import _FIXED_TIME, SHEETS, _finish_zip

TABLES = ("header", "episodes", "uasc")
DATE_COLUMNS = {"header": ("DOB", "MC_DOB"), "episodes": ("DECOM", "DEC"), "uasc": ("DOB", "DUC")}
CODE_COLUMNS = {
    "header": ("SEX", "ETHNIC"),
    "episodes": ("RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "REC", "REASON_PLACE_CHANGE"),
    "uasc": ("SEX",),
}


@dataclass(frozen=True)
class Change:
    """One damage done to one file: what a test or a reader of ``damage.json`` needs to know."""

    kind: str
    file: str  # path relative to the damaged corpus root, with forward slashes
    what: str
    count: int  # values, rows or files changed


@dataclass
class Table:
    """A return table as text: the column names and the rows (lists of strings)."""

    columns: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> int:
        return self.columns.index(name)

    def drop(self, name: str) -> None:
        j = self.column(name)
        del self.columns[j]
        for row in self.rows:
            del row[j]


@dataclass(frozen=True)
class Return:
    """The folder of one area's return for one collection year: ``<root>/<year>/<area>/``."""

    root: Path
    year: int
    area: str

    @property
    def folder(self) -> Path:
        return self.root / str(self.year) / self.area

    def path(self, table: str) -> Path:
        return self.folder / f"{table}.csv"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def read(self, table: str) -> Table:
        return read_table(self.path(table))

    def write(self, table: str, content: Table, **form) -> None:
        write_table(self.path(table), content, **form)


def returns(root: Path) -> list[Return]:
    """Every clean return below ``root``, by year then area."""
    found = [
        Return(root, int(folder.parent.name), folder.name)
        for folder in Path(root).glob("[0-9][0-9][0-9][0-9]/*")
        if (folder / "episodes.csv").is_file()
    ]
    return sorted(found, key=lambda r: (r.year, r.area))


def read_table(path: Path) -> Table:
    with path.open(newline="", encoding="utf-8") as handle:
        lines = list(csv.reader(handle))
    return Table(lines[0], lines[1:])


def write_table(
    path: Path,
    table: Table,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    preamble: tuple[str, ...] = (),
    newline: str = "\n",
) -> None:
    """Write ``table`` as delimited text; ``preamble`` lines (e.g. a title, blank lines) come first."""
    buffer = io.StringIO()
    for line in preamble:
        buffer.write(line + newline)
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline)
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    path.write_bytes(buffer.getvalue().encode(encoding))


def copy_corpus(clean: Path, out: Path) -> None:
    """A fresh copy of the clean corpus at ``out`` (replacing what was there)."""
    if out.is_symlink() or out.is_file():
        out.unlink()
    elif out.exists():
        shutil.rmtree(out)
    shutil.copytree(clean, out, symlinks=True)


def write_workbook(
    ret: Return,
    *,
    title: bool = False,
    draft: Table | None = None,
    serial_dates: bool = False,
) -> Path:
    """Replace the return's CSV files by one workbook ``ssda903_<year>.xlsx`` (sheets Header,
    Episodes, UASC, every cell text), as an authority saving its return from Excel would.

    ``title``: a title merged across the header's width in row 1 and a blank row 2 above the header.
    ``draft``: a hidden sheet "Episodes (draft)" holding this stale copy of the episodes.
    ``serial_dates``: DECOM and DEC as Excel serial day numbers in General format (what a date column
    reformatted as General shows), not text.
    """
    from openpyxl import Workbook

    wb = Workbook()
    wb.properties.created = _FIXED_TIME
    wb.properties.creator = "icare damaged SSDA903 corpus"
    wb.remove(wb.active)
    for key, sheet in SHEETS.items():
        table = ret.read(key)
        ws = wb.create_sheet(sheet)
        if title:
            ws.append([f"SSDA903 {sheet} {ret.year - 1}/{ret.year % 100:02d} local authority {ret.area}"])
            ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=len(table.columns))
            ws.append([])
        ws.append(table.columns)
        dates = {table.column(c) for c in ("DECOM", "DEC")} if serial_dates and key == "episodes" else set()
        for row in table.rows:
            ws.append([_serial(v) if j in dates and v else (v or None) for j, v in enumerate(row)])
        ret.path(key).unlink()
    if draft is not None:
        ws = wb.create_sheet("Episodes (draft)")
        ws.append(draft.columns)
        for row in draft.rows:
            ws.append([v or None for v in row])
        ws.sheet_state = "hidden"
    path = ret.folder / f"ssda903_{ret.year}.xlsx"
    buffer = io.BytesIO()
    wb.save(buffer)
    path.write_bytes(_finish_zip(buffer.getvalue(), {}))  # fixed timestamps: same bytes every time
    return path


def _serial(ddmmyyyy: str) -> int:
    """Excel's serial day number of a dd/mm/YYYY date (day 1 = 1 Jan 1900, with Excel's 29 Feb 1900)."""
    from datetime import date

    day, month, year = (int(p) for p in ddmmyyyy.split("/"))
    return (date(year, month, day) - date(1899, 12, 30)).days


# ---- The registry of damage kinds and what they share ----------------------------------------------

Damage = Callable[[Path, random.Random], list[Change]]
KINDS: dict[str, Damage] = {}
NBSP = "\u00a0"


def damage_kind(function: Damage) -> Damage:
    KINDS[function.__name__] = function
    return function


def pick_return(root: Path, rng: random.Random, years: Sequence[int] | None = None) -> Return:
    """One return: of the years given, else of a year that is neither the first nor the last (so
    that episodes run into it and out of it)."""
    found = returns(root)
    all_years = sorted({r.year for r in found})
    wanted = set(years) if years is not None else set(all_years[1:-1] or all_years)
    eligible = [r for r in found if r.year in wanted]
    if not eligible:
        raise ValueError(f"no return of the years {sorted(wanted)} below {root}")
    return rng.choice(eligible)


def sample_rows(table: Table, rng: random.Random, share: float, where: Callable[[list[str]], bool]) -> list:
    candidates = [row for row in table.rows if where(row)]
    return rng.sample(candidates, min(len(candidates), max(1, round(share * len(candidates)))))


def rewrite_values(ret: Return, kind: str, columns: dict, change: Callable[[str], str], what: str) -> list:
    """Rewrite every non-blank value of the given columns of each table of one return; a table is
    recorded as changed only where a value did change (``1`` in lower case is still ``1``)."""
    changes = []
    for table_name in TABLES:
        table = ret.read(table_name)
        count = 0
        for name in columns.get(table_name, ()):
            j = table.column(name)
            for row in table.rows:
                if not row[j]:
                    continue
                new = change(row[j])
                if new != row[j]:
                    row[j] = new
                    count += 1
        ret.write(table_name, table)
        if count:
            changes.append(Change(kind, ret.relative(ret.path(table_name)), what, count))
    return changes
