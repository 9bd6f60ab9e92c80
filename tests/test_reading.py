"""Reading files as text and recognising tables by their headers."""

from __future__ import annotations

import datetime

import pytest
from openpyxl import Workbook

from icare.reading import UnreadableFileError, recognise_table
from icare.reading_csv import read_csv_text
from icare.reading_workbook import read_workbook_text
from icare.sources.spec import load_source_spec
from tests.builders import EPISODE_COLUMNS, HEADER_COLUMNS, episode, write_csv

TABLES = load_source_spec("ssda903").table_columns()


def test_csv_keeps_leading_zeros_and_numbers_rows_from_the_header(tmp_path):
    path = write_csv(
        tmp_path / "e.csv", EPISODE_COLUMNS, [episode("007", "01/04/2023"), episode("0201", "x")]
    )
    frame = read_csv_text(path)
    assert frame["CHILD"].tolist() == ["007", "0201"]
    assert frame.index.tolist() == [2, 3]  # the header is row 1
    assert frame["DEC"].isna().all()  # empty fields are null, not ""


def test_csv_with_byte_order_mark_and_cp1252(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffCHILD,SEX\r\n01,1\r\n".encode())
    assert read_csv_text(bom).columns.tolist() == ["CHILD", "SEX"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("CHILD,NOTE\r\n01,caf\xe9\r\n".encode("cp1252"))
    assert read_csv_text(latin)["NOTE"].tolist() == ["café"]


def test_empty_csv_gives_an_empty_frame(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    assert read_csv_text(path).columns.empty


def test_workbook_text_cells_and_real_date_cells(tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Episodes"
    sheet.append(["CHILD", "DECOM"])
    sheet.append(["007", datetime.datetime(2023, 4, 1)])
    sheet.append(["0201", "02/04/2023"])
    workbook.create_sheet("Notes").append(["free text"])
    path = tmp_path / "w.xlsx"
    workbook.save(path)
    sheets = read_workbook_text(path)
    assert sheets["Episodes"]["CHILD"].tolist() == ["007", "0201"]
    # A typed date cell is unambiguous and becomes dd/mm/YYYY; text dates stay as written.
    assert sheets["Episodes"]["DECOM"].tolist() == ["01/04/2023", "02/04/2023"]
    assert sheets["Episodes"].index.tolist() == [2, 3]


def test_broken_workbook_is_reported(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"not a zip file")
    with pytest.raises(UnreadableFileError, match=r"broken\.xlsx"):
        read_workbook_text(path)


def test_recognise_exact_table_in_any_order_and_case():
    recognition = recognise_table(reversed([c.lower() for c in HEADER_COLUMNS]), TABLES)
    assert recognition.table == "header"
    assert recognition.missing == ()


def test_recognise_reports_missing_and_extra_columns():
    columns = [c for c in EPISODE_COLUMNS if c != "DEC"] + ["NAME"]
    recognition = recognise_table(columns, TABLES)
    assert recognition.table == "episodes"
    assert recognition.missing == ("DEC",)
    assert recognition.extra == ("NAME",)
    assert "DEC" in recognition.message


def test_extra_columns_do_not_stop_recognition():
    recognition = recognise_table([*HEADER_COLUMNS, "FORENAME"], TABLES)
    assert (recognition.table, recognition.missing, recognition.extra) == ("header", (), ("FORENAME",))


def test_unknown_columns_are_not_recognised():
    recognition = recognise_table(["A", "B"], TABLES)
    assert recognition.table is None
    assert "match no known table" in recognition.message


def test_csv_row_numbers_count_empty_lines(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("CHILD,SEX\n1,1\n\n2,2\r\n\r\n3,1\n")
    assert read_csv_text(path).index.tolist() == [2, 4, 6]


def test_unparseable_csv_names_the_line_without_quoting_it(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("CHILD,SEX,DOB\n1,1,01/01/2015\n0042,AB1 2CD\n")
    with pytest.raises(UnreadableFileError) as error:
        read_csv_text(path)
    assert "line 3 has 2 fields where the header has 3" in str(error.value)
    assert "0042" not in str(error.value) and "AB1" not in str(error.value)


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ("CHILD,SEX\r\n1,1\r\n2,2\r\n", [2, 3]),  # CRLF, no empty line
        ("CHILD,SEX\n1,1\n2,2", [2, 3]),  # no line break after the last row
        ("CHILD,SEX\n1,1\r\n\r\n2,2\n", [2, 4]),  # LF and CRLF, an empty CRLF line
        ("CHILD,SEX\n1,1\n2,2\n\n\n", [2, 3]),  # empty lines at the end only
        ("CHILD,SEX\r\n\r\n1,1\n2,2\r\n", [3, 4]),  # an empty line before the first row
        ("CHILD,SEX\r1,1\r2,2\r", [2, 3]),  # CR-only line ends (old Mac format)
        ("CHILD,SEX\r1,1\r\r2,2", [2, 4]),  # CR-only, an empty line
    ],
)
def test_csv_row_numbers_follow_the_lines_of_the_file(tmp_path, text, rows):
    path = tmp_path / "e.csv"
    path.write_bytes(text.encode())
    frame = read_csv_text(path)
    assert frame.index.tolist() == rows
    assert list(frame.columns) == ["CHILD", "SEX"] and frame["CHILD"].tolist() == ["1", "2"]
