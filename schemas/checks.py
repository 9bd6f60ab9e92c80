"""Reusable Pandera checks for text columns of national returns.

Checks are vectorised. Pandera reports a failed check by its error text, so every error here reads
``rule: description`` and a check across columns (a "row rule") reads ``COLUMN|rule: description``:
``split_check_error`` turns that back into the rule and the column the statistician has to fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd
import pandera.pandas as pa

ROW_RULE_SEPARATOR = "|"


def parse_text_dates(values: pd.Series, pattern: str, fmt: str) -> pd.Series:
    """Parse text dates strictly: the pattern must match exactly and the date must exist."""
    shaped = values.str.fullmatch(pattern).fillna(False).astype(bool)
    return pd.to_datetime(values.where(shaped), format=fmt, errors="coerce")


def code_in(codes: Iterable[str], description: str) -> pa.Check:
    """A code from the source's code list for the collection year."""
    allowed = sorted(set(codes))
    return pa.Check(
        lambda values: values.isin(allowed),
        name="code_list",
        error=f"code_list: not in the {description} code list",
    )


def no_surrounding_space() -> pa.Check:
    """White space around a code or identifier is reported, never trimmed silently."""
    return pa.Check(
        lambda values: values.str.strip() == values,
        name="surrounding_space",
        error="surrounding_space: has white space before or after the value",
    )


def max_length(limit: int) -> pa.Check:
    return pa.Check(
        lambda values: values.str.len() <= limit,
        name="max_length",
        error=f"max_length: longer than {limit} characters",
    )


def row_rule(column: str, rule: str, message: str, test: Callable[[pd.DataFrame], pd.Series]) -> pa.Check:
    """A rule across columns, reported against ``column``; rows where it cannot apply must pass."""
    return pa.Check(test, name=f"{column}{ROW_RULE_SEPARATOR}{rule}", error=f"{column}|{rule}: {message}")


def split_check_error(error: str, column: str | None) -> tuple[str, str | None, str]:
    """``'DEC|before_start: ends before it starts'`` -> ``('before_start', 'DEC', 'ends before it starts')``.

    Pandera's own checks (``not_nullable``, ``column_in_dataframe``) have no description; they get one.
    """
    head, _, description = str(error).partition(": ")
    if ROW_RULE_SEPARATOR in head:
        column, _, head = head.partition(ROW_RULE_SEPARATOR)
    if not description:
        description = _PANDERA_RULES.get(head, head)
    return head, column, description


_PANDERA_RULES = {
    "not_nullable": "is required but empty",
    "column_in_dataframe": "column is missing",
    "field_uniqueness": "is duplicated",
}
