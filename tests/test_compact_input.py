"""The validated input held compactly between reading and harmonisation.

Valid rows are dictionary-encoded once a file is validated (origin columns as one category per
file, codes and dates as written as categoricals), the files' categoricals are combined with the
union of their categories, and sealing keeps them encoded. None of it may change a value, the order
of the rows, a quarantine record or a child key.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from icare.classification import load_classification
from icare.pipeline import open_source
from icare.sources.ssda903.source import NAME, _area_positions, _child_keys, _distinct_pairs
from icare.vectorised import decoded
from schemas.checks import parse_text_dates
from schemas.ssda903 import DATE_FORMAT, DATE_PATTERN
from tests.builders import episode, header, write_return
from tests.conftest import TEST_PSEUDONYMISER


@pytest.fixture(scope="module")
def source():
    return open_source("ssda903", load_classification(), TEST_PSEUDONYMISER)


@pytest.fixture
def two_areas(tmp_path):
    """Two areas' returns for one year: different codes, dates and children in each file."""
    root = tmp_path / "in"
    write_return(
        root,
        2024,
        area="201",
        headers=[header("1", dob="01/02/2010"), header("2", dob="03/04/2011")],
        episodes=[
            episode("1", "01/05/2023", place="U4"),
            episode("2", "02/05/2023", place="U1", urn="SC123"),
            episode("1", "03/05/2023", place="U4", dec="04/05/2023", rec="E11"),
        ],
    )
    write_return(
        root,
        2024,
        area="202",
        headers=[header("1", dob="03/04/2011"), header("7", dob="05/06/2012")],
        episodes=[episode("7", "05/05/2023", place="K2"), episode("1", "01/05/2023", place="U1")],
    )
    return root


def _text(column: pd.Series) -> list[object]:
    return [None if pd.isna(value) else value for value in decoded(column)]


def test_valid_rows_are_encoded_and_combined_in_file_order(source, two_areas):
    extraction = source.extract(source.discover(two_areas))
    episodes = extraction.valid["episodes"]

    for column in ["source", "area_code", "file", "sheet", "PLACE", "DECOM", "DEC", "URN"]:
        assert isinstance(episodes[column].dtype, pd.CategoricalDtype), column
    assert _text(episodes["file"]) == ["2024/201/episodes.csv"] * 3 + ["2024/202/episodes.csv"] * 2
    assert _text(episodes["area_code"]) == ["201"] * 3 + ["202"] * 2
    assert _text(episodes["sheet"]) == [None] * 5
    assert episodes["row_number"].tolist() == [2, 3, 4, 2, 3]
    assert episodes["CHILD"].tolist() == ["1", "2", "1", "7", "1"]  # hashed per row when sealed: text
    assert isinstance(episodes["CHILD"].dtype, pd.StringDtype)
    assert _text(episodes["PLACE"]) == ["U4", "U1", "U4", "K2", "U1"]
    assert _text(episodes["DECOM"]) == ["01/05/2023", "02/05/2023", "03/05/2023", "05/05/2023", "01/05/2023"]
    assert _text(episodes["DEC"]) == [None, None, "04/05/2023", None, None]
    assert _text(episodes["URN"]) == [None, "SC123", None, None, None]
    # Categories in order of first appearance over the files, as encoding the whole column gives.
    assert list(episodes["PLACE"].cat.categories) == ["U4", "U1", "K2"]
    assert list(episodes["file"].cat.categories) == ["2024/201/episodes.csv", "2024/202/episodes.csv"]
    # Identifiers nothing reads after validation are not held.
    assert not {"HOME_POST", "PL_POST"} & set(episodes.columns)
    assert not {"UPN", "MOTHER", "MC_DOB"} & set(extraction.valid["header"].columns)


def test_a_rejected_row_stays_as_read_and_its_record_is_unchanged(source, tmp_path):
    write_return(
        tmp_path / "in",
        2024,
        headers=[header("1"), header("2")],
        episodes=[episode("1", "01/05/2023"), episode("2", "32/05/2023", place="ZZ9")],
    )
    extraction = source.extract(source.discover(tmp_path / "in"))
    record = extraction.quarantine[["file", "row_number", "column_name", "rule", "value"]]
    # a structural failure (the start date) quarantines the row with every record it has
    assert record.values.tolist() == [
        ["2024/201/episodes.csv", 3, "DECOM", "date_format", "32/05/2023"],
        ["2024/201/episodes.csv", 3, "PLACE", "code_list", "ZZ9"],
    ]

    rejected = extraction.rejected["episodes"]
    assert rejected["row_number"].tolist() == [3]
    for column in ["file", "area_code", "PLACE", "DECOM"]:  # harmonisation reads them as text
        assert isinstance(rejected[column].dtype, pd.StringDtype), column
    assert rejected["PLACE"].tolist() == ["ZZ9"]
    assert extraction.valid["episodes"]["row_number"].tolist() == [2]

    sealed = source.seal(extraction)
    assert sealed.quarantine[record.columns].values.tolist() == record.values.tolist()
    assert sealed.rejected["episodes"]["CHILD"].tolist() == [
        TEST_PSEUDONYMISER.child_keys(NAME, pd.Series(["201"]), pd.Series(["2"])).iloc[0]
    ]


def test_sealed_rows_hold_the_keys_and_digests_of_their_own_values(source, two_areas):
    raw = source.extract(source.discover(two_areas))
    headers = raw.valid["header"]
    area, child, dob = decoded(headers["area_code"]), headers["CHILD"].copy(), decoded(headers["DOB"])
    sealed = source.seal(raw).valid["header"]

    assert sealed["CHILD"].tolist() == TEST_PSEUDONYMISER.child_keys(NAME, area, child).tolist()
    # Held as codes into the keys in key order: the codes are the child ids harmonisation numbers.
    keys = list(sealed["CHILD"].cat.categories)
    assert keys == sorted(keys) and set(sealed["CHILD"]) <= set(keys)
    assert isinstance(sealed["DOB"].dtype, pd.CategoricalDtype)  # the digests of its categories
    assert _text(sealed["DOB"]) == TEST_PSEUDONYMISER.values(dob).tolist()
    assert _text(sealed["DOB"])[1] == _text(sealed["DOB"])[2]  # the same date of birth, one digest
    parsed = sealed["__parsed_DOB"]
    assert parsed.tolist() == [
        pd.Timestamp(d) for d in ["2010-02-01", "2011-04-01", "2011-04-01", "2012-06-01"]
    ]


def test_child_keys_come_from_the_distinct_pairs_of_each_frame():
    # Repeated children, the same id in two areas, a missing area and a missing id.
    first = pd.DataFrame(
        {"area_code": ["201", "202", "201", None, "201"], "CHILD": ["A", "A", "A", "B", None]},
        index=[10, 11, 12, 13, 14],
    ).astype({"area_code": "category", "CHILD": "str"})
    second = pd.DataFrame(
        {"area_code": pd.Series(["202", "203"], dtype="str"), "CHILD": pd.Series(["A", "A"], dtype="str")}
    )
    keys = _child_keys([first, second], TEST_PSEUDONYMISER)

    for frame, key in zip([first, second], keys, strict=True):
        expected = TEST_PSEUDONYMISER.child_keys(NAME, frame["area_code"].astype("str"), frame["CHILD"])
        assert key.index.tolist() == frame.index.tolist()
        assert key.tolist() == expected.tolist()
    assert keys[0].iloc[0] == keys[0].iloc[2] != keys[0].iloc[1] == keys[1].iloc[0]
    assert pd.isna(keys[0].iloc[4])


def test_distinct_pairs_number_each_id_in_its_first_area_then_the_other_pairs():
    areas = [pd.Series(["201", "202", "201", None], dtype="category"), pd.Series(["202", "201"], dtype="str")]
    children = [pd.Series(["A", "A", "A", None], dtype="str"), pd.Series(["A", "B"], dtype="str")]
    area, child, rows = _distinct_pairs(areas, children)
    # Ids A, missing, B in their first rows' areas, then A's second area.
    assert area.to_pylist() == ["201", None, "201", "202"]
    assert child.to_pylist() == ["A", None, "B", "A"]
    assert [r.tolist() for r in rows] == [[0, 3, 0, 1], [3, 2]]
    area, child, rows = _distinct_pairs([], [])  # an extraction without tables
    assert (area.to_pylist(), child.to_pylist(), rows) == ([], [], [])


def test_area_positions_number_the_areas_of_all_columns_once():
    codes, names = _area_positions([pd.Series(["b", None, "a"], dtype="category"), pd.Series(["a", "c"])])
    assert names == ["a", "b", "c"]  # a categorical's areas as its categories list them
    assert [c.tolist() for c in codes] == [[1, -1, 0], [0, 2]]


def test_dates_are_parsed_once_per_distinct_text_with_the_same_result_as_one_by_one():
    texts = [
        "01/05/2023",
        "31/02/2023",
        None,
        "01/05/2023",
        "1/5/2023",
        "29/02/2024",
        "2023-05-01",
        "31/02/2023",
    ]
    chunks = pa.chunked_array(
        [pa.array(texts[:3], pa.large_string()), pa.array(texts[3:], pa.large_string())]
    )
    values = pd.Series(pd.arrays.ArrowStringArray(chunks), index=range(100, 108), name="DECOM")

    parsed = parse_text_dates(values, DATE_PATTERN, DATE_FORMAT)
    one_by_one = [
        parse_text_dates(pd.Series([text], dtype="str"), DATE_PATTERN, DATE_FORMAT).iloc[0] for text in texts
    ]
    assert parsed.index.tolist() == values.index.tolist() and parsed.name == "DECOM"
    assert parsed.dtype == "datetime64[s]"
    assert [None if pd.isna(d) else d for d in parsed] == [None if pd.isna(d) else d for d in one_by_one]
    assert parsed.notna().tolist() == [True, False, False, True, False, True, False, False]
