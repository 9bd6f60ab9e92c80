"""Dagster assets, one per pipeline stage; every stage calls the same ``icare`` functions as ``icare run``.

Graph (one pair of source assets per folder under ``sources/`` that the registry knows)::

    <source>_extraction -> <source>_harmonised -+-> harmonised_tables -> published_outputs
                                                +-------------------------^

Values between assets are plain Python objects (``icare`` dataclasses holding pandas frames); they
go through the IO manager configured in ``pipelines.definitions`` (Dagster's filesystem pickling
IO manager). Only ``published_outputs`` writes the DuckDB database and the Parquet files, through
``icare.publish.write_outputs``; it returns metadata only, so the IO manager does not store it.
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

from icare import quarantine
from icare.classification import Classification
from icare.pipeline import (
    SourceResult,
    _runs_table,
    _Timer,
    assemble_tables,
    run_id_for,
    summarise,
)
from icare.pseudonymise import Pseudonymiser
from icare.publish import DATABASE, PARQUET_DIR, RUN_SUMMARY, write_outputs
from icare.reconciliation import OUTCOMES, reconcile
from icare.sources.base import Extraction, Harmonised, InputFile, SourceInputError
from icare.sources.registry import available_sources, reader_class
from pipelines.resources import IcareSettings

INGESTION = "ingestion"
HARMONISATION = "harmonisation"
PUBLICATION = "publication"


@dataclass
class ExtractedSource:
    """The value of ``<source>_extraction``: one source's files read and validated."""

    name: str
    path: Path
    extraction: Extraction
    timings: dict[str, float]


@dataclass
class HarmonisedSource:
    """The value of ``<source>_harmonised``: the source's part of every published table."""

    result: SourceResult
    timings: dict[str, float]  # the source's extraction and harmonisation steps


# --- the two halves of icare.pipeline.process_source -------------------------------------------
# ``process_source`` runs both halves in one call; the assets need them apart. The steps, their
# order and their names are those of ``process_source``; tests/test_dagster_definitions.py checks
# that the published tables stay identical to those of ``icare run``.


def extract_source(
    name: str, path: Path, classification: Classification, pseudonymiser: Pseudonymiser, timer: _Timer
) -> Extraction:
    """Discover, read and validate one source; fail early when nothing is usable."""
    source = reader_class(name)(classification, pseudonymiser)
    files = timer.step(f"{name}: find files", lambda: source.discover(Path(path)))
    timer.progress(f"{name}: {len(files)} file(s) found below {path}")
    extraction: Extraction = timer.step(f"{name}: read and validate", lambda: source.extract(files))
    harmonised_names = {t for t, spec in source.spec.tables.items() if spec.harmonised}
    if not any(t.table in harmonised_names and not t.missing_columns for t in extraction.tables):
        raise SourceInputError(
            f"{name}: no recognisable table in {path}: expected files or sheets whose column headers "
            + "are those of "
            + " / ".join(
                f"{t} ({', '.join(source.spec.tables[t].columns)})" for t in sorted(harmonised_names)
            )
        )
    return extraction


def harmonise_source(
    name: str,
    extraction: Extraction,
    classification: Classification,
    pseudonymiser: Pseudonymiser,
    timer: _Timer,
) -> SourceResult:
    """Harmonise one source's extraction; quarantine (redacted) and reconciliation as in ``icare run``."""
    source = reader_class(name)(classification, pseudonymiser)
    harmonised_names = {t for t, spec in source.spec.tables.items() if spec.harmonised}
    harmonised: Harmonised = timer.step(f"{name}: harmonise", lambda: source.harmonise(extraction))
    records = quarantine.combine([extraction.quarantine, harmonised.quarantine])
    records = quarantine.with_messages(
        quarantine.redact(records, source.spec.identifier_policy, pseudonymiser.values)
    )
    reconciliation = reconcile(
        extraction.tables, harmonised_names, harmonised.accepted_rows, records, harmonised.superseded
    )
    return SourceResult(name, extraction, harmonised, reconciliation, records)


# --- metadata helpers ---------------------------------------------------------------------------


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


# --- assets -------------------------------------------------------------------------------------


def source_assets(name: str) -> list[dg.AssetsDefinition]:
    """``<name>_extraction`` and ``<name>_harmonised`` for one source of the registry."""

    @dg.asset(
        name=f"{name}_extraction",
        group_name=INGESTION,
        kinds={"python", "pandas"},
        description=(
            f"{name}: find the input files, read every table and validate each row against the "
            "source's reader specification; invalid rows go to quarantine. Holds identifiers as "
            "received (not yet pseudonymised)."
        ),
    )
    def extraction_asset(
        context: dg.AssetExecutionContext, icare_settings: IcareSettings
    ) -> ExtractedSource | None:
        path = icare_settings.source_paths().get(name)
        if path is None:
            _not_selected(context, name)
            return None
        classification = icare_settings.classification()
        timer = _Timer(context.log.info)
        extraction = extract_source(name, path, classification, icare_settings.pseudonymiser(), timer)
        context.add_output_metadata(
            {
                "selected": True,
                "input_path": dg.MetadataValue.path(str(path)),
                **_input_metadata(extraction.files),
                "tables_read": len(extraction.tables),
                "rows_read": sum(len(t.frame) for t in extraction.tables),
                "rows_valid": sum(len(frame) for frame in extraction.valid.values()),
                "quarantine_records": len(extraction.quarantine),
                "classification_version": classification.version_id,
                "timings_seconds": dg.MetadataValue.json(timer.timings),
            }
        )
        return ExtractedSource(name, Path(path), extraction, dict(timer.timings))

    @dg.asset(
        name=f"{name}_harmonised",
        group_name=HARMONISATION,
        kinds={"python", "pandas"},
        ins={"extracted": dg.AssetIn(key=f"{name}_extraction")},
        description=(
            f"{name}: combine returns, repair, pseudonymise and map every accepted row onto ICare; "
            "redacted quarantine records and a reconciliation of every row read."
        ),
    )
    def harmonised_asset(
        context: dg.AssetExecutionContext, icare_settings: IcareSettings, extracted: ExtractedSource | None
    ) -> HarmonisedSource | None:
        if extracted is None:
            _not_selected(context, name)
            return None
        classification = icare_settings.classification()
        timer = _Timer(context.log.info)
        timer.timings.update(extracted.timings)
        result = harmonise_source(
            name, extracted.extraction, classification, icare_settings.pseudonymiser(), timer
        )
        context.add_output_metadata(
            {
                "selected": True,
                **_row_counts(result.reconciliation),
                "episodes": len(result.harmonised.episodes),
                "children": len(result.harmonised.children),
                "quarantine_records": len(result.quarantine),
                "classification_version": classification.version_id,
                "concordance_version": result.harmonised.versions.get("concordance", ""),
                **_input_metadata(result.extraction.files),
            }
        )
        return HarmonisedSource(result, dict(timer.timings))

    return [extraction_asset, harmonised_asset]


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
        description=(
            "Every source's contribution assembled into the published tables (episodes, children, "
            "quarantine, superseded, reconciliation, inputs, classification, concordance), sorted so "
            "that the same input always gives the same tables. Everything but the `runs` table."
        ),
    )
    def harmonised_tables(
        context: dg.AssetExecutionContext,
        icare_settings: IcareSettings,
        **harmonised: HarmonisedSource | None,
    ) -> dict[str, pd.DataFrame]:
        classification = icare_settings.classification()
        results = [h.result for h in _selected(harmonised)]
        timer = _Timer(context.log.info)
        tables = timer.step("assemble tables", lambda: assemble_tables(results, classification))
        context.add_output_metadata(
            {
                "table_rows": dg.MetadataValue.json({name: len(frame) for name, frame in tables.items()}),
                "episodes": len(tables["episodes"]),
                "children": int(tables["children"]["child_key"].nunique()),
                **_row_counts(tables["reconciliation"]),
                "classification_version": classification.version_id,
                "timings_seconds": dg.MetadataValue.json(timer.timings),
            }
        )
        return tables

    @dg.asset(
        group_name=PUBLICATION,
        kinds={"duckdb", "parquet"},
        ins={"harmonised_tables": dg.AssetIn(), **harmonised_ins},
        description=(
            "The run's tables plus its `runs` row, validated against the output schemas and written as "
            "Parquet files and one DuckDB database in a single atomic swap (icare.publish). The only "
            "asset that writes the database."
        ),
    )
    def published_outputs(
        context: dg.AssetExecutionContext,
        icare_settings: IcareSettings,
        harmonised_tables: dict[str, pd.DataFrame],
        **harmonised: HarmonisedSource | None,
    ) -> dg.MaterializeResult:
        started_at = _run_started_at(context)
        options = icare_settings.run_options(progress=context.log.info)
        classification = icare_settings.classification()
        pseudonymiser = icare_settings.pseudonymiser()
        chosen = _selected(harmonised)
        results = [h.result for h in chosen]
        timer = _Timer(context.log.info)
        for h in chosen:
            timer.timings.update(h.timings)
        run_id = run_id_for(options, results, classification)
        tables = dict(harmonised_tables)
        summary = summarise(results, tables, classification)
        tables["runs"] = _runs_table(
            run_id, started_at, classification, pseudonymiser, results, summary, timer
        )
        output_dir = options.output_dir
        timer.step(
            "write outputs",
            lambda: write_outputs(tables, summary | {"run_id": run_id}, output_dir, run_id),
        )
        files = [f for r in results for f in r.extraction.files]
        return dg.MaterializeResult(
            metadata={
                "run_id": run_id,
                "output_path": dg.MetadataValue.path(str(output_dir.resolve())),
                "database": dg.MetadataValue.path(str((output_dir / DATABASE).resolve())),
                "parquet": dg.MetadataValue.path(str((output_dir / PARQUET_DIR).resolve())),
                "run_summary": dg.MetadataValue.path(str((output_dir / RUN_SUMMARY).resolve())),
                "rows": dg.MetadataValue.json(summary["rows"]),
                "episodes": summary["episodes"],
                "children": summary["children"],
                "quarantine_records": summary["quarantine_records"],
                "table_rows": dg.MetadataValue.json({name: len(frame) for name, frame in tables.items()}),
                "classification_version": classification.version_id,
                "development_key": pseudonymiser.development,
                "pseudonym_key_fingerprint": pseudonymiser.fingerprint,
                **_input_metadata(files),
                "timings_seconds": dg.MetadataValue.json(timer.timings),
            }
        )

    return [harmonised_tables, published_outputs]


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
