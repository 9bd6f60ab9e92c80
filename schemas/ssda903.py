"""Pandera schemas of England's SSDA903 tables as read (every cell text), one per collection year.

The code lists come from ``sources/ssda903/codelists.csv`` (see docs/mapping-decisions.md): a new
collection year needs rows there, not a change here. Dates are checked in the documented dd/mm/YYYY
format (national-sources.md §1.2); a two-digit year is an error, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow

from icare.codelists import year_rows
from icare.sources.spec import load_source_spec
from schemas.checks import code_in, max_length, no_surrounding_space, parse_text_dates, row_rule

# The date format and the statistical year come from the reader spec (sources/ssda903/source.yaml).
_SPEC = load_source_spec("ssda903")
DATE_PATTERN = _SPEC.date_pattern.removeprefix("^").removesuffix("$")
DATE_FORMAT = _SPEC.date_format
DATE_LABEL = _SPEC.date_format_label
CHILD_ID_MAX_LENGTH = 10


def collection_bounds(year: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last day of the collection year (1 April to 31 March, national-sources.md §1.2)."""
    start, end = _SPEC.period(year)
    return pd.Timestamp(start), pd.Timestamp(end)


def parsed_date_column(column: str) -> str:
    """Name of the helper column holding ``column`` already parsed (parse once, check many times)."""
    return f"__parsed_{column}"


def add_parsed_dates(
    frame: pd.DataFrame,
    columns: list[str],
    encoded: Callable[[str], pa_arrow.DictionaryArray | None] | None = None,
) -> pd.DataFrame:
    """Parse the date columns once, so row rules and harmonisation do not parse them again.

    ``encoded`` gives a column already dictionary-encoded (or None), so it is not encoded again.
    """
    parsed = {
        parsed_date_column(c): parse_text_dates(
            frame[c], DATE_PATTERN, DATE_FORMAT, encoded(c) if encoded is not None else None
        )
        for c in columns
        if c in frame.columns
    }
    return frame.assign(**parsed)


def _date(frame: pd.DataFrame, column: str) -> pd.Series:
    cached = parsed_date_column(column)
    if cached in frame.columns:
        return frame[cached]
    return parse_text_dates(frame[column], DATE_PATTERN, DATE_FORMAT)


def _child(trimmed: bool = False) -> pa.Column:
    """``trimmed``: the ids were already trimmed (normalisation): the space check would be a second
    pass over as many values as rows, and could not fail."""
    checks = (
        [max_length(CHILD_ID_MAX_LENGTH)]
        if trimmed
        else [no_surrounding_space(), max_length(CHILD_ID_MAX_LENGTH)]
    )
    return pa.Column(str, nullable=False, checks=checks)


def _code(codelists: pd.DataFrame, field: str, year: int, *, required: bool) -> pa.Column:
    codes = year_rows(codelists, field, year)["code"]
    return pa.Column(
        str,
        nullable=not required,
        checks=[no_surrounding_space(), code_in(codes, f"{field} {year - 1}/{str(year)[2:]}")],
    )


def _date_column(*, required: bool) -> pa.Column:
    """Presence is checked here; the format by ``_date_format_rules`` on the once-parsed dates."""
    return pa.Column(str, nullable=not required)


def _date_format_rules(columns: list[str]) -> list[pa.Check]:
    def well_formed(column: str):
        return lambda frame: frame[column].isna() | _date(frame, column).notna()

    return [
        row_rule(column, "date_format", f"not a date in the format {DATE_LABEL}", well_formed(column))
        for column in columns
    ]


DATE_COLUMNS = {"episodes": ["DECOM", "DEC"], "header": ["DOB"], "uasc": ["DOB", "DUC"]}


def _free_text() -> pa.Column:
    return pa.Column(str, nullable=True)


def _date_limited_codes_rule(codelists: pd.DataFrame, field: str, year: int) -> list[pa.Check]:
    """Codes retired by date (P2, H5 from 2023/24): valid only for episodes started or ended in time."""
    limited = year_rows(codelists, field, year)
    checks: list[pa.Check] = []
    for row in limited.itertuples(index=False):  # a handful of code-list rows, not data rows
        if pd.notna(row.started_before):
            limit = pd.Timestamp(row.started_before)

            def started_in_time(frame: pd.DataFrame, code: str = row.code, limit: pd.Timestamp = limit):
                start = _date(frame, "DECOM")
                return (frame[field] != code) | start.isna() | (start < limit)

            checks.append(
                row_rule(
                    field,
                    "retired_by_date",
                    f"{row.code} is valid in {year - 1}/{str(year)[2:]} only for episodes that started "
                    f"before {limit:%d/%m/%Y}",
                    started_in_time,
                )
            )
        if pd.notna(row.ended_on_or_before):
            limit = pd.Timestamp(row.ended_on_or_before)

            def ended_in_time(frame: pd.DataFrame, code: str = row.code, limit: pd.Timestamp = limit):
                end = _date(frame, "DEC")
                malformed_end = frame["DEC"].notna() & end.isna()
                return (frame[field] != code) | malformed_end | (end <= limit)

            checks.append(
                row_rule(
                    field,
                    "retired_by_date",
                    f"{row.code} is valid in {year - 1}/{str(year)[2:]} only for episodes that ended on or "
                    f"before {limit:%d/%m/%Y} (an open episode cannot use it)",
                    ended_in_time,
                )
            )
    return checks


def episodes_schema(codelists: pd.DataFrame, year: int, *, trimmed_ids: bool = False) -> pa.DataFrameSchema:
    start, end = collection_bounds(year)

    def end_not_before_start(frame: pd.DataFrame) -> pd.Series:
        begin, finish = _date(frame, "DECOM"), _date(frame, "DEC")
        return begin.isna() | finish.isna() | (finish >= begin)

    def start_within_return(frame: pd.DataFrame) -> pd.Series:
        begin = _date(frame, "DECOM")
        return begin.isna() | (begin <= end)

    def end_within_year(frame: pd.DataFrame) -> pd.Series:
        finish = _date(frame, "DEC")
        return finish.isna() | ((finish >= start) & (finish <= end))

    def reason_with_end(frame: pd.DataFrame) -> pd.Series:
        return frame["DEC"].isna() | frame["REC"].notna()

    def end_with_reason(frame: pd.DataFrame) -> pd.Series:
        return frame["REC"].isna() | frame["DEC"].notna()

    label = f"{year - 1}/{str(year)[2:]}"
    return pa.DataFrameSchema(
        {
            "CHILD": _child(trimmed_ids),
            "DECOM": _date_column(required=True),
            "RNE": _code(codelists, "RNE", year, required=True),
            "LS": _code(codelists, "LS", year, required=True),
            "CIN": _code(codelists, "CIN", year, required=True),
            "PLACE": _code(codelists, "PLACE", year, required=True),
            "PLACE_PROVIDER": _code(codelists, "PLACE_PROVIDER", year, required=False),
            "DEC": _date_column(required=False),
            "REC": _code(codelists, "REC", year, required=False),
            "REASON_PLACE_CHANGE": _code(codelists, "REASON_PLACE_CHANGE", year, required=False),
            "HOME_POST": _free_text(),
            "PL_POST": _free_text(),
            "URN": _free_text(),
        },
        checks=[
            *_date_format_rules(DATE_COLUMNS["episodes"]),
            row_rule(
                "DEC", "before_start", "episode ends (DEC) before it starts (DECOM)", end_not_before_start
            ),
            row_rule(
                "DECOM",
                "after_collection_year",
                f"episode starts after the end of {label}",
                start_within_return,
            ),
            row_rule(
                "DEC",
                "outside_collection_year",
                f"episode end date is outside the collection year {label}",
                end_within_year,
            ),
            row_rule(
                "REC",
                "missing_with_end",
                "episode has an end date (DEC) but no reason ended (REC)",
                reason_with_end,
            ),
            row_rule(
                "REC",
                "present_without_end",
                "episode has a reason ended (REC) but no end date (DEC)",
                end_with_reason,
            ),
            *_date_limited_codes_rule(codelists, "PLACE", year),
        ],
        name=f"ssda903_episodes_{year}",
        strict=False,
        coerce=False,
    )


def header_schema(codelists: pd.DataFrame, year: int, *, trimmed_ids: bool = False) -> pa.DataFrameSchema:
    def one_row_per_child(frame: pd.DataFrame) -> pd.Series:
        return ~frame["CHILD"].duplicated(keep=False) | frame["CHILD"].isna()

    return pa.DataFrameSchema(
        {
            "CHILD": _child(trimmed_ids),
            "SEX": _code(codelists, "SEX", year, required=True),
            "DOB": _date_column(required=True),
            "ETHNIC": _code(codelists, "ETHNIC", year, required=False),
            "UPN": _free_text(),
            "MOTHER": _free_text(),
            "MC_DOB": _free_text(),
        },
        checks=[
            *_date_format_rules(DATE_COLUMNS["header"]),
            row_rule(
                "CHILD",
                "duplicate_child",
                "the child has more than one header row in this return",
                one_row_per_child,
            ),
        ],
        name=f"ssda903_header_{year}",
        strict=False,
        coerce=False,
    )


def uasc_schema(codelists: pd.DataFrame, year: int, *, trimmed_ids: bool = False) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            "CHILD": _child(trimmed_ids),
            "SEX": _code(codelists, "SEX", year, required=False),
            "DOB": _date_column(required=False),
            "DUC": _date_column(required=False),
        },
        checks=_date_format_rules(DATE_COLUMNS["uasc"]),
        name=f"ssda903_uasc_{year}",
        strict=False,
        coerce=False,
    )


SCHEMAS = {"episodes": episodes_schema, "header": header_schema, "uasc": uasc_schema}
