"""The code lists of the release as tables (``release/codelists/*.csv``): every code a released
table uses, with its label, so a reader needs nothing else to read the figures.

Everything comes from the run's classification, its statistics settings and the sources' own code
lists; a value the release uses that none of them lists (``unknown``, ``under 18``, the ``total``
marker of margin rows) is added with a note saying where it comes from, so each list is complete.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from icare.codelists import load_codelists
from icare.release.open_data_config import load_area_codes, load_open_data_config
from icare.sources.spec import load_source_spec
from schemas.outputs import BOOL, INT, SEX, STRING, TABLES, TOTAL, Col

if TYPE_CHECKING:
    from icare.classification import Classification
    from icare.release.folder import ReleaseContext

CODELIST_DIR = "codelists"
# Columns holding an ICare code: icare_code and its ancestors, and the two ends of a transition.
# ``icare_level`` (no digit) says which level a row adds up and is not a code.
ICARE_COLUMN = re.compile(r"(icare|from|to)_(code|level\d+)")
AREA_COLUMN = "area_code"
AGE_BAND_COLUMN = "age_band"
TOTAL_LABEL = "Total: every value of this dimension (a margin row)"
SEEN_ONLY = "used in the release; not in the classification, settings or source code lists"


def write_codelists(context: ReleaseContext) -> None:
    """``release/codelists/<list>.csv`` for every list of :func:`codelist_frames`."""
    folder = context.folder / CODELIST_DIR
    folder.mkdir(exist_ok=True)
    for name, frame in codelist_frames(context).items():
        frame.to_csv(folder / f"{name}.csv", index=False, lineterminator="\n")


def codelist_frames(context: ReleaseContext) -> dict[str, pd.DataFrame]:
    """The code lists by file name (without ``.csv``), each complete for the released tables."""
    seen = values_seen(context.tables)
    classification = context.classification
    labels = _dimension_labels(classification)
    dimensions = classification.dimensions_frame()
    dimensions.insert(2, "dimension_label", dimensions["dimension"].map(labels))
    for name, label in labels.items():
        extra = _unlisted(seen.get(name, set()), set(dimensions.loc[dimensions["dimension"] == name, "code"]))
        extra["dimension"] = name
        extra["dimension_label"] = label
        extra["classification_version"] = classification.version_id
        dimensions = _appended(dimensions, extra)
    exit_name = classification.exit_destinations.name
    return {
        # A transition ends in an exit destination when a child leaves care: listed with those.
        "icare_codes": icare_codes(
            context,
            _union(seen, lambda c: ICARE_COLUMN.fullmatch(c) is not None)
            - classification.exit_destinations.codes(),
        ),
        "dimensions": dimensions,
        "exit_destinations": dimensions.loc[dimensions["dimension"] == exit_name].reset_index(drop=True),
        "sexes": sexes(context.tables, seen.get(SEX.name, set())),
        "age_bands": age_bands(context, seen.get(AGE_BAND_COLUMN, set())),
        "areas": areas(context.tables),
    }


def values_seen(tables: Mapping[str, pa.Table]) -> dict[str, set[str]]:
    """Column name -> the distinct non-empty text values it holds in any released table (a value
    naming several codes summed, ``a + b`` in ``release.indicators``, counts as each of them)."""
    seen: dict[str, set[str]] = {}
    for table in tables.values():
        for name, column in zip(table.column_names, table.columns, strict=True):
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                values = pc.unique(column).drop_null().to_pylist()
                seen.setdefault(name, set()).update(values)
            elif pa.types.is_dictionary(column.type):
                values = pc.unique(column.cast(column.type.value_type)).drop_null().to_pylist()
                seen.setdefault(name, set()).update(values)
    return {name: {part for value in values for part in value.split(" + ")} for name, values in seen.items()}


def icare_codes(context: ReleaseContext, used: set[str]) -> pd.DataFrame:
    """Every category of the classification at every level, with its parent and scope flags."""
    classification = context.classification
    frame = classification.to_frame()
    frame.insert(3, "level_name", frame["level"].map(classification.level_names))
    # Nullable types, so that a row added for an unlisted value leaves them empty, not 1.0 or NaN.
    frame = frame.astype({"level": "Int64", "in_alternative_care": "boolean", "boundary": "boolean"})
    return _appended(frame, _unlisted(used, set(frame["code"])))


def sexes(tables: Mapping[str, pa.Table], used: set[str]) -> pd.DataFrame:
    """Harmonised sex codes, labelled by the source code lists (a national code read as it)."""
    labels: dict[str, str] = {}
    for source in sorted(_sources(tables)):
        spec = load_source_spec(source)
        national = load_codelists(spec.codelists_path)
        national = national.loc[national["field"] == SEX.name.upper()]
        # A national code equal to the harmonised one labels it first, then any code read as it.
        for code, label in zip(national["code"], national["label"], strict=True):
            harmonised = spec.sex_codes.get(code)
            if harmonised is not None and (harmonised not in labels or code == harmonised):
                labels[harmonised] = label
    codes = list(SEX.allowed or ())
    frame = pd.DataFrame({"code": codes, "label": [labels.get(c) for c in codes], "note": None}, dtype="str")
    return _appended(frame, _unlisted(used, set(codes)))


def age_bands(context: ReleaseContext, used: set[str]) -> pd.DataFrame:
    """The age bands of the run's statistics settings, first and last age in completed years."""
    bands = context.statistics.age_bands if context.statistics is not None else ()
    frame = pd.DataFrame(
        {
            "code": pd.Series([b.band for b in bands], dtype="str"),
            "label": pd.Series([b.band for b in bands], dtype="str"),
            "first_age": pd.array([b.first_age for b in bands], dtype="Int64"),
            "last_age": pd.array([b.last_age for b in bands], dtype="Int64"),
            "note": pd.Series([None] * len(bands), dtype="str"),
        }
    )
    return _appended(frame, _unlisted(used, set(frame["code"])))


def _area_names() -> dict[tuple[str, str], str]:
    """(source, area code) -> name, from the area code lists the open-data settings name
    (``sources/ssda903/areas.csv`` for England's local authorities)."""
    names: dict[tuple[str, str], str] = {}
    for source, spec in load_open_data_config().sources.items():
        listed = load_area_codes(source, spec)
        if listed is not None:
            names.update(
                {
                    (source, code): name
                    for code, name in zip(listed["old_la_code"], listed["la_name"], strict=True)
                }
            )
    return names


def areas(tables: Mapping[str, pa.Table]) -> pd.DataFrame:
    """Each (source, area code) of the release, named where the source's area code list names it
    (empty otherwise), and the ``total`` marker."""
    pairs: set[tuple[str, str]] = set()
    for table in tables.values():
        if AREA_COLUMN in table.column_names and "source" in table.column_names:
            both = table.select(["source", AREA_COLUMN]).group_by(["source", AREA_COLUMN]).aggregate([])
            pairs.update(zip(both["source"].to_pylist(), both[AREA_COLUMN].to_pylist(), strict=True))
    rows = sorted((s, a) for s, a in pairs if s is not None and a is not None)
    names = _area_names()
    return pd.DataFrame(
        {
            "source": [s for s, _ in rows],
            "area_code": [a for _, a in rows],
            "area_name": [TOTAL_LABEL if a == TOTAL else names.get((s, a)) for s, a in rows],
        },
        dtype="str",
    )


# Columns of the code lists beyond those of the published classification tables.
_COLUMNS = {
    col.name: col
    for col in [
        *TABLES["icare_classification"],
        *TABLES["icare_dimensions"],
        Col("level_name", STRING, True, "name of the level in the hierarchy"),
        Col("dimension_label", STRING, True, "label of the dimension"),
        Col("note", STRING, True, "where a value comes from when no code list holds it"),
        Col("first_age", INT, True, "first age of the band in completed years"),
        Col("last_age", INT, True, "last age of the band (empty: no upper limit)"),
        Col("source", STRING, False, "national source id"),
        Col("area_code", STRING, False, "reporting area code as in the released tables (total: all areas)"),
        Col("area_name", STRING, True, "area name where a source code list gives it"),
    ]
}


def codelist_field(name: str) -> dict:
    """The Table Schema field of a code list column: its type and meaning."""
    col = _COLUMNS.get(name)
    if col is None:
        return {"name": name, "type": "string"}
    kind = {INT: "integer", BOOL: "boolean"}.get(col.type, "string")
    return {"name": name, "type": kind, "description": col.description}


def codelist_files(folder: Path) -> list[Path]:
    """The code list files written into a release folder, in name order."""
    return sorted((folder / CODELIST_DIR).glob("*.csv"))


def _unlisted(used: Iterable[str], listed: set[str]) -> pd.DataFrame:
    """Rows for the values the release uses that the list does not hold, each with its note."""
    extra = sorted(set(used) - listed)
    return pd.DataFrame(
        {
            "code": extra,
            "label": [TOTAL_LABEL if code == TOTAL else code for code in extra],
            "note": [None if code == TOTAL else SEEN_ONLY for code in extra],
        },
        dtype="str",
    )


def _appended(frame: pd.DataFrame, extra: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the rows of ``extra`` below it (every column of both; a ``note`` column always)."""
    if "note" not in frame.columns:
        frame = frame.assign(note=pd.Series(pd.NA, index=frame.index, dtype="str"))
    if extra.empty:
        return frame
    return pd.concat([frame, extra], ignore_index=True)


def _union(seen: Mapping[str, set[str]], wanted: Callable[[str], bool]) -> set[str]:
    """The values of every column ``wanted`` accepts."""
    return set().union(*(values for column, values in seen.items() if wanted(column)))


def _sources(tables: Mapping[str, pa.Table]) -> set[str]:
    found: set[str] = set()
    for table in tables.values():
        if "source" in table.column_names:
            found.update(pc.unique(table["source"]).drop_null().to_pylist())
    return found


def _dimension_labels(classification: Classification) -> dict[str, str]:
    """Dimension name -> label, for every flat code list of the classification."""
    dims = [*classification.dimensions.values(), classification.exit_destinations]
    return {d.name: d.label for d in [*dims, classification.new_episode_types]}
