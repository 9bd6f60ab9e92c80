"""Checks on the harmonised and published tables, as plain functions (no Dagster here).

Each function returns the offending rows (empty when the check passes), so the same test can stop a
run, fill a report or, in ``pipelines/``, become a Dagster asset check whose metadata shows them.
The pipeline already refuses some of these states (``reconcile`` raises when rows do not add up);
checking the stored tables again guards what is published, whoever produced it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from icare.concordance import RULE_UNMAPPED, RULE_UNMAPPED_YEAR
from icare.reconciliation import OUTCOMES
from schemas.outputs import CONF_FREE

# The key of an episode: a child has at most one episode starting on a day (docs/episode-repair.md).
EPISODE_KEY = ["source", "area_code", "child_key", "episode_start"]
UNMAPPED_RULES = (RULE_UNMAPPED, RULE_UNMAPPED_YEAR)
# What a sample of quarantine records shows: where the row is and why, never more than the published
# quarantine table (whose values are already redacted or pseudonymised).
SAMPLE_COLUMNS = ["source", "collection_year", "file", "sheet", "row_number", "column_name", "rule", "value"]


def _frame(table: pd.DataFrame | pa.Table) -> pd.DataFrame:
    return table.to_pandas() if isinstance(table, pa.Table) else table


def reconciliation_imbalances(reconciliation: pd.DataFrame) -> pd.DataFrame:
    """Tables whose rows read differ from accepted + quarantined + superseded + not harmonised."""
    outcomes = reconciliation[OUTCOMES].sum(axis=1)
    return reconciliation.loc[reconciliation["rows_read"] != outcomes]


def duplicate_episodes(episodes: pd.DataFrame | pa.Table) -> pd.DataFrame:
    """Episodes sharing source, area, child key and start date: the same episode counted twice."""
    frame = _frame(episodes)[EPISODE_KEY]
    return frame.loc[frame.duplicated(keep=False)]


def flow_identity_failures(flow_check: pd.DataFrame | pa.Table) -> pd.DataFrame:
    """Periods where stock_end != stock_start + entries - exits (docs/statistics.md, flow_check)."""
    frame = _frame(flow_check)
    return frame.loc[frame["difference"] != 0]


def unmapped_codes(quarantine: pd.DataFrame) -> pd.DataFrame:
    """Quarantine records of national codes the concordance does not map onto ICare."""
    return quarantine.loc[quarantine["rule"].isin(UNMAPPED_RULES)]


def quarantine_sample(quarantine: pd.DataFrame, rows: int = 20) -> pd.DataFrame:
    """The first records of a (redacted) quarantine, in file order, for a report."""
    ordered = quarantine.sort_values(["file", "row_number"], kind="stable", na_position="first")
    return ordered[[c for c in SAMPLE_COLUMNS if c in ordered.columns]].head(rows)


def release_disclosures(
    release: Mapping[str, pa.Table], counts: Mapping[str, tuple[str, ...]], threshold: int | None
) -> pd.DataFrame:
    """Released values that disclosure control should have withheld, or whose status contradicts them.

    An independent check of ``icare.disclosure`` (docs/disclosure.md): a withheld count (status A or
    D) is empty, no count is empty without a withholding status and, under suppression (``threshold``
    given), a published count (F) is 0 or at least ``threshold``. One row per offending value.
    """
    found = []
    for table, columns in counts.items():
        frame = _frame(release[table])
        for column in columns:
            values, status = frame[column], frame[f"{column}_status"]
            published = status == CONF_FREE
            small = published & values.notna() & (values > 0) & (values < (threshold or 0))
            inconsistent = (published & values.isna()) | (~published & values.notna())
            bad = np.flatnonzero((small | inconsistent).to_numpy(dtype=bool))
            found.append(
                pd.DataFrame(
                    {
                        "table_name": table,
                        "column_name": column,
                        "row": bad,
                        "value": values.iloc[bad].astype("Int64").to_numpy(),
                        "status": status.iloc[bad].to_numpy(),
                    }
                )
            )
    columns = ["table_name", "column_name", "row", "value", "status"]
    return pd.concat(found, ignore_index=True)[columns] if found else pd.DataFrame(columns=columns)


# Columns of a released table that are values, not coordinates of its cells (besides counts and statuses).
_RELEASED_VALUES = {
    "is_total",
    "population",
    "rate_per_100000",
    "rate_missing_reason",
    "days_q1",
    "days_median",
    "days_q3",
}
_CODE_LEVELS = {"from_code": ("from_level1", "from_level2"), "to_code": ("to_level1", "to_level2")}


def _one_step_up(
    frame: pd.DataFrame, dimension: str, child_bands: set[str]
) -> tuple[pd.DataFrame, pd.Series]:
    """The coordinates, in ``dimension``, of each row's total one step up, and which rows have one."""
    total = "total"
    if dimension == "icare_code":
        level, code = frame["icare_level"], frame["icare_code"]
        first = frame["icare_level1"].fillna(code)
        second = frame["icare_level2"].fillna(code)
        up = pd.DataFrame(index=frame.index)
        up["icare_level"] = level.map({"code": "level2", "level2": "level1", "level1": total})
        up["icare_code"] = np.where(level == "code", second, np.where(level == "level2", first, total))
        up["icare_level1"] = np.where(level.isin(["code", "level2"]), first, total)
        up["icare_level2"] = np.where(level == "code", second, total)
        return up, level != total
    if dimension == "age_band":
        band = frame["age_band"]
        up = pd.DataFrame(
            {"age_band": np.where(band.isin(child_bands), "under 18", total)}, index=frame.index
        )
        return up, band != total
    columns = [dimension, *_CODE_LEVELS.get(dimension, ())]
    up = pd.DataFrame({c: total for c in columns}, index=frame.index)
    return up, frame[dimension].fillna("") != total


def release_recoveries(
    release: Mapping[str, pa.Table],
    counts: Mapping[str, tuple[str, ...]],
    summable: Mapping[str, tuple[str, ...]],
    child_bands: set[str],
) -> pd.DataFrame:
    """Margin rows from which a withheld value can be recovered: in an equation total = sum of the rows
    one step finer in one summed dimension (docs/disclosure.md "Totals"), exactly one member withheld.

    An independent check of ``icare.disclosure``: each row's total is found by its coordinates.
    One row per offending equation (its total row, and the status of that row).
    """
    found = []
    for table, dimensions in summable.items():
        frame = _frame(release[table]).reset_index(drop=True)
        statuses = [c for c in frame.columns if c.endswith("_status")]
        keys = [c for c in frame.columns if c not in {*counts[table], *statuses, *_RELEASED_VALUES}]
        for dimension in dimensions:
            up, has_total = _one_step_up(frame, dimension, child_bands)
            rows = np.flatnonzero(has_total.to_numpy())
            lookup = frame[keys].iloc[rows].copy()
            lookup[list(up.columns)] = up.iloc[rows].to_numpy()
            # a row's total is the row whose coordinates are the looked-up ones: both numbered alike
            both = pd.concat([frame[keys], lookup], ignore_index=True)
            ids = both.groupby(keys, dropna=False, sort=False).ngroup().to_numpy()
            row_of = np.full(ids.max() + 1 if len(ids) else 0, -1, dtype=np.int64)
            row_of[ids[: len(frame)]] = np.arange(len(frame))
            total_rows = row_of[ids[len(frame) :]]
            if (total_rows < 0).any():
                raise ValueError(f"{table}: rows without their {dimension} total in the release")
            for column in counts[table]:
                withheld = (frame[f"{column}_status"] != CONF_FREE).to_numpy()
                members = pd.Series(withheld[rows]).groupby(total_rows).sum()
                members = members + withheld[members.index.to_numpy()]
                lone = members.index[members.to_numpy() == 1].to_numpy()
                found.append(
                    pd.DataFrame(
                        {
                            "table_name": table,
                            "column_name": f"{column} (by {dimension})",
                            "row": lone,
                            "value": frame[column].iloc[lone].astype("Int64").to_numpy(),
                            "status": frame[f"{column}_status"].iloc[lone].to_numpy(),
                        }
                    )
                )
    columns = ["table_name", "column_name", "row", "value", "status"]
    return pd.concat(found, ignore_index=True)[columns] if found else pd.DataFrame(columns=columns)
