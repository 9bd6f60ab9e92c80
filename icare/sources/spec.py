"""A national source's reader specification, read from ``sources/<name>/source.yaml``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

from icare.resources import source_dir


class SourceSpecError(ValueError):
    """The reader specification is malformed; the message names the file and key."""


CHILD_ID_COMPARE = ("exact", "ignore_leading_zeros")


def _table_spec(path: Path, name: str, raw: dict) -> TableSpec:
    columns = tuple(raw["columns"])
    optional = tuple(raw.get("optional", ()))
    unknown = [c for c in optional if c not in columns]
    if unknown:
        raise SourceSpecError(f"{path}: tables.{name}.optional: {', '.join(unknown)} not among its columns")
    return TableSpec(
        name,
        columns,
        bool(raw.get("harmonised", False)),
        required=bool(raw.get("required", False)),
        optional=optional,
    )


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[str, ...]
    harmonised: bool
    # A return without this table (read, with rows) gives no figures for its year (icare.coverage).
    required: bool = False
    # Columns a file may leave out (nothing harmonised reads them): absent, they are taken as blank.
    optional: tuple[str, ...] = ()


@dataclass(frozen=True)
class SourceSpec:
    """Everything about a source's files that is data, not code."""

    id: str
    title: str
    country: str
    folder: Path
    year_start_month: int
    year_start_day: int
    first_year: int
    last_year: int
    date_format: str
    date_pattern: str
    date_format_label: str
    tables: dict[str, TableSpec]
    year_patterns: dict[str, re.Pattern[str]]
    area_patterns: dict[str, re.Pattern[str]]
    sex_codes: dict[str, str] = field(default_factory=dict)
    identifier_policy: dict[str, str] = field(default_factory=dict)
    # Days allowed between an episode that "continues" and the next one of the same care spell
    # (England 0: X1 means a new episode the same day; Wales would need 1).
    care_spell_gap_days: int = 0
    # How child ids compare between files: "exact" (the default) or "ignore_leading_zeros" (0123 and
    # 123 are the same child; the id is read without its leading zeros, before it is pseudonymised).
    child_id_compare: str = "exact"

    def table_columns(self) -> dict[str, tuple[str, ...]]:
        return {name: t.columns for name, t in self.tables.items()}

    def optional_columns(self) -> dict[str, tuple[str, ...]]:
        return {name: t.optional for name, t in self.tables.items() if t.optional}

    def period(self, year: int) -> tuple[date, date]:
        """The statistical year named ``year`` (the year in which it ends), as a closed interval."""
        start = date(year - 1, self.year_start_month, self.year_start_day)
        end = date(year, self.year_start_month, self.year_start_day).toordinal() - 1
        return start, date.fromordinal(end)

    @property
    def codelists_path(self) -> Path:
        return self.folder / "codelists.csv"

    @property
    def failure_policy_path(self) -> Path:
        return self.folder / "failure_policy.yaml"

    @property
    def concordance_dir(self) -> Path:
        return self.folder / "concordance"

    @property
    def sample_dir(self) -> Path:
        return self.folder / "sample"

    @property
    def sample_population(self) -> Path:
        """The described synthetic population of the sample's areas (rates of the sample run)."""
        return self.folder / "sample_population" / "population.yaml"


def load_source_spec(name_or_folder: str | Path) -> SourceSpec:
    folder = Path(name_or_folder)
    if not (folder / "source.yaml").is_file():
        folder = source_dir(str(name_or_folder))
    path = folder / "source.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SourceSpecError(f"{path}: cannot read the source specification ({exc})") from exc
    try:
        tables = {name: _table_spec(path, name, t) for name, t in raw["tables"].items()}
        child_id_compare = str(raw.get("child_id_compare", "exact"))
        if child_id_compare not in CHILD_ID_COMPARE:
            raise SourceSpecError(
                f"{path}: child_id_compare: {child_id_compare!r} is not one of {', '.join(CHILD_ID_COMPARE)}"
            )
        return SourceSpec(
            id=raw["id"],
            title=raw["title"],
            country=raw["country"],
            folder=folder,
            year_start_month=int(raw["year_start_month"]),
            year_start_day=int(raw["year_start_day"]),
            first_year=int(raw["first_year"]),
            last_year=int(raw["last_year"]),
            date_format=raw["date_format"],
            date_pattern=raw["date_pattern"],
            date_format_label=raw["date_format_label"],
            tables=tables,
            year_patterns={k: re.compile(v) for k, v in raw["year_in_path"].items()},
            area_patterns={k: re.compile(v) for k, v in raw["area_in_path"].items()},
            sex_codes={str(k): str(v) for k, v in raw.get("sex_codes", {}).items()},
            identifier_policy=dict(raw.get("identifier_policy", {})),
            care_spell_gap_days=int(raw.get("care_spell_gap_days", 0)),
            child_id_compare=child_id_compare,
        )
    except (KeyError, TypeError, ValueError, re.error) as exc:
        raise SourceSpecError(f"{path}: missing or malformed key: {exc}") from exc
