"""Reusable Pandera checks for text columns of national returns.

Checks are vectorised and named by the rule they enforce; the quarantine table shows that name.
A check on two or more columns (a "row rule") is named ``COLUMN|rule`` so its failures can be
attributed to the column the statistician has to fix.
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


def text_date(pattern: str, fmt: str, label: str) -> pa.Check:
    """A well-formed, real calendar date in the source's documented format (e.g. dd/mm/YYYY)."""

    def _check(values: pd.Series) -> pd.Series:
        return parse_text_dates(values, pattern, fmt).notna()

    return pa.Check(_check, name="date_format", error=f"not a date in the format {label}")


def code_in(codes: Iterable[str], description: str) -> pa.Check:
    """A code from the source's code list for the collection year."""
    allowed = sorted(set(codes))
    return pa.Check(
        lambda values: values.isin(allowed),
        name="code_list",
        error=f"not in the {description} code list",
    )


def no_surrounding_space() -> pa.Check:
    """White space around a code or identifier is reported, never trimmed silently."""
    return pa.Check(
        lambda values: values.str.strip() == values,
        name="surrounding_space",
        error="has white space before or after the value",
    )


def max_length(limit: int) -> pa.Check:
    return pa.Check(
        lambda values: values.str.len() <= limit,
        name="max_length",
        error=f"longer than {limit} characters",
    )


def row_rule(column: str, rule: str, message: str, test: Callable[[pd.DataFrame], pd.Series]) -> pa.Check:
    """A rule across columns, reported against ``column``; rows where it cannot apply must pass."""
    return pa.Check(test, name=f"{column}{ROW_RULE_SEPARATOR}{rule}", error=message)
