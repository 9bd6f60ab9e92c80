"""The additive relations of a released table with margin rows, and the partners that protect them.

Each margin row is the total of one equation per dimension it sums: total row = sum of the rows one
step finer in that dimension, the others unchanged (code -> level2 -> level1 -> total of the ICare
hierarchy, band -> under 18 -> total of ages, value -> total elsewhere). An equation is held as its
members (rows), one of them the total; everything is vectorised over members with NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from icare.disclosure.margins import AGE, ICARE, ICARE_LEVEL, dimension_columns
from schemas.outputs import TOTAL, UNDER_18


@dataclass(frozen=True)
class Equations:
    """Members of the equations of a table: the equation, the row, and whether it is the total."""

    equation: np.ndarray
    row: np.ndarray
    is_total: np.ndarray
    count: int
    depth: np.ndarray  # per row: how far from the detail cells it is (a partner is best a detail cell)

    @staticmethod
    def empty(rows: int) -> Equations:
        none = np.zeros(0, dtype=np.int64)
        return Equations(none, none, none.astype(bool), 0, np.zeros(rows, dtype=np.int64))


def _parents(
    frame: pd.DataFrame, dimension: str, child_bands: Sequence[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per row, the dimension's columns of the row one step coarser (its total in this dimension),
    and the row's level in the dimension (0: finest; rows at the top have no parent)."""
    columns = list(dimension_columns(dimension))
    own = frame[columns]
    if dimension == "icare_code":
        level = frame[ICARE_LEVEL].to_numpy(dtype=object)
        code = frame[ICARE[0]]
        k1 = frame[ICARE[1]].where(frame[ICARE[1]].notna(), code)
        k2 = frame[ICARE[2]].where(frame[ICARE[2]].notna(), code)
        at_code, at_level2 = level == "code", level == "level2"
        parent = pd.DataFrame(
            {
                ICARE_LEVEL: np.where(at_code, "level2", np.where(at_level2, "level1", TOTAL)),
                ICARE[0]: np.where(at_code, k2, np.where(at_level2, k1, TOTAL)),
                ICARE[1]: np.where(at_code | at_level2, k1, TOTAL),
                ICARE[2]: np.where(at_code, k2, TOTAL),
            },
            index=frame.index,
        )
        depth = np.select([at_code, at_level2, level == "level1"], [0, 1, 2], 3)
        return parent[columns], depth
    if dimension == AGE:
        band = own[AGE].to_numpy(dtype=object)
        child = np.isin(band, list(child_bands))
        parent = pd.DataFrame({AGE: np.where(child, UNDER_18, TOTAL)}, index=frame.index)
        depth = np.select([band == TOTAL, band == UNDER_18], [2, 1], 0)
        return parent, depth
    is_total = (own[columns[0]] == TOTAL).to_numpy(dtype=bool)
    parent = pd.DataFrame({c: TOTAL for c in columns}, index=frame.index)
    return parent, np.where(is_total, 1, 0)


def _ids(frame: pd.DataFrame) -> np.ndarray:
    return frame.groupby(list(frame.columns), dropna=False, sort=False).ngroup().to_numpy(dtype=np.int64)


def build_equations(
    frame: pd.DataFrame, keys: Sequence[str], summable: Sequence[str], child_bands: Sequence[str]
) -> Equations:
    """Every equation of a released table (``keys``: all its dimension columns, in ``frame``)."""
    rows = len(frame)
    if rows == 0 or not summable:
        return Equations.empty(rows)
    equations, members, totals = [], [], []
    depth = np.zeros(rows, dtype=np.int64)
    offset = 0
    for dimension in summable:
        columns = list(dimension_columns(dimension))
        others = [k for k in keys if k not in columns]
        parent, level = _parents(frame, dimension, child_bands)
        depth += level
        top = (frame[columns[0]] == TOTAL).to_numpy(dtype=bool)
        if dimension == "icare_code":
            top = (frame[ICARE_LEVEL] == TOTAL).to_numpy(dtype=bool)
        leaf = level == 0
        # the same coordinates numbered alike whether a row's own or a row's parent's
        coordinates = _ids(pd.concat([frame[columns], parent], ignore_index=True))
        own, up = coordinates[:rows], coordinates[rows:]
        other = _ids(frame[others]) if others else np.zeros(rows, dtype=np.int64)
        width = int(coordinates.max()) + 1
        component_rows = np.flatnonzero(~top)
        total_rows = np.flatnonzero(~leaf)
        pairs = np.concatenate(
            [other[component_rows] * width + up[component_rows], other[total_rows] * width + own[total_rows]]
        )
        ids, _ = pd.factorize(pairs)
        row = np.concatenate([component_rows, total_rows])
        is_total = np.concatenate([np.zeros(len(component_rows), bool), np.ones(len(total_rows), bool)])
        # A total whose finer rows are not released (a cross-classification the breakdowns leave
        # out) is in no equation of this dimension: nothing can be subtracted from it.
        has_parts = np.bincount(ids[~is_total], minlength=int(ids.max()) + 1 if len(ids) else 0) > 0
        keep = has_parts[ids]
        ids, _ = pd.factorize(ids[keep])
        equations.append(ids.astype(np.int64) + offset)
        members.append(row[keep])
        totals.append(is_total[keep])
        offset += int(ids.max()) + 1 if len(ids) else 0
    return Equations(
        np.concatenate(equations), np.concatenate(members), np.concatenate(totals), offset, depth
    )


def exposed(eqs: Equations, values: np.ndarray, withheld: np.ndarray, threshold: int) -> np.ndarray:
    """Per equation: can a withheld member be recovered from it? When exactly one member is withheld
    (the total counting as a member), or when the total is published and the withheld members, whose
    sum it gives, add up to less than the threshold."""
    held = withheld[eqs.row]
    count = np.bincount(eqs.equation, weights=held, minlength=eqs.count)
    total_held = np.bincount(eqs.equation, weights=held & eqs.is_total, minlength=eqs.count) > 0
    held_sum = np.bincount(
        eqs.equation, weights=np.where(held & ~eqs.is_total, values[eqs.row], 0), minlength=eqs.count
    )
    return (count == 1) | ((count >= 2) & ~total_held & (held_sum < threshold))


def partners(
    eqs: Equations, values: np.ndarray, withheld: np.ndarray, threshold: int
) -> tuple[np.ndarray, int]:
    """Rows to withhold next, one per exposed equation, and the exposed equations with none left.

    The partner of an equation is one of its published non-zero members: the nearest to the detail
    cells (so that the headline totals stay published), then the one that closes the most exposed
    equations for the fewest it exposes (equations with nothing withheld yet), then the smallest,
    then the first in row order (docs/disclosure.md "Method" gives what each choice withheld).
    """
    if eqs.count == 0:
        return np.zeros(0, dtype=np.int64), 0
    open_ = exposed(eqs, values, withheld, threshold)
    in_open = open_[eqs.equation]
    closes = np.bincount(eqs.row[in_open], minlength=len(values))
    held = np.bincount(eqs.equation, weights=withheld[eqs.row], minlength=eqs.count)
    opens = np.bincount(eqs.row[held[eqs.equation] == 0], minlength=len(values))
    candidate = in_open & ~withheld[eqs.row] & (values[eqs.row] > 0)
    eq, row = eqs.equation[candidate], eqs.row[candidate]
    order = np.lexsort((row, values[row], opens[row] - closes[row], eqs.depth[row], eq))
    eq, row = eq[order], row[order]
    first = np.ones(len(eq), dtype=bool)
    first[1:] = eq[1:] != eq[:-1]
    served = np.zeros(eqs.count, dtype=bool)
    served[eq[first]] = True
    return np.unique(row[first]), int((open_ & ~served).sum())
