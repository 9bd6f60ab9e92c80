"""What starts runs without a person: the landing sensor and the yearly full refresh.

- ``icare_landing_sensor`` watches each source's input folder (``<landing_dir>/<source>/`` or the
  configured ``sources``), hashes every return file (SHA-256, as ``discover`` does) and compares the
  hashes with its cursor. A new or changed file re-runs only its collection year's partition of
  ``<source>_returns``; a new year is added as a partition first; a year whose files are all gone has
  its partition deleted and the tables republished. Unchanged files are never re-run: the cursor
  remembers their hashes, and each run request carries a run key made of the year's file hashes,
  which Dagster never launches twice for one sensor. Default status STOPPED: turn it on once the
  landing folder is set, so that starting ``dg dev`` on a laptop never launches runs by itself.
- ``<source>_yearly_refresh`` re-runs every collection year of a source once a year (cron
  ``$ICARE_REFRESH_CRON``, default 02:00 on 1 August, after the returns are final), for example
  after a new classification or concordance version. Default status STOPPED.

Both only re-run ``<source>_returns`` partitions: the unpartitioned stages follow through their
automation condition (``AutomationCondition.eager``) when ``default_automation_condition_sensor`` is
on, once every year of the source is ingested. Nothing here reads a return's content beyond hashing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import dagster as dg

from icare.discovery import discover
from icare.sources.base import InputFile, SourceInputError
from icare.sources.spec import load_source_spec
from pipelines.assets import files_by_partition, partitions_for
from pipelines.resources import IcareSettings

LANDING_SENSOR = "icare_landing_sensor"
PUBLISH_JOB = "icare_publish"
REFRESH_CRON_ENVIRONMENT_VARIABLE = "ICARE_REFRESH_CRON"
DEFAULT_REFRESH_CRON = "0 2 1 8 *"
REFRESH_TIMEZONE_ENVIRONMENT_VARIABLE = "ICARE_REFRESH_TIMEZONE"
LANDING_INTERVAL_ENVIRONMENT_VARIABLE = "ICARE_LANDING_INTERVAL_SECONDS"


def ingest_job_name(source: str) -> str:
    return f"{source}_ingest"


def _year_digest(files: Iterable[InputFile]) -> str:
    digest = hashlib.sha256()
    for line in sorted(f"{f.file}|{f.sha256}" for f in files):
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()[:16]


@cache
def ingest_job(source: str) -> dg.UnresolvedAssetJobDefinition:
    """One collection year of one source: a partition of ``<source>_returns``."""
    return dg.define_asset_job(
        ingest_job_name(source),
        selection=[f"{source}_returns"],
        description=f"Read, validate and seal one collection year of {source} (one partition).",
    )


PUBLISH_JOB_DEF = dg.define_asset_job(
    PUBLISH_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("ingestion"),
    description="Combine every source's ingested years, harmonise, compute the statistics and publish "
    "(everything but the per-year <source>_returns partitions).",
)


def _discover(source: str, path: Path) -> list[InputFile]:
    """The source's files with their checksums, found as the assets will find them."""
    return discover(path, load_source_spec(source))


def landing_sensor(source_names: Iterable[str]) -> dg.SensorDefinition:
    """The landing-folder sensor over the given sources (see the module docstring)."""
    names = sorted(source_names)

    @dg.sensor(
        name=LANDING_SENSOR,
        jobs=[*(ingest_job(n) for n in names), PUBLISH_JOB_DEF],
        minimum_interval_seconds=int(os.environ.get(LANDING_INTERVAL_ENVIRONMENT_VARIABLE, "300")),
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="New or changed return files (by SHA-256) below each source's input folder: add "
        "their collection year as a partition and re-run only that partition of <source>_returns.",
    )
    def sensor(context: dg.SensorEvaluationContext, icare_settings: IcareSettings) -> dg.SensorResult:
        cursor: dict[str, dict[str, list[str]]] = json.loads(context.cursor) if context.cursor else {}
        run_requests: list[dg.RunRequest] = []
        partition_requests: list[dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest] = []
        try:
            paths = icare_settings.source_paths()
        except SourceInputError as exc:
            return dg.SensorResult(skip_reason=str(exc))
        for source in names:
            if source not in paths:
                continue
            try:
                files = _discover(source, paths[source])
            except SourceInputError as exc:
                context.log.warning(str(exc))
                continue
            partitions = partitions_for(source)
            registered = set(context.instance.get_dynamic_partitions(partitions.name))
            by_year = files_by_partition(files)
            seen = cursor.get(source, {})
            changed = {
                year
                for year, year_files in by_year.items()
                for f in year_files
                if seen.get(f.file, [""])[0] != f.sha256
            }
            present = set(by_year)
            removed = {year for _, year in seen.values() if year not in present} | (registered - present)
            # A year on disk that the instance does not know (a new year, or a wiped instance) runs too.
            changed |= present - registered
            if present - registered:
                partition_requests.append(partitions.build_add_request(sorted(present - registered)))
            removed &= registered
            if removed:
                partition_requests.append(partitions.build_delete_request(sorted(removed)))
            for year in sorted(changed):
                run_requests.append(
                    dg.RunRequest(
                        run_key=f"{source}:{year}:{_year_digest(by_year[year])}",
                        job_name=ingest_job_name(source),
                        partition_key=year,
                        tags={"icare/trigger": "landing", "icare/source": source},
                    )
                )
            if removed and not changed:
                # Nothing to ingest, but the published tables still hold the removed years.
                run_requests.append(
                    dg.RunRequest(
                        run_key=f"{source}:removed:{','.join(sorted(removed))}:{_year_digest(files)}",
                        job_name=PUBLISH_JOB,
                        tags={"icare/trigger": "landing", "icare/source": source},
                    )
                )
            cursor[source] = {f.file: [f.sha256, year] for year, fs in by_year.items() for f in fs}
            if changed or removed:
                context.log.info(
                    f"{source}: run collection year(s) {sorted(changed)}; removed {sorted(removed)}"
                )
        return dg.SensorResult(
            run_requests=run_requests,
            dynamic_partitions_requests=partition_requests,
            cursor=json.dumps(cursor, sort_keys=True),
        )

    return sensor


def yearly_refresh(source: str) -> dg.ScheduleDefinition:
    """Re-run every registered collection year of ``source`` (then the tables follow, see above)."""

    @dg.schedule(
        name=f"{source}_yearly_refresh",
        job=ingest_job(source),
        cron_schedule=os.environ.get(REFRESH_CRON_ENVIRONMENT_VARIABLE, DEFAULT_REFRESH_CRON),
        execution_timezone=os.environ.get(REFRESH_TIMEZONE_ENVIRONMENT_VARIABLE, "UTC"),
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Full refresh of {source}: every collection year partition of {source}_returns, "
        "then the harmonised and published tables through their automation condition.",
    )
    def schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
        years = sorted(context.instance.get_dynamic_partitions(partitions_for(source).name))
        if not years:
            return dg.SkipReason(f"{source}: no collection year registered yet (turn on {LANDING_SENSOR})")
        stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
        return [
            dg.RunRequest(
                run_key=f"{source}:refresh:{stamp}:{year}",
                partition_key=year,
                tags={"icare/trigger": "yearly_refresh", "icare/source": source},
            )
            for year in years
        ]

    return schedule
