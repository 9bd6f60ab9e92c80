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
