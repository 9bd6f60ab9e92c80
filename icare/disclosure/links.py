"""Cells that hold the same figure in two places of the release, so they must share a status.

- ``flow_check``: each area's ``stock_end`` is the ``stock`` total of the area on ``period_end``,
  ``stock_start`` the one on the day before ``period_start``, ``entries`` and ``exits`` the
  ``spells`` totals of the area in ``entries`` and ``exits``;
- ``pathways``: the total over pathways of a level is the same spells at every level.

A link is a group of cells; when one of them is withheld, every non-zero one is (status ``D``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from icare.disclosure.control import FREE, SECONDARY, Controlled
from icare.disclosure.margins import ICARE_LEVEL, dimension_columns
from schemas.outputs import TOTAL

if TYPE_CHECKING:
    from icare.disclosure.tables import Prepared

_AREA_KEYS = ["source", "area_code", "date"]
# flow_check column -> (table, count, the date of the row in flow_check that the table's row is on)
FLOW_LINKS = {
    "stock_end": ("stock", "children", "period_end"),
    "stock_start": ("stock", "children", "day_before"),
    "entries": ("entries", "spells", "period_end"),
    "exits": ("exits", "spells", "period_end"),
}


@dataclass(frozen=True)
class Member:
    """Cells of one count column of a table, each in a link group."""

    table: str
    column: str
    rows: np.ndarray
    groups: np.ndarray


def _area_totals(prepared: Prepared) -> pd.DataFrame:
    """Rows of a table summed over everything but the area, with the area, date and row number."""
    frame = prepared.frame
    summed = np.ones(len(frame), dtype=bool)
    for dimension in prepared.summable:
        if dimension == "area_code":
            continue
        column = ICARE_LEVEL if dimension == "icare_code" else dimension_columns(dimension)[0]
        summed &= (frame[column] == TOTAL).to_numpy(dtype=bool)
    date = "reference_date" if "reference_date" in frame.columns else "period_end"
    rows = np.flatnonzero(summed)
    return pd.DataFrame(
        {
            "source": frame["source"].to_numpy()[rows],
            "area_code": frame["area_code"].to_numpy()[rows],
            "date": pd.to_datetime(frame[date].to_numpy()[rows]),
            "row": rows,
        }
    )


def _flow_members(prepared: Mapping[str, Prepared]) -> list[list[Member]]:
    flow = prepared["flow_check"].frame
    flow_rows = pd.DataFrame(
        {
            "source": flow["source"],
            "area_code": flow["area_code"],
            "period_end": pd.to_datetime(flow["period_end"]),
            "day_before": pd.to_datetime(flow["period_start"]) - pd.Timedelta(days=1),
            "flow_row": np.arange(len(flow)),
        }
    )
    links = []
    for flow_column, (table, count, date) in FLOW_LINKS.items():
        totals = _area_totals(prepared[table])
        pairs = flow_rows.rename(columns={date: "date"})[[*_AREA_KEYS, "flow_row"]].merge(
            totals, on=_AREA_KEYS, how="inner"
        )
        group = np.arange(len(pairs))
        links.append(
            [
                Member("flow_check", flow_column, pairs["flow_row"].to_numpy(dtype=np.int64), group),
                Member(table, count, pairs["row"].to_numpy(dtype=np.int64), group),
            ]
        )
    return links


def _pathway_members(prepared: Prepared) -> list[list[Member]]:
    frame = prepared.frame
    rows = np.flatnonzero((frame["pathway"] == TOTAL).to_numpy(dtype=bool))
    same = [k for k in prepared.keys if k not in ("pathway", "pathway_level")]
    groups = frame.iloc[rows].groupby(same, dropna=False, sort=False).ngroup().to_numpy(dtype=np.int64)
    return [[Member(prepared.table, "spells", rows, groups)]]


def table_links(prepared: Mapping[str, Prepared]) -> list[list[Member]]:
    """Every link of the release (a list of members sharing group numbers)."""
    links = []
    if "flow_check" in prepared and all(t in prepared for t in ("stock", "entries", "exits")):
        links += _flow_members(prepared)
    if "pathways" in prepared and "pathway" in prepared["pathways"].summable:
        links += _pathway_members(prepared["pathways"])
    return links


def apply_links(links: list[list[Member]], controlled: Mapping[str, Controlled]) -> set[str]:
    """Withhold every non-zero cell of a group that has a withheld cell; the tables changed."""
    changed: set[str] = set()
    for members in links:
        size = max((int(m.groups.max()) + 1 for m in members if len(m.groups)), default=0)
        held = np.zeros(size, dtype=bool)
        for m in members:
            status = controlled[m.table].status[m.column]
            np.logical_or.at(held, m.groups, status[m.rows] != FREE)
        for m in members:
            status = controlled[m.table].status[m.column]
            values = controlled[m.table].values[m.column]
            newly = m.rows[held[m.groups] & (status[m.rows] == FREE) & (values[m.rows] > 0)]
            if len(newly):
                status[newly] = SECONDARY
                changed.add(m.table)
    return changed
