"""The reviewed indicator definitions (``config/indicators.yaml``), as typed models.

Each indicator names the released rows its numerator and denominator come from, so that it is
computed from the release alone and never shows a withheld value. A malformed file, or a selection
that no released breakdown of ``config/disclosure.yaml`` gives, raises :class:`IndicatorConfigError`
naming the file, the key and the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from icare import resources
from schemas.outputs import RELEASE_COUNTS, RELEASE_TABLES

if TYPE_CHECKING:  # the rules' module imports the release, which imports this one
    from icare.disclosure.rules import DisclosureRules

DEFAULT_FILE = "indicators.yaml"
UNITS = ("count", "share_percent", "rate_per_100000", "days")
# Columns that place a row in time or say what it is, never a selection of one.
_NOT_DIMENSIONS = {
    "source",
    "reference_date",
    "period_start",
    "period_end",
    "is_total",
    "classification_version",
}
# Value columns that are not counts, with the status column that says whether each is withheld
# (population is not disclosure-controlled: it is published for every row that has one).
_VALUE_STATUS = {
    "population": None,
    "rate_per_100000": "rate_status",
    "days_q1": "days_status",
    "days_median": "days_status",
    "days_q3": "days_status",
}
# A disaggregation given by the ICare category also varies its level (code, level2, level1, total).
ICARE_DIMENSION = "icare_code"
# The ancestor columns of a category dimension: a filter on one sums the codes below that ancestor.
LEVEL_OF = {
    "icare_level1": "icare_code",
    "icare_level2": "icare_code",
    "from_level1": "from_code",
    "from_level2": "from_code",
    "to_level1": "to_code",
    "to_level2": "to_code",
}


class IndicatorConfigError(ValueError):
    """The indicator definitions are malformed, or ask for rows the release does not carry."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def value_columns(table: str) -> dict[str, str | None]:
    """The columns of ``release.<table>`` an indicator may take a value from, each with its status."""
    names = {col.name for col in RELEASE_TABLES[table]}
    columns: dict[str, str | None] = {c: f"{c}_status" for c in RELEASE_COUNTS[table]}
    columns.update({c: s for c, s in _VALUE_STATUS.items() if c in names})
    return columns


def dimension_columns(table: str) -> list[str]:
    """The columns of ``release.<table>`` that say which cell a row is."""
    values = set(value_columns(table))
    statuses = {col.name for col in RELEASE_TABLES[table] if col.name.endswith("_status")}
    skip = _NOT_DIMENSIONS | values | statuses | {"rate_missing_reason", "difference", "balance"}
    return [col.name for col in RELEASE_TABLES[table] if col.name not in skip]


class Selection(_Model):
    """Rows of one released table: ``filters`` fix dimension columns (a list of values is summed);
    every other summed dimension that is not a disaggregation of the indicator is at ``total``."""

    table: str
    column: str
    filters: dict[str, str | tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _columns_exist(self) -> Selection:
        if self.table not in RELEASE_COUNTS:
            raise ValueError(f"table {self.table!r} is not a released count table {list(RELEASE_COUNTS)}")
        if self.column not in value_columns(self.table):
            raise ValueError(
                f"column {self.column!r} is not a value of release.{self.table} "
                f"{list(value_columns(self.table))}"
            )
        unknown = sorted(set(self.filters) - set(dimension_columns(self.table)))
        if unknown:
            raise ValueError(
                f"filters {unknown} are not dimensions of release.{self.table} "
                f"{dimension_columns(self.table)}"
            )
        if ICARE_DIMENSION in self.filters and "icare_level" not in self.filters:
            raise ValueError(
                "a filter on icare_code needs icare_level too (a code and its subtotal share a name)"
            )
        return self

    @property
    def status(self) -> str | None:
        return value_columns(self.table)[self.column]


class Indicator(_Model):
    id: str
    name: str
    definition: str
    unit: Literal["count", "share_percent", "rate_per_100000", "days"]
    definition_source: str
    numerator: Selection | None = None
    denominator: Selection | None = None
    disaggregations: tuple[str, ...] = ()
    national_only: bool = False  # given by a national breakdown only: all areas together
    # source -> why the source cannot give the indicator (the field or table it lacks)
    not_reportable: dict[str, str] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not value.replace("_", "").isalnum():
            raise ValueError(f"id {value!r} must be letters, digits and underscores")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Indicator:
        if self.numerator is None:
            if not self.not_reportable:
                raise ValueError("an indicator without a numerator must say why in not_reportable")
            return self
        needs_denominator = self.unit in ("share_percent", "rate_per_100000")
        if needs_denominator != (self.denominator is not None):
            raise ValueError(f"unit {self.unit} {'needs' if needs_denominator else 'takes no'} denominator")
        for part in (self.numerator, self.denominator):
            if part is None:
                continue
            missing = [d for d in self.disaggregations if d not in dimension_columns(part.table)]
            if missing:
                raise ValueError(f"disaggregations {missing} are not dimensions of release.{part.table}")
        fixed = [d for d in self.disaggregations if d in self.numerator.filters]
        if fixed:
            raise ValueError(f"disaggregations {fixed} are also fixed by the numerator's filters")
        return self


class IndicatorConfig(_Model):
    id: str
    version: str
    indicators: tuple[Indicator, ...]
    path: Path

    @model_validator(mode="after")
    def _unique(self) -> IndicatorConfig:
        ids = [i.id for i in self.indicators]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"indicator ids {repeated} are used more than once")
        return self

    @property
    def version_id(self) -> str:
        return f"{self.id}@{self.version}"


def load_indicator_config(path: str | Path | None = None) -> IndicatorConfig:
    """Read and check ``config/indicators.yaml`` (or another file)."""
    file = Path(path) if path is not None else resources.config_dir() / DEFAULT_FILE
    raw = resources.read_yaml_mapping(file, IndicatorConfigError, "the indicator definitions", "a mapping")
    try:
        return IndicatorConfig.model_validate({**raw, "path": file})
    except ValidationError as exc:
        problems = "; ".join(_where(raw, error["loc"]) + f": {error['msg']}" for error in exc.errors())
        raise IndicatorConfigError(f"{file}: {problems}") from None


def _where(raw: dict, loc: tuple) -> str:
    """``key indicators.IC03.numerator`` (the indicator named by its id, not its position)."""
    parts = [str(p) for p in loc]
    if len(loc) > 1 and loc[0] == "indicators" and isinstance(loc[1], int):
        entries = raw.get("indicators") or []
        entry = entries[loc[1]] if loc[1] < len(entries) else None
        if isinstance(entry, dict) and "id" in entry:
            parts[1] = str(entry["id"])
    return f"key {'.'.join(parts) or '(top)'}"


def breakdown_problems(config: IndicatorConfig, rules: DisclosureRules) -> list[str]:
    """Selections that no released breakdown gives: the dimensions they hold at a value other than
    ``total`` (filters and disaggregations, areas apart) must lie within one breakdown of the table
    (or one national breakdown, with ``national_only``)."""
    problems = []
    for indicator in config.indicators:
        for role in ("numerator", "denominator"):
            part: Selection | None = getattr(indicator, role)
            if part is None:
                continue
            table = rules.tables[part.table]
            dimensions = set(part.filters) | set(indicator.disaggregations)
            dimensions |= {LEVEL_OF[c] for c in part.filters if c in LEVEL_OF}
            held = {d for d in dimensions if d in table.summable and d != "area_code"}
            held |= (
                {ICARE_DIMENSION}
                if "icare_level" in dimensions and ICARE_DIMENSION in table.summable
                else set()
            )
            not_summed = [
                d for d in dimension_columns(part.table) if _needs_value(d, part.table, table.summable)
            ]
            unset = sorted(d for d in not_summed if d not in dimensions)
            key = f"indicators.{indicator.id}.{role}"
            if unset:
                problems.append(
                    f"{key}: release.{part.table} has no total over {unset}: filter or disaggregate them"
                )
            if not table.breakdowns:
                continue
            if any(held <= set(b) for b in table.breakdowns):
                continue
            if any(held <= set(b) for b in table.national_breakdowns):
                if not indicator.national_only:
                    problems.append(
                        f"{key}: {sorted(held)} is released nationally only (national_breakdowns of "
                        f"{part.table}): set national_only: true"
                    )
                continue
            problems.append(
                f"{key}: no breakdown of {part.table} in config/disclosure.yaml releases {sorted(held)} "
                f"together (breakdowns: {[list(b) for b in table.breakdowns]}); add that breakdown or "
                "drop a filter or disaggregation"
            )
    return problems


def _needs_value(column: str, table: str, summable: tuple[str, ...]) -> bool:
    """A dimension that holds no ``total`` (``unit``, ``transition``): a selection must fix it."""
    return column not in summable and column not in {"icare_level", *LEVEL_OF} and column != "area_code"


def check_against_rules(config: IndicatorConfig, rules: DisclosureRules) -> None:
    """Raise when an indicator asks for rows the disclosure rules do not release."""
    problems = breakdown_problems(config, rules)
    if problems:
        raise IndicatorConfigError(f"{config.path}: " + "; ".join(problems))
