"""What happens to a value that fails validation: a source's failure policy, read from data.

A row is quarantined only when a structural field fails (for SSDA903 the child id and the dates that
place the episode in time). Any other failing value keeps its row: it is mapped by its meaning, set
to an explicit unknown or dropped from its cell, and the change is recorded in ``corrections``. The
policy is ``sources/<source>/failure_policy.yaml`` (docs/validation-policy.md); ``--strict`` runs
without it, so that every failing value quarantines its row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from icare import corrections
from icare.quarantine import Origin

Action = Literal["set_unknown", "map_by_meaning", "drop_cell"]
_STRENGTH = {"map_by_meaning": 1, "set_unknown": 2, "drop_cell": 3}  # a cell's strongest action wins
_RECORDED = {
    "map_by_meaning": corrections.MAPPED_BY_MEANING,
    "set_unknown": corrections.SET_UNKNOWN,
    "drop_cell": corrections.DROPPED_CELL,
}
_OUTCOME_TEXT = {
    "map_by_meaning": "kept and mapped by its meaning",
    "set_unknown": "set to unknown",
    "drop_cell": "removed from the cell",
}


class FailurePolicyError(ValueError):
    """The failure policy file is malformed; the message names the file, key and problem."""


class DateField(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # `collection_year`, or [years before, years after] the end of the collection year.
    two_digit_years: Literal["collection_year"] | tuple[int, int]


class OnFailure(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: Action = "set_unknown"
    rules: dict[str, Action] = Field(default_factory=dict)
    columns: dict[str, Action] = Field(default_factory=dict)

    def action(self, column: str, rule: str) -> Action:
        """A rule's action first, then the column's, then the default."""
        return self.rules.get(rule) or self.columns.get(column) or self.default


class TablePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    structural: list[str]
    codes: list[str] = Field(default_factory=list)
    dates: dict[str, DateField] = Field(default_factory=dict)
    on_failure: OnFailure = Field(default_factory=OnFailure)

    @model_validator(mode="after")
    def _structural_not_relaxed(self) -> TablePolicy:
        relaxed = sorted(set(self.structural) & set(self.on_failure.columns))
        if relaxed:
            raise ValueError(f"structural column(s) {relaxed} cannot also have an on_failure action")
        return self

    def two_digit_year_window(self, column: str, period: tuple[date, date]) -> tuple[date, date] | None:
        """The dates a two-digit year of ``column`` may be read as (None: not a date column)."""
        field = self.dates.get(column)
        if field is None:
            return None
        if field.two_digit_years == "collection_year":
            return period
        before, after = field.two_digit_years
        end = period[1]
        return _years_from(end, -before), _years_from(end, after)


class FailurePolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tables: dict[str, TablePolicy]


def _years_from(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def load_failure_policy(path: Path) -> FailurePolicy:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FailurePolicyError(f"{path}: cannot read the failure policy ({exc})") from exc
    try:
        return FailurePolicy.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"key {'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise FailurePolicyError(f"{path}: {problems}") from None


@dataclass
class PolicyOutcome:
    frame: pd.DataFrame  # the table with the failing non-structural values changed
    valid: pd.Series  # rows kept (aligned with ``frame``)
    quarantine: pd.DataFrame  # records of the rows quarantined (all their records)
    corrections: pd.DataFrame  # records of the values changed in kept rows
    changed: bool  # some value of ``frame`` was changed


def apply_policy(
    frame: pd.DataFrame,
    records: pd.DataFrame,
    policy: TablePolicy,
    known_codes: Mapping[str, frozenset[str]],
    origin: Origin,
) -> PolicyOutcome:
    """Split validation's failure records into rows quarantined and values corrected.

    ``records``: quarantine records of ``frame``'s rows (one per row, column and rule).
    ``known_codes``: every code of a code column in any year, so that a code of another year is
    mapped by its meaning and a code of no year is set unknown.
    """
    if records.empty:
        return PolicyOutcome(frame, pd.Series(True, index=frame.index), records, corrections.empty(), False)
    column = records["column_name"]
    structural = column.isna() | column.isin(policy.structural) | ~column.isin(frame.columns)
    rows = records["row_number"]
    structural |= rows.isna()
    rejected_rows = set(rows[structural].astype("int64"))
    in_rejected = rows.isin(list(rejected_rows)).to_numpy() | structural.to_numpy()
    quarantined = records.loc[in_rejected]
    kept = records.loc[~in_rejected].reset_index(drop=True)
    valid = pd.Series(~frame.index.isin(list(rejected_rows)), index=frame.index)
    if kept.empty:
        return PolicyOutcome(frame, valid, quarantined, corrections.empty(), False)

    actions = [
        _resolved(policy.on_failure.action(c, r), c, v, known_codes)
        for c, r, v in zip(kept["column_name"], kept["rule"], kept["value"], strict=True)
    ]
    kept = kept.assign(_action=actions, _strength=[_STRENGTH[a] for a in actions])
    # One action per cell: the strongest of its records; every record of the cell shows the outcome.
    cell = kept.groupby(["row_number", "column_name"])["_strength"].transform("max")
    kept["_action"] = np.select(
        [cell == s for s in _STRENGTH.values()], list(_STRENGTH), default="set_unknown"
    )
    blanked = kept.loc[kept["_action"] != "map_by_meaning", ["row_number", "column_name"]].drop_duplicates()
    changed = {}
    for name, group in blanked.groupby("column_name"):
        values = frame[name].copy()
        values.loc[group["row_number"].astype("int64").to_numpy()] = None
        changed[name] = values
    if changed:
        frame = frame.assign(**changed)
    harmonised = kept["value"].where(kept["_action"] == "map_by_meaning", None)
    message = kept["message"] + "; " + kept["_action"].map(_OUTCOME_TEXT)
    fixed = corrections.combine(
        corrections.records(
            origin,
            group["row_number"].astype("int64"),
            name,
            rule,
            group["value"],
            group["_action"].map(_RECORDED),
            harmonised[group.index],
            message[group.index],
        )
        for (name, rule), group in kept.groupby(["column_name", "rule"], sort=True)
    )
    return PolicyOutcome(frame, valid, quarantined, fixed, bool(changed))


def _resolved(
    action: Action, column: str, value: object, known_codes: Mapping[str, frozenset[str]]
) -> Action:
    """``map_by_meaning`` only for a code that has a meaning (in some year's code list)."""
    if action != "map_by_meaning":
        return action
    known = known_codes.get(column)
    if known is None or value is None or (isinstance(value, float) and np.isnan(value)):
        return "set_unknown"
    return "map_by_meaning" if str(value) in known else "set_unknown"
