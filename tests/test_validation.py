"""Validation evaluates the schema's rules directly and leaves only failures to Pandera.

What it reports must be exactly what Pandera reports running the whole schema: the same rows, the
same quarantine records in the same order, with codes checked once per distinct value.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest

from icare.codelists import load_codelists
from icare.quarantine import Origin
from icare.sources.spec import load_source_spec
from icare.validation import _failing, _validate_with_pandera, validate_table
from icare.vectorised import TextDictionaries, encoded
from schemas import ssda903
from schemas.checks import code_in, is_per_value, max_length
from tests.builders import episode, header

ORIGIN = Origin("ssda903", "2024/201/episodes.csv", None, "episodes", 2024, "201")
EPISODE_TEXT = ["RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "DEC", "DECOM", "REC", "REASON_PLACE_CHANGE"]


@pytest.fixture(scope="module")
def codelists():
    return load_codelists(load_source_spec("ssda903").codelists_path)


def _frame(rows: list[dict[str, str]], table: str) -> pd.DataFrame:
    """Rows as read (text, blank = missing, numbered from line 2) with their dates parsed once."""
    frame = pd.DataFrame(rows, dtype="str").replace("", None).astype("str")
    frame.index = pd.RangeIndex(2, 2 + len(frame), name="row_number")
    return ssda903.add_parsed_dates(frame, ssda903.DATE_COLUMNS[table])


def _records(records: pd.DataFrame) -> list[tuple[int, str, str, object]]:
    return [(int(r.row_number), r.column_name, r.rule, r.value) for r in records.itertuples(index=False)]


def test_codes_checked_once_per_value_reach_every_row_holding_them(codelists):
    frame = _frame(
        [
            episode("1", "01/05/2023", place="U4"),
            episode("2", "01/05/2023", place="ZZ"),
            episode("3", "01/05/2023", place="ZZ"),  # the same bad code again
            episode("4", "01/05/2023", place=""),  # missing, but required
            episode("5", "01/05/2023", place="U4"),
            episode("12345678901", "01/05/2023", place="U4"),  # 11 characters
        ],
        "episodes",
    )
    schema = ssda903.episodes_schema(codelists, 2024)
    dictionaries = TextDictionaries(frame, EPISODE_TEXT)
    valid, records = validate_table(frame, schema, ORIGIN, dictionaries)
    assert valid.tolist() == [True, False, False, False, True, False]
    assert _records(records) == [
        (3, "PLACE", "code_list", "ZZ"),
        (4, "PLACE", "code_list", "ZZ"),
        (7, "CHILD", "max_length", "12345678901"),
        (5, "PLACE", "not_nullable", None),
    ]


def test_only_the_failed_rules_are_left_to_pandera(codelists):
    frame = _frame(
        [episode("1", "01/05/2023", place="ZZ"), episode("2", "01/05/2023", dec="02/05/2023")],
        "episodes",
    )
    failing = _failing(frame, ssda903.episodes_schema(codelists, 2024), TextDictionaries(frame, ["PLACE"]))
    assert failing.nulls == set()
    assert failing.column_checks == {"PLACE": [1]}  # no_surrounding_space passes, code_in fails
    schema = ssda903.episodes_schema(codelists, 2024)
    assert [schema.checks[i].name for i in failing.table_checks] == ["REC|missing_with_end"]


def test_per_value_checks_are_the_code_checks():
    assert is_per_value(code_in(["A"], "test")) and is_per_value(max_length(3))
    assert not is_per_value(pa.Check(lambda values: values.notna()))


def _defective_episodes() -> list[dict[str, str]]:
    return [
        episode("1", "01/05/2023"),
        episode("1", "01/05/2023"),  # duplicates are not a schema rule
        episode(" 2", "01/05/2023", place=" U4"),
        episode("3", "01/05/23", dec="31/02/2024", rec="E11"),
        episode("4", "", rne="", ls="", cin="", place="", provider=""),
        episode("5", "01/05/2023", dec="01/04/2023", rec="E11"),
        episode("6", "01/05/2023", dec="02/05/2023"),
        episode("7", "01/05/2023", rec="E11"),
        episode("8", "01/05/2024", place="P2"),
        episode("9", "01/05/2023", dec="01/05/2024", rec="E11", reason_change="XX"),
        {column: "" for column in episode("0", "")},  # nothing at all in the schema's columns
        episode("10", "01/05/2023", place="ZZ", provider="PR9", ls="X"),
    ]


@pytest.mark.parametrize(
    ("table", "rows"),
    [
        ("episodes", _defective_episodes()),
        (
            "header",
            [
                header("1"),
                header("1", sex="3"),
                header("2", dob="31/13/2010", ethnic="XXXX"),
                header("", dob=""),
                header("3 ", sex=""),
            ],
        ),
        (
            "uasc",
            [
                {"CHILD": "1", "SEX": "1", "DOB": "01/01/2010", "DUC": "01/01/2028"},
                {"CHILD": "2", "SEX": "9", "DOB": "1/1/2010", "DUC": ""},
                {"CHILD": "", "SEX": "", "DOB": "", "DUC": "30/02/2020"},
            ],
        ),
    ],
)
def test_records_are_those_of_pandera_running_the_whole_schema(codelists, table, rows):
    frame = _frame(rows, table)
    schema = ssda903.SCHEMAS[table](codelists, 2024)
    text = [c for c in frame.columns if c != "CHILD" and not c.startswith("__")]
    expected_valid, expected = _validate_with_pandera(frame, schema, ORIGIN)
    assert len(expected) > 0
    for dictionaries in (None, TextDictionaries(frame, text)):
        valid, records = validate_table(frame, schema, ORIGIN, dictionaries)
        pd.testing.assert_series_equal(valid, expected_valid)
        pd.testing.assert_frame_equal(records, expected)


def test_a_frame_not_read_as_text_is_left_to_pandera_whole(codelists):
    frame = _frame(_defective_episodes(), "episodes").astype({"RNE": object})
    schema = ssda903.episodes_schema(codelists, 2024)
    assert _failing(frame, schema) is None
    valid, records = validate_table(frame, schema, ORIGIN)
    expected_valid, expected = _validate_with_pandera(frame, schema, ORIGIN)
    pd.testing.assert_series_equal(valid, expected_valid)
    pd.testing.assert_frame_equal(records, expected)


def test_text_dictionaries_encode_a_chosen_column_once():
    frame = pd.DataFrame({"A": ["x", None, "y", "x"], "B": ["1", "2", "3", "4"]}, dtype="str")
    dictionaries = TextDictionaries(frame, ["A"])
    first = dictionaries.get("A")
    assert first is dictionaries.get("A")
    assert first.dictionary.to_pylist() == ["x", "y"]
    assert first.indices.to_pylist() == [0, None, 1, 0]
    assert dictionaries.get("B") is None
    pd.testing.assert_series_equal(encoded(frame["A"], first), encoded(frame["A"]))
