"""Small crafted SSDA903 returns for tests, written as real CSV or XLSX files."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from icare.sources.spec import load_source_spec

SSDA903 = load_source_spec("ssda903")
# Every collection year the reader accepts; a new year is covered as soon as source.yaml names it.
SSDA903_YEARS = list(range(SSDA903.first_year, SSDA903.last_year + 1))
HEADER_COLUMNS = ["CHILD", "SEX", "DOB", "ETHNIC", "UPN", "MOTHER", "MC_DOB"]
EPISODE_COLUMNS = [
    "CHILD",
    "DECOM",
    "RNE",
    "LS",
    "CIN",
    "PLACE",
    "PLACE_PROVIDER",
    "DEC",
    "REC",
    "REASON_PLACE_CHANGE",
    "HOME_POST",
    "PL_POST",
    "URN",
]
UASC_COLUMNS = ["CHILD", "SEX", "DOB", "DUC"]


def header(child: str, sex: str = "1", dob: str = "15/06/2012", ethnic: str = "WBRI") -> dict[str, str]:
    return {
        "CHILD": child,
        "SEX": sex,
        "DOB": dob,
        "ETHNIC": ethnic,
        "UPN": "A123456789012",
        "MOTHER": "",
        "MC_DOB": "",
    }


def episode(
    child: str,
    decom: str,
    *,
    rne: str = "S",
    ls: str = "C2",
    cin: str = "N1",
    place: str = "U4",
    provider: str = "PR1",
    dec: str = "",
    rec: str = "",
    reason_change: str = "",
    urn: str = "",
) -> dict[str, str]:
    return {
        "CHILD": child,
        "DECOM": decom,
        "RNE": rne,
        "LS": ls,
        "CIN": cin,
        "PLACE": place,
        "PLACE_PROVIDER": provider,
        "DEC": dec,
        "REC": rec,
        "REASON_PLACE_CHANGE": reason_change,
        "HOME_POST": "AB1 2CD",
        "PL_POST": "AB3 4EF",
        "URN": urn,
    }


def write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_return(
    root: Path,
    year: int,
    *,
    area: str = "201",
    headers: Sequence[dict[str, str]] = (),
    episodes: Sequence[dict[str, str]] = (),
    uasc: Sequence[dict[str, str]] = (),
) -> Path:
    """One collection year's return as CSV files in ``root/<year>/<area>/``."""
    folder = root / str(year) / area
    write_csv(folder / "header.csv", HEADER_COLUMNS, headers)
    write_csv(folder / "episodes.csv", EPISODE_COLUMNS, episodes)
    if uasc:
        write_csv(folder / "uasc.csv", UASC_COLUMNS, uasc)
    return folder


def write_workbook(path: Path, sheets: dict[str, tuple[Sequence[str], Sequence[dict[str, object]]]]) -> Path:
    """A workbook with one sheet per table; values are written as given (text stays text)."""
    from openpyxl import Workbook

    path.parent.mkdir(parents=True, exist_ok=True)
    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, (columns, rows) in sheets.items():
        sheet = workbook.create_sheet(name)
        sheet.append(list(columns))
        for row in rows:
            sheet.append([row.get(c) if row.get(c) != "" else None for c in columns])
    workbook.save(path)
    return path
