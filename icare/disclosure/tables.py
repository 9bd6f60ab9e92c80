"""The released tables: the internal statistics with their margin rows, disclosure-controlled together.

Each table is prepared (detail cells and margin rows, ``margins.py``; their equations,
``equations.py``), suppressed on its own (``control.py``), then cells that hold the same figure in
two places (``links.py``: flow_check and the area totals, the pathway levels) are given the same
status, and the tables changed are suppressed again, until nothing changes. The internal tables are
not changed; the release is a new set of Arrow tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from icare import checks
from icare.disclosure.control import (
    CODES,
    FREE,
    PRIMARY,
    SECONDARY,
    Controlled,
    round_counts,
    suppress,
)
from icare.disclosure.equations import Equations, build_equations
from icare.disclosure.links import apply_links, table_links
from icare.disclosure.margins import (
    ICARE_LEVEL,
    IS_TOTAL,
    dimension_columns,
    with_derived_totals,
    with_margins,
)
from icare.disclosure.rates import release_rates
from icare.disclosure.rules import DisclosureRules, TableRules
from icare.indicators.compute import compute_indicators
from icare.indicators.config import IndicatorConfig, load_indicator_config
from icare.statistics import load_statistics_settings
from schemas.outputs import (
    COVERAGE,
    INDICATORS,
    RELEASE_COUNTS,
    RELEASE_DERIVED,
    RELEASE_WITH_RATES,
    column_names,
    release_name,
    to_arrow,
)

SUMMARY = "disclosure_summary"
# The internal table with the derived values of a table's margin rows (computed from the records).
DERIVED_TOTALS = {"durations": "durations_totals"}
# Columns added to a released table after control (rates and statuses): not part of its input.
_AFTER_CONTROL = {"population", "rate_per_100000", "rate_status", "rate_missing_reason"}


class DisclosureError(RuntimeError):
    """The release would show a value its rules withhold (a bug): the run stops and writes nothing."""


@dataclass
class Prepared:
    """A table ready for control: its rows (detail cells, then margin rows) and their equations."""

    table: str
    data: pa.Table  # the released columns known before control (counts unsuppressed)
    frame: pd.DataFrame  # the dimensions and counts control needs
    equations: Equations
    keys: tuple[str, ...]
    summable: tuple[str, ...]


def _input_columns(table: str) -> list[str]:
    statuses = {f"{c}_status" for c in RELEASE_COUNTS[table]} | set(RELEASE_DERIVED.get(table, {}))
    return [c for c in column_names(release_name(table)) if c not in statuses | _AFTER_CONTROL]


def _keys(table: str, rules: TableRules) -> tuple[str, ...]:
    """The columns that say which cell a row is (every column but counts and derived values)."""
    derived = {c for rule in rules.derived for c in rule.columns}
    return tuple(c for c in _input_columns(table) if c not in {*rules.counts, *derived, "is_total"})


def prepare(
    table: str,
    data: pa.Table,
    rules: TableRules,
    child_bands: Sequence[str],
    derived_totals: pa.Table | None = None,
) -> Prepared:
    """The table's detail rows and, when its rules sum dimensions, its margin rows and equations.
    ``derived_totals``: the derived values (quartiles) of the margin rows, computed from the records
    (``durations_totals``); without it they are empty and withheld."""
    columns = _input_columns(table)
    keys = _keys(table, rules)
    if rules.summable:
        summed = {c for d in rules.summable for c in dimension_columns(d)}
        fixed = [k for k in keys if k not in summed]
        derived = [c for rule in rules.derived for c in rule.columns]
        data = with_margins(
            data,
            columns,
            fixed,
            rules.summable,
            rules.counts,
            derived,
            child_bands,
            rules.breakdowns,
            rules.national_breakdowns,
        )
        if derived and derived_totals is not None:
            data = with_derived_totals(data, derived_totals, keys, derived)
    else:
        # a table released with totals whose rules sum nothing: its cells only, at the code level
        if ICARE_LEVEL in columns and ICARE_LEVEL not in data.column_names:
            data = data.append_column(ICARE_LEVEL, pa.repeat(pa.scalar("code"), data.num_rows))
        if IS_TOTAL in columns and IS_TOTAL not in data.column_names:
            data = data.append_column(IS_TOTAL, pa.repeat(pa.scalar(False), data.num_rows))
        data = data.select(columns)
    derived = [c for rule in rules.derived for c in rule.columns[:1]]
    frame = data.select([*keys, *rules.counts, *derived]).to_pandas()
    equations = build_equations(frame, keys, rules.summable, child_bands)
    return Prepared(table, data, frame, equations, keys, tuple(rules.summable))


def _derived_status(
    frame: pd.DataFrame, controlled: Controlled, rules: TableRules, margin: np.ndarray
) -> dict[str, np.ndarray]:
    """Derived columns: withheld (A) when based on fewer than ``min_observations`` values, else (D)
    when their count is withheld."""
    result = {}
    for rule in rules.derived:
        observations = frame[rule.count].to_numpy(dtype=np.int64)
        if rule.excluded is not None:
            observations = observations - frame[rule.excluded].to_numpy(dtype=np.int64)
        status = np.where(controlled.status[rule.count] != FREE, SECONDARY, FREE).astype(np.int8)
        # a margin row whose values were not computed (no ``derived_totals`` given) shows none
        status[margin & frame[rule.columns[0]].isna().to_numpy() & (status == FREE)] = SECONDARY
        status[observations < rule.min_observations] = PRIMARY
        result[rule.status] = status
    return result


def assemble(
    prepared: Prepared,
    controlled: Controlled,
    rules: DisclosureRules,
    rates: pa.Table | None = None,
) -> tuple[pa.Table, list[dict]]:
    """The released table (validated against ``release.<table>``) and its summary rows."""
    table, data = prepared.table, prepared.data
    table_rules = rules.tables[table]
    margin = (
        data.column(IS_TOTAL).to_numpy(zero_copy_only=False).astype(bool)
        if IS_TOTAL in data.column_names
        else np.zeros(data.num_rows, dtype=bool)
    )
    derived = _derived_status(prepared.frame, controlled, table_rules, margin)
    columns: dict[str, pa.Array] = {}
    for name in column_names(release_name(table)):
        if name in controlled.values:
            status = controlled.status[name]
            columns[name] = pa.array(controlled.values[name], pa.int64(), mask=status != FREE)
        elif name.endswith("_status") and name[: -len("_status")] in controlled.status:
            columns[name] = pa.array(CODES[controlled.status[name[: -len("_status")]]], pa.string())
        elif name in derived:
            columns[name] = pa.array(CODES[derived[name]], pa.string())
        elif name in _AFTER_CONTROL:
            columns[name] = rates.column(name)
        else:
            columns[name] = data.column(name)
    for rule in table_rules.derived:
        for name in rule.columns:
            column = data.column(name).combine_chunks()
            columns[name] = pa.array(
                column.to_numpy(zero_copy_only=False),
                column.type,
                mask=np.asarray(column.is_null()) | (derived[rule.status] != FREE),
            )
    released = to_arrow(pa.table(columns), release_name(table))
    summary = [
        _summary_row(table, column, rules, controlled.status[column], controlled.unprotected[column])
        for column in table_rules.counts
    ]
    summary += [
        _summary_row(table, ", ".join(rule.columns), rules, derived[rule.status], 0)
        for rule in table_rules.derived
    ]
    return released, summary


def _control(prepared: Prepared, rules: DisclosureRules, start=None) -> Controlled:
    table_rules = rules.tables[prepared.table]
    if rules.method == "round":
        return round_counts(prepared.frame, table_rules, rules.rounding_base)
    return suppress(prepared.frame, table_rules, rules.threshold, prepared.equations, start)


def control_table(
    table: str, data: pa.Table, rules: DisclosureRules, child_bands: Sequence[str] = ()
) -> tuple[pa.Table, list[dict]]:
    """One table controlled on its own (no links to other tables; no rates)."""
    prepared = prepare(table, data, rules.tables[table], child_bands)
    controlled = _control(prepared, rules)
    rates = None
    if table in RELEASE_WITH_RATES:
        rates = release_rates(table, prepared.data, controlled.status["children"], {}, None)
    return assemble(prepared, controlled, rules, rates)


def _summary_row(
    table: str, column: str, rules: DisclosureRules, status: np.ndarray, unprotected: int
) -> dict:
    return {
        "table_name": table,
        "column_name": column,
        "method": rules.method,
        "cells": len(status),
        "published": int((status == FREE).sum()),
        "primary_suppressed": int((status == PRIMARY).sum()),
        "secondary_suppressed": int((status == SECONDARY).sum()),
        "unprotected_groups": unprotected,
        "disclosure_rules": rules.version_id,
    }


def disclosures(
    release: Mapping[str, pa.Table], rules: DisclosureRules, child_bands: Sequence[str] | None = None
) -> pd.DataFrame:
    """``icare.checks.release_disclosures`` and ``release_recoveries`` with what the rules protect
    (``child_bands``: the age bands inside 0-17, those of the default settings when not given)."""
    if child_bands is None:
        child_bands = child_age_bands(None)
    threshold = rules.threshold if rules.method == "suppress" else None
    counts = {table: rules.tables[table].counts for table in RELEASE_COUNTS if table in release}
    found = checks.release_disclosures(release, counts, threshold)
    if rules.method == "suppress":
        summable = {t: rules.tables[t].summable for t in counts if rules.tables[t].summable}
        recovered = checks.release_recoveries(release, counts, summable, set(child_bands))
        found = pd.concat([found, recovered], ignore_index=True)
    return found


def child_age_bands(settings=None) -> list[str]:
    """The age bands inside ages 0-17 (summed into ``under 18``), of the default settings when no
    ``settings`` are given."""
    settings = settings or load_statistics_settings()
    return [b.band for b in settings.age_bands if b.last_age is not None and b.last_age <= 17]


def release_tables(
    tables: Mapping[str, object],
    rules: DisclosureRules,
    settings=None,
    indicators: IndicatorConfig | None = None,
) -> dict[str, pa.Table]:
    """Every released aggregate table plus ``disclosure_summary``, from the internal statistics tables,
    the ``coverage`` table as it is, and the ``indicators`` computed from the released tables.
    ``settings``: the run's statistics settings (age bands and population year), the default file's
    when not given; ``indicators``: the indicator definitions, config/indicators.yaml when not given."""
    if settings is None:
        settings = load_statistics_settings()
    child_bands = child_age_bands(settings)
    prepared: dict[str, Prepared] = {}
    for table in RELEASE_COUNTS:
        data = tables[table]
        if isinstance(data, pd.DataFrame):
            data = to_arrow(data, table)
        totals = tables.get(DERIVED_TOTALS.get(table, ""))
        if isinstance(totals, pd.DataFrame):
            totals = to_arrow(totals, DERIVED_TOTALS[table])
        prepared[table] = prepare(table, data, rules.tables[table], child_bands, totals)
    controlled = {table: _control(p, rules) for table, p in prepared.items()}
    if rules.method == "suppress":
        links = table_links(prepared)
        while True:
            changed = apply_links(links, controlled)
            if not changed:
                break
            for table in changed:
                controlled[table] = _control(prepared[table], rules, controlled[table].status)
    released: dict[str, pa.Table] = {}
    summary: list[dict] = []
    for table in RELEASE_COUNTS:
        rates = None
        if table in RELEASE_WITH_RATES:
            rates = release_rates(
                table, prepared[table].data, controlled[table].status["children"], tables, settings
            )
        released[table], rows = assemble(prepared[table], controlled[table], rules, rates)
        summary += rows
    disclosed = disclosures(released, rules, child_bands)
    if len(disclosed):
        raise DisclosureError(
            f"disclosure control left {len(disclosed)} value(s) that must not be released, e.g. "
            f"{disclosed.head(5).to_dict('records')}; nothing was written"
        )
    released[SUMMARY] = to_arrow(
        pa.Table.from_pylist(summary, schema=None).select(column_names(release_name(SUMMARY))),
        release_name(SUMMARY),
    )
    # Which years of which areas have figures: not disclosive, and the release is not read without it.
    if COVERAGE in tables:
        released[COVERAGE] = to_arrow(tables[COVERAGE], release_name(COVERAGE))
    # From the released tables only, so an indicator never shows a withheld value (docs/indicators.md).
    released[INDICATORS] = compute_indicators(released, indicators or load_indicator_config(), rules)
    return released
