"""Dagster assets, one per pipeline stage; every stage calls the same ``icare`` functions as ``icare run``.

Graph (one pair of source assets per folder under ``sources/`` that the registry knows)::

    <source>_inputs -> <source>_harmonised -+-> harmonised_tables -> statistics_tables -> published_outputs
                                            +----------------------------------------------^

``<source>_inputs`` finds the files and their checksums (nothing is read yet). ``<source>_harmonised``
reads, validates and harmonises them in one step, so that no value holding child identifiers as
received ever reaches the IO manager: what it stores is pseudonymised (episodes, children) or
redacted (quarantine). Values between assets go through Dagster's filesystem pickling IO manager
(``pipelines.definitions``). Only ``published_outputs`` writes the DuckDB database and the Parquet
files, through ``icare.pipeline.publish``.
"""

# No ``from __future__ import annotations`` here: Dagster reads the annotations of the asset
# functions (context, resource, inputs) at definition time, and the assets are nested functions.
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd

from icare.pipeline import (
    SourceResult,
    StepTimer,
    assemble_tables,
    discover_source,
    open_source,
    process_source,
    publish,
    statistics_tables,
)
from icare.publish import DATABASE, PARQUET_DIR, RUN_SUMMARY
from icare.reconciliation import OUTCOMES
from icare.sources.base import InputFile, SourceInputError
from icare.sources.registry import available_sources
from pipelines.resources import IcareSettings

INGESTION = "ingestion"
HARMONISATION = "harmonisation"
STATISTICS = "statistics"
PUBLICATION = "publication"


@dataclass
class SourceInputs:
    """The value of ``<source>_inputs``: where the returns are and which files were found."""

    name: str
    path: Path
    files: list[InputFile]


@dataclass
class HarmonisedSource:
    """The value of ``<source>_harmonised``: the source's part of every published table."""

    result: SourceResult
    timings: dict[str, float]


def checksums_digest(files: Iterable[InputFile]) -> str:
    """One SHA-256 over every input file's name and checksum: equal digests, identical inputs."""
    digest = hashlib.sha256()
    for line in sorted(f"{f.source}|{f.file}|{f.sha256}" for f in files):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def _input_metadata(files: list[InputFile]) -> dict[str, object]:
    return {
        "input_files": len(files),
        "input_checksums_digest": checksums_digest(files),
        "collection_years": sorted({f.collection_year for f in files if f.collection_year is not None}),
    }


def _row_counts(reconciliation: pd.DataFrame) -> dict[str, int]:
    return {column: int(reconciliation[column].sum()) for column in ["rows_read", *OUTCOMES]}


def _not_selected(context: dg.AssetExecutionContext, name: str) -> None:
    context.log.info(f"{name}: not among the configured sources; nothing to read")
    context.add_output_metadata({"selected": False})


def source_assets(name: str) -> list[dg.AssetsDefinition]:
    """``<name>_inputs`` and ``<name>_harmonised`` for one source of the registry."""

    @dg.asset(
        name=f"{name}_inputs",
        group_name=INGESTION,
        kinds={"python"},
        description=f"{name}: the return files below the configured folder, with collection year, area and "
        "SHA-256 checksum (nothing is read yet).",
    )
    def inputs_asset(context: dg.AssetExecutionContext, icare_settings: IcareSettings) -> SourceInputs | None:
        path = icare_settings.source_paths().get(name)
        if path is None:
            _not_selected(context, name)
            return None
        source = open_source(name, icare_settings.classification(), icare_settings.pseudonymiser())
        files = discover_source(source, path, StepTimer(context.log.info))
        context.add_output_metadata(
            {"selected": True, "input_path": dg.MetadataValue.path(str(path)), **_input_metadata(files)}
        )
        return SourceInputs(name, Path(path), files)

    @dg.asset(
        name=f"{name}_harmonised",
        group_name=HARMONISATION,
        kinds={"python", "pandas"},
        ins={"inputs": dg.AssetIn(key=f"{name}_inputs")},
        description=f"{name}: read and validate every table (bad rows to quarantine), combine returns, "
        "repair, pseudonymise and map every accepted row onto ICare; redacted quarantine and a "
        "reconciliation of every row read.",
    )
    def harmonised_asset(
        context: dg.AssetExecutionContext, icare_settings: IcareSettings, inputs: SourceInputs | None
    ) -> HarmonisedSource | None:
        if inputs is None:
            _not_selected(context, name)
            return None
        classification = icare_settings.classification()
        source = open_source(name, classification, icare_settings.pseudonymiser())
        timer = StepTimer(context.log.info)
        result = process_source(source, inputs.files, timer)
        context.add_output_metadata(
            {
                "selected": True,
                **_row_counts(result.reconciliation),
                "episodes": len(result.harmonised.episodes),
                "children": len(result.harmonised.children),
                "quarantine_records": len(result.quarantine),
                "classification_version": classification.version_id,
                "concordance_version": result.harmonised.versions.get("concordance", ""),
                **_input_metadata(result.files),
                "timings_seconds": dg.MetadataValue.json(timer.timings),
            }
        )
        return HarmonisedSource(result, dict(timer.timings))

    return [inputs_asset, harmonised_asset]


def _selected(harmonised: dict[str, HarmonisedSource | None]) -> list[HarmonisedSource]:
    """The configured sources' results, in source order (the order of ``icare run``)."""
    chosen = sorted((h for h in harmonised.values() if h is not None), key=lambda h: h.result.name)
    if not chosen:
        raise SourceInputError("no source selected: set icare_settings.sources or leave it empty")
    return chosen


def publication_assets(source_names: Iterable[str]) -> list[dg.AssetsDefinition]:
    """``harmonised_tables`` and ``published_outputs``, fed by every source's ``_harmonised`` asset."""
    harmonised_ins = {f"{name}_harmonised": dg.AssetIn(key=f"{name}_harmonised") for name in source_names}

    @dg.asset(
        group_name=HARMONISATION,
        kinds={"python", "pandas"},
        ins=harmonised_ins,
        description="Every source's contribution assembled into the published tables (episodes, children, "
        "quarantine, superseded, reconciliation, inputs, classification, concordance), sorted so that the "
        "same input always gives the same tables. Everything but the `runs` table.",
    )
    def harmonised_tables(
        context: dg.AssetExecutionContext,
        icare_settings: IcareSettings,
        **harmonised: HarmonisedSource | None,
    ) -> dict[str, pd.DataFrame]:
        classification = icare_settings.classification()
        results = [h.result for h in _selected(harmonised)]
        timer = StepTimer(context.log.info)
        tables = timer.step("assemble tables", lambda: assemble_tables(results, classification))
        context.add_output_metadata(
            {
                "table_rows": dg.MetadataValue.json({name: len(frame) for name, frame in tables.items()}),
                "episodes": len(tables["episodes"]),
                "children": int(tables["children"]["child_key"].nunique()),
                **_row_counts(tables["reconciliation"]),
                "classification_version": classification.version_id,
            }
        )
        return tables

    @dg.asset(
        name="statistics_tables",
        group_name=STATISTICS,
        kinds={"duckdb"},
        ins={"harmonised_tables": dg.AssetIn(), **harmonised_ins},
        description="Care spells, placement spells and the published statistics (stock, entries, exits, "
        "moves, transitions, pathways, durations, flow_check, findings), computed in DuckDB SQL over the "
        "harmonised episodes as docs/statistics.md defines them.",
    )
    def statistics_asset(
        context: dg.AssetExecutionContext,
        icare_settings: IcareSettings,
        harmonised_tables: dict[str, pd.DataFrame],
        **harmonised: HarmonisedSource | None,
    ) -> dict[str, object]:
        names = [h.result.name for h in _selected(harmonised)]
        settings = icare_settings.statistics_settings()
        timer = StepTimer(context.log.info)
        tables = timer.step(
            "statistics",
            lambda: statistics_tables(harmonised_tables, names, icare_settings.classification(), settings),
        )
        flow = tables["flow_check"]
        context.add_output_metadata(
            {
                "table_rows": dg.MetadataValue.json({name: table.num_rows for name, table in tables.items()}),
                "statistics_settings": settings.version_id,
                "flow_check_differences": int(sum(v != 0 for v in flow.column("difference").to_pylist())),
                "timings_seconds": dg.MetadataValue.json(timer.timings),
            }
        )
        return tables

    @dg.asset(
        group_name=PUBLICATION,
        kinds={"duckdb", "parquet"},
        ins={"harmonised_tables": dg.AssetIn(), "statistics_tables": dg.AssetIn(), **harmonised_ins},
        description="The run's tables plus its `runs` row, validated against the output schemas and written "
        "as Parquet files and one DuckDB database in a single atomic swap. The only asset that writes the "
        "database.",
    )
    def published_outputs(
        context: dg.AssetExecutionContext,
        icare_settings: IcareSettings,
        harmonised_tables: dict[str, pd.DataFrame],
        statistics_tables: dict[str, object],
        **harmonised: HarmonisedSource | None,
    ) -> dg.MaterializeResult:
        chosen = _selected(harmonised)
        pseudonymiser = icare_settings.pseudonymiser()
        classification = icare_settings.classification()
        timer = StepTimer(context.log.info)
        for h in chosen:
            timer.timings.update(h.timings)
        output_dir = icare_settings.output_path()
        settings = icare_settings.statistics_settings()
        result = publish(
            [h.result for h in chosen],
            {**harmonised_tables, **statistics_tables},
            classification,
            pseudonymiser,
            settings,
            output_dir,
            timer,
            _run_started_at(context),
        )
        summary = result.summary
        return dg.MaterializeResult(
            metadata={
                "run_id": result.run_id,
                "output_path": dg.MetadataValue.path(str(output_dir.resolve())),
                "database": dg.MetadataValue.path(str((output_dir / DATABASE).resolve())),
                "parquet": dg.MetadataValue.path(str((output_dir / PARQUET_DIR).resolve())),
                "run_summary": dg.MetadataValue.path(str((output_dir / RUN_SUMMARY).resolve())),
                "rows": dg.MetadataValue.json(summary["rows"]),
                "episodes": summary["episodes"],
                "children": summary["children"],
                "quarantine_records": summary["quarantine_records"],
                "table_rows": dg.MetadataValue.json({n: len(f) for n, f in result.tables.items()}),
                "statistics_settings": settings.version_id,
                "classification_version": classification.version_id,
                "development_key": pseudonymiser.development,
                "pseudonym_key_fingerprint": pseudonymiser.fingerprint,
                **_input_metadata([f for h in chosen for f in h.result.files]),
                "timings_seconds": dg.MetadataValue.json(result.timings),
            }
        )

    return [harmonised_tables, statistics_asset, published_outputs]


def _run_started_at(context: dg.AssetExecutionContext) -> datetime:
    """When the Dagster run started (the ``runs`` table's ``started_at``); now if unknown."""
    record = context.instance.get_run_record_by_id(context.run.run_id)
    if record is not None and record.start_time is not None:
        return datetime.fromtimestamp(record.start_time, UTC)
    return datetime.now(UTC)


def build_assets(source_names: Iterable[str] | None = None) -> list[dg.AssetsDefinition]:
    """Every stage's assets; by default one pair per source the registry finds under ``sources/``."""
    names = sorted(source_names if source_names is not None else available_sources())
    return [asset for name in names for asset in source_assets(name)] + publication_assets(names)
