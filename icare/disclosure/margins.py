"""Margin rows of the released tables: the detail cells summed over the dimensions the rules declare
summable, made with DuckDB GROUPING SETS beside the internal tables (which are not changed).

A summed dimension holds ``total`` (``schemas.outputs.TOTAL``). Two dimensions are hierarchies:
``icare_code`` is summed to its level-2 and level-1 categories and to the total (the new column
``icare_level`` says which: ``code``, ``level2``, ``level1`` or ``total``), and ``age_band`` to
``under 18`` (the bands inside ages 0-17) and to the total. Every count summed is additive by its
definition (docs/disclosure.md "Totals"): a child is counted in one detail cell of an area and period
(``entries.children`` at the child's first entry, ``exits.children`` at its last exit), so the sum
of the cells is the number of children.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from schemas.outputs import TOTAL

UNDER_18 = "under 18"
ICARE_LEVEL = "icare_level"
IS_TOTAL = "is_total"
# icare_level: the row's code as harmonised, or a subtotal of a level-2 or level-1 category, or all.
ICARE_LEVELS = ("code", "level2", "level1", TOTAL)
# A code column summed with its level columns (transitions): all of them hold ``total`` in a margin row.
CODE_GROUPS = {
    "from_code": ("from_code", "from_level1", "from_level2"),
    "to_code": ("to_code", "to_level1", "to_level2"),
}
ICARE = ("icare_code", "icare_level1", "icare_level2")
AGE = "age_band"
# Areas are always released one by one and together (the national figure), whatever the breakdowns.
AREA = "area_code"
# The registered name of the detail table inside the margin query's own DuckDB connection.
_DETAIL = "detail"
# Helper columns of the query: a code's level-1 and level-2 categories (the code itself where the
# classification has none: a level-1 code is its own level-1 and level-2 category), and ``under 18``
# for a band inside ages 0-17.
_K1, _K2, _AGE_GROUP = "_icare_k1", "_icare_k2", "_age_group"


def dimension_columns(dimension: str) -> tuple[str, ...]:
    """The released columns that a summable dimension sets to ``total`` (or to a subtotal)."""
    if dimension == "icare_code":
        return (ICARE_LEVEL, *ICARE)
    return CODE_GROUPS.get(dimension, (dimension,))


@dataclass(frozen=True)
class _Dimension:
    """How one summable dimension enters the query: its grouping options and its output columns."""

    options: tuple[tuple[str, ...], ...]  # the columns grouped by, finest first; () is the total
    select: tuple[str, ...]  # SQL expressions of the output columns
    detail: str  # SQL condition: the row is at the finest level of this dimension
    keep: str = "true"  # SQL condition: the grouping is a real margin (not a by-product)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _dimension(name: str) -> _Dimension:
    if name == "icare_code":
        code, level1, level2 = (_q(c) for c in ICARE)
        k1, k2 = _q(_K1), _q(_K2)
        level = (
            f"CASE WHEN grouping({code}) = 0 THEN 'code' WHEN grouping({k2}) = 0 THEN 'level2' "
            f"WHEN grouping({k1}) = 0 THEN 'level1' ELSE $total END AS {_q(ICARE_LEVEL)}"
        )
        return _Dimension(
            options=((*ICARE, _K2, _K1), (_K2, _K1), (_K1,), ()),
            select=(
                level,
                f"CASE WHEN grouping({code}) = 0 THEN {code} WHEN grouping({k2}) = 0 THEN {k2} "
                f"WHEN grouping({k1}) = 0 THEN {k1} ELSE $total END AS {code}",
                f"CASE WHEN grouping({code}) = 0 THEN {level1} WHEN grouping({k1}) = 0 THEN {k1} "
                f"ELSE $total END AS {level1}",
                f"CASE WHEN grouping({code}) = 0 THEN {level2} WHEN grouping({k2}) = 0 THEN {k2} "
                f"ELSE $total END AS {level2}",
            ),
            detail=f"grouping({code}) = 0",
        )
    if name == AGE:
        band, group = _q(AGE), _q(_AGE_GROUP)
        return _Dimension(
            options=((AGE,), (_AGE_GROUP,), ()),
            select=(
                f"CASE WHEN grouping({band}) = 0 THEN {band} WHEN grouping({group}) = 0 THEN {group} "
                f"ELSE $total END AS {band}",
            ),
            detail=f"grouping({band}) = 0",
            # grouping by the age group alone also gives the bands outside 0-17 (group empty): dropped
            keep=f"NOT (grouping({band}) = 1 AND grouping({group}) = 0 AND {group} IS NULL)",
        )
    columns = CODE_GROUPS.get(name, (name,))
    first = _q(columns[0])
    return _Dimension(
        options=(columns, ()),
        select=tuple(
            f"CASE WHEN grouping({first}) = 0 THEN {_q(c)} ELSE $total END AS {_q(c)}" for c in columns
        ),
        detail=f"grouping({first}) = 0",
    )


def margin_query(
    columns: Sequence[str],
    keys: Sequence[str],
    summable: Sequence[str],
    counts: Sequence[str],
    carried: Sequence[str],
    breakdowns: Sequence[Sequence[str]] = (),
    national_breakdowns: Sequence[Sequence[str]] = (),
) -> str:
    """The query of the detail rows and every margin row, in the released column order (``columns``,
    among them ``icare_level`` and ``is_total`` when the table has them), sorted as published: the
    detail rows first, in today's order, then the margin rows.

    ``keys`` are never summed; ``carried`` (quartiles) are taken as they are on detail rows and left
    empty on margin rows. ``breakdowns``: the sets of dimensions released crossed with one another
    (each with every area and nationally); a row is released when the dimensions it does not sum
    are within one of them. None given: every combination. ``national_breakdowns``: more of them,
    released for all areas together only. Names come from ``schemas.outputs``.
    """
    dimensions = {name: _dimension(name) for name in summable}
    allowed = [set(b) for b in breakdowns] if breakdowns else None
    national = [set(b) for b in national_breakdowns]
    sets = []
    for choice in itertools.product(*(d.options for d in dimensions.values())):
        detailed = {n for n, option in zip(dimensions, choice, strict=True) if option}
        by_area = AREA in detailed
        detailed.discard(AREA)
        released = allowed is None or any(detailed <= b for b in allowed)
        released = released or (not by_area and any(detailed <= b for b in national))
        if not released:
            continue  # a cross-classification the rules do not release
        grouped = [*keys, *(c for option in choice for c in option)]
        sets.append("(" + ", ".join(_q(c) for c in grouped) + ")")
    outputs: dict[str, str] = {_q(k): _q(k) for k in keys}
    for name, dimension in dimensions.items():
        for column, expression in zip(dimension_columns(name), dimension.select, strict=True):
            outputs[_q(column)] = expression
    detail = " AND ".join(d.detail for d in dimensions.values()) or "true"
    outputs[_q(IS_TOTAL)] = f"NOT ({detail}) AS {_q(IS_TOTAL)}"
    for count in counts:
        outputs[_q(count)] = f"sum({_q(count)})::BIGINT AS {_q(count)}"
    for column in carried:
        outputs[_q(column)] = f"CASE WHEN {detail} THEN any_value({_q(column)}) END AS {_q(column)}"
    keep = " AND ".join(d.keep for d in dimensions.values()) or "true"
    select = ", ".join(outputs[_q(c)] for c in columns)
    coordinates = [c for c in columns if c not in counts and c not in carried]
    order = ", ".join(_q(c) for c in [IS_TOTAL, *coordinates])
    helpers = []
    if "icare_code" in dimensions:
        helpers.append(f"coalesce({_q(ICARE[1])}, {_q(ICARE[0])}) AS {_q(_K1)}")
        helpers.append(f"coalesce({_q(ICARE[2])}, {_q(ICARE[0])}) AS {_q(_K2)}")
    if AGE in dimensions:
        helpers.append(
            f"CASE WHEN list_contains($child_bands, {_q(AGE)}) THEN $under_18 END AS {_q(_AGE_GROUP)}"
        )
    base = ", ".join(["*", *helpers])
    return f"""
        WITH summed AS (
            SELECT {select}, {keep} AS _keep
            FROM (SELECT {base} FROM {_DETAIL})
            GROUP BY GROUPING SETS ({", ".join(sets)})
            HAVING count(*) > 0
        )
        SELECT * EXCLUDE (_keep) FROM summed WHERE _keep ORDER BY {order}
    """


def with_margins(
    detail: pa.Table,
    columns: Sequence[str],
    keys: Sequence[str],
    summable: Sequence[str],
    counts: Sequence[str],
    carried: Sequence[str],
    child_bands: Sequence[str],
    breakdowns: Sequence[Sequence[str]] = (),
    national_breakdowns: Sequence[Sequence[str]] = (),
) -> pa.Table:
    """``detail`` (an internal table) with its margin rows, in the released column order."""
    sql = margin_query(columns, keys, summable, counts, carried, breakdowns, national_breakdowns)
    parameters = {"total": TOTAL, "child_bands": list(child_bands), "under_18": UNDER_18}
    used = {name: value for name, value in parameters.items() if f"${name}" in sql}
    with duckdb.connect() as connection:
        connection.register(_DETAIL, detail)
        return connection.sql(sql, params=used).to_arrow_table()


def with_derived_totals(
    data: pa.Table, totals: pa.Table, keys: Sequence[str], derived: Sequence[str]
) -> pa.Table:
    """``data`` (detail and margin rows) with the ``derived`` values of its margin rows taken from
    ``totals``, which has them for the same coordinates (``keys``); the detail rows keep theirs."""
    on = " AND ".join(f"t.{_q(k)} IS NOT DISTINCT FROM d.{_q(k)}" for k in keys)
    select = ", ".join(
        f"CASE WHEN d.{_q(IS_TOTAL)} THEN t.{_q(c)} ELSE d.{_q(c)} END AS {_q(c)}"
        if c in derived
        else f"d.{_q(c)}"
        for c in data.column_names
    )
    sql = f"""
        SELECT {select}
        FROM {_DETAIL} AS d
        LEFT JOIN totals AS t ON d.{_q(IS_TOTAL)} AND {on}
        ORDER BY d._row
    """
    with duckdb.connect() as connection:
        connection.register(_DETAIL, data.append_column("_row", pa.array(range(data.num_rows), pa.int64())))
        connection.register("totals", totals.select([*keys, *derived]))
        return connection.sql(sql).to_arrow_table()
