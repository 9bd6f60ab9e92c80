"""Reusable Pandera checks for text columns of national returns.

Checks are vectorised. Pandera reports a failed check by its error text, so every error here reads
``rule: description`` and a check across columns (a "row rule") reads ``COLUMN|rule: description``:
``split_check_error`` turns that back into the rule and the column the statistician has to fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pc

ROW_RULE_SEPARATOR = "|"
# ``Check.statistics`` key of a column check whose result for a value does not depend on the other
# rows: validation may then run it once per distinct value (icare/validation.py).
PER_VALUE = "per_value"
_REGEX_SPACE = " \t\n\f\r"  # RE2's \s: the white space a value must not start or end with


def parse_text_dates(
    values: pd.Series, pattern: str, fmt: str, distinct: pa_arrow.DictionaryArray | None = None
) -> pd.Series:
    """Parse text dates strictly: the pattern must match exactly and the date must exist.

    Each distinct text is parsed once (a column of dates repeats a few thousand values) and the
    dates are spread back to the rows by position. Vectorised in Arrow. ``distinct``: ``values``
    already dictionary-encoded, when it is.
    """
    if distinct is None:
        text = pa_arrow.array(values, type=pa_arrow.large_string(), from_pandas=True)
        if isinstance(text, pa_arrow.ChunkedArray):
            text = text.combine_chunks()
        distinct = pc.dictionary_encode(text)
    dates = _parsed(distinct.dictionary, pattern, fmt).take(distinct.indices)
    return pd.Series(dates.to_numpy(zero_copy_only=False), index=values.index, name=values.name)


def _parsed(text: pa_arrow.Array, pattern: str, fmt: str) -> pa_arrow.Array:
    """``text`` as dates (seconds), null where it is not a date written as ``fmt``.

    Arrow's strptime rolls 31/02 into March, so a parsed date must also keep the day and month it
    was written with (read back from the text at their positions in ``fmt``).
    """
    parsed = pc.strptime(text, format=fmt, unit="s", error_is_null=True)
    valid = pc.fill_null(
        pc.and_(pc.match_substring_regex(text, f"^(?:{pattern})$"), pc.is_valid(parsed)), False
    )
    for directive, part in (("%d", pc.day), ("%m", pc.month)):
        position = _field_position(fmt, directive)
        if position is None:
            continue
        digits = pc.if_else(valid, pc.utf8_slice_codeunits(text, position, position + 2), "0")
        valid = pc.and_(valid, pc.fill_null(pc.equal(part(parsed), pc.cast(digits, pa_arrow.int64())), False))
    return pc.if_else(valid, parsed, pa_arrow.scalar(None, parsed.type))


_FIELD_WIDTHS = {"%Y": 4, "%y": 2, "%d": 2, "%m": 2, "%H": 2, "%M": 2, "%S": 2}


def _field_position(fmt: str, directive: str) -> int | None:
    """Character position of ``directive``'s digits in text written with the fixed-width ``fmt``."""
    head, found, _ = fmt.partition(directive)
    if not found:
        return None
    for field, width in _FIELD_WIDTHS.items():
        head = head.replace(field, "x" * width)
    return len(head)


def per_value_check(test: Callable[[pd.Series], pd.Series], name: str, error: str) -> pa.Check:
    """A column check that judges each value on its own (see ``PER_VALUE``)."""
    return pa.Check(test, name=name, error=error, statistics={PER_VALUE: True})


def is_per_value(check: pa.Check) -> bool:
    return bool((check.statistics or {}).get(PER_VALUE))


def code_in(codes: Iterable[str], description: str) -> pa.Check:
    """A code from the source's code list for the collection year."""
    allowed = sorted(set(codes))
    return per_value_check(
        lambda values: values.isin(allowed),
        name="code_list",
        error=f"code_list: not in the {description} code list",
    )


def no_surrounding_space() -> pa.Check:
    """White space around a code or identifier is reported, never trimmed silently."""

    def no_space_at_ends(values: pd.Series) -> pd.Series:
        text = pa_arrow.array(values, type=pa_arrow.large_string(), from_pandas=True)
        # Trimming what the regex ``^\s|\s$`` matches (RE2's \s) changes the length exactly when a
        # value starts or ends with it, and is several times faster than the regex.
        trimmed = pc.utf8_trim(text, _REGEX_SPACE)
        spaced = pc.fill_null(pc.not_equal(pc.binary_length(trimmed), pc.binary_length(text)), False)
        return pd.Series(~spaced.to_numpy(zero_copy_only=False), index=values.index)

    return per_value_check(
        no_space_at_ends,
        name="surrounding_space",
        error="surrounding_space: has white space before or after the value",
    )


def max_length(limit: int) -> pa.Check:
    """At most ``limit`` characters."""
    return per_value_check(
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
