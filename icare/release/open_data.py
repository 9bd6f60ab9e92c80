"""Open-data CSVs of the release in the layout of England's Explore education statistics (EES).

For each released count table, ``release/<table>.csv`` holds one row per time period, geography and
filter combination (time and geography columns first, then the filters, then the indicators) and
``release/<table>.meta.csv`` describes its filters and indicators (docs/open-data.md). Both are views
of the released rows only: ``total`` is the Total item, a withheld value (status A or D) is ``c``
and never a number, an empty value that is not withheld is ``x`` or ``z``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from icare.classification import Classification
from icare.release.open_data_config import (
    OpenDataConfig,
    TableSpec,
    load_area_codes,
    load_open_data_config,
)
from icare.release.open_data_meta import (
    FilterColumn,
    IndicatorColumn,
    filter_column,
    indicator_column,
    label_lookups,
    meta_frame,
)
from schemas.outputs import RELEASE_TABLES, TOTAL

if TYPE_CHECKING:  # the folder module lists this writer
    from icare.release.folder import ReleaseContext

log = logging.getLogger(__name__)

TIME_COLUMNS = ("time_period", "time_identifier")
NATIONAL, LOCAL_AUTHORITY = "National", "Local authority"
GEOGRAPHY_COLUMNS = {
    NATIONAL: ("geographic_level", "country_code", "country_name"),
    LOCAL_AUTHORITY: ("region_code", "region_name", "old_la_code", "new_la_code", "la_name"),
}
MANDATORY_COLUMNS = ("time_period", "time_identifier", "geographic_level", "country_code", "country_name")


class OpenDataError(RuntimeError):
    """The released rows cannot be written in the EES layout without losing their meaning."""


@dataclass(frozen=True)
class OpenDataFile:
    """One data file and its metadata file, ready to write."""

    table: str
    data: pd.DataFrame  # every cell text
    meta: pd.DataFrame
    notes: tuple[str, ...]  # what was left out, and why (also logged)


def write_open_data(context: ReleaseContext, config: OpenDataConfig | None = None) -> list[Path]:
    """``release/<table>.csv`` and ``release/<table>.meta.csv`` for each configured released table."""
    config = config or load_open_data_config()
    written: list[Path] = []
    for table, spec in config.tables.items():
        if table not in context.tables:
            continue
        result = open_data_file(table, context.tables[table], spec, config, context.classification)
        # INFO, not WARNING: today's release (no total rows, no area list) always has notes, and a
        # quiet run prints nothing but its summary. docs/open-data.md says what is left out and why.
        for note in result.notes:
            log.info("open data %s: %s", table, note)
        if result.data.empty:
            log.info("open data %s: no row can be written; %s.csv is not written", table, table)
            continue
        data_path = context.folder / f"{table}.csv"
        meta_path = context.folder / f"{table}.meta.csv"
        result.data.to_csv(data_path, index=False, lineterminator="\n", encoding="utf-8")
        result.meta.to_csv(meta_path, index=False, lineterminator="\n", encoding="utf-8")
        written += [data_path, meta_path]
    return written


def open_data_file(
    table: str,
    released: pa.Table,
    spec: TableSpec,
    config: OpenDataConfig,
    classification: Classification,
) -> OpenDataFile:
    """The EES data and metadata of one released table (no file is written)."""
    notes: list[str] = []
    frame = released.to_pandas()
    frame, geography = _geography(frame, config, notes)
    time = _time_period(released, spec.time, table)
    descriptions = {col.name: col.description for col in RELEASE_TABLES[table]}
    lookups = label_lookups(classification, config)
    filters = [
        filter_column(frame, f, lookups, descriptions.get(f.column, ""), notes)
        for f in spec.filters
        if f.column in frame
    ]
    indicators = [indicator_column(released, i, config) for i in spec.indicators]
    present = [i for i in indicators if i is not None]
    absent = [i.name for i, c in zip(spec.indicators, indicators, strict=True) if c is None]
    absent += [f.column for f in spec.filters if f.column not in frame]
    if absent:
        notes.append(f"columns {absent} are not in the released table; they are left out")
    filters = _without_singular(filters, geography.index)
    lacking = [f.spec.name for f in filters if not f.has_default(geography.index)]
    if lacking:
        notes.append(f"filters {lacking} have no default item such as 'Total' (no total rows released)")
    data = _assemble(time, config.time_identifier, geography, filters, present)
    keys = [c for c in data.columns if c not in {i.spec.name for i in present}]
    duplicated = data.duplicated(subset=keys, keep=False)
    if duplicated.any():
        first = data.loc[duplicated, keys].head(2).to_dict("records")
        raise OpenDataError(f"release.{table}: rows share time, geography and filters, e.g. {first}")
    return OpenDataFile(table, data, meta_frame(filters, present), tuple(notes))


def _geography(
    frame: pd.DataFrame, config: OpenDataConfig, notes: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows that can be placed (a configured source; an area with a code list entry) and their
    geography columns. ``area_code = total`` is the source's country; any other area a local authority."""
    known = frame["source"].isin(list(config.sources))
    if not known.all():
        unknown = sorted(frame.loc[~known, "source"].unique())
        notes.append(f"sources {unknown} have no country in the settings; their rows are left out")
    frame = frame[known]
    national = frame["area_code"] == TOTAL
    geography = pd.DataFrame(
        {
            "geographic_level": pd.Series(NATIONAL, index=frame.index, dtype="str"),
            "country_code": frame["source"].map({s: v.country_code for s, v in config.sources.items()}),
            "country_name": frame["source"].map({s: v.country_name for s, v in config.sources.items()}),
        },
        index=frame.index,
    ).astype("str")
    local = frame[~national]
    if local.empty:
        return frame, geography
    located = []
    for source, rows in local.groupby("source", sort=True):
        areas = load_area_codes(source, config.sources[source])
        if areas is None:
            notes.append(
                f"{source} has no area code list (local-authority names and codes): its "
                f"{len(rows)} local-authority rows are left out"
            )
            continue
        found = rows[["area_code"]].merge(areas, how="left", left_on="area_code", right_on="old_la_code")
        found.index = rows.index
        unmatched = found["old_la_code"].isna()
        if unmatched.any():
            codes = sorted(rows.loc[unmatched, "area_code"].fillna("(empty)").unique())
            notes.append(f"{source} areas {codes} are not in its area code list: their rows are left out")
        located.append(found.loc[~unmatched, list(GEOGRAPHY_COLUMNS[LOCAL_AUTHORITY])])
    kept = national.copy()
    if located:
        areas = pd.concat(located).astype("str")
        kept.loc[areas.index] = True
        geography = geography.join(areas)
        geography.loc[areas.index, "geographic_level"] = LOCAL_AUTHORITY
    return frame[kept], geography[kept]


def _time_period(released: pa.Table, column: str, table: str) -> pd.Series:
    """The year of ``column`` (the end of the period); a year must stand for one period only."""
    if "period_start" in released.column_names and column == "period_end":
        periods = released.group_by(["period_start", "period_end"]).aggregate([])
        ends = pc.year(periods["period_end"])
        if len(pc.unique(ends)) < len(ends):
            raise OpenDataError(f"release.{table}: two reporting periods end in the same year")
    return pd.Series(pc.cast(pc.year(released[column]), pa.string()).to_pandas(), dtype="str")


def _without_singular(filters: list[FilterColumn], index: pd.Index) -> list[FilterColumn]:
    """Filters with at least two items (an EES rule); a filter whose one item is its default says
    nothing and is left out. A filter with one other item is kept, so that no meaning is lost."""
    kept = []
    for f in filters:
        items = f.labels.loc[index].unique()
        if len(items) < 2 and (len(items) == 0 or items[0] == f.default_label):
            continue
        kept.append(f)
    return kept


def _assemble(
    time: pd.Series,
    time_identifier: str,
    geography: pd.DataFrame,
    filters: list[FilterColumn],
    indicators: list[IndicatorColumn],
) -> pd.DataFrame:
    """Columns in the EES order: time, geography, filters, indicators; rows by time and geography."""
    columns: dict[str, pd.Series] = {
        "time_period": time.loc[geography.index],
        "time_identifier": pd.Series(time_identifier, index=geography.index, dtype="str"),
    }
    local = geography["geographic_level"] == LOCAL_AUTHORITY
    for level, names in GEOGRAPHY_COLUMNS.items():
        if level == NATIONAL or local.any():
            columns.update({name: geography[name].fillna("") for name in names})
    for f in filters:
        columns[f.spec.name] = f.labels.loc[geography.index]
    for i in indicators:
        columns[i.spec.name] = i.cells.loc[geography.index]
    data = pd.DataFrame(columns, index=geography.index).astype("str")
    # Released row order within a time period and area (the release sorts its rows already).
    order = pd.DataFrame({"time": data["time_period"], "local": local, "area": data.get("old_la_code", "")})
    order = order.sort_values(["time", "local", "area"], kind="stable")
    return data.loc[order.index].reset_index(drop=True)
