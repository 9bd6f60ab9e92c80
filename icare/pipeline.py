"""One run: every source's files -> validated, harmonised, reconciled tables -> Parquet and DuckDB.

The CLI (``run``) and the Dagster assets (``pipelines/``) call the same stage functions here, so
both produce the same tables: ``discover_source`` -> ``extract_source`` (read, validate, seal) ->
``harmonise_source`` -> ``assemble_tables`` -> ``publish``. The CLI extracts a source's files at once
(``process_source``); Dagster extracts one collection year per partition and joins the years with
``combine_extractions``, which restores the order of extracting them at once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

import icare
from icare import corrections, manifest, quarantine
from icare import coverage as returns_coverage
from icare.classification import Classification, load_classification
from icare.disclosure import DisclosureRules, load_disclosure_rules, release_tables
from icare.memory import configure_allocators
from icare.population import Population, load_population
from icare.pseudonymise import KeyedIds, Pseudonymiser
from icare.publish import RELEASE_DIR, StagedOutputs, claim_output
from icare.reconciliation import reconcile
from icare.release import ReleaseContext, write_release_files
from icare.release.settings import ReleaseSettings, load_release_settings
from icare.run_summary import (
    input_files,
    rate_summary,
    release_summary,
    runs_table,
    summarise,
)
from icare.sources.base import Extraction, Harmonised, InputFile, Source, SourceInputError
from icare.sources.registry import available_sources, reader_class
from icare.sources.spec import load_source_spec
from icare.statistics import (
    StatisticsSettings,
    check_settings,
    compute_statistics,
    load_statistics_settings,
    rate_age_bands,
    reporting_periods,
)
from icare.vectorised import concat_encoded, in_appearance_order, is_sorted, sort_order
from schemas.outputs import column_names, to_arrow, with_level_columns

Progress = Callable[[str], None]


def _silent(message: str) -> None:
    """Default progress callback: say nothing."""


@dataclass
class RunOptions:
    sources: Mapping[str, Path]  # source id -> input folder (or file)
    output_dir: Path
    classification_path: Path | None = None
    crosswalk_path: Path | None = None
    progress: Progress = _silent
    statistics_path: Path | None = None  # another config/statistics.yaml
    disclosure_path: Path | None = None  # another config/disclosure.yaml
    release_path: Path | None = None  # another config/release.yaml (licence, citation)
    population_path: Path | None = None  # described population file (YAML) for rates; see population_paths
    strict: bool = False  # no failure policy: every failing value quarantines its row (``--strict``)
    # Publish when some returns cannot give figures, leaving their years out (icare.coverage);
    # by default the run stops on them.
    allow_incomplete: bool = False


@dataclass
class SourceResult:
    """One source's contribution, with nothing left that identifies a child.

    The raw tables are dropped once harmonised: what is kept is pseudonymised (episodes,
    children), redacted (quarantine) or about files (inputs, reconciliation, coverage).
    """

    name: str
    files: list[InputFile]
    harmonised: Harmonised
    reconciliation: pd.DataFrame
    quarantine: pd.DataFrame
    coverage: pd.DataFrame  # one row per return: complete, incomplete or missing (icare.coverage)
    corrections: pd.DataFrame = field(default_factory=corrections.empty)
    findings: pd.DataFrame = field(default_factory=manifest.findings_frame_empty)


@dataclass
class RunResult:
    run_id: str
    output_dir: Path
    tables: dict[str, pd.DataFrame | pa.Table]
    summary: dict
    timings: dict[str, float] = field(default_factory=dict)
    release: dict[str, pa.Table] = field(default_factory=dict)  # the disclosure-controlled tables


class StepTimer:
    """Times named steps and reports them through the progress callback."""

    def __init__(self, progress: Progress = _silent) -> None:
        self.timings: dict[str, float] = {}
        self.progress = progress

    def step(self, name: str, action: Callable[[], object]) -> object:
        self.progress(f"{name} ...")
        started = time.perf_counter()
        result = action()
        elapsed = time.perf_counter() - started
        self.timings[name] = round(elapsed, 3)
        self.progress(f"{name}: done in {elapsed:.1f} s")
        return result


def bundled_samples() -> dict[str, Path]:
    """The sample data shipped with each source (what ``icare run`` uses with no arguments)."""
    return {name: load_source_spec(name).sample_dir for name in available_sources()}


def is_bundled_sample(name: str, path: Path) -> bool:
    sample = load_source_spec(name).sample_dir.resolve()
    resolved = Path(path).resolve()
    return resolved == sample or sample in resolved.parents


def pseudonymiser_for(sources: Mapping[str, Path]) -> Pseudonymiser:
    """The key from the environment; the public development key only if every input is a sample."""
    sample_only = all(is_bundled_sample(name, path) for name, path in sources.items())
    return Pseudonymiser.from_environment(sample_only=sample_only)


def population_paths(sources: Mapping[str, Path], population_path: Path | None) -> list[Path]:
    """The population file given; else, when every input is a bundled sample, the samples' populations.

    Real returns without a population file get no rates (the tables are published empty): a
    population is an input with its own source and vintage, never assumed.
    """
    if population_path is not None:
        return [Path(population_path)]
    if not all(is_bundled_sample(name, path) for name, path in sources.items()):
        return []
    candidates = [load_source_spec(name).sample_population for name in sorted(sources)]
    return [path for path in candidates if path.is_file()]


def open_source(
    name: str, classification: Classification, pseudonymiser: Pseudonymiser, *, strict: bool = False
) -> Source:
    """The source's reader; ``strict``: without its failure policy (every failing value quarantines)."""
    return reader_class(name)(classification, pseudonymiser, strict=strict)


def discover_source(source: Source, path: Path, timer: StepTimer) -> list[InputFile]:
    files = timer.step(f"{source.name}: find files", lambda: source.discover(Path(path)))
    timer.progress(f"{source.name}: {len(files)} file(s) found below {path}")
    return files


def extract_source(source: Source, files: list[InputFile], timer: StepTimer) -> Extraction:
    """Read and validate ``files`` (all of a source's files, or one collection year's) and seal them.

    What comes out holds child keys, not child ids as received (``Source.seal``), so it can be
    stored between stages and combined with other years (``combine_extractions``).
    """
    name = source.name
    extraction = timer.step(f"{name}: read and validate", lambda: source.extract(files, timer.progress))
    return timer.step(f"{name}: pseudonymise", lambda: source.seal(extraction))


def combine_extractions(parts: list[Extraction]) -> Extraction:
    """Several sealed extractions of one source (e.g. one per collection year) as one.

    Files are put back in the order ``discover`` gives (by path), and every table, row and quarantine
    record in the order of its file, so the result equals what extracting all the files at once
    would give: harmonisation breaks ties by input order.
    """
    if not parts:
        raise SourceInputError("no extracted returns to combine")
    if any(not part.pseudonymised for part in parts):
        raise ValueError("only sealed extractions (Source.seal) are combined")
    if len(parts) == 1:
        return parts[0]
    files = sorted((f for part in parts for f in part.files), key=lambda f: f.path)
    rank = {f.file: position for position, f in enumerate(files)}

    def file_positions(frame: pd.DataFrame) -> np.ndarray:
        files = frame["file"]
        if isinstance(files.dtype, pd.CategoricalDtype):  # the held input: a rank per category
            ranks = np.array([rank[file] for file in files.cat.categories], dtype=np.int64)
            return ranks[files.cat.codes.to_numpy()]
        return files.map(rank).to_numpy()

    def in_file_order(frames: list[pd.DataFrame]) -> pd.DataFrame:
        # Parts joined in the order of their first file, categories unioned (pd.concat would turn
        # categoricals with different categories into text): per-year parts hold consecutive files,
        # so rows and categories come out as one extraction of all the files gives them.
        first_file = [int(file_positions(frame)[0]) if len(frame) else len(files) for frame in frames]
        ordered = [frames[i] for i in np.argsort(first_file, kind="stable")]
        frame = concat_encoded(ordered)
        positions = file_positions(frame)
        if len(positions) and (positions[1:] < positions[:-1]).any():
            frame = frame.iloc[np.argsort(positions, kind="stable")].reset_index(drop=True)
            for column in frame.columns:  # files of the parts interleave: categories as rows use them
                if isinstance(frame[column].dtype, pd.CategoricalDtype):
                    frame[column] = in_appearance_order(frame[column])
        return frame

    def tables_of(attribute: str) -> dict[str, pd.DataFrame]:
        names = dict.fromkeys(name for part in parts for name in getattr(part, attribute))
        return {
            name: in_file_order([getattr(p, attribute)[name] for p in parts if name in getattr(p, attribute)])
            for name in names
        }

    records = [part.quarantine for part in parts if len(part.quarantine)]
    fixes = [part.corrections for part in parts if len(part.corrections)]
    copies = [part.superseded for part in parts if len(part.superseded)]
    return Extraction(
        source=parts[0].source,
        files=files,
        tables=sorted((t for part in parts for t in part.tables), key=lambda t: rank[t.input.file]),
        valid=tables_of("valid"),
        rejected=tables_of("rejected"),
        quarantine=in_file_order(records) if records else parts[0].quarantine,
        corrections=in_file_order(fixes) if fixes else parts[0].corrections,
        findings=manifest.findings_frame([part.findings for part in parts]),
        superseded=pd.concat(copies, ignore_index=True) if copies else pd.DataFrame(),
        pseudonymised=True,
    )


def require_recognisable(source: Source, extraction: Extraction) -> None:
    """Stop when no file holds a table the source harmonises: the input folder is the wrong one."""
    harmonised_names = {t for t, spec in source.spec.tables.items() if spec.harmonised}
    if not any(t.table in harmonised_names and not t.missing_columns for t in extraction.tables):
        expected = " / ".join(
            f"{t} ({', '.join(source.spec.tables[t].columns)})" for t in sorted(harmonised_names)
        )
        folder = extraction.files[0].path.parent if extraction.files else ""
        raise SourceInputError(
            f"{source.name}: no recognisable table in {folder}: expected files or sheets whose column "
            f"headers are those of {expected}"
        )


def harmonise_source(source: Source, extraction: Extraction, timer: StepTimer) -> SourceResult:
    """Harmonise a sealed extraction and reconcile every row read; fail early when nothing is usable.

    The coverage of its returns is recorded, not enforced: ``process_source`` (``icare run``) and the
    ``returns_complete`` check (Dagster) stop on incomplete returns unless they are allowed.
    """
    name = source.name
    harmonised_names = {t for t, spec in source.spec.tables.items() if spec.harmonised}
    require_recognisable(source, extraction)
    coverage = returns_coverage.return_coverage(extraction, source.spec)
    if not extraction.pseudonymised:
        raise ValueError("harmonise_source needs a sealed extraction (extract_source)")
    if extraction.handed_over:  # said before anything reads the rows that are no longer there
        raise ValueError(f"{name}: the valid rows were already taken by an earlier harmonisation")
    findings = manifest.extraction_findings(extraction)  # before harmonisation takes the rows
    harmonised: Harmonised = timer.step(f"{name}: harmonise", lambda: source.harmonise(extraction))
    if len(extraction.superseded):  # exact copies of files, superseded before validation
        harmonised.superseded = _concat([harmonised.superseded, extraction.superseded])
    # The extraction's records were redacted when it was sealed; harmonisation's records carry child
    # keys where they show a child id, so redacting them needs no hashing.
    later = quarantine.redact(
        harmonised.quarantine,
        source.spec.identifier_policy,
        lambda area, child: KeyedIds().child_keys(name, area, child),
    )
    records = quarantine.with_messages(quarantine.combine([extraction.quarantine, later]))
    fixes = corrections.with_messages(extraction.corrections)
    reconciliation = reconcile(
        extraction.tables,
        harmonised_names,
        harmonised.accepted_rows,
        records,
        harmonised.superseded,
        fixes,
    )
    harmonised.quarantine = records
    harmonised.accepted_rows = harmonised.accepted_rows.iloc[0:0]  # only the reconciliation reads them
    return SourceResult(
        name, extraction.files, harmonised, reconciliation, records, coverage, fixes, findings=findings
    )


def process_source(
    source: Source, files: list[InputFile], timer: StepTimer, *, allow_incomplete: bool = False
) -> SourceResult:
    """Extract, validate, seal and harmonise one source (the ``icare run`` path).

    Unless ``allow_incomplete``, a return that cannot give figures stops the run here, before
    harmonisation and before anything is written (``icare.coverage.require_complete``).
    """
    extraction = extract_source(source, files, timer)
    if not allow_incomplete:
        require_recognisable(source, extraction)
        coverage = returns_coverage.return_coverage(extraction, source.spec)
        returns_coverage.require_complete(coverage, {source.name: source.spec})
    return harmonise_source(source, extraction, timer)


def run_id_for(
    results: list[SourceResult],
    classification: Classification,
    settings: StatisticsSettings,
    disclosure: DisclosureRules | None = None,
    population: Population | None = None,
) -> str:
    """Same inputs, versions, settings and rules -> same id, so a re-run is recognisable in ``runs``."""
    digest = hashlib.sha256()
    digest.update(icare.__version__.encode())
    digest.update(classification.version_id.encode())
    digest.update(settings.to_json().encode())
    if disclosure is not None:
        digest.update(disclosure.to_json().encode())
    for file in population.files if population is not None else ():
        digest.update(f"population|{file.sha256}".encode())
    for result in results:
        digest.update(result.harmonised.versions.get("concordance", "").encode())
        for f in result.files:
            digest.update(f"{f.source}|{f.file}|{f.sha256}".encode())
    return digest.hexdigest()[:16]


def run(options: RunOptions) -> RunResult:
    """The whole pipeline in one process (the ``icare run`` path). The output folder is claimed once
    the settings and the key are known good and before any input is read: made, checked writable,
    cleared of a killed run's left-overs and locked against other runs until the end
    (``icare.output_folder``)."""
    with ExitStack() as claims:
        return _run(options, lambda: claims.enter_context(claim_output(options.output_dir)))


def _run(options: RunOptions, claim_output_folder: Callable[[], object]) -> RunResult:
    configure_allocators()
    started_at = datetime.now(UTC)
    timer = StepTimer(options.progress)
    for name in options.sources:
        reader_class(name)  # an unknown source stops here, naming the known ones
    classification = load_classification(options.classification_path, options.crosswalk_path)
    settings = check_settings(load_statistics_settings(options.statistics_path), classification)
    disclosure = load_disclosure_rules(options.disclosure_path)
    release_settings = load_release_settings(options.release_path)
    population = load_population(population_paths(options.sources, options.population_path))
    if population is not None:
        rate_age_bands(settings)  # settings that rates cannot honour stop before any input is read
    pseudonymiser = pseudonymiser_for(options.sources)
    claim_output_folder()
    results = []
    for name, path in sorted(options.sources.items()):
        source = open_source(name, classification, pseudonymiser, strict=options.strict)
        files = discover_source(source, path, timer)
        results.append(process_source(source, files, timer, allow_incomplete=options.allow_incomplete))
    tables = timer.step("assemble tables", lambda: assemble_tables(results, classification))
    for result in results:
        result.harmonised.release_frames()  # the assembled tables hold their rows now
    # The episodes validated and converted to Arrow once, and the pandas frame dropped: DuckDB reads
    # Arrow faster than pandas, writing them needs the same conversion, and one copy is held, not two.
    # Their text stays dictionary-encoded (half the memory) until the write decodes it.
    tables["episodes"] = timer.step(
        "validate episodes", lambda: to_arrow(tables["episodes"], "episodes", encoded=True)
    )
    run_id = run_id_for(results, classification, settings, disclosure, population)
    with StagedOutputs(options.output_dir, run_id, classification.version_id) as staging:
        # The assembled tables are final: written in the background while the statistics run, and
        # so is each statistics table as soon as it is made (the large spells come early).
        staging.write(tables)
        tables |= timer.step(
            "statistics",
            lambda: statistics_tables(
                tables,
                [r.name for r in results],
                classification,
                settings,
                population,
                on_table=lambda name, table: staging.write({name: table}),
                progress=timer.progress,
            ),
        )
        return publish(
            results,
            tables,
            classification,
            pseudonymiser,
            settings,
            options.output_dir,
            timer,
            started_at,
            disclosure,
            population=population,
            staging=staging,
            release_settings=release_settings,
        )


def statistics_tables(
    tables: Mapping[str, pd.DataFrame | pa.Table],
    source_names: list[str],
    classification: Classification,
    settings: StatisticsSettings,
    population: Population | None = None,
    on_table: Callable[[str, pa.Table], object] | None = None,
    progress: Progress | None = None,
) -> dict[str, object]:
    """Spells and the published statistics, computed in DuckDB over the assembled episodes; rates
    when a population is given. ``on_table``, ``progress``: see ``compute_statistics``."""
    specs = {name: load_source_spec(name) for name in source_names}
    # The years of returns that cannot give figures are left out (icare.coverage).
    periods = returns_coverage.complete_periods(
        reporting_periods(tables["inputs"], specs), tables.get("coverage"), specs
    )
    gap_days = {name: spec.care_spell_gap_days for name, spec in specs.items()}
    return compute_statistics(
        tables["episodes"],
        periods,
        classification,
        settings,
        gap_days,
        population=population.table if population is not None else None,
        on_table=on_table,
        progress=progress,
    )


def publish(
    results: list[SourceResult],
    tables: dict[str, pd.DataFrame | pa.Table],
    classification: Classification,
    pseudonymiser: Pseudonymiser,
    settings: StatisticsSettings,
    output_dir: Path,
    timer: StepTimer,
    started_at: datetime,
    disclosure: DisclosureRules | None = None,
    population: Population | None = None,
    staging: StagedOutputs | None = None,
    release_settings: ReleaseSettings | None = None,
) -> RunResult:
    """Add the ``runs`` row, apply disclosure control to the aggregates for the release, and write
    everything atomically (tables as pandas frames or Arrow). ``disclosure`` defaults to
    ``config/disclosure.yaml``. ``staging``: the run's staging folder, if some tables are already
    being written to it (``icare run``); the tables it has not been given are written too.
    ``release_settings`` (title, licence, citation of the release folder) default to
    ``config/release.yaml``."""
    disclosure = disclosure or load_disclosure_rules()
    release_settings = release_settings or load_release_settings()
    run_id = run_id_for(results, classification, settings, disclosure, population)
    if staging is not None and (staging.run_id != run_id or staging.output_dir != output_dir):
        raise ValueError(f"the staging folder {staging.folder} is not this run's (run id {run_id})")
    # A staging folder given stays the caller's to close (``run``); otherwise this one is opened here.
    opened = (
        nullcontext(staging)
        if staging is not None
        else StagedOutputs(output_dir, run_id, classification.version_id)
    )
    with opened as staged:
        return _publish(
            results,
            tables,
            classification,
            pseudonymiser,
            settings,
            timer,
            started_at,
            disclosure,
            population,
            staged,
            release_settings,
        )


def _publish(
    results: list[SourceResult],
    tables: dict[str, pd.DataFrame | pa.Table],
    classification: Classification,
    pseudonymiser: Pseudonymiser,
    settings: StatisticsSettings,
    timer: StepTimer,
    started_at: datetime,
    disclosure: DisclosureRules,
    population: Population | None,
    staging: StagedOutputs,
    release_settings: ReleaseSettings,
) -> RunResult:
    """``publish`` into an open staging folder: the writer works on the tables while disclosure
    control runs; ``runs`` is made once it is done, so its timings include the write."""
    tables = dict(tables)
    staging.write({name: table for name, table in tables.items() if name not in staging.names})
    release = timer.step("disclosure control", lambda: release_tables(tables, disclosure, settings))
    summary = (
        summarise(tables, classification)
        | {"run_id": staging.run_id, "release": release_summary(release, disclosure)}
        | rate_summary(tables, population)
    )
    metadata = {
        b"icare.disclosure_rules": disclosure.version_id.encode(),
        b"icare.disclosure_rules_json": disclosure.to_json().encode(),
    }
    staging.write_release(release, metadata, summary)
    # The writer has been writing since it was given the tables (overlapping the statistics in
    # ``icare run``): its own time, and how long the run then waited for it, both go in ``runs``.
    timer.step("write outputs: wait for the writer", staging.wait)
    timer.timings["write outputs: writer busy"] = round(staging.busy_seconds, 3)
    previous = staging.output_dir / RELEASE_DIR
    context = ReleaseContext(
        folder=staging.folder / RELEASE_DIR,
        run_id=staging.run_id,
        started_at=started_at,
        tables=release,
        classification=classification,
        disclosure=disclosure,
        summary=summary,
        previous=previous if previous.is_dir() else None,
        settings=release_settings,
        statistics=settings,
        concordance_versions={r.name: r.harmonised.versions.get("concordance", "") for r in results},
        sample_data=bool(results)
        and all(is_bundled_sample(f.source, f.path) for r in results for f in r.files),
    )
    timer.step("write outputs: release files", lambda: write_release_files(context))
    tables["runs"] = runs_table(
        staging.run_id,
        started_at,
        classification,
        pseudonymiser,
        settings,
        results,
        summary,
        timer,
        disclosure,
        population,
    )
    timer.step(
        "write outputs: runs, data dictionary and swap",
        lambda: staging.finish({"runs": tables["runs"]}, summary),
    )
    return RunResult(staging.run_id, staging.output_dir, tables, summary, timer.timings, release)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The sources' frames one after the other; text held as categoricals stays encoded, the
    categories of the sources unioned (``concat_encoded``)."""
    frames = [f for f in frames if len(f)] or frames[:1]
    if len(frames) == 1:  # one source: no copy
        return frames[0].reset_index(drop=True)
    if any(isinstance(dtype, pd.CategoricalDtype) for frame in frames for dtype in frame.dtypes):
        return concat_encoded(frames)
    return pd.concat(frames, ignore_index=True)


def _sorted(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Rows in a fixed order, so the same input always gives byte-identical outputs.

    A table already in that order (a single source's episodes) is kept as it is, not copied.
    """
    if is_sorted(*(frame[c] for c in columns)):
        return frame.reset_index(drop=True)
    return frame.iloc[sort_order(*(frame[c] for c in columns))].reset_index(drop=True)


# Quarantine and correction records: by where they point, then the column and rule.
_RECORD_ORDER = ("source", "file", "sheet", "row_number", "column_name", "rule")


def assemble_tables(results: list[SourceResult], classification: Classification) -> dict[str, pd.DataFrame]:
    """The published tables (all but ``runs``), sorted so the same input always gives the same tables."""
    concordance = _concat([r.harmonised.concordance.assign(source=r.name) for r in results])
    concordance = concordance[["source", *[c for c in concordance.columns if c != "source"]]]
    episodes = _concat([r.harmonised.episodes for r in results])
    return {
        "episodes": _sorted(episodes, "source", "area_code", "child_key", "episode_start", "collection_year"),
        "children": _sorted(
            _concat([r.harmonised.children for r in results]), "source", "area_code", "child_key"
        ),
        "quarantine": _sorted(_concat([r.quarantine for r in results]), *_RECORD_ORDER),
        "corrections": _sorted(_concat([r.corrections for r in results]), *_RECORD_ORDER),
        "superseded": _sorted(
            _concat([r.harmonised.superseded for r in results]), "source", "file", "sheet", "row_number"
        ),
        "return_findings": manifest.findings_frame([r.findings for r in results]),
        "reconciliation": _concat([r.reconciliation for r in results]),
        "coverage": returns_coverage.combine(r.coverage for r in results),
        "inputs": _sorted(pd.DataFrame(input_files(results)), "source", "file"),
        "icare_classification": _classification_table(classification),
        "icare_dimensions": classification.dimensions_frame(),
        "concordance": concordance,
    }


def _classification_table(classification: Classification) -> pd.DataFrame:
    """The classification with the published ancestor columns, whatever its depth."""
    frame = with_level_columns(classification.to_frame(), "level")
    return frame[column_names("icare_classification")]
