"""Coverage: which returns can give figures, and the gate that stops a run on the others.

A return is one source's files for one area and collection year. It gives figures only when every
table its figures rest on (``required`` in the source's ``source.yaml``: for SSDA903 the header and
the episodes) was read and has rows. Otherwise the year's stock and flows cannot be known: the
episodes of the previous return would stand in for them. Such a return is ``incomplete``; a year
with no file at all between an area's first and last returns is ``missing``. By default the run
stops on either (``require_complete``); when incomplete input is allowed, the years of those returns
are left out of the reporting periods (``complete_periods``) and the ``coverage`` table says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pandas as pd

from icare.sources.base import Extraction, RawTable, SourceInputError
from icare.sources.spec import SourceSpec
from schemas.outputs import column_names

COMPLETE = "complete"
INCOMPLETE = "incomplete"
MISSING = "missing"
COVERAGE_COLUMNS = column_names("coverage")
# Quarantine rules that reject a whole table (icare.extraction._table_problem, unreadable files).
WHOLE_TABLE_RULES = frozenset(
    {
        "unreadable_file",
        "empty_table",
        "unrecognised_table",
        "missing_column",
        "unknown_collection_year",
        "unsupported_collection_year",
    }
)
ALLOW_INCOMPLETE_ADVICE = (
    "fix or supply the files named and run again, or run with --allow-incomplete (Dagster: "
    "icare_settings.allow_incomplete) to publish without the figures of these years for these areas; "
    "the coverage table then lists them. Nothing was written: the previous outputs are unchanged"
)


class IncompleteReturnsError(SourceInputError):
    """Some returns cannot give figures and incomplete input was not allowed: nothing is published."""


@dataclass(frozen=True)
class _Problem:
    """Why one table of a return is of no use: its rule and the message of its quarantine record."""

    rule: str
    message: str


def _table_problems(extraction: Extraction) -> dict[tuple[str, str | None], _Problem]:
    """(file, sheet) -> the problem of each table rejected whole, from its quarantine records."""
    records = extraction.quarantine
    if records.empty:
        return {}
    whole = records[records["rule"].isin(list(WHOLE_TABLE_RULES))]
    whole = whole.drop_duplicates(["file", "sheet"])
    return {
        (str(r.file), None if pd.isna(r.sheet) else str(r.sheet)): _Problem(str(r.rule), str(r.message))
        for r in whole.itertuples()
    }


def _where(raw: RawTable) -> str:
    return f"{raw.input.file} sheet {raw.sheet!r}" if raw.sheet else raw.input.file


def _return_reason(
    tables: list[RawTable], required: list[str], problems: Mapping[tuple[str, str | None], _Problem]
) -> str | None:
    """What keeps one return from giving figures, in words; None when it can give them."""
    reasons: list[str] = []
    missing: list[str] = []
    for name in required:
        found = [t for t in tables if t.table == name]
        for raw in found:
            problem = problems.get((raw.input.file, raw.sheet))
            if problem is not None:
                reasons.append(f"{name}: {_where(raw)}: {problem.message}")
            elif len(raw.rows) == 0:
                reasons.append(f"{name}: {_where(raw)} has a header row but no data rows (empty)")
        if not found:
            missing.append(name)
    if missing:
        reasons.append(f"{' and '.join(missing)}: missing (no file or sheet has the columns of that table)")
    for raw in tables:
        problem = problems.get((raw.input.file, raw.sheet))
        if raw.table is not None or problem is None:
            continue
        # An unreadable file may hold anything; a table of unknown columns or no header explains a
        # missing table (a title row above the header, a wrong separator) but is harmless beside them.
        if problem.rule == "unreadable_file" or missing:
            reasons.append(f"{_where(raw)}: {problem.message}")
    return "; ".join(reasons) or None


def return_coverage(extraction: Extraction, spec: SourceSpec) -> pd.DataFrame:
    """One row per return of the source (area and collection year), and per year missing between an
    area's first and last returns: ``complete``, ``incomplete`` or ``missing``, with the reason.

    Files whose path names no collection year are not a return (they are quarantined whole).
    """
    required = [name for name, table in spec.tables.items() if table.required]
    problems = _table_problems(extraction)
    by_return: dict[tuple[str | None, int], list[RawTable]] = {}
    for f in extraction.files:
        if f.collection_year is not None:
            by_return.setdefault((f.area_code, int(f.collection_year)), [])
    for raw in extraction.tables:
        if raw.input.collection_year is not None:
            by_return[(raw.input.area_code, int(raw.input.collection_year))].append(raw)
    rows = []
    for (area, year), tables in by_return.items():
        reason = _return_reason(tables, required, problems)
        rows.append((area, year, COMPLETE if reason is None else INCOMPLETE, reason))
    years_by_area: dict[str | None, set[int]] = {}
    for area, year in by_return:
        years_by_area.setdefault(area, set()).add(year)
    for area, years in years_by_area.items():
        first, last = min(years), max(years)
        for year in sorted(set(range(first, last + 1)) - years):
            where = "the files without an area" if area is None else f"area {area}"
            rows.append(
                (
                    area,
                    year,
                    MISSING,
                    f"no file for collection year {year}, though {where} has returns before and after it "
                    f"({first} to {last})",
                )
            )
    frame = pd.DataFrame(rows, columns=["area_code", "collection_year", "completeness", "reason"])
    frame.insert(0, "source", spec.id)
    return sort_coverage(frame)


def sort_coverage(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by source, area (no area last) and year; the columns as published."""
    frame = frame.astype({"collection_year": "int64"})
    order = frame.assign(_no_area=frame["area_code"].isna(), _area=frame["area_code"].fillna(""))
    order = order.sort_values(["source", "_no_area", "_area", "collection_year"], kind="stable")
    return frame.loc[order.index, COVERAGE_COLUMNS].reset_index(drop=True)


def not_complete(coverage: pd.DataFrame) -> pd.DataFrame:
    return coverage[coverage["completeness"] != COMPLETE]


def describe_return(spec: SourceSpec, area_code: str | None, collection_year: int) -> str:
    """A return in words: source, area and collection year with the dates it covers."""
    start, end = spec.period(int(collection_year))
    area = "no area" if pd.isna(area_code) else f"area {area_code}"
    return f"{spec.id} {area}, collection year {collection_year} ({start} to {end})"


def require_complete(coverage: pd.DataFrame, specs: Mapping[str, SourceSpec]) -> None:
    """Stop, naming each return that cannot give figures, what is wrong and how to fix it."""
    bad = not_complete(coverage)
    if bad.empty:
        return
    lines = [
        f"  - {describe_return(specs[r.source], r.area_code, r.collection_year)}: "
        f"{r.completeness}: {r.reason}"
        for r in bad.itertuples()
    ]
    raise IncompleteReturnsError(
        f"{len(bad)} return(s) cannot give figures (missing, unreadable or empty tables, or a "
        "year with no files):\n" + "\n".join(lines) + "\n" + ALLOW_INCOMPLETE_ADVICE
    )


def complete_periods(
    periods: pd.DataFrame, coverage: pd.DataFrame | None, specs: Mapping[str, SourceSpec]
) -> pd.DataFrame:
    """The reporting periods (``reporting_periods``) of complete returns only: the statistical year
    of an incomplete or missing return, and its reference date, get no figures."""
    if coverage is None or periods.empty:
        return periods
    bad = not_complete(coverage)
    bad = bad[bad["source"].isin(list(specs))]
    if bad.empty:
        return periods
    left_out = {
        (
            r.source,
            None if pd.isna(r.area_code) else str(r.area_code),
            specs[r.source].period(int(r.collection_year))[1],
        )
        for r in bad.itertuples()
    }
    keys = zip(periods["source"], periods["area_code"], periods["period_end"], strict=True)
    keep = [(s, None if pd.isna(a) else str(a), pd.Timestamp(e).date()) not in left_out for s, a, e in keys]
    return periods.loc[keep].reset_index(drop=True)


def summary_rows(coverage: pd.DataFrame) -> list[dict]:
    """The returns that are not complete, for the run summary (``run.json`` and the CLI)."""
    return [
        {
            "source": r.source,
            "area_code": None if pd.isna(r.area_code) else r.area_code,
            "collection_year": int(r.collection_year),
            "completeness": r.completeness,
            "reason": r.reason,
        }
        for r in not_complete(coverage).itertuples()
    ]


def combine(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Several sources' coverage as one table."""
    frames = list(frames)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in COVERAGE_COLUMNS}).astype(
            {"collection_year": "int64"}
        )
    return sort_coverage(pd.concat(frames, ignore_index=True))
