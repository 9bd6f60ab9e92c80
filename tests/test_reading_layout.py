"""Files written in other encodings, with other separators or with rows above the header: the cells
and the row numbers (true lines and sheet rows) are those of a plain file."""

from __future__ import annotations

import codecs
import datetime

import pytest
from openpyxl import Workbook

from icare.reading import UnreadableFileError, recognise_table
from icare.reading_csv import read_csv_layout, read_csv_text, sniff_encoding
from icare.reading_workbook import read_workbook
from icare.sources.spec import load_source_spec

SPEC = load_source_spec("ssda903")


def recognises(names: list[str]) -> bool:
    return recognise_table(names, SPEC.table_columns(), SPEC.optional_columns()).table is not None


ROWS = "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB\r\n007,1,01/02/2015,WBRI,,,\r\n0201,2,03/04/2016,WBRI,,,\r\n"


@pytest.mark.parametrize(
    ("encoding", "prefix", "sniffed"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", codecs.BOM_UTF8, "utf-8"),
        ("utf-16-le", codecs.BOM_UTF16_LE, "utf-16"),
        ("utf-16-be", codecs.BOM_UTF16_BE, "utf-16"),
        ("utf-16-le", b"", "utf-16-le"),
        ("utf-16-be", b"", "utf-16-be"),
        ("cp1252", b"", "utf-8"),  # ASCII-only Windows-1252 text is UTF-8 too
    ],
)
def test_encodings_give_the_same_cells_and_lines(tmp_path, encoding, prefix, sniffed):
    path = tmp_path / "h.csv"
    path.write_bytes(prefix + ROWS.encode(encoding))
    assert sniff_encoding(path.read_bytes()[:64]) == sniffed
    frame = read_csv_text(path, recognises)
    assert frame.columns[0] == "CHILD"
    assert frame["CHILD"].tolist() == ["007", "0201"]
    assert frame.index.tolist() == [2, 3]


@pytest.mark.parametrize("separator", [";", "\t"])
def test_a_header_only_file_in_another_layout_is_an_empty_table(tmp_path, separator):
    path = tmp_path / "uasc.csv"
    path.write_text("Title line\n\n" + separator.join(["CHILD", "SEX", "DOB", "DUC"]) + "\n")
    frame = read_csv_text(path, recognises)
    assert frame.columns.tolist() == ["CHILD", "SEX", "DOB", "DUC"] and frame.empty


def test_windows_1252_beyond_the_sniffed_head_is_still_read(tmp_path):
    path = tmp_path / "h.csv"
    filler = "".join(f"{n:04d},1,01/02/2015,WBRI,,,\r\n" for n in range(2000))  # > 16 KB of ASCII
    path.write_bytes((ROWS + filler + "9999,1,01/02/2015,WBRI,caf\xe9,,\r\n").encode("cp1252"))
    frame = read_csv_text(path, recognises)
    assert frame["UPN"].iloc[-1] == "café"
    assert frame.index[-1] == 2 + 2 + 2000  # the last line of the file


def test_windows_1252_beyond_the_head_of_a_semicolon_file_with_a_title(tmp_path):
    path = tmp_path / "h.csv"
    filler = "".join(f"{n:04d};1;01/02/2015;WBRI;;;\r\n" for n in range(2000))
    text = "Title\r\n" + ROWS.replace(",", ";") + filler + "9999;1;01/02/2015;WBRI;caf\xe9;;\r\n"
    path.write_bytes(text.encode("cp1252"))
    frame = read_csv_text(path, recognises)
    assert frame["UPN"].iloc[-1] == "café"
    assert frame.index[0] == 3 and frame.index[-1] == 3 + 2 + 2000


def test_utf16_file_with_non_ascii_text(tmp_path):
    path = tmp_path / "h.csv"
    text = ROWS.replace("007,1,01/02/2015,WBRI,,,", "007,1,01/02/2015,WBRI,,Zoë,")
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    frame = read_csv_text(path, recognises)
    assert frame["MOTHER"].iloc[0] == "Zoë" and frame["MOTHER"].isna().tolist() == [False, True]


@pytest.mark.parametrize("separator", [";", "\t"])
def test_semicolon_and_tab_separators(tmp_path, separator):
    path = tmp_path / "h.txt"
    path.write_text(ROWS.replace(",", separator))
    layout = read_csv_layout(path, recognises)
    assert (layout.separator, layout.header_line) == (separator, 1)
    frame = read_csv_text(path, recognises)
    assert frame["DOB"].tolist() == ["01/02/2015", "03/04/2016"]
    assert frame.index.tolist() == [2, 3]


def test_a_comma_inside_a_semicolon_file_is_a_value(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(ROWS.replace(",", ";").replace("WBRI;;;\r\n0201", "WBRI;a,b;;\r\n0201"))
    upn = read_csv_text(path, recognises)["UPN"]
    assert upn.iloc[0] == "a,b" and upn.isna().tolist() == [False, True]


def test_title_and_blank_lines_above_the_header_keep_true_line_numbers(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(
        "SSDA903 header table, 2023-24\n\n,,,\nexported by J. Smith\n"
        + ROWS
        + "\n0300,1,05/06/2017,WBRI,,,\n"
    )
    layout = read_csv_layout(path, recognises)
    assert layout.header_line == 5
    frame = read_csv_text(path, recognises)
    assert frame["CHILD"].tolist() == ["007", "0201", "0300"]
    assert frame.index.tolist() == [6, 7, 9]  # line 8 is empty


def test_title_lines_above_a_semicolon_header_in_utf16(tmp_path):
    path = tmp_path / "h.csv"
    text = "Return;2024\r\n" + ROWS.replace(",", ";")
    path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    frame = read_csv_text(path, recognises)
    assert frame["CHILD"].tolist() == ["007", "0201"]
    assert frame.index.tolist() == [3, 4]


def test_a_bad_line_below_a_title_is_named_by_its_true_line(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("Title\n" + ROWS + "0042,AB1 2CD\n")
    with pytest.raises(UnreadableFileError) as error:
        read_csv_text(path, recognises)
    assert "line 5 has 2 fields where the header has 7" in str(error.value)
    assert "0042" not in str(error.value)


def test_binary_garbage_is_refused_with_a_message(tmp_path):
    path = tmp_path / "h.csv"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(UnreadableFileError, match=r"h\.csv: not a"):
        read_csv_text(path, recognises)


def test_workbook_header_below_a_merged_title_and_blank_rows(tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Header"
    sheet["A1"] = "SSDA903 return 2023-24"
    sheet.merge_cells("A1:J1")
    sheet["A3"] = "Children looked after"
    for row, values in {
        5: ["CHILD", "SEX", "DOB", "ETHNIC", "UPN", "MOTHER", "MC_DOB"],
        6: ["007", "1", datetime.datetime(2015, 2, 1), "WBRI"],
        8: ["0201", "2", "03/04/2016", "WBRI"],
    }.items():
        for column, value in enumerate(values, start=1):
            sheet.cell(row=row, column=column, value=value)
    hidden = workbook.create_sheet("Old")
    hidden.append(["CHILD"])
    hidden.sheet_state = "hidden"
    very = workbook.create_sheet("Lookups")
    very.sheet_state = "veryHidden"
    path = tmp_path / "w.xlsx"
    workbook.save(path)
    read = read_workbook(path, recognises)
    assert list(read.sheets) == ["Header"]
    assert read.hidden == {"Old": "hidden", "Lookups": "veryhidden"}
    frame = read.sheets["Header"]
    assert list(frame.columns) == ["CHILD", "SEX", "DOB", "ETHNIC", "UPN", "MOTHER", "MC_DOB"]
    assert frame["DOB"].fillna("").tolist() == ["01/02/2015", "", "03/04/2016"]
    assert frame.index.tolist() == [6, 7, 8]  # row 7 is blank (dropped later as padding)


def test_sheet_starting_below_row_one_keeps_its_row_numbers(tmp_path):
    workbook = Workbook()
    sheet = workbook.active
    sheet["C4"], sheet["D4"] = "CHILD", "SEX"
    sheet["C5"], sheet["D5"] = "1", "1"
    path = tmp_path / "w.xlsx"
    workbook.save(path)
    frame = read_workbook(path).sheets[sheet.title]
    assert frame.index.tolist() == [5]
    assert frame["CHILD"].tolist() == ["1"]


def test_truncated_workbook_is_a_message(tmp_path):
    workbook = Workbook()
    workbook.active.append(["CHILD"])
    path = tmp_path / "w.xlsx"
    workbook.save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(UnreadableFileError, match=r"w\.xlsx: not a readable workbook"):
        read_workbook(path)
