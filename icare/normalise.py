"""Values written another way for the same meaning, rewritten before validation and put on record.

Real returns carry codes in lower case, values with trailing or non-breaking spaces, and dates as
Excel or a database left them (``2023-04-01``, ``1/4/2023``, ``01/04/2023 00:00:00``, ``45017``,
``01/04/23``). Each such form has one reading, so it is rewritten to the documented form and the
change recorded in ``corrections`` (action ``normalised``); a form with more than one reading (a
two-digit year whose two centuries both fit) is left as it is, for validation to report.

Work is done on each column's distinct values (a column of codes or dates repeats a few thousand
values), so a clean table costs one dictionary encoding per column, which validation then reuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from icare import corrections
from icare.failure_policy import TablePolicy
from icare.quarantine import Origin
from icare.vectorised import dictionary_encoded

# White space a value may not start or end with: ASCII space and controls, the no-break spaces
# Excel and web forms leave behind, the byte-order mark and zero-width space.
SPACES = " \t\n\r\f\v\u00a0\u2007\u202f\ufeff\u200b"
_TIME = re.compile(r"^(.*\d)[ T]00:00(?::00(?:\.0+)?)?$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_DAY_MONTH_YEAR = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})$")
_TWO_DIGIT_YEAR = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2})$")
_EXCEL_SERIAL = re.compile(r"^(\d{5})(?:\.0+)?$")
_EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 is 1 January 1900 (Excel's 1900 date system)
# A code that needs no look: no lower-case letter and no white space at either end.
_EDGE = r"[^a-z\s\x{00a0}\x{2007}\x{202f}\x{feff}\x{200b}]"
_DOCUMENTED_CODE = rf"^{_EDGE}(?:[^a-z]*{_EDGE})?$"

RULE_SPACE = "surrounding_space"
RULE_CASE = "lower_case_code"
RULE_ID_NUMBER = "id_written_as_number"
DATE_RULES = {
    "date_with_time": "a date written with a midnight time",
    "date_iso": "a date written YYYY-MM-DD",
    "date_day_month_year": "a date written without leading zeros or with another separator",
    "date_excel_serial": "a date written as an Excel serial number",
    "date_two_digit_year": "a date written with a two-digit year, read in the only century that fits",
}


@dataclass
class Normalised:
    frame: pd.DataFrame
    corrections: pd.DataFrame
    # Dictionary encodings of columns that did not change, for reuse by validation and compaction.
    encodings: dict[str, pa.DictionaryArray]


def normalise_table(
    frame: pd.DataFrame,
    policy: TablePolicy,
    origin: Origin,
    period: tuple[date, date],
    date_format: str,
    encoded: set[str],
    date_pattern: str = r"^\d{2}/\d{2}/\d{4}$",
) -> Normalised:
    """``frame`` with every value in its documented form, and the record of each change.

    ``period``: first and last day of the return's collection year (two-digit years are read
    against it). ``encoded``: the columns to normalise through their distinct values (the others,
    identifiers with as many values as rows, are trimmed as a whole). ``date_pattern``: the shape
    of a date in its documented form (such values are only looked at by validation).
    """
    changed: dict[str, pd.Series] = {}
    records: list[pd.DataFrame] = []
    encodings: dict[str, pa.DictionaryArray] = {}
    # Only the columns validation and harmonisation read: an unused column (a postcode) is not
    # rewritten, so its odd spacing fills no record.
    read = {*policy.structural, *policy.codes, *policy.dates}
    for column in frame.columns:
        values = frame[column]
        if column not in read or not isinstance(values.dtype, pd.StringDtype):
            continue
        if column in encoded:
            dictionary = dictionary_encoded(values)
            fixes = _distinct_fixes(dictionary.dictionary, column, policy, period, date_format, date_pattern)
            if not fixes:
                encodings[column] = dictionary
                continue
            new_values, rows, old, new, rules = _apply_to_distinct(dictionary, fixes, values.index)
        else:
            new_values, rows, old, new, rules = _trimmed(values)
            if new_values is None:
                continue
        changed[column] = new_values
        records.append(_records(origin, column, rows, old, new, rules))
    if changed:
        frame = frame.assign(**changed)
    return Normalised(frame, corrections.combine(records), encodings)


def _distinct_fixes(
    distinct: pa.Array,
    column: str,
    policy: TablePolicy,
    period: tuple[date, date],
    date_format: str,
    date_pattern: str,
) -> dict[int, tuple[str | None, str]]:
    """Position of each distinct value that changes -> (new value, rule)."""
    window = policy.two_digit_year_window(column, period)
    is_code = column in policy.codes
    # Only values not already in their documented form are looked at one by one: a code with no
    # lower-case letter or space, a date of the documented shape, pass as they are.
    pattern = date_pattern if window is not None else _DOCUMENTED_CODE if is_code else None
    if pattern is not None:
        documented = pc.fill_null(pc.match_substring_regex(distinct, pattern), True)
        if pc.all(documented).as_py():
            return {}
        candidates = np.flatnonzero(~documented.to_numpy(zero_copy_only=False))
    else:
        candidates = np.arange(len(distinct))
    texts = distinct.take(pa.array(candidates, type=pa.int64())).to_pylist()
    fixes: dict[int, tuple[str | None, str]] = {}
    for position, text in zip(candidates.tolist(), texts, strict=True):
        if text is None:
            continue
        value, rule = text.strip(SPACES), None
        if value != text:
            rule = RULE_SPACE
        if not value:
            fixes[position] = (None, RULE_SPACE)
            continue
        if is_code and value != value.upper():
            value, rule = value.upper(), RULE_CASE
        elif window is not None:
            written = canonical_date(value, window, date_format)
            if written is not None:
                value, rule = written
        if rule is not None and value != text:
            fixes[position] = (value, rule)
    return fixes


def canonical_date(text: str, window: tuple[date, date], date_format: str) -> tuple[str, str] | None:
    """``text`` rewritten in ``date_format`` and the rule that read it, or None when it is already
    in that form, is not a date, or has more than one reading inside ``window``."""
    rule = None
    timed = _TIME.match(text)
    if timed:
        text, rule = timed.group(1), "date_with_time"
    read = _read_date(text, window)
    if read is None:
        return None
    day, read_rule = read
    written = day.strftime(date_format)
    if written == text and rule is None:
        return None
    return written, read_rule or rule or "date_day_month_year"


def _read_date(text: str, window: tuple[date, date]) -> tuple[date, str | None] | None:
    if match := _DAY_MONTH_YEAR.match(text):
        day = _date(int(match.group(3)), int(match.group(2)), int(match.group(1)))
        return None if day is None else (day, None)
    if match := _ISO.match(text):
        day = _date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        return None if day is None else (day, "date_iso")
    if match := _TWO_DIGIT_YEAR.match(text):
        d, m, yy = (int(g) for g in match.groups())
        readings = [
            day
            for century in (1900, 2000)
            if (day := _date(century + yy, m, d)) is not None and window[0] <= day <= window[1]
        ]
        return (readings[0], "date_two_digit_year") if len(readings) == 1 else None
    if match := _EXCEL_SERIAL.match(text):
        # One reading, like a four-digit year: only implausible serials (another number) are left.
        day = _EXCEL_EPOCH + timedelta(days=int(match.group(1)))
        return (day, "date_excel_serial") if _SERIAL_YEARS[0] <= day.year <= _SERIAL_YEARS[1] else None
    return None


_SERIAL_YEARS = (1950, 2099)  # serials 18264-73050: dates a care record can hold


def _date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _apply_to_distinct(
    dictionary: pa.DictionaryArray, fixes: dict[int, tuple[str | None, str]], index: pd.Index
) -> tuple[pd.Series, np.ndarray, list, list, list]:
    """The column with its changed distinct values replaced, and the rows that changed."""
    texts = dictionary.dictionary.to_pylist()
    replaced = list(texts)
    for position, (value, _) in fixes.items():
        replaced[position] = value
    codes = pc.fill_null(dictionary.indices, -1).to_numpy(zero_copy_only=False).astype("int64")
    new_dictionary = pa.array(replaced, type=pa.large_string())
    taken = new_dictionary.take(pa.array(codes, mask=codes < 0))
    column = pd.Series(taken, index=index, dtype="str", copy=False)
    positions = np.fromiter(fixes, dtype="int64")
    hit = np.flatnonzero(np.isin(codes, positions))
    hit_codes = codes[hit]
    old = [texts[c] for c in hit_codes]
    new = [fixes[c][0] for c in hit_codes]
    rules = [fixes[c][1] for c in hit_codes]
    return column, index.to_numpy()[hit], old, new, rules


def _trimmed(values: pd.Series) -> tuple[pd.Series | None, np.ndarray, list, list, list]:
    """An identifier column trimmed of surrounding white space, and an id that a spreadsheet turned
    into a decimal number (``12345.0``) written back as the whole number it was; done on the whole
    column (an identifier has about as many values as rows)."""
    text = pa.array(values, type=pa.large_string(), from_pandas=True)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    trimmed = pc.utf8_trim(text, SPACES)
    spaced = pc.fill_null(pc.not_equal(pc.binary_length(trimmed), pc.binary_length(text)), False)
    # The regular expression only where a value has a dot (a plain search; ids rarely have one).
    dotted = pc.fill_null(pc.match_substring(trimmed, "."), False)
    if pc.any(dotted).as_py():
        as_number = pc.fill_null(pc.and_(dotted, pc.match_substring_regex(trimmed, _ID_AS_NUMBER)), False)
    else:
        as_number = dotted
    changed = pc.or_(spaced, as_number)
    hit = np.flatnonzero(changed.to_numpy(zero_copy_only=False))
    if not len(hit):
        return None, hit, [], [], []
    fixed = pc.replace_substring_regex(trimmed, _ID_AS_NUMBER, r"\1")
    fixed = pc.if_else(pc.equal(pc.binary_length(fixed), 0), pa.scalar(None, pa.large_string()), fixed)
    column = pd.Series(fixed, index=values.index, dtype="str", copy=False)
    rows = pa.array(hit)
    old, new = text.take(rows).to_pylist(), fixed.take(rows).to_pylist()
    number = as_number.take(rows).to_pylist()
    rules = [RULE_ID_NUMBER if n else RULE_SPACE for n in number]
    return column, values.index.to_numpy()[hit], old, new, rules


_ID_AS_NUMBER = r"^(\d+)\.0+$"


def _records(
    origin: Origin, column: str, rows: np.ndarray, old: list, new: list, rules: list
) -> pd.DataFrame:
    frame = pd.DataFrame({"row": rows, "old": old, "new": new, "rule": rules})
    parts = [
        corrections.records(
            origin,
            group["row"],
            column,
            rule,
            group["old"],
            corrections.NORMALISED,
            group["new"],
            _MESSAGES.get(rule, rule),
        )
        for rule, group in frame.groupby("rule", sort=True)
    ]
    return corrections.combine(parts)


_MESSAGES = {
    RULE_SPACE: "white space (including non-breaking spaces) around the value removed",
    RULE_CASE: "code written in lower case, upper-cased",
    RULE_ID_NUMBER: "identifier written as a decimal number by a spreadsheet (12345.0), written as 12345",
    **{rule: f"{text}, rewritten in the documented form" for rule, text in DATE_RULES.items()},
}
