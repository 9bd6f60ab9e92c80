"""The quarantine: every rejected input row, with where it came from and why.

One quarantine record names the source, file, sheet, table, row number, column, rule, offending value
and a message a statistician can act on. A row that breaks several rules has several records; the
reconciliation counts it once. Nothing is blanked or guessed: a rejected row stays out of the
harmonised tables until its file is fixed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

from schemas.checks import split_check_error
from schemas.outputs import column_names

QUARANTINE_COLUMNS = column_names("quarantine")
ChildKey = Callable[[pd.Series, pd.Series], pd.Series]  # (area_code, national id) -> child_key


@dataclass(frozen=True)
class Origin:
    """Where a table came from; copied onto each of its quarantine records."""

    source: str
    file: str
    sheet: str | None
    table_name: str | None
    collection_year: int | None
    area_code: str | None

    def describe(self) -> str:
        sheet = f" sheet {self.sheet!r}" if self.sheet else ""
        return f"{self.file}{sheet}"


def empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in QUARANTINE_COLUMNS})


def records(
    origin: Origin,
    rows: Iterable[int | None],
    column: str | None,
    rule: str,
    values: Iterable[object] | None,
    description: str,
) -> pd.DataFrame:
    """Quarantine records for ``rows`` of one table that broke one rule."""
    rows = list(rows)
    values = [None] * len(rows) if values is None else [None if pd.isna(v) else str(v) for v in values]
    frame = pd.DataFrame({"row_number": pd.array(rows, dtype="Int64"), "value": values})
    return _finish(frame, origin, column, rule, description)


def with_origin(frame: pd.DataFrame, origin: Origin, column: str | None, rule: str) -> pd.DataFrame:
    """``frame`` (records of one table) with where they came from, the column and the rule: the
    columns a quarantine and a correction record share."""
    return frame.assign(
        source=origin.source,
        collection_year=origin.collection_year,
        area_code=origin.area_code,
        file=origin.file,
        sheet=origin.sheet,
        table_name=origin.table_name,
        column_name=column,
        rule=rule,
    )


def _finish(
    frame: pd.DataFrame, origin: Origin, column: str | None, rule: str, description: str
) -> pd.DataFrame:
    frame = with_origin(frame, origin, column, rule)
    frame["message"] = description
    return frame[QUARANTINE_COLUMNS]


def from_schema_errors(errors: pa.errors.SchemaErrors, frame: pd.DataFrame, origin: Origin) -> pd.DataFrame:
    """Turn Pandera's lazy failure cases into quarantine records (one per row, column and rule)."""
    cases = errors.failure_cases
    cases = cases[cases["index"].notna()]
    parts = []
    for (error, column), group in cases.groupby(["check", "column"], dropna=False, sort=True):
        rule, column, description = split_check_error(str(error), None if pd.isna(column) else column)
        rows = pd.Index(group["index"].astype("int64").unique())
        values = frame.loc[rows, column] if column in frame.columns else None
        parts.append(records(origin, rows, column, rule, values, description))
    if not parts:
        return empty()
    return pd.concat(parts, ignore_index=True).drop_duplicates(["row_number", "column_name", "rule"])


def combine(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty()
    return pd.concat(frames, ignore_index=True)[QUARANTINE_COLUMNS]


def redact(
    quarantine: pd.DataFrame,
    policy: Mapping[str, str],
    child_key: ChildKey,
    fields: tuple[str, ...] = ("value",),
) -> pd.DataFrame:
    """Keep identifiers out of the quarantine: the file and row are enough to find the value.

    ``policy`` maps a column to ``pseudonymise`` or ``redact``. A pseudonymised child id is shown as
    ``<pseudonymised:KEY>`` where KEY is the child's ``child_key`` (``child_key(area, id)``), so the
    record can be joined to the child's other rows. ``fields``: the record's columns that hold a
    value of that column (the corrections have two). Run before ``with_messages``.
    """
    if quarantine.empty:
        return quarantine
    quarantine = quarantine.copy()
    for column, action in policy.items():
        of_column = (quarantine["column_name"] == column).to_numpy()
        for field in fields:
            hit = of_column & quarantine[field].notna().to_numpy()
            if not hit.any():
                continue
            if action == "pseudonymise":
                keys = child_key(quarantine.loc[hit, "area_code"], quarantine.loc[hit, field].astype(str))
                quarantine.loc[hit, field] = "<pseudonymised:" + keys + ">"
            else:
                quarantine.loc[hit, field] = "<redacted>"
    return quarantine


def with_messages(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Compose each record's message from its parts: file, sheet, row, column, value, rule.

    Records carry only the rule's description until here, so redaction never has to edit text.
    """
    if quarantine.empty:
        return quarantine
    sheet = (", sheet '" + quarantine["sheet"].astype("string") + "'").fillna("")
    row = (", row " + quarantine["row_number"].astype("string")).fillna(", whole table")
    column = (", column " + quarantine["column_name"].astype("string")).fillna("")
    value = (", value '" + quarantine["value"].astype("string") + "'").fillna(", empty value")
    message = (
        quarantine["file"].astype("string")
        + sheet
        + row
        + column
        + value
        + ": "
        + quarantine["message"].astype("string")
        + " [rule "
        + quarantine["rule"].astype("string")
        + "]"
    )
    return quarantine.assign(message=message.astype(object))


def for_rows(
    rows: pd.DataFrame,
    column: str | pd.Series | None,
    rule: str | pd.Series,
    description: str | pd.Series,
    values: pd.Series | None = None,
) -> pd.DataFrame:
    """Quarantine records for rows that already carry their origin columns (after extraction).

    ``column``, ``rule`` and ``description`` are one value for all rows or one per row.
    """

    def per_row(value: object) -> object:
        return value.to_numpy() if isinstance(value, pd.Series) else value

    frame = pd.DataFrame(
        {
            "source": rows["source"].to_numpy(),
            "collection_year": rows["collection_year"].to_numpy(),
            "area_code": rows["area_code"].to_numpy(),
            "file": rows["file"].to_numpy(),
            "sheet": rows["sheet"].to_numpy(),
            "table_name": rows["table_name"].to_numpy(),
            "row_number": pd.array(rows["row_number"].to_numpy(), dtype="Int64"),
            "column_name": per_row(column),
            "rule": per_row(rule),
            "value": None if values is None else values.astype(object).where(values.notna(), None).to_numpy(),
            "message": per_row(description),
        }
    )
    return frame[QUARANTINE_COLUMNS]
