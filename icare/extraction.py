"""Read a source's files, recognise tables by their headers, validate them and quarantine bad rows.

Generic over sources: the source gives its reader spec and, per table and collection year, the
Pandera schema. Each table keeps its origin (file, sheet, row number) on every row so that any
later rejection can still point at the cell to fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow

from icare import corrections, manifest, quarantine
from icare.failure_policy import FailurePolicy, apply_policy
from icare.normalise import normalise_table
from icare.quarantine import Origin
from icare.reading import CSV_SUFFIXES, UnreadableFileError, duplicated_headers, normalise_header
from icare.reading import recognise_table as recognise
from icare.reading_csv import read_csv_text
from icare.reading_workbook import read_workbook
from icare.sources.base import Extraction, InputFile, RawTable, SourceInputError
from icare.sources.spec import SourceSpec
from icare.validation import validate_table
from icare.vectorised import TextDictionaries, concat_encoded, constant, empty_like

SchemaFactory = Callable[[str, int], pa.DataFrameSchema]
Prepare = Callable[[str, pd.DataFrame, TextDictionaries], pd.DataFrame]
Compact = Callable[[str, pd.DataFrame, TextDictionaries | None], pd.DataFrame]
Encode = Callable[[str, pd.DataFrame], list[str]]
ORIGIN_COLUMNS = ["source", "collection_year", "area_code", "file", "sheet", "row_number"]


@dataclass(frozen=True)
class ValuePolicy:
    """How failing values are handled: the source's failure policy and every code of each code
    column in any year (a code of another year is mapped by its meaning). ``None`` in its place
    (``--strict``): no value is normalised and every failing value quarantines its row."""

    policy: FailurePolicy
    known_codes: Mapping[str, frozenset[str]]


def read_tables(input_file: InputFile, spec: SourceSpec) -> tuple[list[RawTable], list[dict]]:
    """Every table in one file, recognised by its headers (a CSV is one table, a workbook one per
    visible sheet), and the file's findings (hidden sheets skipped, child ids read without zeros).

    Optional columns the file leaves out are added blank; a header that occurs twice in a recognised
    table stops the run, naming it (which of the two holds the data cannot be known).
    """
    tables_columns, optional = spec.table_columns(), spec.optional_columns()

    def recognises(names: list[str]) -> bool:
        return recognise(names, tables_columns, optional).table is not None

    findings = []
    if input_file.path.suffix.lower() in CSV_SUFFIXES:
        sheets: dict[str | None, pd.DataFrame] = {None: read_csv_text(input_file.path, recognises)}
    else:
        workbook = read_workbook(input_file.path, recognises)
        sheets = dict(workbook.sheets)
        for name, state in workbook.hidden.items():
            findings.append(
                manifest.finding(
                    input_file,
                    name,
                    None,
                    manifest.HIDDEN_SHEET,
                    1,
                    f"sheet {name!r} is {'very hidden' if state == 'veryhidden' else 'hidden'} and was not "
                    "read: unhide it (or remove it) if it holds a table of the return",
                )
            )
    tables = []
    for sheet, frame in sheets.items():
        frame = frame.rename(columns=normalise_header)
        # A row with no value at all is spreadsheet padding, not a record.
        if len(frame.columns):
            blank = frame.isna().all(axis=1).to_numpy()
            if blank.any():
                frame = frame.loc[~blank]
        recognition = recognise(frame.columns, tables_columns, optional)
        if recognition.table is not None:
            _stop_on_duplicated_headers(frame, input_file, sheet)
            absent = [c for c in optional.get(recognition.table, ()) if c not in frame.columns]
            if absent and len(frame.columns):
                blank_column = pd.Series(pd.NA, index=frame.index, dtype=frame.dtypes.iloc[0])
                frame = frame.assign(**dict.fromkeys(absent, blank_column))
            if spec.child_id_compare == "ignore_leading_zeros" and "CHILD" in frame.columns:
                frame, changed = _child_ids_without_leading_zeros(frame)
                if changed:
                    findings.append(
                        manifest.finding(
                            input_file,
                            sheet,
                            recognition.table,
                            manifest.LEADING_ZEROS_REMOVED,
                            changed,
                            f"{changed} child id(s) read without their leading zeros "
                            "(child_id_compare: ignore_leading_zeros)",
                        )
                    )
        tables.append(
            RawTable(
                input=input_file,
                sheet=sheet,
                table=recognition.table,
                frame=frame,
                ignored_columns=recognition.extra,
                missing_columns=recognition.missing,
            )
        )
    return tables, findings


def _stop_on_duplicated_headers(frame: pd.DataFrame, input_file: InputFile, sheet: str | None) -> None:
    duplicated = duplicated_headers(frame.columns)
    if duplicated:
        where = input_file.file if sheet is None else f"{input_file.file} sheet {sheet!r}"
        raise SourceInputError(
            f"{input_file.source}: {where}: the column header(s) {', '.join(duplicated)} occur more than "
            "once (case and surrounding spaces are ignored): keep one column of each name"
        )


def _child_ids_without_leading_zeros(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    child = frame["CHILD"]
    stripped = manifest.without_leading_zeros(child)
    changed = int((child.notna() & (stripped != child)).sum())
    return (frame.assign(CHILD=stripped) if changed else frame), changed


def origin_of(raw: RawTable) -> Origin:
    return Origin(
        source=raw.input.source,
        file=raw.input.file,
        sheet=raw.sheet,
        table_name=raw.table,
        collection_year=raw.input.collection_year,
        area_code=raw.input.area_code,
    )


def _whole_table(raw: RawTable, rule: str, description: str, column: str | None = None) -> pd.DataFrame:
    """Quarantine every row of a table that cannot be used (or one record if it has no rows)."""
    rows = list(raw.frame.index) or [None]
    return quarantine.records(origin_of(raw), rows, column, rule, None, description)


def _table_problem(raw: RawTable, spec: SourceSpec) -> pd.DataFrame | None:
    """A reason to reject the whole table, or None when its rows can be validated."""
    year = raw.input.collection_year
    if raw.frame.columns.empty:
        return _whole_table(raw, "empty_table", "the file or sheet has no header row and no data")
    if raw.table is None:
        columns = ", ".join(map(str, raw.frame.columns))
        known = "; ".join(
            f"{name}: {', '.join(t.columns)}" for name, t in spec.tables.items() if t.harmonised
        )
        return _whole_table(
            raw,
            "unrecognised_table",
            f"has columns {columns}, which match no {spec.id} table (expected e.g. {known})",
        )
    if raw.missing_columns:
        missing = ", ".join(raw.missing_columns)
        return _whole_table(
            raw, "missing_column", f"the {raw.table} table lacks required column(s) {missing}", column=missing
        )
    if year is None:
        return _whole_table(
            raw,
            "unknown_collection_year",
            "the collection year is not in the path: put the "
            "file in a folder named by the year in which the collection ends (2024/ for "
            "2023/24) or put the year in its name (e.g. episodes_2023-24.csv)",
        )
    if not spec.first_year <= year <= spec.last_year:
        return _whole_table(
            raw,
            "unsupported_collection_year",
            f"collection year {year} is outside the "
            f"years with code lists ({spec.first_year}-{spec.last_year}): add its code list",
        )
    return None


@dataclass
class _FileResult:
    """What one file gave: its tables, quarantine records, and valid and rejected rows per table."""

    tables: list[RawTable] = field(default_factory=list)
    records: list[pd.DataFrame] = field(default_factory=list)
    corrections: list[pd.DataFrame] = field(default_factory=list)
    valid: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    rejected: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)


# What a reader can raise on a file it cannot parse (the parsers' own errors are reworded as
# UnreadableFileError where they are expected; these are the rest, still a message, not a traceback).
_READ_ERRORS = (UnreadableFileError, OSError, UnicodeError, pa_arrow.ArrowException)


def _extract_file(
    input_file: InputFile,
    spec: SourceSpec,
    schema_for: SchemaFactory,
    prepare: Prepare | None,
    compact: Compact | None,
    encode: Encode | None = None,
    values: ValuePolicy | None = None,
) -> _FileResult:
    result = _FileResult()
    try:
        file_tables, result.findings = read_tables(input_file, spec)
    except _READ_ERRORS as exc:
        raw = RawTable(input_file, None, None, pd.DataFrame())
        result.tables.append(raw)
        message = str(exc).split(": ", 1)[-1] if isinstance(exc, UnreadableFileError) else str(exc)
        result.records.append(_whole_table(raw, "unreadable_file", message or type(exc).__name__))
        return result
    for raw in file_tables:
        result.tables.append(raw)
        problem = _table_problem(raw, spec)
        usable = problem is None and spec.tables[raw.table].harmonised and not raw.frame.empty
        frame = raw.frame[list(spec.tables[raw.table].columns)] if usable else None
        raw.release()  # the validated copy below is all that is kept of the cells
        if problem is not None:
            result.records.append(problem)
        if frame is None:
            continue  # unusable, not harmonised, or a valid empty table (e.g. no UASC child)
        origin = origin_of(raw)
        encoded = encode(raw.table, frame) if encode is not None else []
        table_policy = values.policy.tables.get(raw.table) if values is not None else None
        known: dict = {}
        if table_policy is not None:
            normalised = normalise_table(
                frame,
                table_policy,
                origin,
                spec.period(raw.input.collection_year),
                spec.date_format,
                set(encoded),
                spec.date_pattern,
            )
            frame, known = normalised.frame, normalised.encodings
            result.corrections.append(normalised.corrections)
        # The columns the source holds encoded, each encoded once for validation and compaction.
        dictionaries = TextDictionaries(frame, encoded, known)
        if prepare is not None:
            frame = prepare(raw.table, frame, dictionaries)
        schema = schema_for(raw.table, raw.input.collection_year)
        ok, bad = validate_table(frame, schema, origin, dictionaries)
        changed = False
        if table_policy is not None and len(bad):
            outcome = apply_policy(frame, bad, table_policy, values.known_codes, origin)
            frame, ok, bad, changed = outcome.frame, outcome.valid, outcome.quarantine, outcome.changed
            result.corrections.append(outcome.corrections)
        result.records.append(bad)
        # The usual case: no copy of a clean table (a table with values changed by the policy is
        # not clean: the encodings of its columns are of the values before).
        clean = bool(ok.all()) and not changed
        # Rejected rows are few and stay as read (text); the valid rows are held compactly.
        rejected = empty_like(frame) if clean else frame.loc[~ok.to_numpy()]  # a slice would keep the rows
        valid = frame if clean else frame.loc[ok.to_numpy()]
        del frame
        if compact is not None:
            # The encodings are of every row: of use only when every row is valid.
            valid = compact(raw.table, valid, dictionaries if clean else None)
        del dictionaries
        result.valid.append((raw.table, _with_origin(valid, raw, encoded=True)))
        result.rejected.append((raw.table, _with_origin(rejected, raw, encoded=False)))
    return result


def extract(
    files: list[InputFile],
    spec: SourceSpec,
    schema_for: SchemaFactory,
    prepare: Prepare | None = None,
    progress: Callable[[str], None] | None = None,
    compact: Compact | None = None,
    encode: Encode | None = None,
    values: ValuePolicy | None = None,
) -> Extraction:
    """Read and validate every file; rows of unusable tables and invalid rows go to quarantine.

    Files are read and validated in parallel threads (the parsers and most checks run in Arrow and
    release the interpreter lock); results are combined in file order, so the outcome does not
    depend on the threads. ``prepare`` lets a source add helper columns (e.g. dates parsed once);
    ``compact`` lets it shrink a file's valid rows once they are validated (validation and its
    messages read the text as written), e.g. drop columns nothing reads and encode repeated text.
    ``encode`` names the text columns of a table the source holds encoded: each is dictionary-encoded
    once, and the encodings are handed to ``prepare`` and ``compact`` and used by validation to
    check those columns once per distinct value (``TextDictionaries``).
    Each file's origin columns are categoricals of one category in the valid rows, and the files'
    categoricals are combined with the union of their categories, so they stay categoricals.
    """

    # An exact copy of a file of the same return is read once (icare.manifest).
    originals, copies = manifest.split_copies(files)

    def one(numbered: tuple[int, InputFile]) -> _FileResult:
        number, input_file = numbered
        if progress is not None:
            progress(f"{spec.id}: file {number}/{len(originals)}: {input_file.file}")
        return _extract_file(input_file, spec, schema_for, prepare, compact, encode, values)

    with ThreadPoolExecutor(max_workers=min(len(originals), os.cpu_count() or 1) or 1) as pool:
        results = dict(
            zip((f.file for f in originals), pool.map(one, enumerate(originals, start=1)), strict=True)
        )
    manifest.check_one_table_per_return([t for r in results.values() for t in r.tables], spec)
    valid: dict[str, list[pd.DataFrame]] = {}
    rejected: dict[str, list[pd.DataFrame]] = {}
    for result in results.values():
        for name, frame in result.valid:
            valid.setdefault(name, []).append(frame)
        for name, frame in result.rejected:
            rejected.setdefault(name, []).append(frame)
    records = quarantine.combine([record for r in results.values() for record in r.records])
    tables, findings, superseded, copied_records = [], [], [], []
    for f in files:  # in file order, copies where they stand
        if f.file not in copies:
            tables += results[f.file].tables
            findings += results[f.file].findings
            continue
        original = copies[f.file]
        copied = manifest.copied_tables(f, results[original.file].tables)
        tables += copied
        harmonised = {name for name, table in spec.tables.items() if table.harmonised}
        superseded.append(manifest.superseded_copy_rows(f, original, copied, harmonised))
        copied_records.append(manifest.copied_quarantine(f, original, records))
        findings.append(
            manifest.finding(
                f,
                None,
                None,
                manifest.IDENTICAL_COPY,
                len(superseded[-1]),
                f"an exact copy of {original.file} (same content and return): read once, its rows are "
                "superseded by the original's (superseded table, reason identical_copy)",
            )
        )
    if spec.child_id_compare == "exact":
        with_ids = [
            (n, f) for parts in (valid, rejected) for n, fs in parts.items() for f in fs if "CHILD" in f
        ]
        findings += manifest.leading_zero_findings(with_ids, files)
    return Extraction(
        source=spec.id,
        files=files,
        tables=tables,
        valid={name: concat_encoded(parts) for name, parts in valid.items()},
        rejected={name: pd.concat(parts, ignore_index=True) for name, parts in rejected.items()},
        quarantine=quarantine.combine([records, *copied_records]) if copied_records else records,
        corrections=corrections.combine([record for r in results.values() for record in r.corrections]),
        findings=manifest.findings_frame(findings),
        superseded=pd.concat(superseded, ignore_index=True) if superseded else pd.DataFrame(),
    )


def _with_origin(frame: pd.DataFrame, raw: RawTable, *, encoded: bool) -> pd.DataFrame:
    """``frame`` with the origin of its rows (the same source, year, area, file and sheet on each).

    ``encoded``: the text origin columns as categoricals of one category (a byte a row rather than
    the text repeated on every row); combine such frames with ``concat_encoded``.
    """
    text = {
        "source": raw.input.source,
        "area_code": raw.input.area_code,
        "file": raw.input.file,
        "sheet": raw.sheet,
    }
    if encoded:
        text = {name: constant(value, frame.index) for name, value in text.items()}
    return frame.assign(
        source=text["source"],
        collection_year=raw.input.collection_year,
        area_code=text["area_code"],
        file=text["file"],
        sheet=text["sheet"],
        row_number=frame.index.to_numpy(),
    )
