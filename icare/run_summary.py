"""What a run reports about itself: the summary the CLI prints and ``run.json`` holds, and the
``runs`` row (versions, inputs with checksums, counts, timings).

Kept apart from ``icare.pipeline``, which runs the stages: these functions only read the tables a
run made.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

import icare
from icare import corrections, manifest
from icare import coverage as returns_coverage
from icare.classification import Classification
from icare.disclosure import DisclosureRules, load_disclosure_rules
from icare.population import Population
from icare.pseudonymise import Pseudonymiser
from icare.reconciliation import OUTCOMES
from icare.statistics import StatisticsSettings
from icare.vectorised import plain_text
from schemas.outputs import TOTAL

if TYPE_CHECKING:
    from icare.pipeline import SourceResult, StepTimer


def release_summary(release: Mapping[str, pa.Table], disclosure: DisclosureRules) -> dict:
    """Per released table: values (count cells) published and withheld, for the summary and run.json."""
    rows = release["disclosure_summary"].to_pylist()
    tables: dict[str, dict[str, int]] = {}
    for row in rows:
        figures = tables.setdefault(
            row["table_name"], dict.fromkeys(("values", "published", "primary", "secondary"), 0)
        )
        figures["values"] += row["cells"]
        figures["published"] += row["published"]
        figures["primary"] += row["primary_suppressed"]
        figures["secondary"] += row["secondary_suppressed"]
    return {
        "disclosure_rules": disclosure.version_id,
        "method": disclosure.method,
        "threshold": disclosure.threshold,
        "tables": tables,
    }


def input_files(results: list[SourceResult]) -> list[dict]:
    """The ``inputs`` rows: every file read, with its checksum."""
    return [
        {
            "source": f.source,
            "file": f.file,
            "sha256": f.sha256,
            "size_bytes": f.size_bytes,
            "collection_year": f.collection_year,
            "area_code": f.area_code,
        }
        for r in results
        for f in r.files
    ]


def summarise(tables: Mapping[str, pd.DataFrame | pa.Table], classification: Classification) -> dict:
    """The figures the CLI prints and ``run.json`` records."""
    counts = (
        tables["reconciliation"]
        .groupby("source")[["rows_read", *OUTCOMES, "rows_accepted_with_corrections"]]
        .sum()
    )
    episodes = tables["episodes"]
    by_level1 = (
        _frame(_columns(episodes, ["source", "icare_level1"]))
        .groupby(["source", "icare_level1"])
        .size()
        .rename("episodes")
        .reset_index()
    )
    labels = {code: classification.get(code).label for code in classification.codes(1)}
    return {
        "classification_version": classification.version_id,
        "rows": {source: {k: int(v) for k, v in row.items()} for source, row in counts.iterrows()},
        "episodes": len(episodes),
        "children": int(tables["children"]["child_key"].nunique()),
        "quarantine_records": len(tables["quarantine"]),
        "episodes_by_icare_level1": [
            {
                "source": r.source,
                "icare_level1": r.icare_level1,
                "label": labels.get(r.icare_level1, ""),
                "episodes": int(r.episodes),
            }
            for r in by_level1.itertuples()
        ],
        "quarantine_by_rule": {
            rule: int(n) for rule, n in tables["quarantine"]["rule"].value_counts().sort_index().items()
        },
        "corrections_by_rule": corrections.by_rule(tables.get("corrections")),
        "return_findings": manifest.counts_by_finding(tables.get("return_findings")),
        "latest": latest_figures(tables, labels) if "stock" in tables else [],
        "statistics_findings_by_kind": findings_by_kind(tables),
        # Returns whose years have no figures (the coverage table has every return).
        "not_complete": returns_coverage.summary_rows(tables["coverage"]) if "coverage" in tables else [],
    }


def findings_by_kind(tables: Mapping[str, object]) -> dict[str, int]:
    """Rows of ``statistics_findings`` per finding: every adjustment behind the figures is counted in
    the summary, so none is silent (e.g. care spells counted as entries without an entry record)."""
    if "statistics_findings" not in tables:
        return {}
    findings = _frame(_columns(tables["statistics_findings"], ["finding"]))  # type: ignore[arg-type]
    return {kind: int(n) for kind, n in findings["finding"].value_counts().sort_index().items()}


def _columns(table: pd.DataFrame | pa.Table, names: list[str]) -> pd.DataFrame | pa.Table:
    """The columns ``names``, text decoded: grouping a categorical would follow its categories' order."""
    return plain_text(table.select(names) if isinstance(table, pa.Table) else table[names])


def _frame(table: object) -> pd.DataFrame:
    return table.to_pandas() if isinstance(table, pa.Table) else table  # type: ignore[return-value]


def latest_figures(tables: Mapping[str, object], labels: Mapping[str, str]) -> list[dict]:
    """Per source: children in care on the latest reference date by ICare level-1 category, and the
    entries and exits (spells) of the latest period, summed over areas whose periods end then."""
    stock, entries, exits, flows = (
        _frame(tables[name]) for name in ("stock", "entries", "exits", "flow_check")
    )
    figures = []
    for source, flow in flows.groupby("source", sort=True):
        latest_end = flow["period_end"].max()
        period_start = flow.loc[flow["period_end"] == latest_end, "period_start"].min()
        in_stock = stock[(stock["source"] == source) & (stock["reference_date"] == latest_end)]
        by_level1 = in_stock.groupby("icare_level1")["children"].sum()
        # in care on that date with the placement not known: in flow_check's stock, in no category
        in_care = int(flow.loc[flow["period_end"] == latest_end, "stock_end"].sum())
        figures.append(
            {
                "source": source,
                "reference_date": str(pd.Timestamp(latest_end).date()),
                "period_start": str(pd.Timestamp(period_start).date()),
                "areas": int((flow["period_end"] == latest_end).sum()),
                "children_in_care": in_care,
                "children_placement_not_known": in_care - int(in_stock["children"].sum()),
                "children_by_icare_level1": [
                    {"icare_level1": code, "label": labels.get(code, ""), "children": int(n)}
                    for code, n in by_level1.items()
                ],
                "entries": _spells_in_period(entries, source, latest_end),
                "entries_without_entry_record": _entries_without_entry_record(
                    tables, flow[flow["period_end"] == latest_end]
                ),
                "exits": _spells_in_period(exits, source, latest_end),
            }
        )
    return figures


def rate_summary(tables: Mapping[str, object], population: Population | None) -> dict:
    """The population used, and per source the rate of children aged 0-17 in care on the latest
    reference date, per area (the ``total`` row of ``rates``); an empty list without a population."""
    if population is None or "rates" not in tables:
        return {"population": None, "latest_rates": []}
    rates = _frame(tables["rates"])
    headline = rates[
        (rates["measure"] == "stock")
        & (rates["icare_code"] == TOTAL)
        & (rates["sex"] == TOTAL)
        & (rates["age_band"] == TOTAL)
    ]
    latest = []
    for source, rows in headline.groupby("source", sort=True):
        on_date = rows[rows["period_end"] == rows["period_end"].max()]
        for row in on_date.itertuples():
            rate = None if pd.isna(row.rate_per_100000) else round(float(row.rate_per_100000), 1)
            latest.append(
                {
                    "source": source,
                    "area_code": None if pd.isna(row.area_code) else row.area_code,
                    "reference_date": str(pd.Timestamp(row.period_end).date()),
                    "children": int(row.children),
                    "population_year": int(row.population_year),
                    "population": None if pd.isna(row.population) else int(row.population),
                    "rate_per_100000": rate,
                    "rate_missing_reason": None
                    if pd.isna(row.rate_missing_reason)
                    else row.rate_missing_reason,
                }
            )
    return {"population": population.records(), "latest_rates": latest}


def _entries_without_entry_record(tables: Mapping[str, object], periods: pd.DataFrame) -> int:
    """Care spells counted among the entries of ``periods`` (flow_check rows) whose first episode is
    not an entry to care (finding care_spell_starts_without_entry; docs/statistics.md "Entries")."""
    if "care_spells" not in tables:
        return 0
    spells = _frame(
        _columns(tables["care_spells"], ["source", "area_code", "spell_start", "starts_with_entry"])  # type: ignore[arg-type]
    )
    spells = spells[~spells["starts_with_entry"].astype(bool)]
    keys = ["source", "area_code"]
    joined = spells.merge(periods[[*keys, "period_start", "period_end"]], on=keys)
    inside = (joined["spell_start"] >= joined["period_start"]) & (
        joined["spell_start"] <= joined["period_end"]
    )
    return int(inside.sum())


def _spells_in_period(flows: pd.DataFrame, source: str, period_end: object) -> int:
    return int(flows.loc[(flows["source"] == source) & (flows["period_end"] == period_end), "spells"].sum())


def runs_table(
    run_id: str,
    started_at: datetime,
    classification: Classification,
    pseudonymiser: Pseudonymiser,
    settings: StatisticsSettings,
    results: list[SourceResult],
    summary: dict,
    timer: StepTimer,
    disclosure: DisclosureRules | None = None,
    population: Population | None = None,
) -> pd.DataFrame:
    """The ``runs`` row: versions, inputs with checksums, counts and timings of this run."""
    return pd.DataFrame(
        [
            {
                "run_id": run_id,
                "started_at": started_at,
                "finished_at": datetime.now(UTC),
                "icare_version": icare.__version__,
                "classification_version": classification.version_id,
                "concordance_versions": json.dumps(
                    {r.name: r.harmonised.versions.get("concordance") for r in results}
                ),
                "pseudonym_key_fingerprint": pseudonymiser.fingerprint,
                "development_key": pseudonymiser.development,
                "inputs": json.dumps(input_files(results)),
                "row_counts": json.dumps(summary["rows"]),
                "timings": json.dumps(timer.timings),
                "statistics_settings": settings.to_json(),
                "disclosure_rules": (disclosure or load_disclosure_rules()).to_json(),
                "population": json.dumps(population.records()) if population is not None else None,
            }
        ]
    )
