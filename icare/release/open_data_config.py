"""The reviewed settings of the open-data CSVs (``config/open_data.yaml``), as typed models.

Only what is specific to England's Explore education statistics (EES) layout is configured here;
labels of ICare categories and harmonised dimension values come from the classification. A
malformed file raises :class:`OpenDataConfigError` naming the file, the key and the problem.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from icare import resources
from schemas.outputs import RELEASE_COUNTS, RELEASE_TABLES

DEFAULT_FILE = "open_data.yaml"
# Columns that the release gains with its total rows and rates (release contract, docs/open-data.md).
CONTRACT_COLUMNS = frozenset(
    {"icare_level", "is_total", "population", "rate_per_100000", "rate_status", "rate_missing_reason"}
)
# EES limits (column names 50 characters, labels 100) and its naming rule: lower-case snake_case.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
NAME_LIMIT = 50
LABEL_LIMIT = 100
# The symbols the GSS guidance allows in an indicator cell (no legacy ":" or "~").
GSS_SYMBOLS = ("c", "x", "z", "low", "u", "k")
AREA_COLUMNS = ("old_la_code", "new_la_code", "la_name", "region_code", "region_name")
# The code forms EES accepts on a local-authority row: a 3-digit old code, a 9-character GSS code of
# an upper-tier authority (unitary E06, metropolitan district E08, London borough E09, county E10)
# and an English region (E12).
AREA_CODE_PATTERNS = {
    "old_la_code": r"\d{3}",
    "new_la_code": r"E(06|08|09|10)\d{6}",
    "region_code": r"E12\d{6}",
}


class OpenDataConfigError(ValueError):
    """The open-data settings (or the area code list they name) are malformed."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(name: str) -> str:
    if not NAME_PATTERN.match(name) or len(name) > NAME_LIMIT:
        raise ValueError(f"{name!r} is not a snake_case name of at most {NAME_LIMIT} characters")
    return name


def _check_label(label: str) -> str:
    if not label.strip() or len(label) > LABEL_LIMIT:
        raise ValueError(f"label {label!r} must be non-blank and at most {LABEL_LIMIT} characters")
    return label


class FilterSpec(_Model):
    """One EES filter: a released dimension column shown with human-readable labels."""

    name: str  # the column name in the CSV
    column: str  # the released column it comes from
    label: str
    hint: str = ""
    # Where the labels of the column's values come from, tried in order: ``icare`` (classification
    # categories), ``exit_destination``, ``dimension:<name>`` (a classification dimension) or
    # ``labels:<name>`` (the ``labels`` section of this file).
    values: tuple[str, ...]
    keep_unlabelled: bool = False  # a value without a label is shown as it is (else: a warning)
    missing: str | None = None  # the label of an empty value
    default: str | None = None  # the default item (its code) of a dimension that is never summed
    # The row is a total of this filter when a column does not hold the value(s) given (e.g. the
    # ICare subtotal rows, which name their category in ``icare_code``).
    total_unless: dict[str, str | tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _snake_case(cls, name: str) -> str:
        return _check_name(name)

    @field_validator("label")
    @classmethod
    def _short_label(cls, label: str) -> str:
        return _check_label(label)

    @field_validator("values")
    @classmethod
    def _known_lookups(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for lookup in values:
            kind, _, name = lookup.partition(":")
            if lookup not in ("icare", "exit_destination") and not (kind in ("dimension", "labels") and name):
                raise ValueError(f"unknown label lookup {lookup!r}")
        return values


class IndicatorSpec(_Model):
    """One EES indicator: a released number, with the status that may withhold it."""

    name: str  # the released column and the CSV column
    label: str
    grouping: str = ""
    unit: Literal["", "%", "pp", "£", "£m", "numberstring"] = ""
    dp: int = Field(0, ge=0)
    status: str | None = None  # the status column (default: ``<name>_status`` when released)
    missing_reason: str | None = None  # a column saying why an empty value is empty

    @field_validator("name")
    @classmethod
    def _snake_case(cls, name: str) -> str:
        return _check_name(name)

    @field_validator("label")
    @classmethod
    def _short_label(cls, label: str) -> str:
        return _check_label(label)


class TableSpec(_Model):
    time: str  # the date column whose year is the time_period
    filters: tuple[FilterSpec, ...]
    indicators: tuple[IndicatorSpec, ...]


class SourceSpec(_Model):
    country_code: str = Field(pattern=r"^[EKNSW]\d{8}$")
    country_name: str
    area_codes: str | None = None  # CSV relative to the data root


class Symbols(_Model):
    withheld: Literal["c"] = "c"
    not_available: Literal["x", "z"] = "x"


class OpenDataConfig(_Model):
    id: str
    version: str
    time_identifier: Literal["Reporting year", "Calendar year"]  # both take 4-digit periods
    symbols: Symbols = Field(default_factory=Symbols)
    rate_missing_reasons: dict[str, Literal["x", "z"]] = Field(default_factory=dict)
    sources: dict[str, SourceSpec]
    labels: dict[str, dict[str, str]] = Field(default_factory=dict)
    filter_templates: dict[str, Any] = Field(default_factory=dict)  # YAML anchors only
    tables: dict[str, TableSpec]
    path: Path | None = None

    @model_validator(mode="after")
    def _columns_released(self) -> OpenDataConfig:
        unknown = sorted(set(self.tables) - set(RELEASE_COUNTS))
        if unknown:
            raise ValueError(f"tables {unknown} are not released count tables {list(RELEASE_COUNTS)}")
        for table, spec in self.tables.items():
            released = {col.name for col in RELEASE_TABLES[table]} | CONTRACT_COLUMNS
            used = [spec.time, *(f.column for f in spec.filters), *(i.name for i in spec.indicators)]
            used += [c for f in spec.filters for c in f.total_unless]
            used += [c for i in spec.indicators for c in (i.status, i.missing_reason) if c]
            missing = [c for c in used if c not in released]
            if missing:
                raise ValueError(f"tables.{table}: {missing} are not columns of release.{table}")
            names = [f.name for f in spec.filters] + [i.name for i in spec.indicators]
            if len(set(names)) != len(names):
                raise ValueError(f"tables.{table}: a column name is used twice in {names}")
            for f in spec.filters:
                for lookup in f.values:
                    kind, _, name = lookup.partition(":")
                    if kind == "labels" and name not in self.labels:
                        raise ValueError(f"tables.{table}.{f.name}: no labels.{name} in the file")
        return self


def load_open_data_config(path: str | Path | None = None) -> OpenDataConfig:
    """Read and check ``config/open_data.yaml`` (or another file)."""
    file = Path(path) if path is not None else resources.config_dir() / DEFAULT_FILE
    raw = resources.read_yaml_mapping(file, OpenDataConfigError, "the open-data settings", "a mapping")
    try:
        return OpenDataConfig.model_validate({**raw, "path": file})
    except ValidationError as exc:
        problems = "; ".join(
            f"key {'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise OpenDataConfigError(f"{file}: {problems}") from None


def load_area_codes(source: str, spec: SourceSpec) -> pd.DataFrame | None:
    """The source's local-authority code list (one row per 3-digit area code), or None if none is named.

    Columns besides ``AREA_COLUMNS`` (``first_year``, ``last_year``, ``note`` in the bundled list) are
    for readers and are not used: a retired authority keeps its own row, under its own old code."""
    if spec.area_codes is None:
        return None
    file = resources.data_root() / spec.area_codes
    try:
        areas = pd.read_csv(file, dtype="str", keep_default_na=False)
    except OSError as exc:
        raise OpenDataConfigError(f"{file}: cannot read the area codes of {source} ({exc})") from exc
    missing = [c for c in AREA_COLUMNS if c not in areas.columns]
    if missing:
        raise OpenDataConfigError(f"{file}: columns {missing} are missing (expected {list(AREA_COLUMNS)})")
    areas = areas[list(AREA_COLUMNS)]
    blank = areas.columns[(areas.apply(lambda column: column.str.strip()) == "").any()].tolist()
    if blank:
        raise OpenDataConfigError(f"{file}: columns {blank} have blank cells")
    for column, pattern in AREA_CODE_PATTERNS.items():
        malformed = areas.loc[~areas[column].str.fullmatch(pattern), column]
        if not malformed.empty:
            raise OpenDataConfigError(
                f"{file}: {column} values {sorted(malformed)[:5]} do not match {pattern}"
            )
    repeated = areas.loc[areas["old_la_code"].duplicated(), "old_la_code"]
    if not repeated.empty:
        raise OpenDataConfigError(f"{file}: old_la_code is not unique ({sorted(repeated)[:5]} repeat)")
    return areas
