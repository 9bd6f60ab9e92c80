"""Arrow/numpy helpers agree with the plain definitions they replace."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icare.episodes import _date_key, _stable_argsort, stable_order
from icare.vectorised import (
    categorical,
    concat_encoded,
    constant,
    decoded,
    decoded_frame,
    empty_like,
    encoded,
    in_appearance_order,
    is_sorted,
    min_max_by,
    plain_text,
    sort_order,
    text_rank,
)

TEXT = st.one_of(st.none(), st.sampled_from(["", "a", "ab", "b", "B", "é", "z"]))
ROWS = st.lists(
    st.tuples(TEXT, st.integers(0, 3), st.one_of(st.none(), st.sampled_from(["2020-01-01", "2021-06-30"]))),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(ROWS)
def test_is_sorted_only_when_sort_order_keeps_the_rows_in_place(rows):
    frame = pd.DataFrame(rows, columns=["text", "number", "date"]).astype({"text": "str", "number": "int64"})
    frame["date"] = pd.to_datetime(frame["date"])
    for columns in (["text"], ["number", "text"], ["text", "number", "date"]):
        order = sort_order(*(frame[c] for c in columns))
        if is_sorted(*(frame[c] for c in columns)):
            assert np.array_equal(order, np.arange(len(frame)))
        ordered = frame.iloc[order]
        if not ("date" in columns and ordered["date"].isna().any()):  # missing text is fine
            assert is_sorted(*(ordered[c] for c in columns))


NUMBERED = st.lists(
    st.tuples(st.integers(0, 3), st.one_of(st.none(), st.sampled_from(["2020-01-01", "2021-06-30"]))),
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(NUMBERED, st.booleans())
def test_stable_order_is_a_stable_sort_values(rows, presorted):
    frame = pd.DataFrame(rows, columns=["child_id", "episode_start"]).astype({"child_id": "int64"})
    frame["episode_start"] = pd.to_datetime(frame["episode_start"])
    frame["row_id"] = np.arange(len(frame))
    if presorted:
        frame = frame.sort_values(["child_id", "episode_start"], kind="stable")
    for columns in (["child_id"], ["episode_start", "child_id"], ["child_id", "episode_start", "row_id"]):
        expected = frame.reset_index(drop=True).sort_values(columns, kind="stable").index.to_numpy()
        assert np.array_equal(stable_order(frame, columns), expected)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 5), st.integers(0, 3)), max_size=14))
def test_stable_order_of_rows_already_in_order_after_the_first_column(rows):
    """The fast path: rows sorted by child and start, their areas interleaved."""
    frame = pd.DataFrame(rows, columns=["area", "child_id", "start"]).astype("int64")
    frame = frame.sort_values(["child_id", "start"], kind="stable")
    expected = frame.reset_index(drop=True).sort_values(["area", "child_id", "start"], kind="stable")
    assert np.array_equal(stable_order(frame, ["area", "child_id", "start"]), expected.index.to_numpy())


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT, max_size=12), st.lists(TEXT, max_size=6))
def test_encoded_text_decodes_ranks_and_concatenates_as_the_plain_text(values, more):
    plain = pd.Series(values, dtype="str", index=np.arange(len(values)) * 2)
    other = pd.Series(more, dtype="str")
    coded = encoded(plain)
    pd.testing.assert_series_equal(decoded(coded), plain)
    pd.testing.assert_series_equal(decoded(coded.iloc[::-1]), plain.iloc[::-1])
    assert np.array_equal(text_rank(coded), text_rank(plain))
    assert np.array_equal(text_rank(plain), pd.factorize(plain, sort=True, use_na_sentinel=True)[0])
    both = concat_encoded([pd.DataFrame({"t": coded}), pd.DataFrame({"t": encoded(other)})])
    pd.testing.assert_frame_equal(
        decoded_frame(both), pd.DataFrame({"t": pd.concat([plain, other], ignore_index=True)})
    )


@pytest.mark.parametrize(
    ("span", "rows"),
    [
        *((span, 5000) for span in [1, 2**10, 2**16, 2**20, 2**32 - 8]),  # one or two radix digits
        *((span, 5000) for span in [2**32, 2**40, 2**48 - 1]),  # packed with the positions
        (2**47, 70_000),  # 48 bits and 17 bits of positions: three radix digits
        (2**50, 5000),  # too wide for either
    ],
)
def test_stable_argsort_is_numpys(span, rows):
    values = np.random.default_rng(span % 1000).integers(-5, span, rows)
    assert np.array_equal(_stable_argsort(values), np.argsort(values, kind="stable"))


def test_empty_like_has_the_columns_and_dtypes_and_keeps_no_value_alive():
    text = pa.array([f"value {i:08d}" for i in range(200_000)], type=pa.large_string())
    frame = pd.DataFrame(
        {
            "text": pd.Series(text, dtype="str"),
            "when": pd.Series(np.zeros(len(text), dtype="datetime64[s]")),
            "n": np.arange(len(text)),
            "none": None,
        },
        index=pd.RangeIndex(2, len(text) + 2, name="row"),
    )
    del text
    held = pa.total_allocated_bytes()
    empty = empty_like(frame)
    pd.testing.assert_frame_equal(empty, frame.iloc[:0], check_index_type=False)
    del frame
    assert pa.total_allocated_bytes() < held - 2_000_000  # the text was freed, not kept by ``empty``
    assert empty.index.name == "row" and empty.columns.tolist() == ["text", "when", "n", "none"]


def test_date_key_counts_whole_days_and_gives_missing_dates_the_earliest():
    days = np.array(["2020-01-02", "NaT", "1969-12-31"], dtype="datetime64[s]")
    assert _date_key(days).tolist() == [18263, -1, -1]  # days since 1970-01-01
    timed = np.array(["2020-01-02T00:00:01", "NaT"], dtype="datetime64[s]")
    assert _date_key(timed).tolist() == [18263 * 86400 + 1] * 2  # not whole days: seconds
    assert _date_key(np.array(["NaT"], dtype="datetime64[s]")).tolist() == [0]


def test_stable_order_sorts_missing_dates_last_among_whole_days():
    frame = pd.DataFrame(
        {"child_id": [1, 0, 1, 0], "start": pd.to_datetime(["2021-01-01", None, "2020-05-05", "2020-05-05"])}
    )
    assert stable_order(frame, ["child_id", "start"]).tolist() == [3, 1, 2, 0]


def test_min_max_by_of_a_narrow_range_of_values():
    groups = np.array([1, 1, 0, 1, 3])
    years = np.array([2023, 2021, 2024, 2022, 2021])
    lowest, highest = min_max_by(groups, years, 4)
    assert lowest.tolist() == [2024, 2021, np.iinfo("int64").max, 2021]
    assert highest.tolist() == [2024, 2023, np.iinfo("int64").min, 2021]


def test_min_max_by_gives_each_groups_extremes_and_leaves_empty_groups_at_the_bounds():
    groups = np.array([2, 0, 2, 2, 0])
    values = np.array([7, -3, 1, 9, 4])
    lowest, highest = min_max_by(groups, values, 4)
    assert lowest.tolist() == [-3, np.iinfo("int64").max, 1, np.iinfo("int64").max]
    assert highest.tolist() == [4, np.iinfo("int64").min, 9, np.iinfo("int64").min]


@settings(max_examples=300, deadline=None)
@given(ROWS, st.booleans())
def test_encoded_text_sorts_as_the_plain_text_whatever_the_order_of_its_categories(rows, sorted_categories):
    """Categories in order of first appearance (``encoded``) or already sorted (ranked without a sort)."""
    frame = pd.DataFrame(rows, columns=["text", "number", "date"]).astype({"text": "str", "number": "int64"})
    text = encoded(frame["text"])
    if sorted_categories:
        text = text.cat.reorder_categories(sorted(text.cat.categories))
    for plain, coded in (
        ([frame["text"]], [text]),
        ([frame["number"], frame["text"]], [frame["number"], text]),
    ):
        assert np.array_equal(sort_order(*coded), sort_order(*plain))
        assert is_sorted(*coded) == is_sorted(*plain)
        order = sort_order(*plain)
        assert is_sorted(*(c.iloc[order] for c in coded))


def test_concatenating_text_encoded_in_some_frames_only_gives_plain_text():
    coded = pd.DataFrame({"t": encoded(pd.Series(["b", None, "a"], dtype="str")), "n": [1, 2, 3]})
    plain = pd.DataFrame({"t": pd.Series(["c", "a"], dtype="str"), "n": [4, 5]})
    both = concat_encoded([coded, plain])
    assert both["t"].dtype == "str"
    assert both["t"].tolist()[:1] + both["t"].tolist()[2:] == ["b", "a", "c", "a"]
    assert both["t"].isna().tolist() == [False, True, False, False, False]
    assert both["n"].tolist() == [1, 2, 3, 4, 5]


def test_plain_text_decodes_arrow_dictionaries_and_keeps_the_schema():
    dictionary = pa.DictionaryArray.from_arrays(
        pa.array([1, None, 0], pa.int8()), pa.array(["x", "y", "unused"])
    )
    schema = pa.schema(
        [pa.field("t", dictionary.type, nullable=True), pa.field("n", pa.int64(), nullable=False)]
    )
    table = pa.table({"t": dictionary, "n": pa.array([1, 2, 3])}, schema=schema)
    plain = plain_text(table)
    assert plain.schema == pa.schema([pa.field("t", pa.string()), pa.field("n", pa.int64(), nullable=False)])
    assert plain["t"].to_pylist() == ["y", None, "x"]


def test_in_appearance_order_lists_categories_as_rows_first_use_them():
    values = categorical(np.array([2, -1, 0, 2, 1]), ["a", "b", "c", "unused"], pd.RangeIndex(5))
    reordered = in_appearance_order(values)
    assert list(reordered.cat.categories) == ["c", "a", "b", "unused"]
    assert reordered.astype(object).tolist() == values.astype(object).tolist()  # same text, missing kept
    already = categorical(np.array([0, 1, 0]), ["x", "y"], pd.RangeIndex(3))
    assert in_appearance_order(already) is already  # nothing to recode


def test_constant_is_one_category_on_every_row_or_all_missing_for_none():
    index = pd.RangeIndex(3)
    sheet = constant("Episodes", index)
    assert list(sheet.cat.categories) == ["Episodes"] and sheet.tolist() == ["Episodes"] * 3
    missing = constant(None, index)
    assert len(missing.cat.categories) == 0 and missing.isna().all() and len(missing) == 3
