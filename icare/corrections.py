"""The corrections: every input value that icare changed, with where it was, why and what it became.

A row whose problem does not stop it being placed in time is kept (docs/validation-policy.md); the
value at fault is normalised, mapped by its meaning, replaced by an explicit unknown or dropped, and
each such change is one record here: file, sheet, row, column, rule, the value received, the action
and the value used from then on. Identifiers are pseudonymised or redacted as in the quarantine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import pandas as pd

from icare import quarantine
from icare.quarantine import Origin, with_origin
from schemas.outputs import CORRECTION_ACTIONS, column_names

CORRECTION_COLUMNS = column_names("corrections")
NORMALISED, MAPPED_BY_MEANING, SET_UNKNOWN, DROPPED_CELL = CORRECTION_ACTIONS
ChildKey = Callable[[pd.Series, pd.Series], pd.Series]  # (area_code, national id) -> child_key


def empty() -> pd.DataFrame:
    """No corrections (a copy of one empty frame: every clean table asks for one)."""
    return _EMPTY.copy()


_EMPTY = pd.DataFrame({c: pd.Series(dtype="object") for c in CORRECTION_COLUMNS})


def records(
    origin: Origin,
    rows: Iterable[int],
    column: str,
    rule: str,
    values: Iterable[object],
    action: str | Iterable[str],
    harmonised: Iterable[object],
    description: str | Iterable[str],
) -> pd.DataFrame:
    """Correction records for ``rows`` of one table, one column and one rule."""
    rows = list(rows)
    frame = pd.DataFrame(
        {
            "row_number": pd.array(rows, dtype="Int64"),
            "value": _text(values, len(rows)),
            "action": _each(action, len(rows)),
            "harmonised_value": _text(harmonised, len(rows)),
            "message": _each(description, len(rows)),
        }
    )
    unknown = set(frame["action"]) - set(CORRECTION_ACTIONS)
    if unknown:
        raise ValueError(f"unknown correction action(s) {sorted(unknown)}")
    return with_origin(frame, origin, column, rule)[CORRECTION_COLUMNS]


def _text(values: Iterable[object], n: int) -> list[object]:
    out = [None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v) for v in values]
    if len(out) != n:
        raise ValueError(f"{len(out)} values for {n} rows")
    return out


def _each(value: str | Iterable[str], n: int) -> list[str]:
    return [value] * n if isinstance(value, str) else list(value)


def combine(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty()
    return pd.concat(frames, ignore_index=True)[CORRECTION_COLUMNS]


def redact(corrections: pd.DataFrame, policy: Mapping[str, str], child_key: ChildKey) -> pd.DataFrame:
    """Keep identifiers out of the corrections, as ``quarantine.redact`` does for the quarantine.

    Both the value received and the value used are covered: a date of birth written another way is
    still a date of birth. A child id becomes ``<pseudonymised:KEY>`` with the key of each value.
    """
    return quarantine.redact(corrections, policy, child_key, fields=("value", "harmonised_value"))


def with_messages(corrections: pd.DataFrame) -> pd.DataFrame:
    """Each record's message with its place: file, sheet, row, column, then what was done and why."""
    if corrections.empty:
        return corrections
    sheet = (", sheet '" + corrections["sheet"].astype("string") + "'").fillna("")
    message = (
        corrections["file"].astype("string")
        + sheet
        + ", row "
        + corrections["row_number"].astype("string")
        + ", column "
        + corrections["column_name"].astype("string")
        + ": "
        + corrections["message"].astype("string")
        + " [rule "
        + corrections["rule"].astype("string")
        + ", "
        + corrections["action"].astype("string")
        + "]"
    )
    return corrections.assign(message=message.astype(object))


def by_rule(corrections: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Counts of corrections by rule and action, for the summary."""
    if corrections is None or corrections.empty:
        return {}
    counts = corrections.groupby(["rule", "action"]).size().sort_index()
    out: dict[str, dict[str, int]] = {}
    for (rule, action), n in counts.items():
        out.setdefault(str(rule), {})[str(action)] = int(n)
    return out
