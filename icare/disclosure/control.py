"""Disclosure control of the aggregate statistics: primary and secondary suppression, or rounding.

Everything is vectorised over a table's rows with NumPy: the loops run over the rules (columns,
margins, identities) and over passes until nothing changes, never over rows. Ties are broken by the
table's published row order (its ``ORDER BY ALL``), so the same table always gives the same release.
The internal tables are not changed; the release is a new set of Arrow tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from icare import checks
from icare.disclosure.rules import DisclosureRules, TableRules
from schemas.outputs import (
    CONF_FREE,
    CONF_PRIMARY,
    CONF_SECONDARY,
    COVERAGE,
    RELEASE_COUNTS,
    column_names,
    release_name,
    to_arrow,
)

FREE, PRIMARY, SECONDARY = np.int8(0), np.int8(1), np.int8(2)
_CODES = np.array([CONF_FREE, CONF_PRIMARY, CONF_SECONDARY], dtype=object)
SUMMARY = "disclosure_summary"


class DisclosureError(RuntimeError):
    """The release would show a value its rules withhold (a bug): the run stops and writes nothing."""


def primary(values: np.ndarray, threshold: int) -> np.ndarray:
    """Status per value: small counts (1 .. threshold-1) are withheld; zeros are published."""
    return np.where((values > 0) & (values < threshold), PRIMARY, FREE).astype(np.int8)


def group_ids(frame: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """A dense group number per row for ``keys`` (empty values form their own group)."""
    if frame.empty:
        return np.zeros(0, dtype=np.int64)
    return frame.groupby(keys, dropna=False, sort=False).ngroup().to_numpy(dtype=np.int64)


def exposed_groups(
    groups: np.ndarray, values: np.ndarray, withheld: np.ndarray, threshold: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per group: is what it withholds recoverable from its total? And the group's total.

    It is when exactly one value is withheld (total minus the published values), or when several
    are and their sum, which the same subtraction gives, is below the threshold.
    """
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    count = np.bincount(groups, weights=withheld, minlength=n_groups)
    withheld_sum = np.bincount(groups, weights=np.where(withheld, values, 0), minlength=n_groups)
    total = np.bincount(groups, weights=values, minlength=n_groups)
    return (count == 1) | ((count >= 2) & (withheld_sum < threshold)), total


def secondary_partners(
    groups: np.ndarray, values: np.ndarray, withheld: np.ndarray, threshold: int
) -> tuple[np.ndarray, int]:
    """Rows to withhold next (one per exposed group: its smallest published non-zero value, the
    first in row order on a tie), and the number of exposed groups left unprotected.

    An exposed group with no published non-zero value left has a total equal to what it withholds.
    When that total is below the threshold, it is itself a small count, withheld wherever the margin
    is published; only the others (a lone secondary value as large as its group) are unprotected.
    """
    exposed, total = exposed_groups(groups, values, withheld, threshold)
    candidates = np.flatnonzero(exposed[groups] & ~withheld & (values > 0))
    order = np.lexsort((candidates, values[candidates], groups[candidates]))
    ranked = candidates[order]
    first = np.ones(len(ranked), dtype=bool)
    first[1:] = groups[ranked][1:] != groups[ranked][:-1]
    chosen = ranked[first]
    partnerless = exposed.copy()
    partnerless[groups[chosen]] = False
    return chosen, int((partnerless & (total >= threshold)).sum())


def identity_partners(values: np.ndarray, withheld: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """For rows whose identity has exactly one withheld term (rows × terms arrays): the row and term to
    withhold next (the smallest published non-zero term, the first listed on a tie), and the number of
    such rows with no term left to withhold."""
    exposed = withheld.sum(axis=1) == 1
    candidates = exposed[:, None] & ~withheld & (values > 0)
    rows = np.flatnonzero(candidates.any(axis=1))
    masked = np.where(candidates[rows], values[rows], np.iinfo(np.int64).max)
    terms = np.argmin(masked, axis=1)
    return rows, terms, int(exposed.sum()) - len(rows)


@dataclass
class Controlled:
    """One table's counts after control: values and a status per value (FREE, PRIMARY, SECONDARY)."""

    values: dict[str, np.ndarray]
    status: dict[str, np.ndarray]
    unprotected: dict[str, int]


def suppress(frame: pd.DataFrame, rules: TableRules, threshold: int) -> Controlled:
    """Primary suppression, then secondary suppression over the margins, identities and followed
    columns, repeated until a whole pass withholds nothing more."""
    values = {c: frame[c].to_numpy(dtype=np.int64) for c in rules.counts}
    status = {c: primary(values[c], threshold) for c in rules.counts}
    margins = [group_ids(frame, list(margin)) for margin in rules.margins]
    changed = True
    while changed:
        changed = False
        for column in rules.counts:
            withheld = status[column] != FREE
            for parent in rules.follow.get(column, ()):
                newly = (status[parent] != FREE) & ~withheld & (values[column] > 0)
                if newly.any():
                    status[column][newly] = SECONDARY
                    withheld = status[column] != FREE
                    changed = True
            for groups in margins:
                chosen, _ = secondary_partners(groups, values[column], withheld, threshold)
                if len(chosen):
                    status[column][chosen] = SECONDARY
                    withheld = status[column] != FREE
                    changed = True
        for identity in rules.identities:
            matrix = np.column_stack([values[c] for c in identity])
            withheld = np.column_stack([status[c] != FREE for c in identity])
            rows, terms, _ = identity_partners(matrix, withheld)
            for term in np.unique(terms):
                status[identity[term]][rows[terms == term]] = SECONDARY
            changed = changed or len(rows) > 0
    return Controlled(values, status, _unprotected(values, status, margins, rules, threshold))


def _unprotected(
    values: Mapping[str, np.ndarray],
    status: Mapping[str, np.ndarray],
    margins: list[np.ndarray],
    rules: TableRules,
    threshold: int,
) -> dict[str, int]:
    """Per count: exposed margin groups (and identity rows) left with nothing more to withhold."""
    unprotected = {}
    for column in rules.counts:
        withheld = status[column] != FREE
        unprotected[column] = sum(
            secondary_partners(groups, values[column], withheld, threshold)[1] for groups in margins
        )
    for identity in rules.identities:
        withheld = np.column_stack([status[c] != FREE for c in identity])
        exposed = withheld.sum(axis=1) == 1
        for i, column in enumerate(identity):
            unprotected[column] += int((exposed & withheld[:, i]).sum())
    return unprotected


def round_counts(frame: pd.DataFrame, rules: TableRules, base: int) -> Controlled:
    """Every count to the nearest multiple of ``base`` (halves up); zeros stay zeros, nothing withheld."""
    values = {}
    for column in rules.counts:
        raw = frame[column].to_numpy(dtype=np.int64)
        values[column] = (raw + base // 2) // base * base if base > 1 else raw
    status = {c: np.zeros(len(frame), dtype=np.int8) for c in rules.counts}
    return Controlled(values, status, dict.fromkeys(rules.counts, 0))


def _derived_status(frame: pd.DataFrame, controlled: Controlled, rules: TableRules) -> dict[str, np.ndarray]:
    """Derived columns: withheld (A) when based on fewer than ``min_observations`` values, else (D)
    when their count is withheld."""
    result = {}
    for rule in rules.derived:
        observations = frame[rule.count].to_numpy(dtype=np.int64)
        if rule.excluded is not None:
            observations = observations - frame[rule.excluded].to_numpy(dtype=np.int64)
        status = np.where(controlled.status[rule.count] != FREE, SECONDARY, FREE).astype(np.int8)
        status[observations < rule.min_observations] = PRIMARY
        result[rule.status] = status
    return result


def control_table(table: str, data: pa.Table, rules: DisclosureRules) -> tuple[pa.Table, list[dict]]:
    """The released table (validated against ``release.<table>``) and its summary rows."""
    table_rules = rules.tables[table]
    margin_columns = sorted({c for margin in table_rules.margins for c in margin})
    needed = [*margin_columns, *table_rules.counts]
    needed += [r.count for r in table_rules.derived if r.count not in needed]
    frame = data.select(list(dict.fromkeys(needed))).to_pandas()
    if rules.method == "round":
        controlled = round_counts(frame, table_rules, rules.rounding_base)
    else:
        controlled = suppress(frame, table_rules, rules.threshold)
    derived = _derived_status(frame, controlled, table_rules)
    columns: dict[str, pa.Array] = {}
    for name in column_names(release_name(table)):
        if name in controlled.values:
            status = controlled.status[name]
            columns[name] = pa.array(controlled.values[name], pa.int64(), mask=status != FREE)
        elif name.endswith("_status") and name[: -len("_status")] in controlled.status:
            columns[name] = pa.array(_CODES[controlled.status[name[: -len("_status")]]], pa.string())
        elif name in derived:
            columns[name] = pa.array(_CODES[derived[name]], pa.string())
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


def disclosures(release: Mapping[str, pa.Table], rules: DisclosureRules) -> pd.DataFrame:
    """``icare.checks.release_disclosures`` with what the rules protect (no threshold when rounding)."""
    threshold = rules.threshold if rules.method == "suppress" else None
    counts = {table: rules.tables[table].counts for table in RELEASE_COUNTS if table in release}
    return checks.release_disclosures(release, counts, threshold)


def release_tables(tables: Mapping[str, object], rules: DisclosureRules) -> dict[str, pa.Table]:
    """Every released aggregate table plus ``disclosure_summary``, from the internal statistics tables,
    and the ``coverage`` table as it is."""
    released: dict[str, pa.Table] = {}
    summary: list[dict] = []
    for table in RELEASE_COUNTS:
        data = tables[table]
        if isinstance(data, pd.DataFrame):
            data = to_arrow(data, table)
        released[table], rows = control_table(table, data, rules)
        summary += rows
    disclosed = disclosures(released, rules)
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
    return released
