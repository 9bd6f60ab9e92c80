"""TransMonEE observations from the released tables' national margin rows (docs/sdmx.md).

Only released rows are read, and only their national totals (``area_code = 'total'``). A value made
of several released rows (formal care = family-based + residential) is formed only when every part
is published; otherwise it is withheld with the parts' strongest status. A withheld value stays
empty: nothing here turns a withheld (null) value into a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from icare.release.sdmx_config import FIXED_KEYS, TABLE_GROUPS, Filter, Indicator, TransmoneeConfig
from schemas.outputs import CONF_FREE, CONF_PRIMARY, CONF_SECONDARY, TOTAL

COUNT_COLUMN = {"stock": "children", "entries": "children", "exits": "children", "transitions": "transitions"}
TIME_COLUMNS = {"stock": ("reference_date",)}
PERIOD = ("period_start", "period_end")
# Strength of a confidentiality status: a value made of parts takes its strongest part's status.
_RANK = {CONF_FREE: 0, CONF_SECONDARY: 1, CONF_PRIMARY: 2}
_BY_RANK = {rank: status for status, rank in _RANK.items()}
KEYS = ["source", "start", "end", "SEX", "AGE"]


@dataclass
class Outcome:
    """The observations of one indicator (possibly none) and why some or all are missing."""

    observations: pd.DataFrame  # KEYS + value (float, null when withheld) + status (F/A/D)
    reasons: list[str] = field(default_factory=list)


def national_rows(tables: Mapping[str, pa.Table]) -> dict[str, pd.DataFrame]:
    """Each usable released table's national rows (``area_code = 'total'``), in pandas.

    The national rows are few (a margin of the area dimension), so pandas is cheap past this point.
    """
    national = {}
    for name in TABLE_GROUPS:
        table = tables.get(name)
        if table is None or "area_code" not in table.column_names:
            continue
        area = table.column("area_code").cast(pa.string())
        national[name] = table.filter(pc.fill_null(pc.equal(area, TOTAL), False)).to_pandas()
    return national


def _times(frame: pd.DataFrame, table: str) -> tuple[pd.Series, pd.Series]:
    columns = TIME_COLUMNS.get(table, PERIOD)
    start = pd.to_datetime(frame[columns[0]])
    end = pd.to_datetime(frame[columns[-1]])
    return start, end


def _select(frame: pd.DataFrame, table: str, wanted: Filter, config: TransmoneeConfig):
    """Rows of one national table matching a filter, every other summed group at its total, with
    SEX and AGE codes; or the reason there are none."""
    columns = {c for group in TABLE_GROUPS[table] for c in group} | set(FIXED_KEYS.get(table, ()))
    needed = sorted(columns & ({g[0] for g in TABLE_GROUPS[table]} | set(wanted)))
    absent = [c for c in (*needed, "sex", "age_band", COUNT_COLUMN[table]) if c not in frame.columns]
    if absent:
        return None, f"release table {table} has no column {', '.join(absent)} (margin rows of the release)"
    keep = pd.Series(True, index=frame.index)
    for column, values in wanted.items():
        keep &= frame[column].isin(values)
    for group in TABLE_GROUPS[table]:
        if not set(group) & set(wanted):
            keep &= frame[group[0]] == TOTAL
    sex = frame["sex"].map(config.settings.sex)
    age = frame["age_band"].map(config.settings.age_0_17)
    keep &= sex.notna() & age.notna()
    chosen = frame[keep]
    if chosen.empty:
        return (
            None,
            f"no national row of {table} with {_describe(wanted)}, every other dimension at its total",
        )
    start, end = _times(chosen, table)
    return pd.DataFrame(
        {
            "source": chosen["source"].astype(str),
            "start": start,
            "end": end,
            "SEX": sex[keep],
            "AGE": age[keep],
            "count": chosen[COUNT_COLUMN[table]].astype("Float64"),
            "status": chosen[f"{COUNT_COLUMN[table]}_status"].astype(str),
            "rate": chosen["rate_per_100000"].astype("Float64") if "rate_per_100000" in chosen else pd.NA,
            "rate_missing_reason": (
                chosen["rate_missing_reason"]
                if "rate_missing_reason" in chosen
                else pd.Series(pd.NA, index=chosen.index)
            ),
        }
    ).reset_index(drop=True), None


def _describe(wanted: Filter) -> str:
    return "; ".join(f"{column}={'|'.join(values)}" for column, values in wanted.items())


def _combine(parts: pd.DataFrame, column: str) -> pd.DataFrame:
    """Sum ``column`` over the parts of each key: published only when every part is; the status of
    the sum is its strongest part's."""
    parts = parts.assign(rank=parts["status"].map(_RANK))
    grouped = parts.groupby(KEYS, dropna=False, sort=True)
    result = grouped.agg(
        value=(column, lambda v: v.sum(min_count=1) if v.notna().all() else pd.NA),
        rank=("rank", "max"),
    ).reset_index()
    result["status"] = result["rank"].map(_BY_RANK)
    # A withheld part makes the sum withheld, whatever the other parts hold.
    result.loc[result["status"] != CONF_FREE, "value"] = pd.NA
    return result.drop(columns="rank")


def observations(
    indicator: Indicator, national: Mapping[str, pd.DataFrame], config: TransmoneeConfig
) -> Outcome:
    """The observations of one supplied indicator, from the national margin rows."""
    empty = pd.DataFrame(columns=[*KEYS, "value", "status"])
    table = national.get(indicator.table)
    if table is None:
        return Outcome(empty, [f"release table {indicator.table} (with area_code) is not in this release"])
    if table.empty:
        return Outcome(empty, [f"release table {indicator.table} has no national rows (area_code = 'total')"])
    wanted = dict(indicator.filter)
    if indicator.table == "exits":
        wanted["exit_destination"] = config.destinations(indicator.destination)
    parts, reason = _select(table, indicator.table, wanted, config)
    if parts is None:
        return Outcome(empty, [reason])
    reasons: list[str] = []
    if indicator.value == "count":
        result = _combine(parts, "count")
    elif indicator.value == "rate":
        result, reasons = _rates(parts)
    else:
        result, reasons = _share(indicator, parts, table, wanted, config)
    return Outcome(result[[*KEYS, "value", "status"]], reasons)


def _rates(parts: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Sum of the parts' rates (same population: same source, period, sex and age); a rate the
    release does not give for a published count leaves the observation out."""
    published = parts["status"] == CONF_FREE
    unknown = published & parts["rate"].isna()
    reasons = []
    if unknown.any():
        why = sorted(parts.loc[unknown, "rate_missing_reason"].dropna().astype(str).unique())
        reasons.append(f"rate not given by the release ({', '.join(why) or 'no reason given'})")
    result = _combine(parts, "rate")
    lost = parts.loc[unknown, KEYS].drop_duplicates()
    if not lost.empty:
        marker = result.merge(lost.assign(_lost=True), on=KEYS, how="left")["_lost"].eq(True).to_numpy()
        result = result[~marker]
    return result, reasons


def _share(
    indicator: Indicator, parts: pd.DataFrame, table: pd.DataFrame, wanted: Filter, config: TransmoneeConfig
) -> tuple[pd.DataFrame, list[str]]:
    """100 x numerator / denominator, each a sum of published counts; withheld if any part is."""
    denominator_parts, reason = _select(table, indicator.table, dict(indicator.denominator_filter), config)
    if denominator_parts is None:
        return pd.DataFrame(columns=[*KEYS, "value", "status"]), [f"denominator: {reason}"]
    numerator = _combine(parts, "count")
    denominator = _combine(denominator_parts, "count")
    both = numerator.merge(denominator, on=KEYS, suffixes=("", "_den"))
    rank = pd.concat([both["status"].map(_RANK), both["status_den"].map(_RANK)], axis=1).max(axis=1)
    both["status"] = rank.map(_BY_RANK)
    zero = both["value_den"].eq(0).fillna(False)
    both["value"] = (100 * both["value"] / both["value_den"]).where(both["status"] == CONF_FREE)
    reasons = ["denominator of 0 for some observations"] if zero.any() else []
    return both[~zero.to_numpy()], reasons
