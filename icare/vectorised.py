"""Arrow-backed helpers for operations pandas does slowly on text columns of a million rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import union_categoricals

_TEXT = pa.large_string()


def empty_like(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame.iloc[:0]`` (same columns and dtypes, no rows) that holds none of ``frame``'s data.

    A zero-row slice of an Arrow-backed column still references the column's buffers, so keeping
    ``frame.iloc[:0]`` would keep every value of ``frame`` in memory for as long as the slice lives.
    """
    empty = pd.DataFrame(
        {position: pd.Series([], dtype=dtype) for position, dtype in enumerate(frame.dtypes)},
        index=pd.Index([], dtype=frame.index.dtype, name=frame.index.name),
    )
    empty.columns = frame.columns
    return empty


def text_isin(values: pd.Series, allowed: pd.Series | list[str]) -> np.ndarray:
    """``values.isin(allowed)`` for text, in Arrow's hash kernels (nulls are never in the set)."""
    column = pa.array(values, type=_TEXT, from_pandas=True)
    value_set = pa.array(pd.Series(allowed).dropna().unique(), type=_TEXT, from_pandas=True)
    return pc.fill_null(pc.is_in(column, value_set=value_set), False).to_numpy(zero_copy_only=False)


def positions_in(values: pd.Series, uniques: pa.Array) -> np.ndarray:
    """Position of each value in ``uniques`` (-1 when absent): integer ids for text keys."""
    column = pa.array(values, type=_TEXT, from_pandas=True)
    found = pc.index_in(column, value_set=uniques)
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype("int64")


def sort_order(*columns: pd.Series) -> np.ndarray:
    """Positions that sort the rows by the given columns (text by code point; null text and numbers
    first, missing dates last).

    Text columns are replaced by the rank of their value among the distinct values, so the final
    sort runs on integers: much faster than pandas sorting text over a million rows.
    """
    keys = []
    for column in columns:
        if isinstance(column.dtype, pd.CategoricalDtype):
            keys.append(text_rank(column))  # -1 (null) sorts first
        elif column.dtype.kind == "M":
            keys.append(column.to_numpy())  # NaT is the smallest datetime64
        elif column.dtype.kind in "iufb":
            values = column.astype("float64").to_numpy()
            keys.append(np.where(np.isnan(values), -np.inf, values))
        else:
            keys.append(pd.factorize(column, sort=True, use_na_sentinel=True)[0])  # -1 (null) sorts first
    return np.lexsort(keys[::-1]) if keys else np.array([], dtype="int64")


def is_sorted(*columns: pd.Series) -> bool:
    """True when the rows are already in ``sort_order``'s order (so sorting would not move them).

    One pass of element-wise comparisons of each row with the one before, far cheaper than ranking
    text (a categorical compares the ranks of its categories). Missing text comes first, as in
    ``sort_order``; a number or date column with missing values gives False, leaving the decision to
    ``sort_order``.
    """
    if not columns or len(columns[0]) < 2:
        return True
    undecided = np.ones(len(columns[0]) - 1, dtype=bool)  # rows equal to the previous one so far
    for column in columns:
        if isinstance(column.dtype, pd.CategoricalDtype):
            column = pd.Series(text_rank(column), copy=False)  # integers, missing (-1) first
        if column.dtype.kind in "iufbM":
            if column.isna().any():
                return False
            values = column.to_numpy()
            before, after = values[:-1], values[1:]
            if (undecided & (after < before)).any():
                return False
            undecided &= after == before
        else:
            try:
                values = pa.array(column, type=_TEXT, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # not text after all: let sort_order decide
                return False
            before, after = values[:-1], values[1:]
            missing_before = before.is_null().to_numpy(zero_copy_only=False)
            missing_after = after.is_null().to_numpy(zero_copy_only=False)
            less = pc.fill_null(pc.less(after, before), False).to_numpy(zero_copy_only=False)
            if (undecided & (less | (missing_after & ~missing_before))).any():
                return False
            equal = pc.fill_null(pc.equal(after, before), False).to_numpy(zero_copy_only=False)
            undecided &= equal | (missing_after & missing_before)
        if not undecided.any():
            return True
    return True


def encoded(values: pd.Series, dictionary: pa.DictionaryArray | None = None) -> pd.Series:
    """The same text as a pandas categorical, dictionary-encoded in Arrow (categories in order of
    first appearance, missing values as code -1). ``dictionary``: ``values`` already encoded by
    ``dictionary_encoded`` (e.g. by ``TextDictionaries``), not encoded again.

    Gathering rows of a categorical moves small integers instead of text: Arrow's ``take`` on plain
    strings is the main cost of gathering a million-row table by row id, and grows faster than the
    rows because each value is fetched from anywhere in a large buffer. Decode with ``decoded``.
    """
    if dictionary is None:
        dictionary = dictionary_encoded(values)
    codes = pc.fill_null(dictionary.indices, -1).to_numpy(zero_copy_only=False)
    return categorical(codes, dictionary.dictionary, values.index)


def dictionary_encoded(values: pd.Series) -> pa.DictionaryArray:
    """A text column as one Arrow dictionary array (distinct values in order of first appearance)."""
    array = pa.array(values, type=_TEXT, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return pc.dictionary_encode(array)


class TextDictionaries:
    """Chosen text columns of one frame, each dictionary-encoded once, when first asked for.

    Several steps read a column by its distinct values (validation checks codes once per distinct
    value, compaction holds the column encoded): one hash pass over the rows serves them all. A
    column not chosen gives None (e.g. an identifier with as many values as rows, where encoding
    would cost more than it saves). The frame's columns must not change while this is used.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        columns: list[str],
        known: dict[str, pa.DictionaryArray] | None = None,
    ) -> None:
        """``known``: encodings of columns of ``frame`` already made (by normalisation), reused."""
        self._frame = frame
        self._columns = set(columns)
        self._encoded: dict[str, pa.DictionaryArray] = {
            c: d for c, d in (known or {}).items() if c in self._columns
        }

    def get(self, column: str) -> pa.DictionaryArray | None:
        if column not in self._columns:
            return None
        if column not in self._encoded:
            self._encoded[column] = dictionary_encoded(self._frame[column])
        return self._encoded[column]


def categorical(
    codes: np.ndarray, categories: pa.Array | list[str] | pd.CategoricalDtype, index: pd.Index
) -> pd.Series:
    """A categorical Series from codes (-1 = missing) into distinct ``categories`` (or an existing
    categorical dtype, shared by several columns: checking a dtype's categories is a hash pass)."""
    dtype = categories if isinstance(categories, pd.CategoricalDtype) else text_categories(categories)
    return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype, validate=False), index=index, copy=False)


def text_categories(categories: pa.Array | list[str]) -> pd.CategoricalDtype:
    """A categorical dtype over distinct text values."""
    return pd.CategoricalDtype(pd.Index(categories, dtype="str"))


def looked_up(table: pd.Series | list[str], codes: np.ndarray, index: pd.Index | None = None) -> pd.Series:
    """``table`` (text, a few values) at each of ``codes`` (-1 gives null), as a plain ``str`` column."""
    dictionary = pa.array(table, type=_TEXT, from_pandas=True)
    return pd.Series(dictionary.take(pa.array(codes, mask=codes < 0)), index=index, dtype="str", copy=False)


def decoded(values: pd.Series) -> pd.Series:
    """A categorical (from ``encoded``) back to a plain ``str`` column, with one Arrow ``take`` from
    its categories (several times faster than pandas' ``astype``). Other columns are returned as
    they are."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return values
    return looked_up(pd.Series(values.cat.categories), values.cat.codes.to_numpy(), values.index)


def decoded_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every categorical column decoded to plain text (see ``decoded``)."""
    text = {c: decoded(frame[c]) for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
    return frame.assign(**text) if text else frame


def plain_text(table: pd.DataFrame | pa.Table) -> pd.DataFrame | pa.Table:
    """``table`` with dictionary-encoded text (pandas categoricals, Arrow dictionaries) decoded."""
    if isinstance(table, pd.DataFrame):
        return decoded_frame(table)
    fields = [
        field.with_type(field.type.value_type) if pa.types.is_dictionary(field.type) else field
        for field in table.schema
    ]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def concat_encoded(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """``pd.concat(frames, ignore_index=True)``, keeping a column categorical when it is in every frame
    (categories unioned: pandas turns categoricals with different categories into Python objects);
    a column categorical in only some frames is decoded to plain text in those."""
    columns = {}
    for column in frames[0].columns:
        parts = [frame[column] for frame in frames]
        encoded_parts = [isinstance(part.dtype, pd.CategoricalDtype) for part in parts]
        if all(encoded_parts):
            columns[column] = pd.Series(union_categoricals([part.array for part in parts]), copy=False)
            continue
        if any(encoded_parts):
            parts = [decoded(part) for part in parts]
        columns[column] = pd.concat(parts, ignore_index=True)
    return pd.DataFrame(columns, copy=False)


def in_appearance_order(values: pd.Series) -> pd.Series:
    """A categorical whose categories are listed in the order the rows first use them (unused ones
    last, as they were): rows put in another order get the categories encoding them afresh gives."""
    codes = values.cat.codes.to_numpy()
    used, first_row = np.unique(codes[codes >= 0], return_index=True)
    order = np.concatenate(
        [
            used[np.argsort(first_row, kind="stable")],
            np.setdiff1d(np.arange(len(values.cat.categories)), used),
        ]
    )
    if (order == np.arange(len(order))).all():
        return values
    new_code = np.empty(len(order), dtype=np.int64)
    new_code[order] = np.arange(len(order))
    recoded = np.where(codes >= 0, new_code[np.maximum(codes, 0)], -1)
    return categorical(recoded, list(values.cat.categories[order]), values.index)


def constant(value: str | None, index: pd.Index) -> pd.Series:
    """The same text on every row, as a categorical: one byte per row instead of a string each (for
    None, every row missing and no category)."""
    codes = np.full(len(index), -1 if value is None else 0, dtype="int8")
    return categorical(codes, [] if value is None else [value], index)


def text_rank(values: pd.Series) -> np.ndarray:
    """Each row's rank among the distinct texts in code-point order (-1 when missing), as
    ``pd.factorize(values, sort=True)`` numbers them; for a categorical only its categories are
    ranked."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = values.cat.categories
        if categories.is_monotonic_increasing:  # e.g. the child keys: no sort of the categories
            rank = np.arange(len(categories))
        else:
            rank = pd.factorize(pd.Series(categories), sort=True)[0]
        return np.append(rank, -1)[values.cat.codes.to_numpy()]
    return pd.factorize(values, sort=True, use_na_sentinel=True)[0]


def min_max_by(groups: np.ndarray, values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest integer value of each group, for groups numbered 0 to ``size - 1``
    (arrays indexed by group; a group without rows keeps the int64 extremes).

    Values of a narrow range (collection years) are written one value at a time, in the order that
    leaves each group's extreme last (about 6x faster than ``np.minimum.at`` over 600,000 rows).
    """
    lowest = np.full(size, np.iinfo("int64").max)
    highest = np.full(size, np.iinfo("int64").min)
    if len(values) and int(values.max()) - int(values.min()) < _FEW_VALUES:
        for value in range(int(values.max()), int(values.min()) - 1, -1):
            lowest[groups[values == value]] = value
        for value in range(int(values.min()), int(values.max()) + 1):
            highest[groups[values == value]] = value
        return lowest, highest
    np.minimum.at(lowest, groups, values)
    np.maximum.at(highest, groups, values)
    return lowest, highest


_FEW_VALUES = 16  # ``min_max_by`` writes value by value below this range
