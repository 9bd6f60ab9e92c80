"""Dagster assets, one per pipeline stage; every stage calls the same ``icare`` functions as ``icare run``.

Graph (per source that the registry knows; ``<source>_returns`` has one partition per collection
year, every other asset is unpartitioned and depends on all of a source's years)::

    <source>_returns[year] -> <source>_harmonised -> harmonised_tables -> statistics_tables
    harmonised_tables -> icare/episodes, icare/quarantine, ... (the assembled tables)
    statistics_tables -> icare/care_spells, icare/placement_spells, icare/stock, ... (STATISTICS_TABLES)
    harmonised_tables, statistics_tables, every <source>_harmonised -> icare/runs
    every icare/<table> -> icare_duckdb, parquet_release
    icare/stock, icare/entries, ... -> icare_release/stock, ... (disclosure-controlled, RELEASE_TABLES)
    every icare_release/<table> -> icare_release/disclosure_summary, disclosure_release, icare_duckdb

(``statistics_tables`` and the publication step also read every ``<source>_harmonised``.)

``<source>_returns`` reads and validates one collection year's files and seals them
(``icare.pipeline.extract_source``): what it stores holds child keys, never child ids as received.
``<source>_harmonised`` combines every year of the source (``combine_extractions``) and harmonises
them (``harmonise_source``): the same functions ``icare run`` calls, so both publish the same tables.
Values between assets go through Dagster's filesystem pickling IO manager (``pipelines.definitions``).
The publication assets (``icare/<table>`` for every published table, ``icare_release/<table>`` for
every disclosure-controlled table of the release, ``icare_duckdb``, ``parquet_release``,
``disclosure_release``) are one multi-asset step, ``publish_outputs``: it writes the DuckDB database and
the Parquet files in one atomic swap through ``icare.pipeline.publish``, in the ``icare_duckdb_writer``
concurrency pool (one writer at a time), then reports one materialisation per asset.
"""

# No ``from __future__ import annotations`` here: Dagster reads the annotations of the asset
# functions (context, resource, inputs) at definition time, and the assets are nested functions.
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from icare import checks
from icare import coverage as returns_coverage
from icare.disclosure import SUMMARY as DISCLOSURE_SUMMARY
from icare.disclosure import DisclosureRules
from icare.disclosure.tables import child_age_bands, disclosures
from icare.pipeline import (
    RunResult,
    SourceResult,
    StepTimer,
    assemble_tables,
    combine_extractions,
    extract_source,
    harmonise_source,
    open_source,
    publish,
    statistics_tables,
)
from icare.publish import (
    DATA_DICTIONARY_DESCRIPTION,
    DATABASE,
    PARQUET_DIR,
    RELEASE_DIR,
    RELEASE_SUMMARY,
    RUN_SUMMARY,
    claim_output,
    data_dictionary,
)
from icare.reading import file_sha256
from icare.reconciliation import OUTCOMES
from icare.sources.base import Extraction, InputFile, SourceInputError
from icare.sources.registry import available_sources
from icare.sources.spec import load_source_spec
from icare.statistics import STATISTICS_TABLES
from pipelines.resources import IcareSettings
from schemas.outputs import (
    COVERAGE,
    INDICATORS,
    RELEASE_COUNTS,
    RELEASE_DESCRIPTIONS,
    TABLE_DESCRIPTIONS,
    pandera_schema,
    release_name,
    table_columns,
)

INGESTION = "ingestion"
HARMONISATION = "harmonisation"
STATISTICS = "statistics"
PUBLICATION = "publication"
OWNERS = ["team:icare-statistics"]
# The one concurrency pool of the project: the assets that write icare.duckdb (dagster.yaml sets
# every pool's limit to 1, so one writer at a time across all runs).
DUCKDB_POOL = "icare_duckdb_writer"
# Partition key of the files whose path names no collection year (they are quarantined whole).
UNDATED = "undated"
# Unpartitioned stages follow their inputs when the automation sensor is on: once every year of a
# source is ingested and none is in progress, the source is harmonised and the tables published.
FOLLOW_INPUTS = dg.AutomationCondition.eager()
DUCKDB_KEY = dg.AssetKey("icare_duckdb")
PARQUET_RELEASE_KEY = dg.AssetKey("parquet_release")
DISCLOSURE_RELEASE_KEY = dg.AssetKey("disclosure_release")


@dataclass
class HarmonisedSource:
    """The value of ``<source>_harmonised``: the source's part of every published table."""

    result: SourceResult
    timings: dict[str, float]


def partitions_for(name: str) -> dg.DynamicPartitionsDefinition:
    """One partition per collection year of a source, added by the landing sensor (or by hand)."""
    return dg.DynamicPartitionsDefinition(name=f"{name}_collection_years")


def partition_key(input_file: InputFile) -> str:
    """The partition of a file: its collection year, or ``undated`` when the path names none."""
    return UNDATED if input_file.collection_year is None else str(input_file.collection_year)


def files_by_partition(files: Iterable[InputFile]) -> dict[str, list[InputFile]]:
    grouped: dict[str, list[InputFile]] = {}
    for f in files:
        grouped.setdefault(partition_key(f), []).append(f)
    return grouped


def checksums_digest(files: Iterable[InputFile]) -> str:
    """One SHA-256 over every input file's name and checksum: equal digests, identical inputs."""
    digest = hashlib.sha256()
    for line in sorted(f"{f.source}|{f.file}|{f.sha256}" for f in files):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def column_schema(table: str) -> dg.TableSchema:
    """A published table's columns for the UI, from the Pandera schema in ``schemas/outputs.py``
    (``data_dictionary``, which is built from those schemas, from its Arrow schema)."""
    if table == "data_dictionary":
        fields = data_dictionary().schema
        return dg.TableSchema(columns=[dg.TableColumn(name=f.name, type=str(f.type)) for f in fields])
    schema = pandera_schema(table)
    columns = []
    for col in table_columns(table):
        check = schema.columns[col.name]
        other = [f"one of {', '.join(col.allowed)}"] if col.allowed else []
        columns.append(
            dg.TableColumn(
                name=col.name,
                type=str(col.type),
                description=col.description,
                constraints=dg.TableColumnConstraints(nullable=check.nullable, other=other),
            )
        )
    return dg.TableSchema(columns=columns)


def returns_schema(name: str, table: str) -> dg.TableSchema:
    """The columns of a national table as read (text), after sealing (identifiers keyed or dropped)."""
    spec = load_source_spec(name)
    policy = spec.identifier_policy
    columns = [
        dg.TableColumn(
            name=column,
            type="string",
            description={"pseudonymise": "child key (HMAC of the id as received)"}.get(
                policy.get(column, ""), ""
            ),
        )
        for column in spec.tables[table].columns
        if policy.get(column) != "redact" or column == "DOB"
    ]
    return dg.TableSchema(columns=columns)


def _input_metadata(files: list[InputFile]) -> dict[str, object]:
    return {
        "input_files": len(files),
        "input_checksums_digest": checksums_digest(files),
        "input_checksums": dg.MetadataValue.json({f.file: f.sha256 for f in files}),
        "collection_years": sorted({f.collection_year for f in files if f.collection_year is not None}),
    }


def _row_counts(reconciliation: pd.DataFrame) -> dict[str, int]:
    return {column: int(reconciliation[column].sum()) for column in ["rows_read", *OUTCOMES]}


def _sample(frame: pd.DataFrame, rows: int = 20) -> dg.MetadataValue:
    """A few rows as a Markdown table for the UI (quarantine values are already redacted)."""
    if frame.empty:
        return dg.MetadataValue.md("(none)")

    def cell(value: object) -> str:
        return "" if pd.isna(value) else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += [
        "| " + " | ".join(cell(v) for v in row) + " |" for row in frame.head(rows).itertuples(index=False)
    ]
    return dg.MetadataValue.md("\n".join(lines))


def _values(loaded: object) -> list:
    """An input spanning partitions arrives as {partition: value}; a single partition as the value."""
    return list(loaded.values()) if isinstance(loaded, Mapping) else [loaded]


def quarantine_check(
    check_name: str, records: pd.DataFrame, what: str, asset_key: dg.AssetKey | None = None
) -> dg.AssetCheckResult:
    """WARN when records were quarantined: the run goes on, the figures leave those rows out."""
    by_rule = records["rule"].value_counts().sort_index()
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=records.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(records)} {what}",
        metadata={
            "records": len(records),
            "by_rule": dg.MetadataValue.json({str(k): int(v) for k, v in by_rule.items()}),
            "sample": _sample(checks.quarantine_sample(records)),
        },
    )


def blocking_check(
    check_name: str, offending: pd.DataFrame, what: str, asset_key: dg.AssetKey | None = None
) -> dg.AssetCheckResult:
    """ERROR when figures would be wrong; the check is blocking, so nothing downstream runs."""
    return dg.AssetCheckResult(
        check_name=check_name,
        asset_key=asset_key,
        passed=offending.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(offending)} {what}",
        metadata={"failures": len(offending), "sample": _sample(offending.astype(str))},
    )


def coverage_check(coverage: pd.DataFrame, allow_incomplete: bool) -> dg.AssetCheckResult:
    """``returns_complete``: fails on returns that cannot give figures; ERROR (a blocking check's
    failure stops what follows) unless they are allowed, then WARN: publication goes on and their
    years are left out of the statistics (``icare.coverage``)."""
    bad = returns_coverage.not_complete(coverage)
    if bad.empty:
        what = "returns not complete"
    elif allow_incomplete:
        what = "returns not complete; published without their years (allow_incomplete)"
    else:
        what = "returns not complete: " + returns_coverage.ALLOW_INCOMPLETE_ADVICE
    return dg.AssetCheckResult(
        check_name="returns_complete",
        passed=bad.empty,
        severity=dg.AssetCheckSeverity.WARN if allow_incomplete else dg.AssetCheckSeverity.ERROR,
        description=f"{len(bad)} {what}",
        metadata={
            "failures": len(bad),
            "allow_incomplete": allow_incomplete,
            "by_status": dg.MetadataValue.json(
                {str(k): int(v) for k, v in coverage["completeness"].value_counts().sort_index().items()}
            ),
            "sample": _sample(bad.astype(str)),
        },
    )


def _not_selected(context: dg.AssetExecutionContext, name: str) -> dict[str, object]:
    context.log.info(f"{name}: not among the configured sources; nothing to read")
    return {"selected": False}


def source_assets(name: str) -> list[dg.AssetsDefinition]:
    """``<name>_returns`` (one partition per collection year) and ``<name>_harmonised``."""
    returns_key = dg.AssetKey(f"{name}_returns")
    harmonised_key = dg.AssetKey(f"{name}_harmonised")

    @dg.asset(
        name=returns_key.path[0],
        group_name=INGESTION,
        owners=OWNERS,
        kinds={"python", "pandas"},
        partitions_def=partitions_for(name),
        description=f"{name}: one collection year's return files, read, recognised by their headers and "
        "validated against that year's code lists (invalid rows to quarantine), then sealed: child ids "
        "replaced by child keys, other identifiers dropped, quarantine redacted.",
        metadata={"dagster/column_schema": returns_schema(name, "episodes")},
        check_specs=[
            dg.AssetCheckSpec(
                "schema_valid",
                asset=returns_key,
                description="Every row passed its table's Pandera schema (WARN: invalid rows are "
                "quarantined and left out of the figures; the sample shows them, redacted).",
            )
        ],
    )
    def returns_asset(context: dg.AssetExecutionContext, icare_settings: IcareSettings) -> Iterator:
        year = context.partition_key
        path = icare_settings.source_paths().get(name)
        if path is None:
            yield dg.Output(None, metadata=_not_selected(context, name))
            yield dg.AssetCheckResult(check_name="schema_valid", passed=True, metadata={"selected": False})
            return
        source = open_source(
            name,
            icare_settings.classification(),
            icare_settings.pseudonymiser(),
            strict=icare_settings.strict,
        )
        timer = StepTimer(context.log.info)
        files = files_by_partition(timer.step(f"{name}: find files", lambda: source.discover(Path(path))))
        if year not in files:
            raise SourceInputError(
                f"{name}: no file of collection year {year} below {path}: restore the files, or delete "
                f"the partition {year} of {name}_collection_years (the landing sensor does when a year's "
                "files are removed)"
            )
        extraction: Extraction = extract_source(source, files[year], timer)
        records = extraction.quarantine
        rows_read = sum(len(t.rows) for t in extraction.tables)
        quarantined = records.dropna(subset=["row_number"]).drop_duplicates(["file", "sheet", "row_number"])
        yield dg.Output(
            extraction,
            metadata={
                "selected": True,
                "collection_year": year,
                "input_path": dg.MetadataValue.path(str(path)),
                **_input_metadata(extraction.files),
                "rows_read": rows_read,
                "rows_with_quarantine_records": len(quarantined),
                "quarantine_records": len(records),
                "corrections": len(extraction.corrections),
                "valid_rows": dg.MetadataValue.json({t: len(f) for t, f in extraction.valid.items()}),
                "tables_read": len(extraction.tables),
                "timings_seconds": dg.MetadataValue.json(timer.timings),
            },
        )
        yield quarantine_check("schema_valid", records, "quarantine records at validation")

    @dg.asset(
        name=harmonised_key.path[0],
        group_name=HARMONISATION,
        owners=OWNERS,
        kinds={"python", "pandas"},
        ins={"returns": dg.AssetIn(key=returns_key)},
        automation_condition=FOLLOW_INPUTS,
        description=f"{name}: every collection year combined (same child and start date is one episode, the "
        "latest return wins), open episodes repaired, every accepted row mapped onto ICare; redacted "
        "quarantine and a reconciliation of every row read.",
        metadata={"dagster/column_schema": column_schema("episodes")},
        check_specs=[
            dg.AssetCheckSpec(
                "reconciliation_balances",
                asset=harmonised_key,
                blocking=True,
                description="Per table read: rows read = accepted + quarantined + superseded + not "
                "harmonised. Blocking: figures from rows that are not accounted for are not published.",
            ),
            dg.AssetCheckSpec(
                "returns_complete",
                asset=harmonised_key,
                blocking=True,
                description="Every return (area and collection year) has a header and an episodes table "
                "that were read and have rows, and no year is missing between an area's first and last "
                "returns. Blocking unless icare_settings.allow_incomplete: a year without them would "
                'be published from the previous return\'s open episodes (docs/statistics.md "Coverage").',
            ),
            dg.AssetCheckSpec(
                "no_duplicate_episodes",
                asset=harmonised_key,
                blocking=True,
                description="No two episodes of a child start on the same day. Blocking: a duplicate "
                "would be counted twice.",
            ),
            dg.AssetCheckSpec(
                "codes_mapped",
                asset=harmonised_key,
                description="Every national code is mapped onto ICare (WARN: unmapped rows are "
                "quarantined, never defaulted).",
            ),
            dg.AssetCheckSpec(
                "no_quarantine",
                asset=harmonised_key,
                description="Nothing quarantined in any year or step (WARN; sample rows redacted).",
            ),
        ],
    )
    def harmonised_asset(
        context: dg.AssetExecutionContext, icare_settings: IcareSettings, returns: object
    ) -> Iterator:
        parts = [p for p in _values(returns) if p is not None]
        if not parts:
            yield dg.Output(None, metadata=_not_selected(context, name))
            for check_name in (
                "reconciliation_balances",
                "returns_complete",
                "no_duplicate_episodes",
                "codes_mapped",
                "no_quarantine",
            ):
                yield dg.AssetCheckResult(check_name=check_name, passed=True, metadata={"selected": False})
            return
        classification = icare_settings.classification()
        source = open_source(
            name, classification, icare_settings.pseudonymiser(), strict=icare_settings.strict
        )
        timer = StepTimer(context.log.info)
        extraction = timer.step(f"{name}: combine years", lambda: combine_extractions(parts))
        _require_current(name, extraction.files, source.discover(icare_settings.source_paths()[name]))
        result = harmonise_source(source, extraction, timer)
        yield dg.Output(
            HarmonisedSource(result, dict(timer.timings)),
            metadata={
                "selected": True,
                **_row_counts(result.reconciliation),
                "episodes": len(result.harmonised.episodes),
                "children": len(result.harmonised.children),
                "quarantine_records": len(result.quarantine),
                "classification_version": classification.version_id,
                "concordance_version": result.harmonised.versions.get("concordance", ""),
                **_input_metadata(result.files),
                "timings_seconds": dg.MetadataValue.json(timer.timings),
            },
        )
        yield blocking_check(
            "reconciliation_balances",
            checks.reconciliation_imbalances(result.reconciliation),
            "tables whose rows do not add up",
        )
        yield coverage_check(result.coverage, icare_settings.allow_incomplete)
        yield blocking_check(
            "no_duplicate_episodes",
            checks.duplicate_episodes(result.harmonised.episodes),
            "episodes sharing child and start date",
        )
        yield quarantine_check(
            "codes_mapped", checks.unmapped_codes(result.quarantine), "records with unmapped codes"
        )
        yield quarantine_check("no_quarantine", result.quarantine, "quarantine records")

    return [returns_asset, harmonised_asset]


def _require_current(name: str, stored: list[InputFile], present: list[InputFile]) -> None:
    """Refuse to harmonise years that no longer match the folder: the figures would mix versions."""
    stored_sums = {f.file: f.sha256 for f in stored}
    present_sums = {f.file: f.sha256 for f in present}
    if stored_sums == present_sums:
        return
    stale = sorted(
        {partition_key(f) for f in present if stored_sums.get(f.file) != f.sha256}
        | {partition_key(f) for f in stored if f.file not in present_sums}
    )
    raise SourceInputError(
        f"{name}: the stored returns differ from the files below the input folder for collection "
        f"year(s) {', '.join(stale)}: materialise those partitions of {name}_returns first (the landing "
        "sensor requests them)"
    )


def _selected(harmonised: dict[str, HarmonisedSource | None]) -> list[HarmonisedSource]:
    """The configured sources' results, in source order (the order of ``icare run``)."""
    chosen = sorted((h for h in harmonised.values() if h is not None), key=lambda h: h.result.name)
    if not chosen:
        raise SourceInputError("no source selected: set icare_settings.sources or leave it empty")
    return chosen


def publication_assets(source_names: Iterable[str]) -> list[dg.AssetsDefinition]:
    """``harmonised_tables``, ``statistics_tables`` and the publication multi-asset ``publish_outputs``."""
    harmonised_ins = {f"{name}_harmonised": dg.AssetIn(key=f"{name}_harmonised") for name in source_names}

    @dg.asset(
        group_name=HARMONISATION,
        owners=OWNERS,
        kinds={"python", "pandas"},
        ins=harmonised_ins,
        automation_condition=FOLLOW_INPUTS,
        metadata={"dagster/column_schema": column_schema("episodes")},
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
        owners=OWNERS,
        kinds={"duckdb"},
        ins={"harmonised_tables": dg.AssetIn(), **harmonised_ins},
        automation_condition=FOLLOW_INPUTS,
        metadata={"dagster/column_schema": column_schema("flow_check")},
        check_specs=[
            dg.AssetCheckSpec(
                "flow_identity",
                asset="statistics_tables",
                blocking=True,
                description="For every source, area and period: stock_end = stock_start + entries - exits "
                "(flow_check.difference = 0). Blocking: the figures would not add up.",
            )
        ],
        description="Care spells, placement spells and the published statistics (stock, entries, exits, "
        "moves, transitions, pathways, durations, flow_check, findings), computed in DuckDB SQL over the "
        "harmonised episodes as docs/statistics.md defines them; the population (icare_settings."
        "population_path or $ICARE_POPULATION) and the rates per 100,000 children computed from it.",
    )
    def statistics_asset(
        context: dg.AssetExecutionContext,
        icare_settings: IcareSettings,
        harmonised_tables: dict[str, pd.DataFrame],
        **harmonised: HarmonisedSource | None,
    ) -> Iterator:
        names = [h.result.name for h in _selected(harmonised)]
        settings = icare_settings.statistics_settings()
        population = icare_settings.population()
        timer = StepTimer(context.log.info)
        tables = timer.step(
            "statistics",
            lambda: statistics_tables(
                harmonised_tables,
                names,
                icare_settings.classification(),
                settings,
                population,
                progress=timer.progress,
            ),
        )
        failures = checks.flow_identity_failures(tables["flow_check"])
        yield dg.Output(
            tables,
            metadata={
                "table_rows": dg.MetadataValue.json({name: table.num_rows for name, table in tables.items()}),
                "statistics_settings": settings.version_id,
                "population": dg.MetadataValue.json(population.records() if population else []),
                "flow_check_differences": len(failures),
                "timings_seconds": dg.MetadataValue.json(timer.timings),
            },
        )
        yield blocking_check("flow_identity", failures, "periods where the flow identity fails")

    harmonised_deps = [dg.AssetKey("harmonised_tables")]
    statistics_deps = [dg.AssetKey("statistics_tables")]
    runs_deps = [*harmonised_deps, *statistics_deps, *(dg.AssetKey(name) for name in harmonised_ins)]

    def upstream(table: str) -> list[dg.AssetKey]:
        if table == "runs":
            return runs_deps
        if table == "data_dictionary":
            return []  # written from schemas/outputs.py alone
        return statistics_deps if table in STATISTICS_TABLES else harmonised_deps

    table_specs = [
        dg.AssetSpec(
            table_key(table),
            deps=upstream(table),
            description=f"Published table `{table}`, one row per {description}. Written as "
            f"parquet/{table}.parquet and as a table of icare.duckdb by `publish_outputs`.",
            group_name=PUBLICATION,
            owners=OWNERS,
            kinds={"parquet"},
            automation_condition=FOLLOW_INPUTS,
            metadata={"dagster/column_schema": column_schema(table), "table": table},
        )
        for table, description in published_tables().items()
    ]
    controlled_specs = [
        dg.AssetSpec(
            release_key(table),
            deps=[release_key(t) for t in RELEASE_DESCRIPTIONS if t not in (DISCLOSURE_SUMMARY, INDICATORS)]
            if table == DISCLOSURE_SUMMARY
            else [release_key(t) for t in RELEASE_COUNTS]
            if table == INDICATORS
            else [table_key(table)],
            description=f"Released table `{release_name(table)}`, one row per {description}. Written "
            f"as {RELEASE_DIR}/{table}.parquet and in the schema `release` of icare.duckdb by "
            "`publish_outputs`, "
            + (
                "as it is (it holds no counts)."
                if table == COVERAGE
                else "computed from the released tables by config/indicators.yaml (docs/indicators.md)."
                if table == INDICATORS
                else "after disclosure control by config/disclosure.yaml (docs/disclosure.md)."
            ),
            group_name=PUBLICATION,
            owners=OWNERS,
            kinds={"parquet"},
            automation_condition=FOLLOW_INPUTS,
            metadata={"dagster/column_schema": column_schema(release_name(table)), "table": table},
        )
        for table, description in RELEASE_DESCRIPTIONS.items()
    ]
    release_deps = [spec.key for spec in table_specs]
    controlled_deps = [spec.key for spec in controlled_specs]
    release_specs = [
        dg.AssetSpec(
            DUCKDB_KEY,
            deps=[*release_deps, *controlled_deps],
            description=f"The DuckDB database {DATABASE}: one table per published table. Only "
            "`publish_outputs` writes it (concurrency pool icare_duckdb_writer, limit 1); open it "
            "read_only=True to query it.",
            group_name=PUBLICATION,
            owners=OWNERS,
            kinds={"duckdb"},
            automation_condition=FOLLOW_INPUTS,
        ),
        dg.AssetSpec(
            PARQUET_RELEASE_KEY,
            deps=release_deps,
            description=f"The Parquet release: the folder {PARQUET_DIR}/ (one file per published table, "
            f"each carrying the run id and classification version) and {RUN_SUMMARY}.",
            group_name=PUBLICATION,
            owners=OWNERS,
            kinds={"parquet"},
            automation_condition=FOLLOW_INPUTS,
        ),
        dg.AssetSpec(
            DISCLOSURE_RELEASE_KEY,
            deps=controlled_deps,
            description=f"The release for publication: the folder {RELEASE_DIR}/ (one file per "
            f"disclosure-controlled aggregate table, each carrying the run id, classification version and "
            f"disclosure rules) and {RELEASE_DIR}/{RELEASE_SUMMARY}.",
            group_name=PUBLICATION,
            owners=OWNERS,
            kinds={"parquet"},
            automation_condition=FOLLOW_INPUTS,
        ),
    ]

    @dg.multi_asset(
        name="publish_outputs",
        specs=[*table_specs, *controlled_specs, *release_specs],
        check_specs=[
            dg.AssetCheckSpec(
                "release_protected",
                asset=DISCLOSURE_RELEASE_KEY,
                description="The written release shows no value its disclosure rules withhold (no "
                "published count from 1 to threshold-1, every withheld count empty) and no declared "
                "margin group gives a withheld value away (disclosure_summary.unprotected_groups = 0). "
                "ERROR for the first (publication already refuses it), WARN for the second.",
            )
        ],
        pool=DUCKDB_POOL,
        ins={"harmonised_tables": dg.AssetIn(), "statistics_tables": dg.AssetIn(), **harmonised_ins},
        description="The run's tables plus its `runs` row, validated against the output schemas and written "
        "as Parquet files and one DuckDB database in a single atomic swap (icare.pipeline.publish); one "
        "materialisation per published table, the database and the release.",
    )
    def publish_outputs(
        context: dg.AssetExecutionContext,
        icare_settings: IcareSettings,
        harmonised_tables: dict[str, pd.DataFrame],
        statistics_tables: dict[str, object],
        **harmonised: HarmonisedSource | None,
    ) -> Iterator[dg.MaterializeResult]:
        chosen = _selected(harmonised)
        pseudonymiser = icare_settings.pseudonymiser()
        classification = icare_settings.classification()
        timer = StepTimer(context.log.info)
        for h in chosen:
            timer.timings.update(h.timings)
        output_dir = icare_settings.output_path()
        settings = icare_settings.statistics_settings()
        disclosure = icare_settings.disclosure_rules()
        # Claimed until the outputs are read back for the materialisations: no other run (icare run
        # or another deployment) swaps in its own meanwhile.
        with claim_output(output_dir):
            result = publish(
                [h.result for h in chosen],
                {**harmonised_tables, **statistics_tables},
                classification,
                pseudonymiser,
                settings,
                output_dir,
                timer,
                _run_started_at(context),
                disclosure,
                population=icare_settings.population(),
                release_settings=icare_settings.release_settings(),
            )
            yield from release_materialisations(result, output_dir, classification.version_id)
            yield from controlled_materialisations(result, output_dir, classification.version_id)
            yield release_check(output_dir, disclosure, settings)
            table_rows = _parquet_rows(output_dir)
        summary = result.summary
        yield dg.MaterializeResult(
            asset_key=DUCKDB_KEY,
            metadata={
                "run_id": result.run_id,
                "path": dg.MetadataValue.path(str((output_dir / DATABASE).resolve())),
                "output_path": dg.MetadataValue.path(str(output_dir.resolve())),
                "tables": sorted(published_tables()),
                "release_tables": sorted(release_name(t) for t in RELEASE_DESCRIPTIONS),
                "table_rows": dg.MetadataValue.json(table_rows),
                "rows": dg.MetadataValue.json(summary["rows"]),
                "episodes": summary["episodes"],
                "children": summary["children"],
                "quarantine_records": summary["quarantine_records"],
                "statistics_settings": settings.version_id,
                "classification_version": classification.version_id,
                "development_key": pseudonymiser.development,
                "pseudonym_key_fingerprint": pseudonymiser.fingerprint,
                **_input_metadata([f for h in chosen for f in h.result.files]),
                "timings_seconds": dg.MetadataValue.json(result.timings),
            },
        )

    return [harmonised_tables, statistics_asset, publish_outputs]


def _run_started_at(context: dg.AssetExecutionContext) -> datetime:
    """When the Dagster run started (the ``runs`` table's ``started_at``); now if unknown."""
    record = context.instance.get_run_record_by_id(context.run.run_id)
    if record is not None and record.start_time is not None:
        return datetime.fromtimestamp(record.start_time, UTC)
    return datetime.now(UTC)


def table_key(table: str) -> dg.AssetKey:
    """The asset of a published table: ``icare/<table>`` (its Parquet file and its DuckDB table)."""
    return dg.AssetKey(["icare", table])


def release_key(table: str) -> dg.AssetKey:
    """The asset of a disclosure-controlled table: ``icare_release/<table>``."""
    return dg.AssetKey(["icare_release", table])


def published_tables() -> dict[str, str]:
    """Every table ``icare.pipeline.publish`` writes, with what one row of it is."""
    return {**TABLE_DESCRIPTIONS, "data_dictionary": DATA_DICTIONARY_DESCRIPTION}


def _parquet_rows(output_dir: Path) -> dict[str, int]:
    """Rows per published table, read from the Parquet footers just written."""
    folder = output_dir / PARQUET_DIR
    return {table: pq.read_metadata(folder / f"{table}.parquet").num_rows for table in published_tables()}


def release_materialisations(
    result: RunResult, output_dir: Path, classification_version: str
) -> Iterator[dg.MaterializeResult]:
    """One materialisation per published table, then the Parquet release, from the files on disk."""
    folder = output_dir / PARQUET_DIR
    rows = _parquet_rows(output_dir)
    common = {"run_id": result.run_id, "classification_version": classification_version}
    files = {}
    for table in published_tables():
        path = folder / f"{table}.parquet"
        files[path.name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        metadata = {
            **common,
            "dagster/row_count": rows[table],
            "path": dg.MetadataValue.path(str(path.resolve())),
        }
        if table == "quarantine":
            by_rule = result.summary["quarantine_by_rule"]
            metadata["quarantined_rows"] = len(
                _frame_columns(result.tables["quarantine"], ["source", "file", "sheet", "row_number"])
                .dropna(subset=["row_number"])
                .drop_duplicates()
            )
            metadata["quarantine_records_by_rule"] = dg.MetadataValue.json(by_rule)
        yield dg.MaterializeResult(asset_key=table_key(table), metadata=metadata)
    yield dg.MaterializeResult(
        asset_key=PARQUET_RELEASE_KEY,
        metadata={
            **common,
            "path": dg.MetadataValue.path(str(folder.resolve())),
            "run_summary": dg.MetadataValue.path(str((output_dir / RUN_SUMMARY).resolve())),
            "files": dg.MetadataValue.json(files),
            "total_bytes": sum(f["bytes"] for f in files.values()),
        },
    )


def controlled_materialisations(
    result: RunResult, output_dir: Path, classification_version: str
) -> Iterator[dg.MaterializeResult]:
    """One materialisation per released table, with what disclosure control withheld, then the folder."""
    folder = output_dir / RELEASE_DIR
    summary = result.release[DISCLOSURE_SUMMARY].to_pylist()
    rules = result.summary["release"]["disclosure_rules"]
    common = {"run_id": result.run_id, "classification_version": classification_version}
    files = {}
    for table in RELEASE_DESCRIPTIONS:
        path = folder / f"{table}.parquet"
        files[path.name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        rows = [r for r in summary if r["table_name"] == table]
        metadata = {
            **common,
            "disclosure_rules": rules,
            "dagster/row_count": pq.read_metadata(path).num_rows,
            "path": dg.MetadataValue.path(str(path.resolve())),
        }
        if rows:
            metadata["values_published"] = sum(r["published"] for r in rows)
            metadata["primary_suppressed"] = sum(r["primary_suppressed"] for r in rows)
            metadata["secondary_suppressed"] = sum(r["secondary_suppressed"] for r in rows)
            metadata["by_column"] = dg.MetadataValue.json(
                {
                    r["column_name"]: {
                        "published": r["published"],
                        "primary": r["primary_suppressed"],
                        "secondary": r["secondary_suppressed"],
                    }
                    for r in rows
                }
            )
        yield dg.MaterializeResult(asset_key=release_key(table), metadata=metadata)
    yield dg.MaterializeResult(
        asset_key=DISCLOSURE_RELEASE_KEY,
        metadata={
            **common,
            "disclosure_rules": rules,
            "path": dg.MetadataValue.path(str(folder.resolve())),
            "files": dg.MetadataValue.json(files),
            "tables": dg.MetadataValue.json(result.summary["release"]["tables"]),
        },
    )


def release_check(output_dir: Path, rules: DisclosureRules, settings=None) -> dg.AssetCheckResult:
    """``release_protected``, on the files as written (not the values in memory)."""
    folder = output_dir / RELEASE_DIR
    release = {table: pq.read_table(folder / f"{table}.parquet") for table in RELEASE_DESCRIPTIONS}
    disclosed = disclosures(release, rules, child_age_bands(settings))
    summary = release[DISCLOSURE_SUMMARY].to_pandas()
    unprotected = summary.loc[summary["unprotected_groups"] > 0]
    return dg.AssetCheckResult(
        check_name="release_protected",
        asset_key=DISCLOSURE_RELEASE_KEY,
        passed=disclosed.empty and unprotected.empty,
        severity=dg.AssetCheckSeverity.ERROR if len(disclosed) else dg.AssetCheckSeverity.WARN,
        metadata={
            "disclosure_rules": rules.version_id,
            "values_that_must_not_be_released": len(disclosed),
            "unprotected_groups": int(summary["unprotected_groups"].sum()),
            "sample": _sample(disclosed.astype(str)),
            "unprotected_by_column": dg.MetadataValue.json(
                {
                    f"{r.table_name}.{r.column_name}": int(r.unprotected_groups)
                    for r in unprotected.itertuples()
                }
            ),
        },
    )


def _frame_columns(table: object, columns: list[str]) -> pd.DataFrame:
    return table.select(columns).to_pandas() if isinstance(table, pa.Table) else table[columns]


def build_assets(source_names: Iterable[str] | None = None) -> list[dg.AssetsDefinition]:
    """Every stage's assets; by default one pair per source the registry finds under ``sources/``."""
    names = sorted(source_names if source_names is not None else available_sources())
    return [asset for name in names for asset in source_assets(name)] + publication_assets(names)
