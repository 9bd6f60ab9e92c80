"""The Dagster code location of icare (``dg dev`` / ``dg check defs`` load ``defs`` from here).

Thin on purpose: the stages are ``icare`` functions; this module only wires assets, jobs, the
landing sensor, the yearly schedule, the settings resource and the IO manager together. See
docs/dagster.md and docs/operations.md.
"""

from __future__ import annotations

import dagster as dg

from icare.sources.registry import available_sources
from pipelines.assets import build_assets
from pipelines.automation import PUBLISH_JOB_DEF, ingest_job, landing_sensor, yearly_refresh
from pipelines.resources import IcareSettings

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
    # Each step in its own process: the years of a source are extracted in parallel runs (or steps of
    # a backfill); writing DuckDB is serialised by the icare_duckdb_writer pool (dagster.yaml).
    executor=dg.multiprocess_executor,
)
