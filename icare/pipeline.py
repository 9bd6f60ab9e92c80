"""One run: every source's files -> validated, harmonised, reconciled tables -> Parquet and DuckDB.

The CLI and the Dagster assets both call these functions, so both produce the same tables.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

import icare
from icare import quarantine
from icare.classification import Classification, load_classification
from icare.pseudonymise import Pseudonymiser
from icare.publish import write_outputs
from icare.reconciliation import reconcile
from icare.sources.base import Extraction, Harmonised, SourceInputError
from icare.sources.registry import reader_class
from icare.sources.spec import load_source_spec
from icare.vectorised import sort_order

Progress = Callable[[str], None]


@dataclass
class RunOptions:
    sources: Mapping[str, Path]  # source id -> input folder (or file)
    output_dir: Path
    classification_path: Path | None = None
    crosswalk_path: Path | None = None
    progress: Progress = lambda message: None


@dataclass
class SourceResult:
    name: str
    extraction: Extraction
    harmonised: Harmonised
    reconciliation: pd.DataFrame
    quarantine: pd.DataFrame


@dataclass
class RunResult:
    run_id: str
    output_dir: Path
    tables: dict[str, pd.DataFrame]
    summary: dict
    timings: dict[str, float] = field(default_factory=dict)


def bundled_samples() -> dict[str, Path]:
    """The sample data shipped with each source (what ``icare run`` uses with no arguments)."""
    from icare.sources.registry import available_sources

    return {name: load_source_spec(name).sample_dir for name in available_sources()}


def _is_bundled_sample(name: str, path: Path) -> bool:
    sample = load_source_spec(name).sample_dir.resolve()
    resolved = Path(path).resolve()
    return resolved == sample or sample in resolved.parents


class _Timer:
    def __init__(self, progress: Progress) -> None:
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


def process_source(
    name: str, path: Path, classification: Classification, pseudonymiser: Pseudonymiser, timer: _Timer
) -> SourceResult:
    """Discover, extract, validate and harmonise one source; fail early when nothing is usable."""
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
    harmonised: Harmonised = timer.step(f"{name}: harmonise", lambda: source.harmonise(extraction))
    records = quarantine.combine([extraction.quarantine, harmonised.quarantine])
    records = quarantine.with_messages(
        quarantine.redact(records, source.spec.identifier_policy, pseudonymiser.values)
    )
    reconciliation = reconcile(
        extraction.tables, harmonised_names, harmonised.accepted_rows, records, harmonised.superseded
    )
    return SourceResult(name, extraction, harmonised, reconciliation, records)


def run_id_for(options: RunOptions, results: list[SourceResult], classification: Classification) -> str:
    """Same inputs and versions -> same id, so a re-run is recognisable in the ``runs`` table."""
    digest = hashlib.sha256()
    digest.update(icare.__version__.encode())
    digest.update(classification.version_id.encode())
    for result in results:
        digest.update(result.harmonised.versions.get("concordance", "").encode())
        for f in result.extraction.files:
            digest.update(f"{f.source}|{f.file}|{f.sha256}".encode())
    return digest.hexdigest()[:16]


def run(options: RunOptions) -> RunResult:
    started_at = datetime.now(UTC)
    timer = _Timer(options.progress)
    classification = load_classification(options.classification_path, options.crosswalk_path)
    sample_only = all(_is_bundled_sample(name, path) for name, path in options.sources.items())
    pseudonymiser = Pseudonymiser.from_environment(sample_only=sample_only)
    results = [
        process_source(name, Path(path), classification, pseudonymiser, timer)
        for name, path in sorted(options.sources.items())
    ]
    run_id = run_id_for(options, results, classification)
    tables = timer.step("assemble tables", lambda: assemble_tables(results, classification))
    summary = summarise(results, tables, classification) | {"run_id": run_id}
    tables["runs"] = _runs_table(run_id, started_at, classification, pseudonymiser, results, summary, timer)
    timer.step(
        "write outputs",
        lambda: write_outputs(tables, summary, options.output_dir, run_id),
    )
    return RunResult(run_id, options.output_dir, tables, summary, timer.timings)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True)


def _sorted(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Rows in a fixed order, so the same input always gives byte-identical outputs."""
    return frame.iloc[sort_order(*(frame[c] for c in columns))].reset_index(drop=True)


def assemble_tables(results: list[SourceResult], classification: Classification) -> dict[str, pd.DataFrame]:
    """The published tables, sorted so that the same input always gives the same tables."""
    episodes = _concat([r.harmonised.episodes for r in results])
    children = _concat([r.harmonised.children for r in results])
    quarantined = _concat([r.quarantine for r in results])
    superseded = _concat([r.harmonised.superseded for r in results])
    reconciliation = _concat([r.reconciliation for r in results])
    inputs = pd.DataFrame(
        [
            {
                "source": f.source,
                "file": f.file,
                "sha256": f.sha256,
                "size_bytes": f.size_bytes,
                "collection_year": f.collection_year,
                "area_code": f.area_code,
            }
            for r in results
            for f in r.extraction.files
        ]
    )
    concordance = _concat([r.harmonised.concordance.assign(source=r.name) for r in results])
    concordance = concordance[["source", *[c for c in concordance.columns if c != "source"]]]
    tables = {
        "episodes": _sorted(episodes, "source", "area_code", "child_key", "episode_start", "collection_year"),
        "children": _sorted(children, "source", "area_code", "child_key"),
        "quarantine": _sorted(quarantined, "source", "file", "sheet", "row_number", "column_name", "rule"),
        "superseded": _sorted(superseded, "source", "file", "sheet", "row_number"),
        "reconciliation": reconciliation.reset_index(drop=True),
        "inputs": inputs.sort_values(["source", "file"], ignore_index=True),
        "icare_classification": classification.to_frame(),
        "icare_dimensions": classification.dimensions_frame(),
    }
    tables["concordance"] = concordance
    return tables


def summarise(results: list[SourceResult], tables: dict[str, pd.DataFrame], classification) -> dict:
    reconciliation = tables["reconciliation"]
    counts = reconciliation.groupby("source")[
        ["rows_read", "rows_accepted", "rows_quarantined", "rows_superseded", "rows_not_harmonised"]
    ].sum()
    episodes = tables["episodes"]
    by_level1 = (
        episodes.groupby(["source", "icare_level1"]).size().rename("episodes").reset_index()
        if len(episodes)
        else pd.DataFrame(columns=["source", "icare_level1", "episodes"])
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
    }


def _runs_table(run_id, started_at, classification, pseudonymiser, results, summary, timer) -> pd.DataFrame:
    inputs = [
        {
            "source": f.source,
            "file": f.file,
            "sha256": f.sha256,
            "bytes": f.size_bytes,
            "collection_year": f.collection_year,
            "area_code": f.area_code,
        }
        for r in results
        for f in r.extraction.files
    ]
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
                "inputs": json.dumps(inputs),
                "row_counts": json.dumps(summary["rows"]),
                "timings": json.dumps(timer.timings),
            }
        ]
    )
