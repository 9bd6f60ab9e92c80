"""The filter and indicator columns of an open-data CSV, and its EES metadata file.

A filter holds labels (EES shows filter items to readers as they are written): ICare categories,
exit destinations and provider sectors are labelled by the classification, other values by
``config/open_data.yaml``; ``total`` is ``Total``. An indicator holds a number or a GSS symbol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from icare.classification import Classification
from icare.release.open_data_config import FilterSpec, IndicatorSpec, OpenDataConfig
from schemas.outputs import CONF_PRIMARY, CONF_SECONDARY, TOTAL

TOTAL_ITEM = "Total"
ITEM_LIMIT = 120  # characters of a filter item (EES API limit)
NOT_RECORDED = "Not recorded"
META_COLUMNS = (
    "col_name",
    "col_type",
    "label",
    "indicator_grouping",
    "indicator_unit",
    "indicator_dp",
    "filter_hint",
    "filter_grouping_column",
    "filter_default",
)
WITHHELD_STATUSES = [CONF_PRIMARY, CONF_SECONDARY]


@dataclass(frozen=True)
class FilterColumn:
    spec: FilterSpec
    labels: pd.Series  # one label per released row
    default_label: str  # the item EES shows first: Total, or the label of ``spec.default``
    description: str  # the released column's description (the hint when none is configured)

    def has_default(self, index: pd.Index) -> bool:
        return bool((self.labels.loc[index] == self.default_label).any())


@dataclass(frozen=True)
class IndicatorColumn:
    spec: IndicatorSpec
    cells: pd.Series  # one cell per released row: a number as text, or a symbol


def label_lookups(classification: Classification, config: OpenDataConfig) -> dict[str, Mapping[str, str]]:
    """Every named source of labels: code -> label."""
    lookups: dict[str, Mapping[str, str]] = {
        "icare": {code: classification.get(code).label for code in classification.codes()},
        "exit_destination": {v.code: v.label for v in classification.exit_destinations.values},
    }
    for name, dimension in classification.dimensions.items():
        lookups[f"dimension:{name}"] = {v.code: v.label for v in dimension.values}
    for name, labels in config.labels.items():
        lookups[f"labels:{name}"] = labels
    return lookups


def filter_column(
    frame: pd.DataFrame,
    spec: FilterSpec,
    lookups: Mapping[str, Mapping[str, str]],
    description: str,
    notes: list[str],
) -> FilterColumn:
    """The labels of one filter; rows summed over it (``total``, or per ``total_unless``) are Total.
    ``lookups``: :func:`label_lookups`."""
    missing_lookups = [name for name in spec.values if name not in lookups]
    if missing_lookups:
        notes.append(f"filter {spec.name}: label lists {missing_lookups} do not exist; codes are shown")
    codes = frame[spec.column]
    total = codes == TOTAL
    for column, kept in spec.total_unless.items():
        if column in frame:
            total |= ~frame[column].isin([kept] if isinstance(kept, str) else list(kept))
    # Labels are looked up once per distinct value, then mapped over the rows.
    labels: dict[str, str] = {}
    unlabelled: list[str] = []
    for code in codes[~total].dropna().unique():
        found = next((lookups[n][code] for n in spec.values if code in lookups.get(n, {})), None)
        if found is None:
            unlabelled.append(str(code))
        labels[code] = code if found is None else found
    # Two codes with one label would be one item: each then shows its code too.
    shared = pd.Series(labels, dtype="str")
    shared = shared[shared.duplicated(keep=False) | (shared == TOTAL_ITEM)]
    labels.update({code: f"{label} ({code})" for code, label in shared.items()})
    if unlabelled and not spec.keep_unlabelled:
        notes.append(f"filter {spec.name}: values {sorted(unlabelled)} have no label; shown as codes")
    too_long = sorted(label for label in labels.values() if len(label) > ITEM_LIMIT)
    if too_long:
        notes.append(f"filter {spec.name}: items longer than EES allows ({ITEM_LIMIT}): {too_long}")
    shown = codes.map(labels).astype("str")
    shown = shown.mask(codes.isna(), spec.missing or NOT_RECORDED).mask(total, TOTAL_ITEM)
    default = TOTAL_ITEM
    if spec.default is not None:
        default = next(
            (lookups[n][spec.default] for n in spec.values if spec.default in lookups.get(n, {})),
            spec.default,
        )
    return FilterColumn(spec, shown, default, description)


def indicator_column(
    released: pa.Table, spec: IndicatorSpec, config: OpenDataConfig
) -> IndicatorColumn | None:
    """Numbers as text; ``c`` where the status withholds the value, whatever the value holds; an
    empty value that is not withheld is the symbol of its missing reason, else ``x``. None when the
    released table has no such column."""
    if spec.name not in released.column_names:
        return None
    values = released[spec.name]
    text = pc.cast(values, pa.string())
    status_name = spec.status or f"{spec.name}_status"
    if status_name in released.column_names:
        withheld = pc.fill_null(pc.is_in(released[status_name], pa.array(WITHHELD_STATUSES)), False)
    else:
        withheld = pa.array([False] * len(released), pa.bool_())
    empty = pd.Series(config.symbols.not_available, index=range(len(released)), dtype="str")
    if spec.missing_reason and spec.missing_reason in released.column_names:
        reasons = released[spec.missing_reason].to_pandas()
        empty = reasons.map(config.rate_missing_reasons).fillna(config.symbols.not_available).astype("str")
    cells = pd.Series(text.to_pandas(), dtype="str")
    cells = cells.mask(cells.isna(), empty)
    cells = cells.mask(pd.Series(withheld.to_numpy(zero_copy_only=False)), config.symbols.withheld)
    return IndicatorColumn(spec, cells.astype("str"))


def meta_frame(filters: list[FilterColumn], indicators: list[IndicatorColumn]) -> pd.DataFrame:
    """The EES metadata file: one row per filter, then one per indicator, in data-file order."""
    rows = [
        {
            "col_name": f.spec.name,
            "col_type": "Filter",
            "label": f.spec.label,
            "filter_hint": _sentence(f.spec.hint or f.description),
            "filter_default": "" if f.default_label == TOTAL_ITEM else f.default_label,
        }
        for f in filters
    ]
    rows += [
        {
            "col_name": i.spec.name,
            "col_type": "Indicator",
            "label": i.spec.label,
            "indicator_grouping": i.spec.grouping,
            "indicator_unit": i.spec.unit,
            "indicator_dp": str(i.spec.dp),
        }
        for i in indicators
    ]
    return pd.DataFrame(rows, columns=list(META_COLUMNS), dtype="str").fillna("")


def _sentence(text: str) -> str:
    """A hint starts with a capital letter, as EES shows it under the filter's label."""
    return text[:1].upper() + text[1:] if text else ""
