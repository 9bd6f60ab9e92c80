"""The Dagster code location of icare (``dg dev`` / ``dg check defs`` load ``defs`` from here).

Thin on purpose: the stages are ``icare`` functions; this module only wires assets, jobs, the
landing sensor, the yearly schedule, the settings resource and the IO manager together. See
docs/dagster.md and docs/operations.md.
"""

from __future__ import annotations

import os

import dagster as dg

from icare.memory import configure_allocators
from icare.sources.registry import available_sources
from pipelines.assets import build_assets
from pipelines.automation import PUBLISH_JOB_DEF, ingest_job, landing_sensor, yearly_refresh
from pipelines.resources import IcareSettings

# Every step process allocates as `icare run` does (icare/memory.py).
configure_allocators()

EXECUTOR_ENVIRONMENT_VARIABLE = "ICARE_EXECUTOR"


def executor_from_environment() -> dg.ExecutorDefinition:
    """``multiprocess`` (default): each step in its own process on this machine. ``k8s``: each step
    in its own Kubernetes job; ``celery``: steps on Celery workers (extras ``deploy``, see
    docs/operations.md). Read when the code location loads, so every process of a deployment agrees.
    """
    kind = os.environ.get(EXECUTOR_ENVIRONMENT_VARIABLE, "multiprocess")
    if kind == "multiprocess":
        return dg.multiprocess_executor
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor  # optional extra: pip install -e ".[deploy]"

        return k8s_job_executor
    if kind == "celery":
        from dagster_celery import celery_executor  # optional extra: pip install -e ".[deploy]"

        return celery_executor
    raise ValueError(f"{EXECUTOR_ENVIRONMENT_VARIABLE}={kind!r}: expected multiprocess, k8s or celery")


SOURCES = sorted(available_sources())
# Per source: <source>_returns (one partition per collection year) and <source>_harmonised; then
# assembly, statistics and publication.
ASSETS = build_assets(SOURCES)

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[*(ingest_job(name) for name in SOURCES), PUBLISH_JOB_DEF],
    sensors=[landing_sensor(SOURCES)],
    schedules=[yearly_refresh(name) for name in SOURCES],
    resources={
        # The landing folder ($ICARE_LANDING_DIR) or, without one, the bundled sample, written to
        # $ICARE_OUTPUT_DIR or outputs/; override in the launchpad.
        "icare_settings": IcareSettings(),
        # Values passed between assets (icare dataclasses holding pandas frames) are pickled under
        # $DAGSTER_HOME/storage/ (a temporary folder when DAGSTER_HOME is unset). No stored value holds
        # a child identifier as received: the returns are sealed (child keys) before they are returned.
        "io_manager": dg.FilesystemIOManager(),
    },
    # Each step in its own process (or Kubernetes job, or Celery task): the years of a source are
    # extracted in parallel runs; writing DuckDB is serialised by the icare_duckdb_writer pool.
    executor=executor_from_environment(),
)
