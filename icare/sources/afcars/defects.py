"""Realistic damage to synthetic NDACAN files, each instance listed so a reader's findings can be checked.

Row-level kinds (``ROW_KINDS``) hit about 0.2% of a file's rows each, at least one row, on distinct
rows; file-level kinds hit whole files. Every instance is one row of the returned table: ``file``,
``kind``, ``STFCID``, ``FY``, ``column``, ``original``, ``written`` (blank ``STFCID`` for a whole file).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

DEFECT_COLUMNS = ["file", "kind", "STFCID", "FY", "column", "original", "written"]
ROW_KINDS = (
    "excel_short_date",  # 03/04/2021 -> 3/4/21 (a spreadsheet re-saved the file)
    "excel_datetime",  # 03/04/2021 -> 2021-03-04 00:00:00
    "excel_lost_zero",  # FIPSCODE 06037 -> 6037, 00008 -> 8
    "blank_code",  # CURPLSET, MANREM or SEX left blank
    "code_outside_list",  # CURPLSET 9, MANREM 4, DISREASN 11, SEX 3
    "discharge_before_removal",  # DODFCDT 1-30 days before LATREMDT
    "missing_flag",  # InAtEnd, Entered or Exited blank
    "duplicate_row",  # the same row twice
    "conflicting_duplicate",  # the same child and year twice, another CURPLSET
)
FILE_KINDS = ("title_row", "bom_crlf")
RATE = 0.002
_DATE_COLUMNS = ("LATREMDT", "DOB", "CURSETDT")
_BLANKED = ("CURPLSET", "MANREM", "SEX")
_OUTSIDE = (("CURPLSET", "9"), ("MANREM", "4"), ("DISREASN", "11"), ("SEX", "3"))
_FLAGS = ("InAtEnd", "Entered", "Exited")


def empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="str") for c in DEFECT_COLUMNS})


def _short_date(text: str) -> str:
    month, dom, year = text.split("/")
    return f"{int(month)}/{int(dom)}/{year[2:]}"


def _iso_datetime(text: str) -> str:
    month, dom, year = text.split("/")
    return f"{year}-{month}-{dom} 00:00:00"


def _minus_days(text: str, days: int) -> str:
    month, dom, year = text.split("/")
    shifted = str(np.datetime64(f"{year}-{month}-{dom}") - np.timedelta64(days, "D"))
    return f"{shifted[5:7]}/{shifted[8:10]}/{shifted[0:4]}"


def damage_rows(
    columns: dict[str, pa.Array], file: str, seed: list[int]
) -> tuple[dict[str, pa.Array], pd.DataFrame]:
    """Damage distinct rows of one file, kind by kind; duplicates are inserted after their original."""
    rng = np.random.default_rng(seed)
    data = {name: np.asarray(array.to_pylist(), dtype=object) for name, array in columns.items()}
    n = len(data["FY"])
    per_kind = max(1, round(RATE * n))
    pool = rng.permutation(n)
    found: list[tuple] = []
    extra: dict[int, list[dict[str, object]]] = {}

    def record(i: int, kind: str, column: str, original, written) -> None:
        found.append((file, kind, data["STFCID"][i], data["FY"][i], column, original or "", written or ""))

    def rows_where(mask: np.ndarray, used: set[int]) -> list[int]:
        candidates = pool[mask[pool] & ~np.isin(pool, list(used))]
        return [int(i) for i in candidates[:per_kind]]

    used: set[int] = set()
    turn = seed[-1]  # which column or code a kind starts with varies from file to file
    for kind in ROW_KINDS:
        if kind == "excel_lost_zero":
            chosen = rows_where(np.array([str(v).startswith("0") for v in data["FIPSCODE"]]), used)
        elif kind == "discharge_before_removal":
            chosen = rows_where(np.array([v is not None for v in data["DODFCDT"]]), used)
        else:
            chosen = rows_where(np.ones(n, dtype=bool), used)
        used |= set(chosen)
        for j, i in enumerate(chosen):
            if kind in ("excel_short_date", "excel_datetime"):
                column = _DATE_COLUMNS[(j + turn) % len(_DATE_COLUMNS)]
                change = _short_date if kind == "excel_short_date" else _iso_datetime
                before = data[column][i]
                data[column][i] = change(before)
            elif kind == "excel_lost_zero":
                column, before = "FIPSCODE", data["FIPSCODE"][i]
                data[column][i] = before.lstrip("0")
            elif kind == "blank_code":
                column = _BLANKED[(j + turn) % len(_BLANKED)]
                before, data[column][i] = data[column][i], None
            elif kind == "code_outside_list":
                column, code = _OUTSIDE[(j + turn) % len(_OUTSIDE)]
                before, data[column][i] = data[column][i], code
            elif kind == "discharge_before_removal":
                column, before = "DODFCDT", data["DODFCDT"][i]
                data[column][i] = _minus_days(data["LATREMDT"][i], int(rng.integers(1, 31)))
            elif kind == "missing_flag":
                column = _FLAGS[(j + turn) % len(_FLAGS)]
                before, data[column][i] = data[column][i], None
            else:
                copy = {name: values[i] for name, values in data.items()}
                column, before = "", ""
                if kind == "conflicting_duplicate":
                    column, before = "CURPLSET", copy["CURPLSET"]
                    copy["CURPLSET"] = "3" if before != "3" else "2"
                extra.setdefault(i, []).append(copy)
                record(i, kind, column, before, copy.get(column, "") if column else "")
                continue
            record(i, kind, column, before, data[column][i])
    if extra:
        order = []
        for i in range(n):
            order.append(("row", i))
            order.extend(("extra", c) for c in extra.get(i, []))
        data = {
            name: np.asarray([values[i] if tag == "row" else i[name] for tag, i in order], dtype=object)
            for name, values in data.items()
        }
    damaged = {name: pa.array(values.tolist(), pa.string()) for name, values in data.items()}
    return damaged, pd.DataFrame(found, columns=DEFECT_COLUMNS).astype("str")


def file_level(file: str, fy: int, position: int, title: str) -> tuple[bytes, bool, pd.DataFrame]:
    """The first file gets a title row above its header, the second a BOM and CRLF line ends."""
    prefix, crlf, found = b"", False, []
    if position == 0:
        line = title.format(fy=fy)
        prefix = line.encode("utf-8") + b"\n"
        found.append((file, "title_row", "", str(fy), "", "", line))
    if position == 1:
        prefix, crlf = b"\xef\xbb\xbf", True
        found.append((file, "bom_crlf", "", str(fy), "", "", "UTF-8 BOM, CRLF line ends"))
    return prefix, crlf, pd.DataFrame(found, columns=DEFECT_COLUMNS).astype("str")
