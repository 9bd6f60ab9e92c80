"""The ``indicators`` table: each reviewed indicator computed from the released tables alone.

Reading only what disclosure control released means an indicator can never show a withheld value: a
share or rate is withheld when its numerator or denominator is (status A when its numerator is a
small count, else D), and a sum of released rows is withheld when any of them is. A released table
has no row for a cell without children, so a missing row counts as 0 (docs/indicators.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa

from icare.indicators.config import (
    ICARE_DIMENSION,
    LEVEL_OF,
    Indicator,
    IndicatorConfig,
    Selection,
    check_against_rules,
)
from schemas.outputs import (
    CONF_FREE,
    CONF_PRIMARY,
    CONF_SECONDARY,
    INDICATORS,
    RELEASE_COUNTS,
    TOTAL,
    column_names,
    release_name,
    to_arrow,
)

if TYPE_CHECKING:  # the rules' module imports the release, which imports this one
    from icare.disclosure.rules import DisclosureRules

# The dimensions the indicators table shows: those of the numerator's rows.
OUTPUT_DIMENSIONS = ("sex", "age_band", "icare_level", "icare_code", "exit_destination", "provider_sector")
_SCALE = {"share_percent": 100.0, "rate_per_100000": 100_000.0}
_PLACE = ["source", "area_code", "period_end"]


def _released_frame(release: Mapping[str, pa.Table], table: str) -> pd.DataFrame:
    """A released table as pandas, with a stock's reference date as its period end."""
    frame = release[table].to_pandas()
    # plain objects: pandas cannot merge empty Arrow-backed text columns (a table with no rows)
    text = [
        c for c in frame.columns if pd.api.types.is_string_dtype(frame[c]) or frame[c].dtype == "category"
    ]
    frame[text] = frame[text].astype(object)
    if "reference_date" in frame.columns:
        frame = frame.rename(columns={"reference_date": "period_end"})
        frame["period_start"] = pd.NaT
    frame["period_start"] = pd.to_datetime(frame["period_start"])
    frame["period_end"] = pd.to_datetime(frame["period_end"])
    return frame


def _label(value: str | tuple[str, ...]) -> str:
    return value if isinstance(value, str) else " + ".join(value)


def _varying(disaggregations: Sequence[str]) -> list[str]:
    """The columns a disaggregation varies (the ICare category with its level)."""
    return [*(["icare_level"] if ICARE_DIMENSION in disaggregations else []), *disaggregations]


def _select(
    frame: pd.DataFrame,
    part: Selection,
    disaggregations: Sequence[str],
    summable: Sequence[str],
    national_only: bool,
) -> pd.DataFrame:
    """The selected rows: place, period, the disaggregations, ``value`` and ``status`` (F/A/D; empty
    when the column has no value and no status, a population not known). Rows selected by a list of
    values are summed, withheld (D) when any of them is."""
    mask = np.ones(len(frame), dtype=bool)
    for column, value in part.filters.items():
        mask &= frame[column].isin([value] if isinstance(value, str) else list(value)).to_numpy()
    held = set(part.filters) | set(disaggregations)
    # a filter on a category's ancestor (to_level2: AC.F1) takes every code below it, summed
    summed = {LEVEL_OF[c] for c in part.filters if c in LEVEL_OF and LEVEL_OF[c] not in disaggregations}
    held |= summed
    for dimension in summed:  # the codes only, not their subtotals (counted twice) or totals
        if dimension == ICARE_DIMENSION:
            mask &= (frame["icare_level"] == "code").to_numpy()
        else:
            mask &= (frame[dimension] != TOTAL).to_numpy()
    for dimension in summable:
        if dimension == "area_code" or dimension in held:
            continue
        column = "icare_level" if dimension == ICARE_DIMENSION else dimension
        mask &= (frame[column] == TOTAL).to_numpy()
    if national_only:
        mask &= (frame["area_code"] == TOTAL).to_numpy()
    keys = [*_PLACE, *_varying(disaggregations)]
    rows = frame.loc[mask, [*keys, "period_start", part.column]].rename(columns={part.column: "value"})
    rows["value"] = rows["value"].astype("float64")
    if part.status is None:
        rows["status"] = np.where(rows["value"].notna(), CONF_FREE, None)
    else:
        rows["status"] = frame.loc[mask, part.status].to_numpy()
    if summed or any(not isinstance(v, str) for v in part.filters.values()):
        rows["withheld"] = rows["status"] != CONF_FREE
        rows = rows.groupby(keys, dropna=False, as_index=False).agg(
            period_start=("period_start", "first"),
            value=("value", lambda v: v.sum(min_count=1)),
            withheld=("withheld", "any"),
            members=("status", "size"),
        )
        rows["status"] = np.where(rows["withheld"], CONF_SECONDARY, CONF_FREE)
        rows = rows.drop(columns=["withheld", "members"])
        rows.loc[rows["status"] != CONF_FREE, "value"] = np.nan
    return rows.reset_index(drop=True)


def _value(rows: pd.DataFrame, unit: str) -> pd.DataFrame:
    """value, value_status and missing_reason from the numerator and denominator columns."""
    num_withheld = rows["numerator_status"].isin([CONF_PRIMARY, CONF_SECONDARY])
    den_withheld = rows["denominator_status"].isin([CONF_PRIMARY, CONF_SECONDARY])
    status = np.where(
        num_withheld, rows["numerator_status"], np.where(den_withheld, CONF_SECONDARY, CONF_FREE)
    )
    withheld = status != CONF_FREE
    if unit in _SCALE:
        denominator = rows["denominator"]
        no_denominator = ~withheld & denominator.isna()
        zero = ~withheld & (denominator == 0)
        value = _SCALE[unit] * rows["numerator"] / denominator.where(denominator != 0)
    else:
        no_denominator = zero = np.zeros(len(rows), dtype=bool)
        value = rows["numerator"].copy()
    rows["value"] = value.where(~withheld)
    rows["value_status"] = status
    rows["missing_reason"] = np.select(
        [withheld, no_denominator, zero], ["withheld", "no_denominator", "zero_denominator"], None
    )
    return rows


def _computed(
    indicator: Indicator,
    frames: dict[str, pd.DataFrame],
    rules: DisclosureRules,
    sources: Sequence[str],
) -> pd.DataFrame:
    numerator = indicator.numerator
    disaggregations = list(indicator.disaggregations)
    num = _select(
        frames[numerator.table][frames[numerator.table]["source"].isin(sources)],
        numerator,
        disaggregations,
        rules.tables[numerator.table].summable,
        indicator.national_only,
    ).rename(columns={"value": "numerator", "status": "numerator_status"})
    denominator = indicator.denominator
    if denominator is None:
        rows = num.assign(denominator=np.nan, denominator_status=None)
    else:
        shared = [d for d in disaggregations if d not in denominator.filters]
        den = _select(
            frames[denominator.table][frames[denominator.table]["source"].isin(sources)],
            denominator,
            shared,
            rules.tables[denominator.table].summable,
            indicator.national_only,
        ).rename(
            columns={"value": "denominator", "status": "denominator_status", "period_start": "den_start"}
        )
        keys = [*_PLACE, *_varying(shared)]
        if len(shared) == len(disaggregations):
            # the same cells on both sides: a cell released in the denominator only has 0 in the numerator
            rows = num.merge(den, on=keys, how="outer")
            absent = rows["numerator_status"].isna()
            rows.loc[absent, "numerator"] = 0.0
            rows.loc[absent, "numerator_status"] = CONF_FREE
        else:
            rows = num.merge(den, on=keys, how="left")
        rows["period_start"] = rows["period_start"].fillna(rows["den_start"])
        rows = rows.drop(columns=["den_start"])
    rows = _value(rows, indicator.unit)
    table_columns = set(frames[numerator.table].columns)
    for column in OUTPUT_DIMENSIONS:
        if column in disaggregations or (column == "icare_level" and ICARE_DIMENSION in disaggregations):
            continue
        if column in numerator.filters:
            rows[column] = _label(numerator.filters[column])
        elif column in table_columns:
            rows[column] = TOTAL
        else:
            rows[column] = None
    return rows.assign(
        indicator_id=indicator.id, unit=indicator.unit, reportable=True, not_reportable_reason=None
    )


def _not_reportable(indicator: Indicator, sources: Sequence[str]) -> pd.DataFrame:
    """One row per source that cannot give the indicator, with the reason and no value."""
    reasons = [indicator.not_reportable.get(s, "not defined for this source") for s in sources]
    return pd.DataFrame(
        {
            "source": list(sources),
            "indicator_id": indicator.id,
            "unit": indicator.unit,
            "reportable": False,
            "missing_reason": "not_reportable",
            "not_reportable_reason": reasons,
        }
    )


def compute_indicators(
    release: Mapping[str, pa.Table], config: IndicatorConfig, rules: DisclosureRules
) -> pa.Table:
    """``release.indicators`` from the released count tables (validated against its schema)."""
    check_against_rules(config, rules)
    frames = {table: _released_frame(release, table) for table in RELEASE_COUNTS if table in release}
    sources = sorted({s for frame in frames.values() for s in frame["source"].unique()})
    parts = []
    for order, indicator in enumerate(config.indicators):
        computable = [
            s for s in sources if indicator.numerator is not None and s not in indicator.not_reportable
        ]
        lacking = [s for s in sources if s not in computable]
        if computable:
            parts.append(_computed(indicator, frames, rules, computable).assign(order=order))
        if lacking:
            parts.append(_not_reportable(indicator, lacking).assign(order=order))
    names = column_names(release_name(INDICATORS))
    if not parts:
        return to_arrow(pd.DataFrame({c: [] for c in names}), release_name(INDICATORS))
    frame = pd.concat(parts, ignore_index=True)
    frame["indicator_definitions"] = config.version_id
    frame = frame.sort_values(
        ["order", "source", "area_code", "period_end", *OUTPUT_DIMENSIONS], na_position="first", kind="stable"
    )
    for column in ("period_start", "period_end"):
        frame[column] = frame[column].dt.date if column in frame else None
    return to_arrow(frame.reindex(columns=names).reset_index(drop=True), release_name(INDICATORS))
