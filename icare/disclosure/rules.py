"""The disclosure rules of a run, read from ``config/disclosure.yaml`` (reviewed like data).

The loader checks every name against the released tables of ``schemas/outputs.py``, so a typo in a
column or margin stops the run before any input is read (``icare run`` exits 2), instead of leaving
a value unprotected.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from icare import resources
from schemas.outputs import RELEASE_COUNTS, RELEASE_DERIVED, RELEASE_WITH_TOTALS, column_names

DEFAULT_RULES = "disclosure.yaml"
METHODS = ("suppress", "round")
# Columns that are neither a cell's coordinates nor a count: a margin cannot group by them.
_NOT_DIMENSIONS = {"classification_version", "difference", "balance"}
# Dimensions that may be summed into margin rows (icare_code and age_band are hierarchies); the others
# (source, dates, unit, transition, spell_state, pathway_level) are never summed.
SUMMABLE = (
    "area_code",
    "icare_code",
    "from_code",
    "to_code",
    "exit_destination",
    "moves_in_period",
    "pathway",
    "sex",
    "age_band",
    "provider_sector",
)


class DisclosureRulesError(ValueError):
    """The rules file is malformed; the message names the file and key."""


@dataclass(frozen=True)
class DerivedRule:
    """Statistics of the values behind a count (quartiles), withheld with it or when based on few values."""

    columns: tuple[str, ...]
    status: str
    count: str
    excluded: str | None
    min_observations: int


@dataclass(frozen=True)
class TableRules:
    counts: tuple[str, ...]
    margins: tuple[tuple[str, ...], ...]
    follow: dict[str, tuple[str, ...]] = field(default_factory=dict)
    identities: tuple[tuple[str, ...], ...] = ()
    derived: tuple[DerivedRule, ...] = ()
    summable: tuple[str, ...] = ()
    # The dimensions released crossed with one another (each with every area and nationally);
    # empty: every combination of the summable dimensions.
    breakdowns: tuple[tuple[str, ...], ...] = ()
    # More cross-classifications, released for all areas together only (the national figures).
    national_breakdowns: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class DisclosureRules:
    id: str
    version: str
    method: str
    threshold: int
    rounding_base: int
    tables: dict[str, TableRules]
    path: Path | None = None

    @property
    def version_id(self) -> str:
        return f"{self.id}@{self.version}"

    def to_json(self) -> str:
        """What ``runs.disclosure_rules`` and the released files record."""
        values = asdict(self)
        values.pop("path")
        values["version_id"] = self.version_id
        return json.dumps(values, sort_keys=True)


def _require(path: Path, raw: dict, key: str, where: str = "") -> Any:
    if key not in raw:
        raise DisclosureRulesError(f"{path}: required key {where}{key!r} is missing")
    return raw[key]


def _integer(path: Path, value: Any, key: str, minimum: int) -> int:
    # bool is an int in Python: `threshold: yes` must not pass as 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DisclosureRulesError(
            f"{path}: {key} must be a whole number of at least {minimum}, not {value!r}"
        )
    return value


def _names(path: Path, value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DisclosureRulesError(f"{path}: {key} must be a list of column names, not {value!r}")
    return tuple(value)


def _table_rules(path: Path, table: str, raw: Any) -> TableRules:
    key = f"tables.{table}"
    if not isinstance(raw, dict):
        raise DisclosureRulesError(f"{path}: {key} must be a mapping")
    unknown_keys = sorted(
        set(raw)
        - {
            "counts",
            "margins",
            "follow",
            "identities",
            "derived",
            "summable",
            "breakdowns",
            "national_breakdowns",
        }
    )
    if unknown_keys:
        raise DisclosureRulesError(f"{path}: {key}: unknown keys {unknown_keys}")
    columns = column_names(table)
    counts = _names(path, _require(path, raw, "counts", f"{key}."), f"{key}.counts")
    expected = RELEASE_COUNTS[table]
    if set(counts) != set(expected) or len(counts) != len(expected):
        raise DisclosureRulesError(
            f"{path}: {key}.counts must name every count column of the released table exactly once: "
            f"{list(expected)} (schemas/outputs.py RELEASE_COUNTS), not {list(counts)}"
        )
    derived_columns = {c for group in RELEASE_DERIVED.get(table, {}).values() for c in group}
    dimensions = set(columns) - set(counts) - derived_columns - _NOT_DIMENSIONS
    margins = []
    for i, margin in enumerate(raw.get("margins") or []):
        names = _names(path, margin, f"{key}.margins[{i}]")
        outside = sorted(set(names) - dimensions)
        if outside or not names:
            raise DisclosureRulesError(
                f"{path}: {key}.margins[{i}]: {outside or 'no columns'}: a margin groups by columns of "
                f"{table} that define its cells ({', '.join(sorted(dimensions))})"
            )
        margins.append(names)
    follow_raw = raw.get("follow") or {}
    if not isinstance(follow_raw, dict):
        raise DisclosureRulesError(f"{path}: {key}.follow must map a count column to the columns it follows")
    follow = {}
    for column, parents in follow_raw.items():
        names = _names(path, parents, f"{key}.follow.{column}")
        bad = sorted({column, *names} - set(counts))
        if bad:
            raise DisclosureRulesError(f"{path}: {key}.follow.{column}: {bad} are not counts of {table}")
        follow[column] = names
    identities = []
    for i, identity in enumerate(raw.get("identities") or []):
        names = _names(path, identity, f"{key}.identities[{i}]")
        if len(names) < 2 or not set(names) <= set(counts):
            raise DisclosureRulesError(
                f"{path}: {key}.identities[{i}]: an identity ties two or more counts of {table}"
            )
        identities.append(names)
    derived = tuple(_derived(path, table, i, item, counts) for i, item in enumerate(raw.get("derived") or []))
    if {c for rule in derived for c in rule.columns} != derived_columns:
        raise DisclosureRulesError(
            f"{path}: {key}.derived must cover the derived columns {sorted(derived_columns)} "
            "(schemas/outputs.py RELEASE_DERIVED)"
        )
    summable = _summable(path, table, raw, dimensions)
    if summable and margins:
        raise DisclosureRulesError(
            f"{path}: {key}: margins and summable exclude each other (the margin rows' equations replace "
            "the margins)"
        )
    breakdowns = _breakdowns(path, table, raw, summable, "breakdowns")
    national = _breakdowns(path, table, raw, summable, "national_breakdowns")
    if national and not breakdowns:
        raise DisclosureRulesError(
            f"{path}: tables.{table}.national_breakdowns: without breakdowns every combination is "
            "released already"
        )
    return TableRules(
        counts, tuple(margins), follow, tuple(identities), derived, summable, breakdowns, national
    )


def _breakdowns(
    path: Path, table: str, raw: dict, summable: tuple[str, ...], name: str
) -> tuple[tuple[str, ...], ...]:
    """The cross-classifications released (``name``: breakdowns, or national_breakdowns): each a
    list of summable dimensions (areas aside)."""
    key = f"tables.{table}.{name}"
    if name not in raw:
        return ()
    if not summable:
        raise DisclosureRulesError(f"{path}: {key}: breakdowns need summable dimensions")
    value = raw[name]
    if not isinstance(value, list) or not value:
        raise DisclosureRulesError(f"{path}: {key} must be a non-empty list of lists of dimensions")
    choices = set(summable) - {"area_code"}
    breakdowns = []
    for i, item in enumerate(value):
        names = _names(path, item, f"{key}[{i}]")
        wrong = sorted(set(names) - choices)
        if wrong or not names or len(set(names)) != len(names):
            raise DisclosureRulesError(
                f"{path}: {key}[{i}]: {wrong or list(names)}: a breakdown lists summable dimensions "
                f"of {table} other than area_code, each once ({', '.join(sorted(choices))})"
            )
        breakdowns.append(names)
    return tuple(breakdowns)


def _summable(path: Path, table: str, raw: dict, dimensions: set[str]) -> tuple[str, ...]:
    """The dimensions summed into margin rows: required exactly for the tables released with totals."""
    key = f"tables.{table}.summable"
    if table not in RELEASE_WITH_TOTALS:
        if "summable" in raw:
            raise DisclosureRulesError(f"{path}: {key}: {table} is released without margin rows")
        return ()
    names = _names(path, _require(path, raw, "summable", f"tables.{table}."), key)
    wrong = sorted(set(names) - (dimensions & set(SUMMABLE)))
    if wrong or len(set(names)) != len(names):
        raise DisclosureRulesError(
            f"{path}: {key}: {wrong or list(names)}: list summable dimensions of {table}, each once "
            f"({', '.join(sorted(dimensions & set(SUMMABLE)))})"
        )
    return names


def _derived(path: Path, table: str, i: int, raw: Any, counts: tuple[str, ...]) -> DerivedRule:
    key = f"tables.{table}.derived[{i}]"
    if not isinstance(raw, dict):
        raise DisclosureRulesError(f"{path}: {key} must be a mapping")
    columns = _names(path, _require(path, raw, "columns", f"{key}."), f"{key}.columns")
    status = str(_require(path, raw, "status", f"{key}."))
    if RELEASE_DERIVED.get(table, {}).get(status) != columns:
        raise DisclosureRulesError(
            f"{path}: {key}: status {status!r} with columns {list(columns)} is not a derived group of "
            f"{table} ({RELEASE_DERIVED.get(table, {})})"
        )
    count = str(_require(path, raw, "count", f"{key}."))
    excluded = raw.get("excluded")
    for name, value in (("count", count), ("excluded", excluded)):
        if value is not None and value not in counts:
            raise DisclosureRulesError(f"{path}: {key}.{name}: {value!r} is not a count of {table}")
    minimum = _integer(path, _require(path, raw, "min_observations", f"{key}."), f"{key}.min_observations", 1)
    return DerivedRule(columns, status, count, excluded, minimum)


def load_disclosure_rules(path: str | Path | None = None) -> DisclosureRules:
    """Read and check the rules (``config/disclosure.yaml`` unless another file is given)."""
    file = Path(path) if path is not None else resources.config_dir() / DEFAULT_RULES
    raw = resources.read_yaml_mapping(
        file, DisclosureRulesError, "the disclosure rules", "a mapping of rules"
    )
    method = _require(file, raw, "method")
    if method not in METHODS:
        raise DisclosureRulesError(f"{file}: method {method!r} is not one of {', '.join(METHODS)}")
    tables_raw = _require(file, raw, "tables")
    if not isinstance(tables_raw, dict):
        raise DisclosureRulesError(f"{file}: tables must map each released table to its rules")
    missing = [t for t in RELEASE_COUNTS if t not in tables_raw]
    unknown = sorted(set(tables_raw) - set(RELEASE_COUNTS))
    if missing or unknown:
        raise DisclosureRulesError(
            f"{file}: tables must give rules for exactly the released tables {list(RELEASE_COUNTS)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else "")
        )
    return DisclosureRules(
        id=str(_require(file, raw, "id")),
        version=str(_require(file, raw, "version")),
        method=method,
        threshold=_integer(file, _require(file, raw, "threshold"), "threshold", 1),
        rounding_base=_integer(file, _require(file, raw, "rounding_base"), "rounding_base", 1),
        tables={table: _table_rules(file, table, tables_raw[table]) for table in RELEASE_COUNTS},
        path=file,
    )
