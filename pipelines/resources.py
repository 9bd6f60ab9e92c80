"""The one Dagster resource: where the returns are, where outputs go, which classification to use.

Every path can come from the run configuration (the fields) or, when a field is not set, from an
environment variable of the process that runs the step or sensor (``ICARE_LANDING_DIR``,
``ICARE_OUTPUT_DIR``, ``ICARE_CLASSIFICATION``, ``ICARE_CROSSWALK``, ``ICARE_STATISTICS``,
``ICARE_DISCLOSURE``, ``ICARE_POPULATION``); nothing is a constant in code except the fallbacks of
``icare run`` (bundled sample, ``outputs/``).

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
from icare.disclosure import DisclosureRules, load_disclosure_rules
from icare.pipeline import RunOptions, bundled_samples, population_paths, pseudonymiser_for
from icare.population import Population, load_population
from icare.pseudonymise import Pseudonymiser
from icare.release.settings import ReleaseSettings, load_release_settings
from icare.sources.base import SourceInputError
from icare.sources.registry import available_sources, reader_class
from icare.statistics import StatisticsSettings, check_settings, load_statistics_settings, rate_age_bands

OUTPUT_DIR_ENVIRONMENT_VARIABLE = "ICARE_OUTPUT_DIR"
DEFAULT_OUTPUT_DIR = "outputs"
# Environment variables read when a field is not set (in the process that runs the step or sensor).
LANDING_DIR_ENVIRONMENT_VARIABLE = "ICARE_LANDING_DIR"
CLASSIFICATION_ENVIRONMENT_VARIABLE = "ICARE_CLASSIFICATION"
CROSSWALK_ENVIRONMENT_VARIABLE = "ICARE_CROSSWALK"
STATISTICS_ENVIRONMENT_VARIABLE = "ICARE_STATISTICS"
DISCLOSURE_ENVIRONMENT_VARIABLE = "ICARE_DISCLOSURE"
RELEASE_CONFIG_ENVIRONMENT_VARIABLE = "ICARE_RELEASE_CONFIG"
POPULATION_ENVIRONMENT_VARIABLE = "ICARE_POPULATION"


def _setting(value: str | None, variable: str) -> Path | None:
    """The field if set, else the environment variable if set, else None."""
    chosen = value or os.environ.get(variable)
    return Path(chosen) if chosen else None


class IcareSettings(dg.ConfigurableResource):
    """Inputs and outputs of an icare run (the Dagster counterpart of the ``icare run`` options).

    Relative paths are resolved against the working directory of the process that runs the step
    (the repository root when ``dg dev`` is started there), as for the CLI.
    """

    sources: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Source id -> folder (or file) of its returns, e.g. {'ssda903': 'returns/'}. Sources not "
            "listed are not read. Empty: <landing_dir>/<source id>/ for every source folder there, or, "
            "without a landing folder, the bundled synthetic sample of every source."
        ),
    )
    landing_dir: str | None = Field(
        default=None,
        description=(
            "Landing folder with one subfolder per source (e.g. landing/ssda903/2024/...), read by the "
            f"assets and watched by the landing sensor when `sources` is empty. Default: "
            f"${LANDING_DIR_ENVIRONMENT_VARIABLE} if set."
        ),
    )
    output_dir: str | None = Field(
        default=None,
        description=(
            "Folder for icare.duckdb, parquet/ and run.json (replaced atomically on publication). "
            f"Default: ${OUTPUT_DIR_ENVIRONMENT_VARIABLE} if set, else {DEFAULT_OUTPUT_DIR}/."
        ),
    )
    strict: bool = Field(
        default=False,
        description="As `icare run --strict`: no failure policy, every failing value quarantines its row "
        "(docs/validation-policy.md).",
    )
    classification_path: str | None = Field(
        default=None,
        description="Another version of the ICare classification (YAML). Default: "
        f"${CLASSIFICATION_ENVIRONMENT_VARIABLE} if set, else the shipped provisional classification.",
    )
    crosswalk_path: str | None = Field(
        default=None,
        description="Crosswalk CSV from the provisional AC.* codes onto classification_path. Default: "
        f"${CROSSWALK_ENVIRONMENT_VARIABLE} if set.",
    )

    statistics_path: str | None = Field(
        default=None,
        description="Another statistics settings file (YAML). Default: "
        f"${STATISTICS_ENVIRONMENT_VARIABLE} if set, else config/statistics.yaml.",
    )

    disclosure_path: str | None = Field(
        default=None,
        description="Other disclosure rules for the release (YAML). Default: "
        f"${DISCLOSURE_ENVIRONMENT_VARIABLE} if set, else config/disclosure.yaml.",
    )

    allow_incomplete: bool = Field(
        default=False,
        description="Publish even when some returns (area and collection year) cannot give figures "
        "(a missing, unreadable or empty header or episodes table, or a year with no files): their "
        "years get no stock or flows and the coverage table lists them. Default false: the blocking "
        "check returns_complete of each <source>_harmonised fails and nothing is published "
        "(the --allow-incomplete option of icare run).",
    )

    def disclosure_rules(self) -> DisclosureRules:
        return load_disclosure_rules(_setting(self.disclosure_path, DISCLOSURE_ENVIRONMENT_VARIABLE))

    release_config_path: str | None = Field(
        default=None,
        description="Other release settings (YAML: title, licence, contact, citation of the release "
        f"folder). Default: ${RELEASE_CONFIG_ENVIRONMENT_VARIABLE} if set, else config/release.yaml "
        "(the --release-config option of icare run).",
    )

    def release_settings(self) -> ReleaseSettings:
        return load_release_settings(_setting(self.release_config_path, RELEASE_CONFIG_ENVIRONMENT_VARIABLE))

    population_path: str | None = Field(
        default=None,
        description="Child population for rates: the YAML description naming its CSV "
        f"(docs/statistics.md). Default: ${POPULATION_ENVIRONMENT_VARIABLE} if set, else the bundled "
        "sample's population when every source is its bundled sample, else no rates (empty tables).",
    )

    def population(self) -> Population | None:
        """The checked population (the rule of ``icare run``: ``icare.pipeline.population_paths``)."""
        options = self.run_options()
        population = load_population(population_paths(options.sources, options.population_path))
        if population is not None:
            rate_age_bands(self.statistics_settings())
        return population

    def statistics_settings(self) -> StatisticsSettings:
        settings = load_statistics_settings(_setting(self.statistics_path, STATISTICS_ENVIRONMENT_VARIABLE))
        return check_settings(settings, self.classification())

    def landing_path(self) -> Path | None:
        return _setting(self.landing_dir, LANDING_DIR_ENVIRONMENT_VARIABLE)

    def source_paths(self) -> dict[str, Path]:
        """The sources this run reads; an unknown source id fails here, with the known ones listed."""
        if self.sources:
            for name in self.sources:
                reader_class(name)  # raises UnknownSourceError naming the known sources
            return {name: Path(path) for name, path in self.sources.items()}
        landing = self.landing_path()
        if landing is None:
            return bundled_samples()
        found = {name: landing / name for name in available_sources() if (landing / name).is_dir()}
        if not found:
            raise SourceInputError(
                f"no source folder in the landing folder {landing}: expected one of "
                + ", ".join(f"{landing / name}/" for name in available_sources())
            )
        return found

    def output_path(self) -> Path:
        """Resolved when a step runs, so ``$ICARE_OUTPUT_DIR`` is read in the process that writes."""
        return Path(self.output_dir or os.environ.get(OUTPUT_DIR_ENVIRONMENT_VARIABLE) or DEFAULT_OUTPUT_DIR)

    def run_options(self, progress: Callable[[str], None] = lambda message: None) -> RunOptions:
        return RunOptions(
            sources=self.source_paths(),
            output_dir=self.output_path(),
            classification_path=_setting(self.classification_path, CLASSIFICATION_ENVIRONMENT_VARIABLE),
            crosswalk_path=_setting(self.crosswalk_path, CROSSWALK_ENVIRONMENT_VARIABLE),
            progress=progress,
            statistics_path=_setting(self.statistics_path, STATISTICS_ENVIRONMENT_VARIABLE),
            disclosure_path=_setting(self.disclosure_path, DISCLOSURE_ENVIRONMENT_VARIABLE),
            release_path=_setting(self.release_config_path, RELEASE_CONFIG_ENVIRONMENT_VARIABLE),
            population_path=_setting(self.population_path, POPULATION_ENVIRONMENT_VARIABLE),
            allow_incomplete=self.allow_incomplete,
        )

    def classification(self) -> Classification:
        options = self.run_options()
        return load_classification(options.classification_path, options.crosswalk_path)

    def pseudonymiser(self) -> Pseudonymiser:
        """The key rule of ``icare.pipeline.run``: the development key only if every input is a sample."""
        return pseudonymiser_for(self.source_paths())
