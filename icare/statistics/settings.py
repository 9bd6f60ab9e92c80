"""The statistical settings of a run, read from ``config/statistics.yaml`` (reviewed like data)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from icare import resources
from icare.classification import Classification
from schemas.outputs import TOTAL

DEFAULT_SETTINGS = "statistics.yaml"
FINEST = "finest"


class StatisticsSettingsError(ValueError):
    """The settings file is malformed; the message names the file and key."""


@dataclass(frozen=True)
class AgeBand:
    band: str
    first_age: int
    last_age: int | None  # None: open band


@dataclass(frozen=True)
class StatisticsSettings:
    id: str
    version: str
    placement_move_types: tuple[str, ...]
    temporary_move_purpose: str
    resolve_temporary_moves: bool
    re_entry_months: int
    pathway_levels: tuple[int | str, ...]
    rare_pathway_threshold: int
    age_band_set: str
    age_bands: tuple[AgeBand, ...]
    # Rates: the population year of a period is the calendar year of its last day plus this offset.
    population_year_offset: int = 0
    path: Path | None = None

    @property
    def version_id(self) -> str:
        return f"{self.id}@{self.version}"

    def with_options(self, **changes: Any) -> StatisticsSettings:
        """A copy with some settings changed (e.g. ``resolve_temporary_moves=False``)."""
        values = asdict(self) | changes
        values["age_bands"] = tuple(
            b if isinstance(b, AgeBand) else AgeBand(**b) for b in values["age_bands"]
        )
        return StatisticsSettings(**values)

    def to_json(self) -> str:
        """What the ``runs`` table records, so every figure can be traced to its settings."""
        values = asdict(self)
        values.pop("path")
        values["version_id"] = self.version_id
        return json.dumps(values, sort_keys=True)


def _require(path: Path, raw: dict, key: str) -> Any:
    if key not in raw:
        raise StatisticsSettingsError(f"{path}: required key {key!r} is missing")
    return raw[key]


def _age_bands(path: Path, raw: dict, chosen: str) -> tuple[AgeBand, ...]:
    sets = _require(path, raw, "age_band_sets")
    if chosen not in sets:
        raise StatisticsSettingsError(
            f"{path}: age_bands {chosen!r} is not one of age_band_sets ({', '.join(sorted(sets))})"
        )
    bands = []
    previous_last: int | None = -1
    for i, item in enumerate(sets[chosen]):
        try:
            last_age = None if item["to"] is None else int(item["to"])
            band = AgeBand(str(item["band"]), int(item["from"]), last_age)
        except (KeyError, TypeError, ValueError) as exc:
            raise StatisticsSettingsError(
                f"{path}: age_band_sets.{chosen}[{i}] needs band, from and to ({exc})"
            ) from exc
        if previous_last is None:
            raise StatisticsSettingsError(f"{path}: age_band_sets.{chosen}: only the last band may be open")
        reversed_band = band.last_age is not None and band.last_age < band.first_age
        if band.first_age != previous_last + 1 or reversed_band:
            raise StatisticsSettingsError(
                f"{path}: age_band_sets.{chosen}[{i}] {band.band!r}: bands must follow each other from 0 "
                "without gaps or overlaps"
            )
        previous_last = band.last_age
        bands.append(band)
    return tuple(bands)


def load_statistics_settings(
    path: str | Path | None = None, age_bands: str | None = None
) -> StatisticsSettings:
    """Read and check the settings; ``age_bands`` chooses another set of ``age_band_sets``."""
    file = Path(path) if path is not None else resources.config_dir() / DEFAULT_SETTINGS
    raw = resources.read_yaml_mapping(
        file, StatisticsSettingsError, "the statistics settings", "a mapping of settings"
    )
    levels = tuple(_require(file, raw, "pathway_levels"))
    for level in levels:
        if level != FINEST and not (isinstance(level, int) and level >= 1):
            raise StatisticsSettingsError(
                f"{file}: pathway_levels: {level!r} is neither a level number (1, 2, ...) nor {FINEST!r}"
            )
    chosen = age_bands or str(_require(file, raw, "age_bands"))
    threshold = int(_require(file, raw, "rare_pathway_threshold"))
    if threshold < 1:
        raise StatisticsSettingsError(f"{file}: rare_pathway_threshold must be at least 1")
    return StatisticsSettings(
        id=str(_require(file, raw, "id")),
        version=str(_require(file, raw, "version")),
        placement_move_types=tuple(str(t) for t in _require(file, raw, "placement_move_types")),
        temporary_move_purpose=str(_require(file, raw, "temporary_move_purpose")),
        resolve_temporary_moves=bool(_require(file, raw, "resolve_temporary_moves")),
        re_entry_months=int(_require(file, raw, "re_entry_months")),
        pathway_levels=levels,
        rare_pathway_threshold=threshold,
        age_band_set=chosen,
        age_bands=_age_bands(file, raw, chosen),
        population_year_offset=_population_year_offset(file, raw),
        path=file,
    )


def _population_year_offset(path: Path, raw: dict) -> int:
    offset = _require(path, raw, "population_year_offset")
    if isinstance(offset, bool) or not isinstance(offset, int) or abs(offset) > 5:
        raise StatisticsSettingsError(
            f"{path}: population_year_offset must be a whole number of years from -5 to 5, got {offset!r}"
        )
    return offset


# The rates' denominator is the population aged 0-17 (statistics.md "Rates").
RATE_LAST_AGE = 17


def rate_age_bands(settings: StatisticsSettings) -> tuple[AgeBand, ...]:
    """The age bands that get rates: those inside 0-17.

    A band that holds both 17 and 18 cannot be matched to a population aged 0-17, and a band named
    like the total marker would be mistaken for a total row, so either stops a run that computes rates.
    """
    where = settings.path or DEFAULT_SETTINGS
    for band in settings.age_bands:
        if band.band == TOTAL:
            raise StatisticsSettingsError(
                f"{where}: age band {TOTAL!r} is reserved for the total rows of the rates table; rename it"
            )
        last = band.last_age
        if band.first_age <= RATE_LAST_AGE and (last is None or last > RATE_LAST_AGE):
            raise StatisticsSettingsError(
                f"{where}: age_band_sets.{settings.age_band_set}: band {band.band!r} holds ages on both "
                f"sides of {RATE_LAST_AGE}/{RATE_LAST_AGE + 1}; rates per child aged 0-{RATE_LAST_AGE} "
                f"need a band that ends at {RATE_LAST_AGE}"
            )
    return tuple(b for b in settings.age_bands if b.last_age is not None and b.last_age <= RATE_LAST_AGE)


def check_settings(settings: StatisticsSettings, classification: Classification) -> StatisticsSettings:
    """Settings that name what the classification does not have would silently change figures."""
    where = settings.path or DEFAULT_SETTINGS
    unknown = sorted(set(settings.placement_move_types) - classification.new_episode_types.codes())
    if unknown:
        raise StatisticsSettingsError(
            f"{where}: placement_move_types {unknown} are not new-episode types of "
            f"{classification.version_id} ({', '.join(sorted(classification.new_episode_types.codes()))})"
        )
    too_deep = [
        level for level in settings.pathway_levels if level != FINEST and level > classification.max_level
    ]
    if too_deep:
        raise StatisticsSettingsError(
            f"{where}: pathway_levels {too_deep} are deeper than {classification.version_id}, "
            f"which has {classification.max_level} levels"
        )
    return settings
