"""Arrow-backed helpers for operations pandas does slowly on text columns of a million rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_TEXT = pa.large_string()


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

