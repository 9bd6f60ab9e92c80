"""The reviewed data behind the TransMonEE export (``config/sdmx/``), read into typed models.

Four files, all data: the dataflow's structure as icare knows it (``ECARO_TRANSMONEE_1.0.yaml``),
the export settings (``transmonee.yaml``: REF_AREA per source, status, sex and age code mappings),
the indicator mapping table (``transmonee_mapping.csv``) and the exit-destination mapping
(``transmonee_exit_destinations.csv``). Every error names the file, the key (or row) and the problem.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from icare import resources
from icare.classification import Classification

SETTINGS_FILE = "transmonee.yaml"
TM_DESTINATIONS = ("REUNION", "FAMILY", "FOSTER", "RESIDENTIAL", "ADOPT", "INDEP", "DEATH", "OTHER")
EXCLUDED = "EXCLUDED"  # an exit destination that is not an exit at national level

# The released tables an indicator may come from, with the column groups that are summed in margin
# rows (docs/sdmx.md; the release contract): a group the mapping does not constrain must be at its
# total. ``icare_level`` leads its group: it is `total` in the all-categories row.
TABLE_GROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "stock": (
        ("icare_level", "icare_code", "icare_level1", "icare_level2"),
        ("provider_sector",),
    ),
    "entries": (("icare_level", "icare_code", "icare_level1", "icare_level2"),),
    "exits": (("icare_level", "icare_code", "icare_level1", "icare_level2"), ("exit_destination",)),
    "transitions": (
        ("from_code", "from_level1", "from_level2"),
        ("to_code", "to_level1", "to_level2"),
    ),
}
FIXED_KEYS = {"transitions": ("transition",)}  # never summed: the mapping must name their value
RATE_TABLES = ("stock", "entries", "exits")
CODE_COLUMNS = (
    "icare_code",
    "icare_level1",
    "icare_level2",
    "from_code",
    "from_level2",
    "to_code",
    "to_level2",
)


class SdmxConfigError(ValueError):
    """A file of ``config/sdmx/`` is malformed; the message names the file, key and problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Component(_Strict):
    id: str
    codelist: str | None = None


class CodelistSpec(_Strict):
    agency: str
    version: str
    codes: dict[str, str] | Literal["from_mapping"]


class Structure(_Strict):
    """The dataflow and its data structure: components in order, and the codes icare may write."""

    id: str
    version: str
    agency: str
    dataflow: str
    dataflow_version: str
    dataflow_name: str
    dsd: str
    dimensions: list[Component]
    time_dimension: str
    measure: str
    attributes: list[Component]
    codelists: dict[str, CodelistSpec]

    @model_validator(mode="after")
    def _codelists_exist(self) -> Structure:
        for component in (*self.dimensions, *self.attributes):
            if component.codelist is not None and component.codelist not in self.codelists:
                raise ValueError(f"{component.id}: code list {component.codelist!r} is not under codelists")
        return self

    @property
    def dataflow_ref(self) -> str:
        """``AGENCY:ID(VERSION)``, the DATAFLOW column of SDMX-CSV 1.0."""
        return f"{self.agency}:{self.dataflow}({self.dataflow_version})"

    def column_order(self) -> list[str]:
        """SDMX-CSV 1.0 columns after DATAFLOW: dimensions, time, measure, attributes."""
        return [
            *(d.id for d in self.dimensions),
            self.time_dimension,
            self.measure,
            *(a.id for a in self.attributes),
        ]

    def codes_of(self, component_id: str) -> dict[str, str] | None:
        """The allowed codes of a component (None: free text, or the mapping's indicator codes)."""
        for component in (*self.dimensions, *self.attributes):
            if component.id == component_id and component.codelist is not None:
                codes = self.codelists[component.codelist].codes
                return None if codes == "from_mapping" else codes
        return None


class SourceSettings(_Strict):
    ref_area: str
    footnote: str
    data_source: str
    coverage: str


class Settings(_Strict):
    """How released rows become observations: per-source attributes and the code mappings."""

    id: str
    version: str
    structure: str
    mapping: str
    exit_destinations: str
    output: str
    sources: dict[str, SourceSettings]
    obs_status: dict[Literal["F", "A", "D"], str]
    withheld_footnote: dict[Literal["A", "D"], str]
    sex: dict[str, str]
    age_0_17: dict[str, str]
    decimals: dict[str, int]
    fixed: dict[str, str]
    frequency: str
    unit_multiplier: str

    @field_validator("obs_status")
    @classmethod
    def _every_status(cls, value: dict[str, str]) -> dict[str, str]:
        missing = {"F", "A", "D"} - set(value)
        if missing:
            raise ValueError(f"no OBS_STATUS for confidentiality status {sorted(missing)}")
        return value


Filter = dict[str, tuple[str, ...]]


def parse_filter(text: str) -> Filter:
    """``column=value|value;column=value`` -> {column: (values)}."""
    result: Filter = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        column, sep, values = part.partition("=")
        column = column.strip()
        if not sep or not column or not values.strip():
            raise ValueError(f"{part!r} is not column=value|value")
        if column in result:
            raise ValueError(f"column {column!r} given twice")
        result[column] = tuple(v.strip() for v in values.split("|"))
    return result


class Indicator(_Strict):
    """One row of the mapping table: a TransMonEE indicator and where icare takes it from."""

    indicator: str
    tm: str
    name: str
    measure: Literal["stock", "entries", "exits", "transitions", ""]
    value: Literal["count", "rate", "share", ""]
    unit: str
    age_group: Literal["0-17", "18-24"]
    table: str
    filter: Filter
    denominator_filter: Filter
    destination: str
    supplied: Literal["yes", "no"]
    note: str

    @field_validator("filter", "denominator_filter", mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        return parse_filter(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _complete(self) -> Indicator:
        if self.supplied == "no":
            if not self.note:
                raise ValueError("an indicator icare cannot supply needs the reason in note")
            return self
        if not self.indicator:
            raise ValueError("a supplied indicator needs its code")
        for name in ("measure", "value", "unit", "table"):
            if not getattr(self, name):
                raise ValueError(f"{name} is empty")
        if self.table not in TABLE_GROUPS:
            raise ValueError(f"table {self.table!r} is not one of {sorted(TABLE_GROUPS)}")
        if self.age_group != "0-17":
            raise ValueError("only indicators of children aged 0-17 can be supplied")
        if not self.filter:
            raise ValueError("filter is empty")
        if (self.value == "share") != bool(self.denominator_filter):
            raise ValueError("a share needs denominator_filter, and only a share has one")
        if self.value == "rate" and self.table not in RATE_TABLES:
            raise ValueError(f"rates are released for {list(RATE_TABLES)} only")
        allowed = {c for group in TABLE_GROUPS[self.table] for c in group} | set(
            FIXED_KEYS.get(self.table, ())
        )
        for column in (*self.filter, *self.denominator_filter):
            if column not in allowed:
                raise ValueError(f"filter column {column!r} is not a summed dimension of {self.table}")
        for column in FIXED_KEYS.get(self.table, ()):
            if column not in self.filter:
                raise ValueError(f"filter must name {column} for {self.table}")
        if self.table == "exits" and self.destination not in TM_DESTINATIONS:
            raise ValueError(f"an exits indicator needs a destination, one of {list(TM_DESTINATIONS)}")
        return self

    @property
    def key(self) -> str:
        return self.indicator or f"TM {self.tm}"


class ExitDestination(_Strict):
    exit_destination: str
    tm_destination: str
    reason: str

    @field_validator("tm_destination")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in (*TM_DESTINATIONS, EXCLUDED):
            raise ValueError(f"{value!r} is not one of {[*TM_DESTINATIONS, EXCLUDED]}")
        return value


@dataclass(frozen=True)
class TransmoneeConfig:
    settings: Settings
    structure: Structure
    indicators: list[Indicator]
    exit_destinations: dict[str, str]  # harmonised exit destination -> TM destination (or EXCLUDED)
    folder: Path

    def destinations(self, tm_destination: str) -> tuple[str, ...]:
        """The harmonised exit destinations counted under a TransMonEE destination."""
        return tuple(sorted(k for k, v in self.exit_destinations.items() if v == tm_destination))

    def check_classification(self, classification: Classification) -> None:
        """Every exit destination of the classification mapped; every ICare code named exists."""
        exits_file = self.folder / self.settings.exit_destinations
        unmapped = sorted(classification.exit_destinations.codes() - set(self.exit_destinations))
        unknown = sorted(set(self.exit_destinations) - classification.exit_destinations.codes())
        if unmapped or unknown:
            raise SdmxConfigError(
                f"{exits_file}: exit_destination: "
                + (f"{unmapped} of {classification.version_id} not mapped" if unmapped else "")
                + ("; " if unmapped and unknown else "")
                + (f"{unknown} not in {classification.version_id}" if unknown else "")
            )
        mapping_file = self.folder / self.settings.mapping
        for row in self.indicators:
            for column, values in (*row.filter.items(), *row.denominator_filter.items()):
                if column not in CODE_COLUMNS:
                    continue
                bad = [v for v in values if v not in classification]
                if bad:
                    raise SdmxConfigError(
                        f"{mapping_file}: {row.key}: {column} {bad} not in {classification.version_id}"
                    )


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}" for error in exc.errors()
    )


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    except OSError as exc:
        raise SdmxConfigError(f"{path}: cannot read ({exc})") from exc


def _model(model: type[BaseModel], raw: object, where: str):
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise SdmxConfigError(f"{where}: {_problems(exc)}") from None


def load_transmonee(folder: str | Path | None = None) -> TransmoneeConfig:
    """Read and cross-check ``config/sdmx/`` (or another folder holding the same four files)."""
    folder = Path(folder) if folder is not None else resources.config_dir() / "sdmx"
    settings_file = folder / SETTINGS_FILE
    raw = resources.read_yaml_mapping(settings_file, SdmxConfigError, "the SDMX settings", "a mapping")
    settings: Settings = _model(Settings, raw, str(settings_file))
    structure_file = folder / settings.structure
    raw = resources.read_yaml_mapping(structure_file, SdmxConfigError, "the structure", "a mapping")
    structure: Structure = _model(Structure, raw, str(structure_file))
    mapping_file = folder / settings.mapping
    indicators = []
    seen: dict[str, int] = {}
    for number, row in enumerate(_read_csv(mapping_file), start=2):
        where = f"{mapping_file}: line {number} ({row.get('indicator') or 'TM ' + str(row.get('tm'))})"
        indicator: Indicator = _model(Indicator, row, where)
        if indicator.indicator in seen:
            raise SdmxConfigError(f"{where}: indicator also on line {seen[indicator.indicator]}")
        if indicator.indicator:
            seen[indicator.indicator] = number
        indicators.append(indicator)
    exits_file = folder / settings.exit_destinations
    exits: dict[str, str] = {}
    for number, row in enumerate(_read_csv(exits_file), start=2):
        item: ExitDestination = _model(ExitDestination, row, f"{exits_file}: line {number}")
        if item.exit_destination in exits:
            raise SdmxConfigError(f"{exits_file}: line {number}: {item.exit_destination} mapped twice")
        exits[item.exit_destination] = item.tm_destination
    for row in indicators:
        if row.supplied == "yes" and row.table == "exits" and row.destination not in exits.values():
            raise SdmxConfigError(
                f"{mapping_file}: {row.key}: destination {row.destination} has no exit destination "
                f"in {exits_file}"
            )
    _check_codes(settings, structure, indicators, settings_file, mapping_file)
    return TransmoneeConfig(settings, structure, indicators, exits, folder)


def _check_codes(
    settings: Settings,
    structure: Structure,
    indicators: list[Indicator],
    settings_file: Path,
    mapping_file: Path,
) -> None:
    """The codes the settings and the mapping would write are in the structure's code lists."""
    uses = [("REF_AREA", f"sources.{name}.ref_area", s.ref_area) for name, s in settings.sources.items()]
    uses += [("SEX", f"sex.{k}", v) for k, v in settings.sex.items()]
    uses += [("AGE", f"age_0_17.{k}", v) for k, v in settings.age_0_17.items()]
    uses += [("OBS_STATUS", f"obs_status.{k}", v) for k, v in settings.obs_status.items()]
    uses += [(component, f"fixed.{component}", code) for component, code in settings.fixed.items()]
    uses += [
        ("FREQ", "frequency", settings.frequency),
        ("UNIT_MULTIPLIER", "unit_multiplier", settings.unit_multiplier),
    ]
    components = {c.id for c in (*structure.dimensions, *structure.attributes)}
    for component, key, code in uses:
        if component not in components:
            raise SdmxConfigError(f"{settings_file}: {key}: {component} is not a component of the structure")
        allowed = structure.codes_of(component)
        if allowed is not None and code not in allowed:
            raise SdmxConfigError(f"{settings_file}: {key}: {code!r} is not a code of {component}")
    units = structure.codes_of("UNIT_MEASURE") or {}
    for row in indicators:
        if row.supplied == "yes" and row.unit not in units:
            raise SdmxConfigError(
                f"{mapping_file}: {row.key}: unit {row.unit!r} is not a code of UNIT_MEASURE"
            )
        if row.supplied == "yes" and row.unit not in settings.decimals:
            raise SdmxConfigError(f"{settings_file}: decimals: no entry for unit {row.unit!r}")
