"""The structural rules of England's Explore education statistics (EES) open-data standard, as a
checker for the tests (docs/open-data.md "How the files are checked").

The rules are those the DfE screener (``eesyscreener``, an R package) applies on upload, restated
from its documentation and rule list, not its code: mandatory columns, time identifiers, geographic
levels with their code and name columns, naming, filters (no blanks, a default item, at least two
items), indicators (numbers or GSS symbols), the metadata file, duplicates and blank rows.
``problems`` returns every broken rule as a sentence; an empty list means the pair passes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

MANDATORY = ("time_period", "time_identifier", "geographic_level", "country_code", "country_name")
FOUR_DIGIT_TIME = {"Calendar year", "Reporting year"}
SIX_DIGIT_TIME = {"Financial year", "Academic year", "Tax year", "Autumn and spring term"}
# Level -> (code column, name column, other columns the level needs).
LEVELS = {
    "National": ("country_code", "country_name", ()),
    "Regional": ("region_code", "region_name", ()),
    "Local authority": ("new_la_code", "la_name", ("old_la_code", "region_code", "region_name")),
}
GEOGRAPHY_COLUMNS = {c for code, name, more in LEVELS.values() for c in (code, name, *more)}
CODE_FORMATS = {
    "country_code": r"[EKNSW]92\d{6}",
    "region_code": r"E12\d{6}",
    "new_la_code": r"E(06|08|09|10)\d{6}",
    "old_la_code": r"\d{3}",
}
META_REQUIRED = (
    "col_name",
    "col_type",
    "label",
    "indicator_grouping",
    "indicator_unit",
    "indicator_dp",
    "filter_hint",
    "filter_grouping_column",
)
META_OPTIONAL = ("filter_default", "parent_filter")
UNITS = {"", "%", "pp", "£", "£m", "numberstring"}
SYMBOLS = {"c", "x", "z", "low", "u", "k"}
LEGACY = {":", "~", "N/A", "n/a", ".", "..", "-", "NULL", "Null", "null", "NA", "na"}
NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
SNAKE = re.compile(r"^[a-z0-9_]+$")
LIMITS = {"name": 50, "label": 100, "item": 120, "location_code": 30, "items": 25_000}


def read_pair(data_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A data file and its ``.meta.csv``, every cell as text (blank cells as "")."""
    meta_path = data_path.with_name(data_path.name.removesuffix(".csv") + ".meta.csv")
    read = {"dtype": "str", "keep_default_na": False}
    return pd.read_csv(data_path, **read), pd.read_csv(meta_path, **read)


def problems(data: pd.DataFrame, meta: pd.DataFrame) -> list[str]:
    """Every rule of the standard that the pair breaks."""
    found: list[str] = []
    found += _columns(data)
    if any(c not in data.columns for c in MANDATORY):
        return found
    found += _time(data)
    found += _geography(data)
    found += _meta(data, meta)
    if any(c not in meta.columns for c in META_REQUIRED):
        return found
    filters = meta.loc[meta["col_type"] == "Filter"]
    indicators = meta.loc[meta["col_type"] == "Indicator", "col_name"].tolist()
    found += _filters(data, filters)
    found += _indicators(data, indicators)
    keys = [c for c in data.columns if c not in indicators]
    if data.duplicated(subset=keys).any():
        found.append(f"{int(data.duplicated(subset=keys).sum())} rows repeat a time, place and filters")
    return found


def _columns(data: pd.DataFrame) -> list[str]:
    found = []
    if tuple(data.columns[: len(MANDATORY)]) != MANDATORY:
        found.append(f"the file must start with the mandatory columns {list(MANDATORY)}")
    for name in data.columns:
        if not SNAKE.match(name) or len(name) > LIMITS["name"]:
            found.append(f"column {name!r} is not snake_case of at most {LIMITS['name']} characters")
    if len(set(data.columns)) != len(data.columns):
        found.append("a column name is repeated")
    if data.empty:
        found.append("the file has no rows")
    blank_rows = (data == "").all(axis=1)
    if blank_rows.any():
        found.append(f"{int(blank_rows.sum())} blank rows")
    blank_columns = [c for c in data.columns if (data[c] == "").all()]
    if blank_columns:
        found.append(f"blank columns {blank_columns}")
    return found


def _time(data: pd.DataFrame) -> list[str]:
    found = []
    identifiers = set(data["time_identifier"])
    if len(identifiers) != 1:
        found.append(f"one time identifier per file expected, found {sorted(identifiers)}")
    for identifier in identifiers:
        periods = data.loc[data["time_identifier"] == identifier, "time_period"]
        if identifier in FOUR_DIGIT_TIME:
            bad = periods[~periods.str.fullmatch(r"\d{4}")]
        elif identifier in SIX_DIGIT_TIME:
            ok = periods.str.fullmatch(r"\d{6}")
            bad = periods[~ok]
            if ok.all():  # 201718: the second year follows the first
                follows = periods.str[2:4].astype("int").add(1).mod(100) == periods.str[4:6].astype("int")
                bad = periods[~follows]
        else:
            found.append(f"time identifier {identifier!r} is not one the standard allows")
            continue
        if not bad.empty:
            found.append(f"time periods {sorted(set(bad))} do not fit {identifier!r}")
    return found


def _geography(data: pd.DataFrame) -> list[str]:
    found = []
    for level in sorted(set(data["geographic_level"])):
        if level not in LEVELS:
            found.append(f"geographic level {level!r} is not one the standard allows")
            continue
        code, name, more = LEVELS[level]
        rows = data[data["geographic_level"] == level]
        for column in (code, name, *more, "country_code", "country_name"):
            if column not in data.columns:
                found.append(f"{level} rows need a {column} column")
            elif (rows[column] == "").any():
                found.append(f"{level} rows have blank {column}")
    for column, pattern in CODE_FORMATS.items():
        if column in data.columns:
            values = data.loc[data[column] != "", column]
            wrong = sorted(set(values[~values.str.fullmatch(pattern)]))
            if wrong:
                found.append(f"{column} values {wrong[:5]} are not valid codes")
            if (values.str.len() > LIMITS["location_code"]).any():
                found.append(f"{column} has codes longer than {LIMITS['location_code']} characters")
    return found


def _meta(data: pd.DataFrame, meta: pd.DataFrame) -> list[str]:
    found = []
    missing = [c for c in META_REQUIRED if c not in meta.columns]
    extra = [c for c in meta.columns if c not in META_REQUIRED + META_OPTIONAL]
    if missing or extra:
        return [f"metadata columns: missing {missing}, unknown {extra}"]
    listed = meta["col_name"].tolist()
    grouping = set(meta["filter_grouping_column"]) - {""}
    described = [c for c in data.columns if c not in MANDATORY and c not in GEOGRAPHY_COLUMNS]
    if sorted(listed) != sorted(c for c in described if c not in grouping):
        found.append(f"metadata lists {listed}, the file has filters and indicators {described}")
    if meta["col_name"].duplicated().any():
        found.append("a column is listed twice in the metadata")
    if not meta["col_type"].isin(["Filter", "Indicator"]).all():
        found.append(f"col_type values {sorted(set(meta['col_type']))} (Filter or Indicator only)")
    if meta["label"].duplicated().any() or (meta["label"] == "").any():
        found.append("labels must be present and distinct")
    if (meta["label"].str.len() > LIMITS["label"]).any():
        found.append(f"a label is longer than {LIMITS['label']} characters")
    is_filter = meta["col_type"] == "Filter"
    if not meta["indicator_unit"].isin(UNITS).all() or (meta.loc[is_filter, "indicator_unit"] != "").any():
        found.append("indicator_unit must be an allowed unit, and blank for filters")
    dp = meta.loc[~is_filter, "indicator_dp"]
    if (meta.loc[is_filter, "indicator_dp"] != "").any() or not dp.str.fullmatch(r"\d*").all():
        found.append("indicator_dp must be blank for filters and a whole number (or blank) for indicators")
    indicator_only = meta.loc[~is_filter, ["filter_hint", "filter_grouping_column"]]
    if (indicator_only != "").any().any():
        found.append("filter_hint and filter_grouping_column must be blank for indicators")
    if grouping - set(data.columns) or grouping & set(listed):
        found.append(f"filter grouping columns {sorted(grouping)} must be data columns that are not listed")
    return found


def _filters(data: pd.DataFrame, filters: pd.DataFrame) -> list[str]:
    found = []
    defaults = filters.get("filter_default", pd.Series("", index=filters.index))
    for name, default in zip(filters["col_name"], defaults, strict=True):
        if name not in data.columns:
            continue
        items = data[name]
        if (items == "").any():
            found.append(f"filter {name} has blank cells")
        if (items != items.str.strip()).any():
            found.append(f"filter {name} has items with leading or trailing spaces")
        distinct = set(items)
        if len(distinct) < 2:
            found.append(f"filter {name} has fewer than two items")
        if (default or "Total") not in distinct:
            found.append(f"filter {name} has no default item {default or 'Total'!r}")
        if len(distinct) > LIMITS["items"] or any(len(i) > LIMITS["item"] for i in distinct):
            found.append(f"filter {name} has too many items or an item longer than {LIMITS['item']}")
    return found


def _indicators(data: pd.DataFrame, indicators: list[str]) -> list[str]:
    found = []
    for name in indicators:
        if name not in data.columns:
            continue
        cells = data[name]
        bad = cells[~(cells.str.match(NUMBER) | cells.isin(SYMBOLS))]
        if not bad.empty:
            legacy = sorted(set(bad) & (LEGACY | {""}))
            found.append(f"indicator {name} has cells {sorted(set(bad))[:5]} (blank or legacy: {legacy})")
    return found
