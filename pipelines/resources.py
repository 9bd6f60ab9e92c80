"""The one Dagster resource: where the returns are, where outputs go, which classification to use.

Everything here only gathers settings and hands them to ``icare``: the same loaders and the same
key rule as the ``icare run`` command, so both paths see the same inputs.

The pseudonymisation key is deliberately *not* a field. ``Pseudonymiser.from_environment`` reads
``ICARE_PSEUDONYM_KEY`` in the process that runs the step, which keeps the key out of Dagster's run
configuration and event log, and keeps the rule of the CLI: no key is needed for the bundled
synthetic sample (the public development key is used), while real returns without a key stop the
run. ``dg.EnvVar`` cannot express that rule because it fails when the variable is unset; for the
same reason the output folder's ``$ICARE_OUTPUT_DIR`` default is read when a step runs, not through
``dg.EnvVar``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from pydantic import Field

from icare.classification import Classification, load_classification
from icare.pipeline import RunOptions, bundled_samples, pseudonymiser_for
from icare.pseudonymise import Pseudonymiser
from icare.sources.registry import reader_class
from icare.statistics import StatisticsSettings, check_settings, load_statistics_settings

OUTPUT_DIR_ENVIRONMENT_VARIABLE = "ICARE_OUTPUT_DIR"
DEFAULT_OUTPUT_DIR = "outputs"


class IcareSettings(dg.ConfigurableResource):
    """Inputs and outputs of an icare run (the Dagster counterpart of the ``icare run`` options).

    Relative paths are resolved against the working directory of the process that runs the step
    (the repository root when ``dg dev`` is started there), as for the CLI.
    """

    sources: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Source id -> folder (or file) of its returns, e.g. {'ssda903': 'returns/'}. "
            "Empty: the bundled synthetic sample of every source. Sources not listed are not read."
        ),
    )
    output_dir: str | None = Field(
        default=None,
        description=(
            "Folder for icare.duckdb, parquet/ and run.json (replaced atomically on publication). "
            f"Default: ${OUTPUT_DIR_ENVIRONMENT_VARIABLE} if set, else {DEFAULT_OUTPUT_DIR}/."
        ),
    )
    classification_path: str | None = Field(
        default=None, description="Another version of the ICare classification (YAML); default: shipped."
    )
    crosswalk_path: str | None = Field(
        default=None, description="Crosswalk CSV from the provisional AC.* codes onto classification_path."
    )

    statistics_path: str | None = Field(
        default=None, description="Another statistics settings file (YAML); default: config/statistics.yaml."
    )

    def statistics_settings(self) -> StatisticsSettings:
        settings = load_statistics_settings(Path(self.statistics_path) if self.statistics_path else None)
        return check_settings(settings, self.classification())

    def source_paths(self) -> dict[str, Path]:
        """The sources this run reads; an unknown source id fails here, with the known ones listed."""
        if not self.sources:
            return bundled_samples()
        for name in self.sources:
            reader_class(name)  # raises UnknownSourceError naming the known sources
        return {name: Path(path) for name, path in self.sources.items()}

    def output_path(self) -> Path:
        """Resolved when a step runs, so ``$ICARE_OUTPUT_DIR`` is read in the process that writes."""
        return Path(self.output_dir or os.environ.get(OUTPUT_DIR_ENVIRONMENT_VARIABLE) or DEFAULT_OUTPUT_DIR)

    def run_options(self, progress: Callable[[str], None] = lambda message: None) -> RunOptions:
        return RunOptions(
            sources=self.source_paths(),
            output_dir=self.output_path(),
            classification_path=Path(self.classification_path) if self.classification_path else None,
            crosswalk_path=Path(self.crosswalk_path) if self.crosswalk_path else None,
            progress=progress,
            statistics_path=Path(self.statistics_path) if self.statistics_path else None,
        )

    def classification(self) -> Classification:
        options = self.run_options()
        return load_classification(options.classification_path, options.crosswalk_path)

    def pseudonymiser(self) -> Pseudonymiser:
        """The key rule of ``icare.pipeline.run``: the development key only if every input is a sample."""
        return pseudonymiser_for(self.source_paths())
