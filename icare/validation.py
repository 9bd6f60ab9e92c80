"""Run a Pandera schema lazily and split a table into valid rows and quarantine records.

The schema is the one place the rules are declared. Running it through Pandera costs far more than
the rules themselves (per-check copies and Series, a missing-value mask of the whole table for every
table-wide check), so the rules are first evaluated directly (``_failing``): a check marked
``per_value`` runs once per distinct value of its column rather than once per row. A table that
passes (the usual case) is done; otherwise Pandera runs the parts that failed, and its failure cases
make the quarantine records exactly as if it had run the whole schema. Anything the direct
evaluation does not cover (another dtype, a schema feature it does not read) goes to Pandera whole.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
from pandera.engines.pandas_engine import Engine

from icare import quarantine
from icare.quarantine import Origin
from icare.vectorised import TextDictionaries
from schemas.checks import is_per_value


def validate_table(
    frame: pd.DataFrame,
    schema: pa.DataFrameSchema,
    origin: Origin,
    dictionaries: TextDictionaries | None = None,
) -> tuple[pd.Series, pd.DataFrame]:
    """Validate every row against every rule (lazy), never stopping at the first failure.

    Returns a boolean mask of valid rows (aligned with ``frame``) and the quarantine records of the
    others. The frame is not changed: no value is coerced, blanked or guessed. ``dictionaries``: the
    columns' distinct values, where already known, for the checks run once per distinct value.
    """
    failing = _failing(frame, schema, dictionaries)
    if failing is not None:
        if failing.none():
            return pd.Series(True, index=frame.index), quarantine.empty()
        schema = failing.reduced(schema)
    return _validate_with_pandera(frame, schema, origin)


def _validate_with_pandera(
    frame: pd.DataFrame, schema: pa.DataFrameSchema, origin: Origin
) -> tuple[pd.Series, pd.DataFrame]:
    """Pandera's lazy validation, its failure cases turned into quarantine records."""
    try:
        schema.validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as errors:
        records = quarantine.from_schema_errors(errors, frame, origin)
        untied = errors.failure_cases["index"].isna()
        if untied.any():  # a failure Pandera could not tie to a row would otherwise vanish
            raise RuntimeError(
                f"{origin.describe()}: schema {schema.name} failed without row numbers: "
                f"{errors.failure_cases[untied].to_dict('records')}"
            ) from errors
        valid = ~frame.index.isin(records["row_number"].astype("int64"))
        return pd.Series(valid, index=frame.index), records
    return pd.Series(True, index=frame.index), quarantine.empty()


@dataclass
class _Failing:
    """What failed when the schema's rules were evaluated directly: columns that have missing values
    but must not, checks of each column, and table-wide checks (by position in the schema)."""

    nulls: set[str] = field(default_factory=set)
    column_checks: dict[str, list[int]] = field(default_factory=dict)
    table_checks: list[int] = field(default_factory=list)

    def none(self) -> bool:
        return not (self.nulls or self.column_checks or self.table_checks)

    def reduced(self, schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
        """``schema`` with only the rules that failed: Pandera then reports exactly their failure
        cases, which are all the failure cases the whole schema would report."""
        columns = {}
        for name in sorted(self.nulls | set(self.column_checks), key=list(schema.columns).index):
            column = copy.copy(schema.columns[name])
            column.nullable = name not in self.nulls
            column.checks = [column.checks[i] for i in self.column_checks.get(name, [])]
            columns[name] = column
        reduced = copy.copy(schema)
        reduced.columns = columns
        reduced.checks = [schema.checks[i] for i in self.table_checks]
        return reduced


def _failing(
    frame: pd.DataFrame, schema: pa.DataFrameSchema, dictionaries: TextDictionaries | None = None
) -> _Failing | None:
    """The rules of ``schema`` that ``frame`` breaks, or None when they cannot be evaluated here."""
    if not _evaluable(frame, schema):
        return None
    failing = _Failing()
    for name, column in schema.columns.items():
        values = frame[name]
        if not _dtype_matches(column, values):
            return None
        if values.hasnans and not column.nullable:
            failing.nulls.add(name)
        checked = _CheckedValues(values, dictionaries.get(name) if dictionaries is not None else None)
        broken = [i for i, check in enumerate(column.checks) if not _all_true(*checked.run(check))]
        if broken:
            failing.column_checks[name] = broken
    if schema.checks:
        all_missing = cache(lambda: frame.isna().all(axis="columns"))  # only for a failing check
        failing.table_checks = [
            i for i, check in enumerate(schema.checks) if not _table_check_passes(check, frame, all_missing)
        ]
    return failing


class _CheckedValues:
    """A column as Pandera hands it to its checks (missing values dropped), and its distinct values
    for the checks marked ``per_value``, which pass or fail the same as every row holding them."""

    def __init__(self, values: pd.Series, dictionary: pa_arrow.DictionaryArray | None) -> None:
        self._values = values
        self._dictionary = dictionary

    def run(self, check: pa.Check) -> tuple[object, pd.Series]:
        """The check's output and the values it was run on."""
        if is_per_value(check) and self._dictionary is not None:
            checked = pd.Series(self._dictionary.dictionary, dtype=self._values.dtype)
        else:
            checked = self._values.dropna() if self._values.hasnans else self._values
        return _call(check, checked), checked


def _evaluable(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> bool:
    """True when the schema uses only what ``_failing`` evaluates: present text columns checked by
    plain checks, and table-wide checks; no coercion, parsing, uniqueness, index or strictness."""
    if schema.index is not None or schema.unique or schema.coerce or schema.strict or schema.parsers:
        return False
    if schema.add_missing_columns or schema.drop_invalid_rows or schema.dtype is not None:
        return False
    if not frame.columns.is_unique or not frame.index.is_unique:
        return False
    for name, column in schema.columns.items():
        if column.regex or column.unique or column.coerce or column.parsers or column.drop_invalid_rows:
            return False
        if name not in frame.columns or not isinstance(frame[name].dtype, pd.StringDtype):
            return False
    return all(_plain(check) for column in schema.columns.values() for check in column.checks) and all(
        _plain(check) for check in schema.checks
    )


def _plain(check: pa.Check) -> bool:
    """A check run on the whole column or table, missing values ignored (Pandera's default)."""
    return check.ignore_na and not check.element_wise and check.groupby is None and not check.raise_warning


def _dtype_matches(column: pa.Column, values: pd.Series) -> bool:
    """Pandera's own dtype check of the column."""
    if column.dtype is None:
        return True
    result = column.dtype.check(Engine.dtype(values.dtype), values)
    return bool(result) if isinstance(result, bool) else bool(np.all(result))


def _table_check_passes(check: pa.Check, frame: pd.DataFrame, all_missing: Callable[[], pd.Series]) -> bool:
    """As Pandera runs a table-wide check: a row with every value missing passes."""
    output = _call(check, frame)
    if _all_true(output, frame):  # then also with the rows where everything is missing
        return True
    if isinstance(output, pd.Series) and output.index.equals(frame.index):
        output = output | all_missing()
    return _all_true(output, frame)


def _call(check: pa.Check, checked: pd.Series | pd.DataFrame) -> object:
    """The check's own function on ``checked`` (with the keyword arguments it was declared with).

    A check that raises is left for Pandera to report (None never passes).
    """
    try:
        return check._check_fn(checked, **check._check_kwargs)
    except Exception:  # Pandera reports it, as it would have without this evaluation
        return None


def _all_true(output: object, checked: pd.Series | pd.DataFrame) -> bool:
    """True only for an output Pandera would pass: all true, and a Series aligned with the checked rows."""
    if isinstance(output, (bool, np.bool_)):
        return bool(output)
    if not isinstance(output, pd.Series) or not output.index.equals(checked.index):
        return False
    return bool(output.all())
