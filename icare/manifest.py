"""The return manifest: which files make up which return, and what about them deserves a record.

A return is one source's tables for one area and collection year. Stops the run (``SourceInputError``)
when the files cannot say which return they belong to (the year of the folder and of the file name
disagree) or when one return holds two different tables of one kind. An exact copy of a file
(same SHA-256, same return) is read once: its rows are superseded by the original's
(``identical_copy``). What is worth knowing but changes nothing (hidden sheets skipped, child ids that
differ only by leading zeros, episodes open at the end of a return and absent from the next) is
counted per file in ``return_findings``; no finding shows a child id.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from icare.sources.base import InputFile, RawTable, SourceInputError
from icare.sources.spec import SourceSpec
from schemas.outputs import column_names

FINDING_COLUMNS = column_names("return_findings")
HIDDEN_SHEET = "hidden_sheet_skipped"
LEADING_ZEROS = "child_id_differs_by_leading_zeros"
LEADING_ZEROS_REMOVED = "child_id_leading_zeros_removed"
OPEN_EPISODE_ABSENT = "open_episode_absent_from_next_return"
IDENTICAL_COPY = "identical_copy"


def finding(
    input_file: InputFile, sheet: str | None, table: str | None, name: str, count: int, message: str
) -> dict:
    return {
        "source": input_file.source,
        "collection_year": input_file.collection_year,
        "area_code": input_file.area_code,
        "file": input_file.file,
        "sheet": sheet,
        "table_name": table,
        "finding": name,
        "count": int(count),
        "message": message,
    }


def findings_frame_empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "count" else object) for c in FINDING_COLUMNS})


def findings_frame(records: Iterable[dict | pd.DataFrame]) -> pd.DataFrame:
    """Findings (records or frames of them) as one table in a fixed order."""
    parts = [r if isinstance(r, pd.DataFrame) else pd.DataFrame([r]) for r in records]
    parts = [p for p in parts if len(p)]
    if not parts:
        return findings_frame_empty()
    frame = pd.concat(parts, ignore_index=True)[FINDING_COLUMNS]
    order = ["source", "file", "sheet", "table_name", "finding"]
    return frame.sort_values(order, na_position="first", kind="stable").reset_index(drop=True)


# -- paths ------------------------------------------------------------------------------------------
def check_path_years(files: list[InputFile], spec: SourceSpec) -> None:
    """A year folder and a year in the file name must agree: ``2024/ssda903_2022-23.csv`` stops the run."""
    from icare.discovery import folder_year, name_year

    clashes = []
    for f in files:
        relative = Path(f.file)
        folder, name = folder_year(relative, spec), name_year(relative, spec)
        if folder is not None and name is not None and folder != name:
            clashes.append(f"{f.file} (folder {folder}, file name {name})")
    if clashes:
        raise SourceInputError(
            f"{spec.id}: the collection year of the folder and of the file name disagree for "
            f"{'; '.join(clashes)}: move the file to the folder of its year or correct its name"
        )


# -- copies and conflicting tables ------------------------------------------------------------------
def split_copies(files: list[InputFile]) -> tuple[list[InputFile], dict[str, InputFile]]:
    """The files to read, and each exact copy (same content, area and year) -> the file it copies."""
    first: dict[tuple, InputFile] = {}
    originals, copies = [], {}
    for f in files:
        key = (f.sha256, f.collection_year, f.area_code)
        if key in first and f.collection_year is not None:
            copies[f.file] = first[key]
        else:
            first.setdefault(key, f)
            originals.append(f)
    return originals, copies


def copied_tables(copy: InputFile, original: list[RawTable]) -> list[RawTable]:
    """The copy's tables: the original's, found in the copy (same cells, same row numbers)."""
    return [
        RawTable(
            copy,
            raw.sheet,
            raw.table,
            raw.frame.iloc[0:0],
            raw.ignored_columns,
            raw.missing_columns,
            row_numbers=raw.rows,
        )
        for raw in original
    ]


def superseded_copy_rows(copy: InputFile, original: InputFile, tables: list[RawTable]) -> pd.DataFrame:
    """Every row of a copy's recognised tables, superseded by the same row of the original file."""
    parts = [
        pd.DataFrame(
            {
                "source": copy.source,
                "collection_year": copy.collection_year,
                "area_code": copy.area_code,
                "file": copy.file,
                "sheet": raw.sheet,
                "row_number": np.asarray(raw.rows, dtype="int64"),
                "table_name": raw.table,
                "reason": IDENTICAL_COPY,
                "kept_file": original.file,
                "kept_sheet": raw.sheet,
                "kept_row_number": np.asarray(raw.rows, dtype="int64"),
            }
        )
        for raw in tables
        if raw.table is not None and len(raw.rows)
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=column_names("superseded"))


def copied_quarantine(copy: InputFile, original: InputFile, records: pd.DataFrame) -> pd.DataFrame:
    """The original's records of its unrecognised tables, for the copy (which holds the same tables)."""
    mine = records[(records["file"] == original.file) & records["table_name"].isna()]
    return mine.assign(file=copy.file)


def check_one_table_per_return(tables: list[RawTable], spec: SourceSpec) -> None:
    """Two different tables of one kind for one return (area, year) stop the run, naming both."""
    seen: dict[tuple, RawTable] = {}
    clashes = []
    for raw in tables:
        year = raw.input.collection_year
        if raw.table is None or year is None:
            continue
        key = (raw.input.area_code, year, raw.table)
        if key in seen:
            clashes.append((seen[key], raw))
        else:
            seen[key] = raw
    if clashes:
        described = "; ".join(
            f"{a.table} of {_return_name(a)} in {_where(a)} and in {_where(b)}" for a, b in clashes
        )
        raise SourceInputError(
            f"{spec.id}: a return holds two different tables of one kind: {described}. Keep one "
            "(identical copies of a file are accepted once)"
        )


def _where(raw: RawTable) -> str:
    return raw.input.file if raw.sheet is None else f"{raw.input.file} sheet {raw.sheet!r}"


def _return_name(raw: RawTable) -> str:
    area = f"area {raw.input.area_code}" if raw.input.area_code else "no area"
    return f"{raw.input.collection_year} ({area})"


# -- child ids --------------------------------------------------------------------------------------
def without_leading_zeros(child: pd.Series) -> pd.Series:
    """Child ids read without their leading zeros (``0123`` -> ``123``; an id of zeros -> ``0``)."""
    stripped = child.str.lstrip("0")
    return stripped.where((stripped != "") | child.isna(), "0")


def leading_zero_findings(frames: list[tuple[str, pd.DataFrame]], files: list[InputFile]) -> list[dict]:
    """Per table, the child ids (as received, before sealing) that equal an id of another collection
    year of the same area once leading zeros are ignored (``0123`` in 2023, ``123`` in 2024).

    Counts only: the ids are never shown. Cheap when no id starts with a zero, the usual case: two ids
    that differ only by leading zeros need one that has them.
    """
    zero_ids = [frame["CHILD"].str.startswith("0", na=False) for _, frame in frames]
    if not any(bool(z.any()) for z in zero_ids):
        return []
    targets = pd.Index(
        pd.concat(
            [
                without_leading_zeros(f.loc[z.to_numpy(), "CHILD"])
                for (_, f), z in zip(frames, zero_ids, strict=True)
            ]
        )
    ).unique()
    parts = []
    for (table, frame), zeros in zip(frames, zero_ids, strict=True):
        candidate = zeros.to_numpy() | frame["CHILD"].isin(targets).to_numpy()
        rows = frame.loc[candidate]
        parts.append(
            pd.DataFrame(
                {
                    "area_code": rows["area_code"].astype(object).to_numpy(),
                    "collection_year": rows["collection_year"].to_numpy(),
                    "file": rows["file"].astype(object).to_numpy(),
                    "sheet": rows["sheet"].astype(object).to_numpy(),
                    "table_name": table,
                    "child": rows["CHILD"].astype(object).to_numpy(),
                }
            ).drop_duplicates()
        )
    ids = pd.concat(parts, ignore_index=True)
    ids["normal"] = without_leading_zeros(ids["child"].astype("string")).astype(object)
    ids["area"] = ids["area_code"].fillna("")
    groups = ids.groupby(["area", "normal"]).agg(
        forms=("child", "nunique"), years=("collection_year", "nunique")
    )
    flagged = groups[(groups["forms"] > 1) & (groups["years"] > 1)].index
    hits = ids[pd.MultiIndex.from_frame(ids[["area", "normal"]]).isin(flagged)]
    counts = hits.groupby(["file", "sheet", "table_name"], dropna=False)["child"].nunique()
    by_file = {f.file: f for f in files}
    return [
        finding(
            by_file[file],
            None if pd.isna(sheet) else sheet,
            table,
            LEADING_ZEROS,
            n,
            f"{n} child id(s) of this table equal an id of another collection year of the same area "
            "once leading zeros are ignored (as 0123 and 123 would): they count as different "
            "children; if the area added or dropped the zeros, set child_id_compare: "
            "ignore_leading_zeros in the source's source.yaml",
        )
        for (file, sheet, table), n in counts.items()
    ]


# -- episodes across returns ------------------------------------------------------------------------
def open_episode_findings(
    episodes: list[pd.DataFrame], tables: list[RawTable], files: list[InputFile]
) -> list[dict]:
    """Per file, the children with an episode open at the end of a return who have no episode at all
    in the area's next return (the DfE validator's rules 502 and 1010 look at the same gap).

    Runs on sealed rows (child keys): a child key is the same for the same id in every year.
    ``episodes``: the episode rows read (valid and rejected), with their origin.
    """
    returns = {
        (t.input.area_code, t.input.collection_year)
        for t in tables
        if t.table == "episodes" and t.input.collection_year is not None and not t.missing_columns
    }
    frames = [f for f in episodes if len(f)]
    if not frames or not any((area, year + 1) in returns for area, year in returns):
        return []
    rows = pd.concat(
        [
            pd.DataFrame(
                {
                    "area": f["area_code"].astype(object).fillna("").to_numpy(),
                    "year": f["collection_year"].to_numpy(dtype="int64"),
                    "child": f["CHILD"].astype(object).to_numpy(),
                    "open": f["DEC"].isna().to_numpy(),
                    "file": f["file"].astype(object).to_numpy(),
                    "sheet": f["sheet"].astype(object).to_numpy(),
                }
            )
            for f in frames
        ],
        ignore_index=True,
    )
    followed = {(area or "", year) for area, year in returns if (area, year + 1) in returns}
    is_followed = pd.MultiIndex.from_arrays([rows["area"], rows["year"]]).isin(list(followed))
    still_open = rows[rows["open"].to_numpy() & is_followed][["area", "year", "child", "file", "sheet"]]
    if still_open.empty:
        return []
    present = rows[["area", "year", "child"]].drop_duplicates().assign(year=lambda r: r["year"] - 1)
    absent = still_open.merge(present, on=["area", "year", "child"], how="left", indicator=True)
    absent = absent[absent["_merge"] == "left_only"]
    counts = absent.groupby(["file", "sheet", "year"], dropna=False)["child"].nunique()
    by_file = {f.file: f for f in files}
    return [
        finding(
            by_file[file],
            None if pd.isna(sheet) else sheet,
            "episodes",
            OPEN_EPISODE_ABSENT,
            n,
            f"{n} child(ren) with an episode open at the end of {year - 1}/{str(year)[2:]} have no "
            f"episode in the area's next return ({year}/{str(year + 1)[2:]}): the next return may "
            "lack them, or their ids changed",
        )
        for (file, sheet, year), n in counts.items()
        if file in by_file
    ]
