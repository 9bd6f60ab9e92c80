"""The interface every national source implements, and the records passed between stages.

A source turns a folder of national files into harmonised episodes and children. Everything that is
specific to one country (file layout, code lists, repair rules) stays behind this interface, so the
pipeline, the outputs and the Dagster assets are the same for every source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pandas as pd

from icare.corrections import empty as no_corrections
from icare.pseudonymise import Pseudonymiser
from icare.sources.spec import SourceSpec
from icare.vectorised import empty_like


class SourceInputError(RuntimeError):
    """The input cannot be used at all (missing folder, nothing recognisable): the run stops."""


@dataclass(frozen=True)
class InputFile:
    """One file found below a source's input folder."""

    source: str
    path: Path
    file: str  # path relative to the input root, as shown in errors and outputs
    collection_year: int | None
    area_code: str | None
    sha256: str
    size_bytes: int


@dataclass
class RawTable:
    """One table read from one file (a CSV, or one sheet of a workbook), every cell as text."""

    input: InputFile
    sheet: str | None
    table: str | None  # recognised table name; None when the columns match no known table
    frame: pd.DataFrame  # text columns; index = row number in the file (header is row 1)
    ignored_columns: tuple[str, ...] = ()
    missing_columns: tuple[str, ...] = ()
    row_numbers: pd.Index | None = None  # kept when the cells are released

    def release(self) -> None:
        """Drop the cells once the table is validated; the row numbers stay for the reconciliation."""
        self.row_numbers = self.frame.index
        self.frame = empty_like(self.frame)  # not a slice, which would keep every cell read

    @property
    def rows(self) -> pd.Index:
        """Row numbers of the table's data rows (header = row 1)."""
        return self.frame.index if self.row_numbers is None else self.row_numbers


@dataclass
class Extraction:
    """What extraction and validation produced for one source: valid rows, quarantine, counts."""

    source: str
    files: list[InputFile]
    tables: list[RawTable]
    valid: dict[str, pd.DataFrame]  # table name -> rows that passed validation, with origin columns
    rejected: dict[str, pd.DataFrame]  # table name -> rows that failed, kept to block guesses later
    quarantine: pd.DataFrame
    # Values changed and rows kept (``icare.corrections``); empty when nothing was corrected.
    corrections: pd.DataFrame = field(default_factory=no_corrections)
    # Counts per file worth knowing that change no row (return_findings), and rows of exact copies of
    # files, superseded by the original's rows before validation (icare.manifest).
    findings: pd.DataFrame = field(default_factory=pd.DataFrame)
    superseded: pd.DataFrame = field(default_factory=pd.DataFrame)
    # True once ``Source.seal`` ran: child ids are child keys, other identifiers are dropped or
    # digested, and the quarantine is redacted, so the extraction may be stored between stages.
    pseudonymised: bool = False
    handed_over: bool = False  # True once ``take_valid`` gave the valid rows to harmonisation

    def take_valid(self) -> dict[str, pd.DataFrame]:
        """The valid rows, which the extraction then no longer holds (they can be taken once).

        Harmonisation takes them so that its own frames are the only references to the input: each
        input column is then freed as soon as harmonisation is done with it, rather than the whole
        input (about 3.5 GB at 5,000,000 episode rows) being held until the harmonised tables exist.
        """
        if self.handed_over:
            raise ValueError(f"{self.source}: the valid rows were already taken by an earlier harmonisation")
        valid, self.valid, self.handed_over = self.valid, {}, True
        return valid


@dataclass
class Harmonised:
    """A source's contribution to the harmonised tables.

    ``episodes`` come sorted by area, child key, start and collection year, ``children`` by area and
    child key, so the published tables have a fixed order without sorting them again.
    """

    source: str
    episodes: pd.DataFrame
    children: pd.DataFrame
    quarantine: pd.DataFrame
    superseded: pd.DataFrame
    accepted_rows: pd.DataFrame  # origin (file, sheet, row_number, table_name) of rows that were used
    concordance: pd.DataFrame  # the concordance in force, as published in the ``concordance`` table
    versions: dict[str, str] = field(default_factory=dict)

    def release_frames(self) -> None:
        """Empty the row-level frames once the published tables hold their rows (frees memory)."""
        for name in ("episodes", "children", "superseded", "accepted_rows"):
            setattr(self, name, getattr(self, name).iloc[0:0])


class Source(Protocol):
    """What the pipeline needs from a national source."""

    name: str
    spec: SourceSpec  # the reader specification (tables, formats, identifier policy)
    pseudonymiser: Pseudonymiser

    def discover(self, root: Path) -> list[InputFile]:
        """Find the source's files below ``root`` and read their year and area from the path."""
        ...

    def extract(self, files: list[InputFile], progress: Callable[[str], None] | None = None) -> Extraction:
        """Read, recognise and validate the tables; invalid rows go to quarantine. ``progress`` is
        told about each file as it is read."""
        ...

    def seal(self, extraction: Extraction) -> Extraction:
        """The same extraction with no child identifier as received: what may be stored or combined."""
        ...

    def harmonise(self, extraction: Extraction) -> Harmonised:
        """Combine returns, repair, pseudonymise and map every accepted row onto ICare.

        Takes the extraction's valid rows (``Extraction.take_valid``), freeing them as it goes: an
        extraction is harmonised once."""
        ...
