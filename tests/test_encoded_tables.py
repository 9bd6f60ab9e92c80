"""Tables held with dictionary-encoded text (between harmonisation and the write) publish exactly
the plain tables: same schema (types, nullability, order), same values, same row order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from icare import pipeline
from icare.vectorised import encoded
from schemas.outputs import arrow_schema, to_arrow, validate_arrow
from tests.test_publish import returns  # noqa: F401  (the fixture)


def _encode_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every text column as a categorical whose categories are not in sorted order and include an
    unused value, as harmonisation leaves them."""
    out = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == "str":
            coded = encoded(frame[column])
            categories = [*reversed(coded.cat.categories), "never used"]
            out[column] = coded.cat.set_categories(categories)
    return out


def _published(run_on, returns, tmp_path) -> dict[str, pa.Table]:  # noqa: F811
    run_on(returns, tmp_path / "out")
    return {t: pq.read_table(tmp_path / "out" / "parquet" / f"{t}.parquet") for t in ("episodes", "children")}


def test_encoded_tables_convert_to_exactly_the_published_schema_and_values(returns, run_on, tmp_path):  # noqa: F811
    for name, published in _published(run_on, returns, tmp_path).items():
        published = published.replace_schema_metadata(None)
        frame = _encode_text(published.to_pandas())
        held = to_arrow(frame, name, encoded=True)
        encoded_fields = [f for f in held.schema if pa.types.is_dictionary(f.type)]
        assert encoded_fields, name
        assert held.schema.names == published.schema.names
        assert [f.nullable for f in held.schema] == [f.nullable for f in published.schema]
        for written in (to_arrow(held, name), validate_arrow(held, name), to_arrow(frame, name)):
            assert written.schema.equals(arrow_schema(name)), name
            assert written.equals(published), name
        # Validated again as held (the write's input): still encoded, same values.
        assert to_arrow(held, name, encoded=True).schema.equals(held.schema)


def test_assembling_sources_with_different_categories_keeps_values_and_order():
    first = pd.DataFrame(
        {
            "source": encoded(pd.Series(["b"] * 3, dtype="str")),
            "area_code": encoded(pd.Series(["202", "201", None], dtype="str")),
            "row_number": np.array([1, 2, 3]),
        }
    )
    second = pd.DataFrame(
        {
            "source": encoded(pd.Series(["a", "a"], dtype="str")),
            "area_code": encoded(pd.Series(["301", "201"], dtype="str")),
            "row_number": np.array([4, 5]),
        }
    )
    assembled = pipeline._sorted(pipeline._concat([first, second]), "source", "area_code", "row_number")
    assert all(isinstance(assembled[c].dtype, pd.CategoricalDtype) for c in ("source", "area_code"))
    plain = pd.concat(
        [f.astype({"source": "str", "area_code": "str"}) for f in (first, second)], ignore_index=True
    )
    expected = plain.sort_values(["source", "area_code", "row_number"], na_position="first", kind="stable")
    assert assembled["row_number"].tolist() == expected["row_number"].tolist()
    for column in ("source", "area_code"):
        assert assembled[column].astype(object).tolist() == expected[column].astype(object).tolist()
