"""The Dagster code location of icare (``dg dev`` / ``dg check defs`` load ``defs`` from here).

Thin on purpose: the stages are ``icare`` functions; this module only wires assets, the settings
resource and the IO manager together. See docs/dagster.md.
"""

from __future__ import annotations

import dagster as dg

from pipelines.assets import build_assets
from pipelines.resources import IcareSettings

# One pair of source assets per source folder the registry knows, then assembly and publication.
ASSETS = build_assets()

# Every asset, in dependency order: a whole run, equivalent to ``icare run``.
icare_full_run = dg.define_asset_job(
    "icare_full_run",
    selection=dg.AssetSelection.all(),
    description="Read, validate, harmonise and publish every configured source (the `icare run` path).",
)

defs = dg.Definitions(
    assets=ASSETS,
    jobs=[icare_full_run],
    resources={
        # The bundled sample, written to $ICARE_OUTPUT_DIR or outputs/; override in the launchpad.
        "icare_settings": IcareSettings(),
        # Values passed between assets (icare dataclasses holding pandas frames) are pickled under
        # $DAGSTER_HOME/storage/ (a temporary folder when DAGSTER_HOME is unset). No stored value holds
        # a child identifier as received: the source assets pseudonymise before they return.
        "io_manager": dg.FilesystemIOManager(),
    },
)
