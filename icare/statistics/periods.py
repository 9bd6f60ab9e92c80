"""Reporting periods: every statistical year a source's returns cover, per area."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from icare.sources.spec import SourceSpec

PERIOD_COLUMNS = ["source", "area_code", "period_start", "period_end"]


def reporting_periods(inputs: pd.DataFrame, specs: Mapping[str, SourceSpec]) -> pd.DataFrame:
    """One row per source, area and collection year with a return, as the source's statistical year.

    A return for collection year Y holds every episode open at any time in Y's statistical year
    (statistics.md "Reporting periods"), so those are the periods whose figures the data supports.
    """
    known = inputs.dropna(subset=["collection_year"])
    known = known[known["source"].isin(list(specs))]
    rows = []
    for (source, area, year), _ in known.groupby(
        ["source", "area_code", "collection_year"], dropna=False, sort=True
    ):
        start, end = specs[source].period(int(year))
        rows.append({"source": source, "area_code": area, "period_start": start, "period_end": end})
    frame = pd.DataFrame(rows, columns=PERIOD_COLUMNS)
    frame["area_code"] = frame["area_code"].astype("str").where(frame["area_code"].notna(), None)
    return frame.drop_duplicates().reset_index(drop=True)
