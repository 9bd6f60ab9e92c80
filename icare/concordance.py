"""Generic concordance engine: national codes -> classification codes and dimension values.

A concordance is a folder of reviewed data (for England: ``sources/ssda903/concordance/``):

``concordance.yaml``
    ``id``, ``version``, ``classification`` (the id it targets), ``columns`` (the national columns it
    may read), ``targets`` and ordered ``rules``.
mapping CSVs
    One per national column: ``<COLUMN>,first_year,last_year,<target>...,decision,reason``. A row maps
    one code, for the collection years ``first_year..last_year`` (blank ``last_year`` = still
    applies), to one value per target. ``(none)`` maps a code to no value on purpose.

Nothing in this module knows a national code. Semantics of :meth:`Concordance.apply`:

* a non-blank code without a row for the record's collection year is never defaulted: its value is
  null and, for a ``required`` target, the record is listed in ``MappingResult.unmapped`` (for other
  targets in ``MappingResult.warnings``);
* a blank input (null, empty or white space) follows the target's ``on_blank`` cases, first match
  wins; a blank input of a required target left unresolved is listed in ``unmapped``;
* the first rule whose conditions all hold fires for the record and overrides the targets it sets;
  a rule never rescues an unknown code.

Everything is vectorised: each column is factorised once and mapping, conditions and rules are
evaluated over the unique values, then spread back with integer indexing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from icare.vectorised import categorical, looked_up

CONFIG_FILE = "concordance.yaml"
NONE_TOKEN = "(none)"
CATEGORIES = "categories"
_YEAR_MAX = np.iinfo("int64").max
_FIXED_TABLE_COLUMNS = ("first_year", "last_year", "decision", "reason")
UNMAPPED_COLUMNS = ["index", "column", "value", "target", "rule", "message"]

# Rule names written to ``MappingResult.unmapped`` (and from there to the quarantine).
RULE_UNMAPPED = "concordance_unmapped"
RULE_UNMAPPED_YEAR = "concordance_unmapped_year"
RULE_BLANK = "concordance_blank"
RULE_NO_YEAR = "concordance_missing_year"

_OK, _BLANK, _UNKNOWN, _WRONG_YEAR, _NO_YEAR = 0, 1, 2, 3, 4


class ConcordanceError(ValueError):
    """A concordance file breaks a structural rule; the message names the file, row and problem."""


# -- model ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One column test of a rule or ``on_blank`` case; its parts are combined with AND."""

    column: str
    in_: frozenset[str] | None = None
    not_in: frozenset[str] | None = None
    blank: bool | None = None

    def describe(self) -> str:
        parts = []
        if self.blank is True:
            parts.append(f"{self.column} is blank")
        if self.blank is False:
            parts.append(f"{self.column} is not blank")
        if self.in_ is not None:
            parts.append(f"{self.column} in [{', '.join(sorted(self.in_))}]")
        if self.not_in is not None:
            parts.append(f"{self.column} not in [{', '.join(sorted(self.not_in))}]")
        return " and ".join(parts)


@dataclass(frozen=True)
class Rule:
    id: str
    priority: int
    when: tuple[Condition, ...]
    set: Mapping[str, str | None]
    reason: str
    first_year: int | None = None
    last_year: int | None = None

    def describe(self) -> str:
        return " and ".join(c.describe() for c in self.when)


@dataclass(frozen=True)
class BlankCase:
    when: tuple[Condition, ...]
    value: str | None
    reason: str


@dataclass(frozen=True)
class Target:
    name: str
    domain: str
    table: str
    column: str
    required: bool
    on_blank: tuple[BlankCase, ...]


@dataclass
class MappingTable:
    """One mapping CSV: ``code``, ``first_year``, ``last_year`` (``_YEAR_MAX`` = open), target values."""

    file: Path
    column: str
    rows: pd.DataFrame  # code, first_year, last_year, <targets>, decision, reason, line
    value_columns: list[str]


@dataclass
class MappingResult:
    """Output of :meth:`Concordance.apply`.

    ``values``: same index as the input; one column per target plus ``concordance_rule``.
    ``unmapped``: one row per (input row, required target) that could not be mapped.
    ``warnings``: the same for targets that are not required (not quarantined, value left null),
    leaving out rows whose column is already reported in ``unmapped``.
    """

    values: pd.DataFrame
    unmapped: pd.DataFrame
    warnings: pd.DataFrame = field(default_factory=lambda: _empty_unmapped())


# -- the concordance --------------------------------------------------------------------------------


class Concordance:
    """A validated concordance; build it with :func:`load_concordance`."""

    def __init__(
        self,
        *,
        id: str,
        version: str,
        title: str,
        folder: Path,
        classification,
        columns: list[str],
        targets: list[Target],
        tables: dict[str, MappingTable],
        rules: list[Rule],
        translations: dict[str, dict[str, str | None]],
        outside_years: str = "report",
    ) -> None:
        self.id = id
        # "report": a code with no row for the record's year is unmapped; "nearest_year": it is
        # mapped by the row of the nearest year (validation has recorded the code as a correction).
        self.outside_years = outside_years
        self.version = version
        self.title = title
        self.folder = folder
        self.classification = classification
        self.columns = list(columns)
        self._targets = {t.name: t for t in targets}
        self.tables = tables
        self.rules = list(rules)
        # target -> {value as written in the concordance -> value written to the output}
        self._translations = translations

    @property
    def version_id(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def classification_version(self) -> str:
        return str(self.classification.version_id)

    @property
    def targets(self) -> list[str]:
        return list(self._targets)

    def target(self, name: str) -> Target:
        return self._targets[name]

    @property
    def input_columns(self) -> list[str]:
        """National columns the engine reads: target inputs, then columns named only by conditions."""
        used: list[str] = []
        for t in self._targets.values():
            _add(used, t.column)
        for t in self._targets.values():
            for case in t.on_blank:
                for cond in case.when:
                    _add(used, cond.column)
        for rule in self.rules:
            for cond in rule.when:
                _add(used, cond.column)
        return used

    @property
    def condition_columns(self) -> list[str]:
        """Columns named by rule conditions or ``on_blank`` conditions."""
        used: list[str] = []
        for rule in self.rules:
            for cond in rule.when:
                _add(used, cond.column)
        for t in self._targets.values():
            for case in t.on_blank:
                for cond in case.when:
                    _add(used, cond.column)
        return used

    def __repr__(self) -> str:
        return f"Concordance({self.version_id!r}, targets={self.targets}, rules={len(self.rules)})"

    # -- apply --------------------------------------------------------------------------------------

    def apply(
        self, frame: pd.DataFrame, year_column: str = "collection_year", *, encoded: bool = False
    ) -> MappingResult:
        """Map every row of ``frame`` (vectorised; no loop over rows).

        With ``encoded`` the values come as pandas categoricals over each target's vocabulary (no
        text is built per row): a caller that gathers them again decodes only what it keeps.
        """
        needed = [*self.input_columns, year_column]
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise KeyError(
                f"concordance {self.version_id}: the frame lacks column(s) {', '.join(missing)} "
                f"(it reads {', '.join(needed)})"
            )
        n = len(frame)
        cols = {c: _Factorised.of(frame[c]) for c in self.input_columns}
        year_codes, year_values = _factorise_years(frame[year_column])

        # Which rule fires for each row: the first whose conditions all hold.
        fired = np.full(n, -1, dtype=np.int64)
        for r, rule in reversed(list(enumerate(self.rules))):
            mask = self._conditions_mask(rule.when, cols, n)
            if rule.first_year is not None or rule.last_year is not None:
                first = rule.first_year if rule.first_year is not None else -_YEAR_MAX
                last = rule.last_year if rule.last_year is not None else _YEAR_MAX
                in_years = (year_values >= first) & (year_values <= last)
                mask &= np.append(in_years, False)[year_codes]
            fired[mask] = r

        lookups: dict[tuple[str, str], _Lookup] = {}
        out: dict[str, pd.Series] = {}
        unmapped_parts: list[pd.DataFrame] = []
        warning_parts: list[pd.DataFrame] = []
        reported: dict[str, np.ndarray] = {}
        order = sorted(self._targets.values(), key=lambda t: not t.required)  # required first
        for target in order:
            key = (target.table, target.column)
            if key not in lookups:
                lookups[key] = _Lookup.build(
                    self.tables[target.table],
                    cols[target.column],
                    year_codes,
                    year_values,
                    nearest=self.outside_years == "nearest_year",
                )
            lookup = lookups[key]
            vocab, value_idx, status = self._map_target(target, lookup, cols, fired, n)
            out[target.name] = _decode(vocab, value_idx, frame.index, encoded)
            bad = status != _OK
            if target.required:
                part = self._report(target, lookup, bad, status, frame, cols, year_values, year_codes)
                unmapped_parts.append(part)
                done = reported.setdefault(target.column, np.zeros(n, dtype=bool))
                done |= bad
            else:
                # Blank inputs of optional targets are not problems; unknown codes are.
                bad &= status != _BLANK
                if target.column in reported:
                    bad &= ~reported[target.column]
                part = self._report(target, lookup, bad, status, frame, cols, year_values, year_codes)
                warning_parts.append(part)

        rule_vocab = [rule.id for rule in self.rules]
        values = pd.DataFrame({t: out[t] for t in self.targets}, index=frame.index)
        values["concordance_rule"] = _decode(rule_vocab, fired, frame.index, encoded)
        return MappingResult(values=values, unmapped=_concat(unmapped_parts), warnings=_concat(warning_parts))

    def _conditions_mask(
        self, conditions: Iterable[Condition], cols: dict[str, _Factorised], n: int
    ) -> np.ndarray:
        mask = np.ones(n, dtype=bool)
        for cond in conditions:
            mask &= cols[cond.column].mask(cond)
        return mask

    def _map_target(
        self, target: Target, lookup: _Lookup, cols: dict[str, _Factorised], fired: np.ndarray, n: int
    ) -> tuple[list[str], np.ndarray, np.ndarray]:
        translate = self._translations[target.name]
        vocab: list[str] = sorted({v for v in translate.values() if v is not None})
        position = {v: i for i, v in enumerate(vocab)}

        def idx(written: str | None) -> int:
            out = translate[written] if written is not None else None
            return -1 if out is None else position[out]

        per_row = np.array([idx(v) for v in lookup.table.rows[target.name]], dtype=np.int64)
        value_idx = np.append(per_row, -1)[lookup.row]  # lookup.row == -1 -> null
        status = lookup.status.copy()

        blank = status == _BLANK
        if target.on_blank and blank.any():
            open_ = blank.copy()
            for case in target.on_blank:
                hit = open_ & self._conditions_mask(case.when, cols, n)
                value_idx[hit] = idx(case.value)
                status[hit] = _OK
                open_ &= ~hit

        for r, rule in enumerate(self.rules):
            if target.name not in rule.set:
                continue
            # A rule resolves a blank input only if it tests the target's own column; it never
            # resolves an unknown code.
            tests_input = any(c.column == target.column for c in rule.when)
            usable = (status == _OK) | ((status == _BLANK) if tests_input else False)
            hit = (fired == r) & usable
            value_idx[hit] = idx(rule.set[target.name])
            status[hit] = _OK
        if not target.required:
            value_idx[status == _BLANK] = -1
        return vocab, value_idx, status

    def _report(
        self,
        target: Target,
        lookup: _Lookup,
        bad: np.ndarray,
        status: np.ndarray,
        frame: pd.DataFrame,
        cols: dict[str, _Factorised],
        year_values: np.ndarray,
        year_codes: np.ndarray,
    ) -> pd.DataFrame:
        positions = np.flatnonzero(bad)
        if not len(positions):
            return _empty_unmapped()
        col = cols[target.column]
        where = f"{self.version_id} {target.table}"
        # Messages are built per unique (code, year, status) and spread back: few strings, many rows.
        code_idx = col.codes[positions]
        yr_idx = year_codes[positions]
        st = status[positions]
        n_years = len(year_values) + 1
        key = ((code_idx + 1) * n_years + (yr_idx + 1)) * 8 + st
        inverse, uniq_keys = pd.factorize(key)
        messages, rules = [], []
        for k in uniq_keys:  # one message per unique (code, year, status), not per row
            c, y, s = k // 8 // n_years - 1, k // 8 % n_years - 1, k % 8
            code = None if c < 0 else str(col.uniques[c])
            year = None if y < 0 else int(year_values[y])
            if s == _BLANK:
                rules.append(RULE_BLANK)
                messages.append(
                    f"{target.column} is blank; {target.name} is required and no on_blank case or rule "
                    f"of {self.version_id} resolves it"
                )
            elif s == _NO_YEAR:
                rules.append(RULE_NO_YEAR)
                messages.append(
                    f"collection year is missing, so {target.column} {code!r} cannot be mapped to "
                    f"{target.name} ({where})"
                )
            elif s == _WRONG_YEAR:
                rules.append(RULE_UNMAPPED_YEAR)
                messages.append(
                    f"{target.column} {code!r} has no {target.name} mapping for collection year {year} "
                    f"in {where} (mapped for {lookup.spans.get(code, '?')}); not defaulted"
                )
            else:
                rules.append(RULE_UNMAPPED)
                messages.append(
                    f"{target.column} {code!r} is not in {where}, so {target.name} is left empty "
                    "(not defaulted); add a row to the concordance if it is a valid code"
                )
        raw = frame[target.column].iloc[positions]
        values = np.where(raw.notna().to_numpy(), raw.to_numpy(dtype=object), None)
        return pd.DataFrame(
            {
                "index": frame.index[positions].to_numpy(dtype=object),
                "column": target.column,
                "value": values,
                "target": target.name,
                "rule": np.asarray(rules, dtype=object)[inverse],
                "message": np.asarray(messages, dtype=object)[inverse],
            }
        )[UNMAPPED_COLUMNS]

    # -- publishing -------------------------------------------------------------------------------

    def to_frame(self) -> pd.DataFrame:
        """The ``concordance`` output table: every mapping row, ``on_blank`` case and rule, with reasons."""
        records: list[dict[str, Any]] = []
        base = {
            "concordance_version": self.version_id,
            "classification_version": self.classification_version,
        }
        for target in self._targets.values():
            table = self.tables[target.table]
            translate = self._translations[target.name]
            for row in table.rows.itertuples(index=False):  # reviewed data rows, not records
                written = getattr(row, target.name)
                records.append(
                    {
                        **base,
                        "kind": "mapping",
                        "priority": None,
                        "rule_id": None,
                        "target": target.name,
                        "column": target.column,
                        "code": row.code,
                        "first_year": row.first_year,
                        "last_year": None if row.last_year == _YEAR_MAX else row.last_year,
                        "condition": None,
                        "value": written,
                        "output_value": None if written is None else translate[written],
                        "decision": row.decision,
                        "reason": row.reason,
                        "file": table.file.name,
                    }
                )
            for i, case in enumerate(target.on_blank, start=1):
                condition = " and ".join(c.describe() for c in case.when)
                records.append(
                    {
                        **base,
                        "kind": "on_blank",
                        "priority": i,
                        "rule_id": None,
                        "target": target.name,
                        "column": target.column,
                        "code": None,
                        "first_year": None,
                        "last_year": None,
                        "condition": f"{target.column} is blank" + (f" and {condition}" if condition else ""),
                        "value": case.value,
                        "output_value": None if case.value is None else translate[case.value],
                        "decision": "blank_input",
                        "reason": case.reason,
                        "file": CONFIG_FILE,
                    }
                )
        for rule in self.rules:
            records.append(
                {
                    **base,
                    "kind": "rule",
                    "priority": rule.priority,
                    "rule_id": rule.id,
                    "target": ", ".join(rule.set),
                    "column": ", ".join(dict.fromkeys(c.column for c in rule.when)),
                    "code": None,
                    "first_year": rule.first_year,
                    "last_year": rule.last_year,
                    "condition": rule.describe(),
                    "value": "; ".join(f"{k}={'(none)' if v is None else v}" for k, v in rule.set.items()),
                    "output_value": "; ".join(
                        f"{k}={'(none)' if v is None else self._translations[k][v]}"
                        for k, v in rule.set.items()
                    ),
                    "decision": "conditional_rule",
                    "reason": rule.reason,
                    "file": CONFIG_FILE,
                }
            )
        frame = pd.DataFrame.from_records(records)
        for col in ("priority", "first_year", "last_year"):
            frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
        text = [c for c in frame.columns if c not in ("priority", "first_year", "last_year")]
        frame[text] = frame[text].astype("str")
        return frame


# -- helpers for apply ------------------------------------------------------------------------------


class _Factorised:
    """A column factorised once: ``codes`` (-1 = blank) into stripped, non-blank ``uniques``."""

    __slots__ = ("_index_of", "codes", "uniques")

    def __init__(self, codes: np.ndarray, uniques: np.ndarray) -> None:
        self.codes = codes
        self.uniques = uniques
        self._index_of: dict[str, int] | None = None

    @property
    def index_of(self) -> dict[str, int]:
        """Position of each unique value; built when a condition lists codes (a column such as URN,
        with tens of thousands of values, is usually only tested for blank)."""
        if self._index_of is None:
            self._index_of = {u: i for i, u in enumerate(self.uniques)}
        return self._index_of

    @classmethod
    def of(cls, series: pd.Series) -> _Factorised:
        raw_codes, raw_uniques = pd.factorize(series, use_na_sentinel=True)
        stripped = pd.Series(raw_uniques).astype("str").str.strip()  # only the unique values
        stripped = stripped.where(stripped != "")
        norm_codes, norm_uniques = pd.factorize(stripped, use_na_sentinel=True)
        remap = np.append(norm_codes.astype(np.int64), -1)
        return cls(remap[raw_codes], np.asarray(norm_uniques, dtype=object))

    def lookup_mask(self, values: frozenset[str]) -> np.ndarray:
        """Boolean per unique value (plus a trailing ``False`` for blank, indexed by -1)."""
        hit = np.zeros(len(self.uniques) + 1, dtype=bool)
        for v in values:
            i = self.index_of.get(v)
            if i is not None:
                hit[i] = True
        return hit

    def mask(self, cond: Condition) -> np.ndarray:
        per_unique = np.ones(len(self.uniques) + 1, dtype=bool)  # last slot = blank
        if cond.blank is True:
            per_unique[:-1] = False
        if cond.blank is False:
            per_unique[-1] = False
        if cond.in_ is not None:
            per_unique &= self.lookup_mask(cond.in_)
        if cond.not_in is not None:
            per_unique &= ~self.lookup_mask(cond.not_in)
        return per_unique[self.codes]


def _factorise_years(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Year codes (-1 = missing) and the unique years as int64."""
    numeric = pd.to_numeric(series, errors="coerce")
    codes, uniques = pd.factorize(numeric, use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=np.float64).astype(np.int64)


@dataclass
class _Lookup:
    """For each record: the mapping-table row that applies (-1 = none) and a status."""

    table: MappingTable
    row: np.ndarray
    status: np.ndarray

    @cached_property
    def spans(self) -> dict[str, str]:
        """The years each code is mapped for ("2020-2023, 2025-"), for messages: built only when a
        code is reported for a year it has no mapping in, not for every lookup."""
        rows = self.table.rows
        span = rows["first_year"].astype(str) + "-" + _last_text(rows["last_year"])
        return span.groupby(rows["code"].to_numpy()).agg(", ".join).to_dict()

    @classmethod
    def build(
        cls,
        table: MappingTable,
        col: _Factorised,
        year_codes: np.ndarray,
        year_values: np.ndarray,
        *,
        nearest: bool = False,
    ) -> _Lookup:
        # Map the small grid (unique code x unique year) once, then spread it back by integer indexing.
        n_codes, n_years = len(col.uniques), len(year_values)
        grid = pd.DataFrame(
            {
                "cell": np.arange(n_codes * n_years),
                "code": np.repeat(col.uniques, n_years),
                "year": np.tile(year_values, n_codes),
            }
        )
        rows = table.rows.reset_index(drop=True).assign(_row=lambda f: np.arange(len(f)))
        merged = grid.merge(rows[["code", "first_year", "last_year", "_row"]], on="code", how="inner")
        in_years = (merged["first_year"] <= merged["year"]) & (merged["last_year"] >= merged["year"])
        hits = merged[in_years]
        if nearest:
            hits = pd.concat([hits, _nearest_rows(merged, hits)], ignore_index=True)
        cell_row = np.full(n_codes * n_years + 1, -1, dtype=np.int64)  # trailing slot: blank/no year
        cell_row[hits["cell"].to_numpy()] = hits["_row"].to_numpy(dtype=np.int64)
        cell_status = np.full(n_codes * n_years + 1, _UNKNOWN, dtype=np.int8)
        cell_status[merged["cell"].to_numpy()] = _WRONG_YEAR
        cell_status[hits["cell"].to_numpy()] = _OK

        codes = col.codes
        usable = (codes >= 0) & (year_codes >= 0)
        cell = np.where(usable, codes * n_years + year_codes, n_codes * n_years)
        row = cell_row[cell]
        status = cell_status[cell]
        status[codes < 0] = _BLANK
        status[(codes >= 0) & (year_codes < 0)] = _NO_YEAR
        return cls(table=table, row=row, status=status)


def _nearest_rows(merged: pd.DataFrame, hits: pd.DataFrame) -> pd.DataFrame:
    """For (code, year) cells with rows in other years only: the row of the nearest year (the
    earlier one on a tie), so a known code used outside its years is mapped by its meaning."""
    outside = merged[~merged["cell"].isin(hits["cell"])]
    if outside.empty:
        return outside
    distance = np.where(
        outside["year"] < outside["first_year"],
        outside["first_year"] - outside["year"],
        outside["year"] - outside["last_year"],
    )
    ordered = outside.assign(_distance=distance).sort_values(["cell", "_distance", "first_year"])
    return ordered.drop_duplicates("cell").drop(columns="_distance")


def _last_text(last: pd.Series) -> pd.Series:
    return last.map(lambda v: "" if v == _YEAR_MAX else str(v))


def _decode(vocab: list[str], idx: np.ndarray, index: pd.Index, encoded: bool = False) -> pd.Series:
    """Integer codes into ``vocab`` (-1 = null) -> a ``str`` Series (an Arrow ``take``: fast), or
    the codes as a categorical over ``vocab`` when ``encoded``."""
    return categorical(idx, vocab, index) if encoded else looked_up(vocab, idx, index)


def _empty_unmapped() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in UNMAPPED_COLUMNS})


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty_unmapped()
    return pd.concat(parts, ignore_index=True)[UNMAPPED_COLUMNS]


def _add(seq: list[str], item: str) -> None:
    if item not in seq:
        seq.append(item)


# -- loading ----------------------------------------------------------------------------------------


def load_concordance(folder: str | Path, classification) -> Concordance:
    """Read and validate a concordance folder against ``classification``.

    Checks: the YAML structure; every target value exists in the classification (tree codes through
    ``translate``) or in the target's dimension; no two rows of one code overlap in years; rule and
    ``on_blank`` conditions name declared columns and, where the column has a mapping table, codes
    of that table. Errors name the file and the row.
    """
    root = Path(folder)
    config_file = root / CONFIG_FILE
    data = _read_yaml(config_file)

    for key in ("id", "version", "classification", "columns", "targets"):
        if key not in data:
            raise ConcordanceError(f"{config_file}: required key {key!r} is missing")
    for key in ("id", "version", "classification"):
        if not isinstance(data[key], str) or not data[key].strip():
            raise ConcordanceError(f"{config_file}: {key!r} must be a non-empty string (quote numbers)")
    if data["classification"] != classification.id and getattr(classification, "crosswalk", None) is None:
        raise ConcordanceError(
            f"{config_file}: targets classification {data['classification']!r} but "
            f"{classification.version_id} was given (load it with a crosswalk to re-point)"
        )
    columns = data["columns"]
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns):
        raise ConcordanceError(f"{config_file}: 'columns' must be a non-empty list of column names")
    if len(set(columns)) != len(columns):
        raise ConcordanceError(f"{config_file}: 'columns' lists a column twice")

    domains = _domains(classification)
    targets = _parse_targets(config_file, data["targets"], columns, domains)
    tables: dict[str, MappingTable] = {}
    for target in targets:
        if target.table not in tables:
            tables[target.table] = _read_table(root / target.table, target.column)
        table = tables[target.table]
        if table.column != target.column:
            raise ConcordanceError(
                f"{config_file}: target {target.name!r} reads column {target.column!r} from "
                f"{target.table}, whose first column is {table.column!r}"
            )
        if target.name not in table.value_columns:
            raise ConcordanceError(
                f"{root / target.table}: has no column {target.name!r} for target {target.name!r} "
                f"(columns: {', '.join(table.value_columns)})"
            )
    # A table column that no target reads is probably a typo in a column name.
    for name, table in tables.items():
        users = {t.name for t in targets if t.table == name}
        extra = [c for c in table.value_columns if c not in users]
        if extra:
            raise ConcordanceError(
                f"{root / name}: column(s) {', '.join(extra)} are not targets of {config_file.name}"
            )

    codes_by_column = {t.column: set(tables[t.table].rows["code"]) for t in targets}
    translations: dict[str, dict[str, str | None]] = {t.name: {} for t in targets}

    def check_value(target: Target, value: Any, where: str) -> None:
        if value is None:
            return
        if not isinstance(value, str) or not value:
            raise ConcordanceError(f"{where}: value for {target.name!r} must be a code, got {value!r}")
        translations[target.name][value] = _resolve(classification, domains, target, value, where)

    for target in targets:
        table = tables[target.table]
        for row in table.rows.itertuples(index=False):
            check_value(
                target, getattr(row, target.name), f"{table.file}: line {row.line} (code {row.code!r})"
            )
        for i, case in enumerate(target.on_blank):
            where = f"{config_file}: target {target.name!r} on_blank[{i}]"
            check_value(target, case.value, where)
            _check_conditions(case.when, codes_by_column, where)

    rules = _parse_rules(config_file, data.get("rules") or [], columns, {t.name: t for t in targets})
    for rule in rules:
        where = f"{config_file}: rule {rule.id!r} (rules[{rule.priority - 1}])"
        _check_conditions(rule.when, codes_by_column, where)
        for name, value in rule.set.items():
            check_value(next(t for t in targets if t.name == name), value, where)

    return Concordance(
        id=data["id"],
        version=data["version"],
        title=str(data.get("title") or data["id"]),
        folder=root,
        classification=classification,
        columns=columns,
        targets=targets,
        tables=tables,
        rules=rules,
        translations=translations,
        outside_years=_outside_years(config_file, data.get("outside_years", "report")),
    )


def _outside_years(config_file: Path, value: Any) -> str:
    if value not in ("report", "nearest_year"):
        raise ConcordanceError(
            f"{config_file}: 'outside_years' must be 'report' or 'nearest_year' (got {value!r})"
        )
    return value


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConcordanceError(f"{file}: cannot read concordance file ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConcordanceError(f"{file}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConcordanceError(f"{file}: the top level must be a mapping")
    return data


def _domains(classification) -> dict[str, frozenset[str]]:
    """Value sets by name: every dimension (incl. exit destinations, new-episode types)."""
    dims = [
        *classification.dimensions.values(),
        classification.exit_destinations,
        classification.new_episode_types,
    ]
    out = {d.name: d.codes() for d in dims}
    for name, d in classification.dimensions.items():
        out.setdefault(name, d.codes())
    return out


def _resolve(
    classification, domains: dict[str, frozenset[str]], target: Target, value: str, where: str
) -> str:
    if target.domain == CATEGORIES:
        try:
            translated = classification.translate(value)
        except KeyError as exc:
            raise ConcordanceError(
                f"{where}: {target.name} {value!r} is not a code of {classification.version_id} ({exc})"
            ) from None
        if translated not in classification:
            raise ConcordanceError(
                f"{where}: {target.name} {value!r} translates to {translated!r}, which is not a code of "
                f"{classification.version_id}"
            )
        return translated
    if value not in domains[target.domain]:
        raise ConcordanceError(
            f"{where}: {target.name} {value!r} is not a value of dimension {target.domain!r} in "
            f"{classification.version_id} (values: {', '.join(sorted(domains[target.domain]))})"
        )
    return value


def _parse_targets(
    file: Path, raw: Any, columns: list[str], domains: dict[str, frozenset[str]]
) -> list[Target]:
    if not isinstance(raw, list) or not raw:
        raise ConcordanceError(f"{file}: 'targets' must be a non-empty list")
    targets: list[Target] = []
    for i, entry in enumerate(raw):
        where = f"{file}: targets[{i}]"
        if not isinstance(entry, dict):
            raise ConcordanceError(f"{where}: must be a mapping")
        for key in ("name", "domain", "table", "column", "required"):
            if key not in entry:
                raise ConcordanceError(f"{where}: required key {key!r} is missing")
        name = entry["name"]
        where = f"{file}: target {name!r}"
        if not isinstance(name, str) or not name.isidentifier():
            raise ConcordanceError(f"{where}: 'name' must be an identifier")
        if name in {t.name for t in targets} or name == "concordance_rule":
            raise ConcordanceError(f"{where}: target name used twice or reserved")
        if entry["domain"] != CATEGORIES and entry["domain"] not in domains:
            raise ConcordanceError(
                f"{where}: domain {entry['domain']!r} is neither {CATEGORIES!r} nor a dimension of the "
                f"classification ({', '.join(sorted(domains))})"
            )
        if entry["column"] not in columns:
            raise ConcordanceError(f"{where}: column {entry['column']!r} is not in 'columns' {columns}")
        if not isinstance(entry["required"], bool):
            raise ConcordanceError(f"{where}: 'required' must be true or false")
        if not isinstance(entry["table"], str) or not entry["table"].endswith(".csv"):
            raise ConcordanceError(f"{where}: 'table' must name a CSV file in the folder")
        cases = []
        raw_cases = entry.get("on_blank") or []
        if not isinstance(raw_cases, list):
            raise ConcordanceError(f"{where}: 'on_blank' must be a list of cases")
        for j, case in enumerate(raw_cases):
            cwhere = f"{where} on_blank[{j}]"
            if not isinstance(case, dict) or "value" not in case:
                raise ConcordanceError(f"{cwhere}: a case must be a mapping with 'value' (null allowed)")
            unknown = set(case) - {"when", "value", "reason"}
            if unknown:
                raise ConcordanceError(f"{cwhere}: unknown key(s) {sorted(unknown)}")
            cases.append(
                BlankCase(
                    when=_parse_when(cwhere, case.get("when") or {}, columns),
                    value=case["value"],
                    reason=_reason(cwhere, case.get("reason")),
                )
            )
        targets.append(
            Target(
                name=name,
                domain=entry["domain"],
                table=entry["table"],
                column=entry["column"],
                required=entry["required"],
                on_blank=tuple(cases),
            )
        )
    return targets


def _reason(where: str, reason: Any) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ConcordanceError(f"{where}: 'reason' is required (say why)")
    return " ".join(reason.split())


def _parse_when(where: str, raw: Any, columns: list[str]) -> tuple[Condition, ...]:
    if not isinstance(raw, dict):
        raise ConcordanceError(f"{where}: 'when' must map column names to conditions")
    conditions = []
    for column, spec in raw.items():
        if column not in columns:
            raise ConcordanceError(
                f"{where}: condition on unknown column {column!r} (declared columns: {', '.join(columns)})"
            )
        conditions.append(_parse_condition(f"{where} column {column!r}", column, spec))
    return tuple(conditions)


def _code_set(where: str, values: Any) -> frozenset[str]:
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise ConcordanceError(
            f"{where}: expected a non-empty list of codes (quote codes YAML reads as numbers)"
        )
    return frozenset(values)


def _parse_condition(where: str, column: str, spec: Any) -> Condition:
    if isinstance(spec, list):
        return Condition(column, in_=_code_set(where, spec))
    if spec == "blank":
        return Condition(column, blank=True)
    if spec == "not_blank":
        return Condition(column, blank=False)
    if isinstance(spec, dict) and spec and set(spec) <= {"in", "not_in", "blank"}:
        blank = spec.get("blank")
        if blank is not None and not isinstance(blank, bool):
            raise ConcordanceError(f"{where}: 'blank' must be true or false")
        return Condition(
            column,
            in_=_code_set(where, spec["in"]) if "in" in spec else None,
            not_in=_code_set(where, spec["not_in"]) if "not_in" in spec else None,
            blank=blank,
        )
    raise ConcordanceError(
        f"{where}: a condition is a list of codes, 'blank', 'not_blank', or a mapping with "
        f"in / not_in / blank (got {spec!r})"
    )


def _check_conditions(
    conditions: Iterable[Condition], codes_by_column: dict[str, set[str]], where: str
) -> None:
    for cond in conditions:
        known = codes_by_column.get(cond.column)
        if known is None:
            continue  # a column without a mapping table (e.g. a free-text reference number)
        for codes in (cond.in_, cond.not_in):
            unknown = sorted((codes or frozenset()) - known)
            if unknown:
                raise ConcordanceError(
                    f"{where}: condition on {cond.column} names code(s) {', '.join(unknown)} that are not "
                    f"in its mapping table"
                )


def _parse_rules(file: Path, raw: Any, columns: list[str], targets: dict[str, Target]) -> list[Rule]:
    if not isinstance(raw, list):
        raise ConcordanceError(f"{file}: 'rules' must be a list")
    rules: list[Rule] = []
    for i, entry in enumerate(raw):
        where = f"{file}: rules[{i}]"
        if not isinstance(entry, dict):
            raise ConcordanceError(f"{where}: must be a mapping")
        unknown = set(entry) - {"id", "when", "set", "reason", "first_year", "last_year"}
        if unknown:
            raise ConcordanceError(f"{where}: unknown key(s) {sorted(unknown)}")
        rule_id = entry.get("id")
        if not isinstance(rule_id, str) or not rule_id.strip():
            raise ConcordanceError(f"{where}: 'id' must be a non-empty string")
        where = f"{file}: rule {rule_id!r} (rules[{i}])"
        if rule_id in {r.id for r in rules}:
            raise ConcordanceError(f"{where}: duplicate rule id")
        when = _parse_when(where, entry.get("when"), columns)
        if not when:
            raise ConcordanceError(f"{where}: 'when' must have at least one condition")
        sets = entry.get("set")
        if not isinstance(sets, dict) or not sets:
            raise ConcordanceError(f"{where}: 'set' must map target names to values")
        for name in sets:
            if name not in targets:
                raise ConcordanceError(
                    f"{where}: sets unknown target {name!r} (targets: {', '.join(targets)})"
                )
        first, last = entry.get("first_year"), entry.get("last_year")
        for key, value in (("first_year", first), ("last_year", last)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConcordanceError(f"{where}: {key!r} must be a year")
        if first is not None and last is not None and last < first:
            raise ConcordanceError(f"{where}: last_year is before first_year")
        rules.append(
            Rule(
                id=rule_id,
                priority=i + 1,
                when=when,
                set=dict(sets),
                reason=_reason(where, entry.get("reason")),
                first_year=first,
                last_year=last,
            )
        )
    return rules


def _read_table(file: Path, column: str) -> MappingTable:
    try:
        with file.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                raise ConcordanceError(f"{file}: the mapping table is empty") from None
            body = list(reader)
    except OSError as exc:
        raise ConcordanceError(f"{file}: cannot read mapping table ({exc})") from exc
    if not header or header[0] != column:
        raise ConcordanceError(
            f"{file}: the first column must be the national column {column!r} (got {header[:1]})"
        )
    if len(set(header)) != len(header):
        raise ConcordanceError(f"{file}: a column name appears twice in the header")
    missing = [c for c in _FIXED_TABLE_COLUMNS if c not in header]
    if missing:
        raise ConcordanceError(f"{file}: missing column(s) {', '.join(missing)}")
    value_columns = [h for h in header[1:] if h not in _FIXED_TABLE_COLUMNS]
    if not value_columns:
        raise ConcordanceError(f"{file}: no target value columns")

    records = []
    for line, cells in enumerate(body, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise ConcordanceError(f"{file}: line {line}: {len(cells)} cells, header has {len(header)}")
        row = dict(zip(header, (c.strip() for c in cells), strict=True))
        code = row[column]
        where = f"{file}: line {line} (code {code!r})"
        if not code:
            raise ConcordanceError(f"{file}: line {line}: the code ({column}) is empty")
        first = _year(where, "first_year", row["first_year"], required=True)
        last = _year(where, "last_year", row["last_year"], required=False)
        if last is not None and last < first:
            raise ConcordanceError(f"{where}: last_year {last} is before first_year {first}")
        values: dict[str, str | None] = {}
        for name in value_columns:
            cell = row[name]
            if not cell:
                raise ConcordanceError(
                    f"{where}: {name} is empty; write a value, or {NONE_TOKEN} to map to no value on purpose"
                )
            values[name] = None if cell == NONE_TOKEN else cell
        if not row["decision"]:
            raise ConcordanceError(f"{where}: 'decision' is empty")
        if not row["reason"]:
            raise ConcordanceError(f"{where}: 'reason' is empty (say why)")
        records.append(
            {
                "code": code,
                "first_year": first,
                "last_year": _YEAR_MAX if last is None else last,
                **values,
                "decision": row["decision"],
                "reason": row["reason"],
                "line": line,
            }
        )
    if not records:
        raise ConcordanceError(f"{file}: the mapping table has no rows")
    rows = pd.DataFrame.from_records(records)
    for name in value_columns:  # keep None (an intended "no value"), not NaN
        rows[name] = pd.Series([r[name] for r in records], dtype=object)
    _check_table_overlaps(file, rows)
    return MappingTable(file=file, column=column, rows=rows, value_columns=value_columns)


def _year(where: str, key: str, text: str, *, required: bool) -> int | None:
    if not text:
        if required:
            raise ConcordanceError(f"{where}: {key} is required")
        return None
    if not (len(text) == 4 and text.isdigit()):
        raise ConcordanceError(f"{where}: {key} must be a four-digit collection year (got {text!r})")
    return int(text)


def _check_table_overlaps(file: Path, rows: pd.DataFrame) -> None:
    ordered = rows.sort_values(["code", "first_year"], kind="stable").reset_index(drop=True)
    same = ordered["code"] == ordered["code"].shift()
    overlap = same & (ordered["first_year"] <= ordered["last_year"].shift())
    if overlap.any():
        i = int(np.flatnonzero(overlap.to_numpy())[0])
        row, prev = ordered.iloc[i], ordered.iloc[i - 1]

        def span(r: pd.Series) -> str:
            last = "" if r["last_year"] == _YEAR_MAX else str(r["last_year"])
            return f"{r['first_year']}-{last}"

        raise ConcordanceError(
            f"{file}: line {row['line']} (code {row['code']!r}): years {span(row)} overlap line "
            f"{prev['line']} ({span(prev)}); a code may have only one mapping per collection year"
        )


# -- checks over whole code lists -------------------------------------------------------------------

ANY_VALUE = "<any other value>"


def resolve_all(concordance: Concordance, codelists: pd.DataFrame, year: int) -> pd.DataFrame:
    """Map every valid combination of codes for collection ``year``, target by target.

    For each target, enumerate the product of the values of its input column and of every condition
    column (rules and ``on_blank`` cases; the first matching rule wins, so all of them matter). A
    column with a code list takes the codes valid in ``year`` (date limits not applied), plus blank
    when some target defines ``on_blank`` for it. A column without a code list (e.g. URN) takes
    blank, every code named in a condition, and :data:`ANY_VALUE`. Other input columns are blank.

    Returns one row per (target, combination): ``collection_year``, ``target``, the input columns,
    ``value``, ``concordance_rule``, ``rule`` and ``message`` (null when mapped).
    """
    from icare.codelists import valid_codes

    listed = set(codelists["field"])
    blank_ok = {t.column for t in concordance._targets.values() if t.on_blank}
    named: dict[str, set[str]] = {}
    for rule in concordance.rules:
        for cond in rule.when:
            named.setdefault(cond.column, set()).update(cond.in_ or (), cond.not_in or ())
    for t in concordance._targets.values():
        for case in t.on_blank:
            for cond in case.when:
                named.setdefault(cond.column, set()).update(cond.in_ or (), cond.not_in or ())

    def domain(column: str) -> list[str | None]:
        if column in listed:
            values: list[str | None] = sorted(valid_codes(codelists, column, year))
            return [*values, None] if column in blank_ok else values
        return [None, *sorted(named.get(column, set())), ANY_VALUE]

    parts = []
    for target in concordance._targets.values():
        dims = [target.column, *[c for c in concordance.condition_columns if c != target.column]]
        grid = pd.MultiIndex.from_product([domain(c) for c in dims], names=dims).to_frame(index=False)
        for column in concordance.input_columns:
            if column not in grid.columns:
                grid[column] = None
        grid = grid[concordance.input_columns].astype("str")
        grid["collection_year"] = year
        result = concordance.apply(grid)
        problems = result.unmapped[result.unmapped["target"] == target.name]
        problems = pd.concat(
            [problems, result.warnings[result.warnings["target"] == target.name]], ignore_index=True
        ).drop_duplicates("index")
        part = grid.assign(
            target=target.name,
            value=result.values[target.name],
            concordance_rule=result.values["concordance_rule"],
        )
        part["rule"] = pd.Series(problems["rule"].to_numpy(), index=problems["index"].to_numpy()).reindex(
            part.index
        )
        part["message"] = pd.Series(
            problems["message"].to_numpy(), index=problems["index"].to_numpy()
        ).reindex(part.index)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    front = ["collection_year", "target", *concordance.input_columns]
    out = out[[*front, "value", "concordance_rule", "rule", "message"]]
    out[["rule", "message"]] = out[["rule", "message"]].astype("str")
    return out
