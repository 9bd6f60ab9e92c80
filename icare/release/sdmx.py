"""``release/sdmx/``: TransMonEE indicators as SDMX-CSV 1.0 for ``ECARO:TRANSMONEE(1.0)``.

The mapping from icare's released tables to TransMonEE indicators is data (``config/sdmx/``,
``icare.release.sdmx_config``); the values come from the released national margin rows
(``icare.release.sdmx_observations``); the file is written by pysdmx against the structure kept in
``config/sdmx/``. Beside it, ``supplied.csv`` lists every TransMonEE indicator with whether this
release supplied it and, if not, why (docs/sdmx.md).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
from pysdmx.io import write_sdmx
from pysdmx.io.format import Format
from pysdmx.io.pd import PandasDataset
from pysdmx.model import Code, Codelist, Component, Components, Concept, DataType, Role, Schema

from icare.classification import Classification
from icare.release.sdmx_config import Indicator, SdmxConfigError, Structure, TransmoneeConfig, load_transmonee
from icare.release.sdmx_observations import national_rows, observations

if TYPE_CHECKING:
    from icare.release.folder import ReleaseContext

SDMX_DIR = "sdmx"
SUPPLIED_FILE = "supplied.csv"
SUPPLIED_COLUMNS = ("indicator", "tm", "name", "status", "observations", "published", "withheld", "reason")
# status in supplied.csv: values written; mapped but nothing in this release; not suppliable.
SUPPLIED, NOT_IN_RELEASE, CANNOT_SUPPLY = "supplied", "not_in_release", "cannot_supply"


def schema(structure: Structure, indicators: list[Indicator]) -> Schema:
    """The pysdmx structure of the dataflow (pysdmx writes SDMX-CSV only against a full Schema).

    OBS_VALUE is text: values are formatted here (whole counts, rounded rates), so that a count is
    written as ``12``, not ``12.0``; a withheld value is empty (the measure is optional).
    """
    indicator_codes = {row.indicator: row.name for row in indicators if row.indicator}
    components = []
    for dimension in structure.dimensions:
        components.append(
            _component(structure, dimension.id, Role.DIMENSION, True, dimension.codelist, indicator_codes)
        )
    components.append(_component(structure, structure.time_dimension, Role.DIMENSION, True, None, {}))
    components.append(_component(structure, structure.measure, Role.MEASURE, False, None, {}))
    for attribute in structure.attributes:
        components.append(
            _component(structure, attribute.id, Role.ATTRIBUTE, False, attribute.codelist, indicator_codes)
        )
    return Schema(
        context="dataflow",
        agency=structure.agency,
        id=structure.dataflow,
        version=structure.dataflow_version,
        name=structure.dataflow_name,
        components=Components(components),
    )


def _component(
    structure: Structure, cid: str, role: Role, required: bool, codelist: str | None, indicator_codes: dict
) -> Component:
    codes = None
    if codelist is not None:
        spec = structure.codelists[codelist]
        items = indicator_codes if spec.codes == "from_mapping" else spec.codes
        codes = Codelist(
            id=codelist,
            agency=spec.agency,
            version=spec.version,
            name=codelist,
            items=[Code(id=code, name=name) for code, name in items.items()],
        )
    return Component(
        id=cid,
        required=required,
        role=role,
        concept=Concept(id=cid),
        local_dtype=DataType.STRING,
        local_codes=codes,
        attachment_level="O" if role == Role.ATTRIBUTE else None,
    )


def _format(values: pd.Series, decimals: int) -> pd.Series:
    """Numbers as text with ``decimals`` places (none for whole counts); withheld stays empty."""
    rounded = values.astype("Float64").round(decimals)
    text = rounded.map(lambda v: None if pd.isna(v) else (f"{v:.{decimals}f}" if decimals else f"{int(v)}"))
    return text.astype(object)


def sdmx_frame(
    indicator: Indicator, found: pd.DataFrame, config: TransmoneeConfig, table: str
) -> tuple[pd.DataFrame, list[str]]:
    """The SDMX-CSV columns of one indicator's observations; sources without a REF_AREA are left
    out (and said why)."""
    settings = config.settings
    reasons = []
    unknown = sorted(set(found["source"]) - set(settings.sources))
    if unknown:
        reasons.append(f"source {', '.join(unknown)} has no REF_AREA in transmonee.yaml sources")
        found = found[found["source"].isin(settings.sources)]
    if found.empty:
        return pd.DataFrame(columns=config.structure.column_order()), reasons
    source = found["source"].map(settings.sources)
    stock = table == "stock"
    end = found["end"].dt.strftime("%Y-%m-%d")
    coverage = end if stock else found["start"].dt.strftime("%Y-%m-%d") + "/" + end
    footnote = source.map(lambda s: s.footnote)
    if indicator.note:
        footnote = footnote + " " + indicator.note
    withheld = found["status"].map(settings.withheld_footnote)
    footnote = footnote.where(withheld.isna(), footnote + " " + withheld)
    frame = pd.DataFrame(
        {
            "REF_AREA": source.map(lambda s: s.ref_area),
            "INDICATOR": indicator.indicator,
            "SEX": found["SEX"],
            "AGE": found["AGE"],
            "TIME_PERIOD": found["end"].dt.year.astype(str),
            "OBS_VALUE": _format(found["value"], settings.decimals[indicator.unit]),
            "COVERAGE_TIME": coverage,
            "UNIT_MEASURE": indicator.unit,
            "OBS_FOOTNOTE": footnote,
            "FREQ": settings.frequency,
            "DATA_SOURCE": source.map(lambda s: s.data_source),
            "UNIT_MULTIPLIER": settings.unit_multiplier,
            "OBS_STATUS": found["status"].map(settings.obs_status),
        }
    )
    for component, code in settings.fixed.items():
        frame[component] = code
    return frame.reset_index(drop=True), reasons


def build(
    tables: Mapping[str, pa.Table], config: TransmoneeConfig, unusable: str | None = None
) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """Every observation of every supplied indicator, and one record per indicator for supplied.csv.
    ``unusable``: why the mapping cannot be applied to this run at all (no observation then)."""
    national = {} if unusable else national_rows(tables)
    frames, records = [], []
    for indicator in config.indicators:
        record = {"indicator": indicator.indicator, "tm": indicator.tm, "name": indicator.name}
        if indicator.supplied == "no":
            records.append(record | _counts(None) | {"status": CANNOT_SUPPLY, "reason": indicator.note})
            continue
        if unusable:
            records.append(record | _counts(None) | {"status": NOT_IN_RELEASE, "reason": unusable})
            continue
        outcome = observations(indicator, national, config)
        frame, more = sdmx_frame(indicator, outcome.observations, config, indicator.table)
        reasons = [*outcome.reasons, *more]
        if frame.empty:
            records.append(record | _counts(frame) | {"status": NOT_IN_RELEASE, "reason": "; ".join(reasons)})
            continue
        frames.append(frame)
        records.append(record | _counts(frame) | {"status": SUPPLIED, "reason": "; ".join(reasons)})
    columns = config.structure.column_order()
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    unfilled = [c for c in columns if c not in data.columns]
    if unfilled:
        raise SdmxConfigError(
            f"{config.folder / config.settings.structure}: components {unfilled} have no value in icare "
            "(a component icare does not fill needs a code under `fixed` in transmonee.yaml)"
        )
    data = data[columns].sort_values(
        ["INDICATOR", "TIME_PERIOD", "SEX", "AGE", "REF_AREA"], ignore_index=True
    )
    key = [d.id for d in config.structure.dimensions] + [config.structure.time_dimension]
    duplicated = data.duplicated(key, keep=False)
    if duplicated.any():
        raise ValueError(
            f"SDMX observations with the same key: {data.loc[duplicated, key].head().to_dict('records')}"
        )
    return data, records


def _counts(frame: pd.DataFrame | None) -> dict[str, object]:
    if frame is None:
        return {"observations": 0, "published": 0, "withheld": 0}
    published = int(frame["OBS_VALUE"].notna().sum())
    return {"observations": len(frame), "published": published, "withheld": len(frame) - published}


def write_transmonee(
    tables: Mapping[str, pa.Table],
    classification: Classification,
    folder: Path,
    config: TransmoneeConfig | None = None,
) -> Path:
    """Write ``folder/sdmx/<output>`` (SDMX-CSV 1.0, via pysdmx) and ``folder/sdmx/supplied.csv``."""
    config = config or load_transmonee()
    try:
        config.check_classification(classification)
        unusable = None
    except SdmxConfigError as exc:
        # Another classification (an official list with a crosswalk) needs its own mapping: the
        # run's release stands, and the export says why it is empty.
        unusable = f"the TransMonEE mapping does not fit this run's classification: {exc}"
    data, records = build(tables, config, unusable)
    out = folder / SDMX_DIR
    out.mkdir(parents=True, exist_ok=True)
    dataset = PandasDataset(structure=schema(config.structure, config.indicators), data=data)
    path = out / config.settings.output
    write_sdmx([dataset], Format.DATA_SDMX_CSV_1_0_0, output_path=str(path))
    with (out / SUPPLIED_FILE).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUPPLIED_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return path


def write_sdmx_files(context: ReleaseContext) -> None:
    """The release-folder writer (``icare.release.folder.WRITERS``)."""
    write_transmonee(context.tables, context.classification, context.folder)
