"""Disclosure control of the aggregate statistics: primary and secondary suppression, or rounding.

Everything is vectorised over a table's rows with NumPy: the loops run over the rules (columns,
margins, identities) and over passes until nothing changes, never over rows. Ties are broken by the
table's published row order (its ``ORDER BY ALL``), so the same table always gives the same release.
The release is assembled from these statuses by ``icare.disclosure.tables``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from icare.disclosure.equations import Equations, partners
from icare.disclosure.rules import TableRules
from schemas.outputs import CONF_FREE, CONF_PRIMARY, CONF_SECONDARY

FREE, PRIMARY, SECONDARY = np.int8(0), np.int8(1), np.int8(2)
CODES = np.array([CONF_FREE, CONF_PRIMARY, CONF_SECONDARY], dtype=object)


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


def suppress(
    frame: pd.DataFrame,
    rules: TableRules,
    threshold: int,
    equations: Equations | None = None,
    start: Mapping[str, np.ndarray] | None = None,
) -> Controlled:
    """Primary suppression, then secondary suppression over the margins, the equations of the margin
    rows, identities and followed columns, repeated until a whole pass withholds nothing more.
    ``start``: statuses already set (values withheld in a linked table), kept."""
    values = {c: frame[c].to_numpy(dtype=np.int64) for c in rules.counts}
    status = {c: primary(values[c], threshold) for c in rules.counts}
    for column, given in (start or {}).items():
        status[column] = np.maximum(status[column], given).astype(np.int8)
    margins = [group_ids(frame, list(margin)) for margin in rules.margins]
    equations = equations or Equations.empty(len(frame))
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
            chosen, _ = partners(equations, values[column], withheld, threshold)
            if len(chosen):
                status[column][chosen] = SECONDARY
                changed = True
        for identity in rules.identities:
            matrix = np.column_stack([values[c] for c in identity])
            withheld = np.column_stack([status[c] != FREE for c in identity])
            rows, terms, _ = identity_partners(matrix, withheld)
            for term in np.unique(terms):
                status[identity[term]][rows[terms == term]] = SECONDARY
            changed = changed or len(rows) > 0
    unprotected = _unprotected(values, status, margins, rules, threshold)
    for column in rules.counts:
        unprotected[column] += partners(equations, values[column], status[column] != FREE, threshold)[1]
    return Controlled(values, status, unprotected)


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
