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
import pyarrow as pa
import pyarrow.compute as pc

from icare.sources.base import Extraction, InputFile, RawTable, SourceInputError
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


def extraction_findings(extraction: Extraction) -> pd.DataFrame:
    """The findings of a sealed extraction: its files' and those across its returns."""
    episodes = [t["episodes"] for t in (extraction.valid, extraction.rejected) if "episodes" in t]
    across = open_episode_findings(episodes, extraction.tables, extraction.files)
    return findings_frame([extraction.findings, *across])


def counts_by_finding(findings: pd.DataFrame | None) -> dict[str, int]:
    """The counts of ``return_findings`` summed per finding (the run summary)."""
    if findings is None or not len(findings):
        return {}
    frame = findings.to_pandas() if hasattr(findings, "to_pandas") else findings
    counts = frame.groupby("finding")["count"].sum().sort_index()
    return {name: int(n) for name, n in counts.items()}


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
        if key in first and f.collection_year is not None and f.sha256:  # "" : not readable
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


def superseded_copy_rows(
    copy: InputFile, original: InputFile, tables: list[RawTable], harmonised: set[str]
) -> pd.DataFrame:
    """Every row of a copy's harmonised tables, superseded by the same row of the original file.

    (The rows of its other recognised tables are, like the original's, in tables not harmonised.)"""
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
        if raw.table in harmonised and len(raw.rows)
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

    ``frames``: (table name, one file's rows of that table with their origin). Counts only: the ids
    are never shown. Works on each file's distinct ids in Arrow; only the ids that have leading
    zeros, and those equal to one without its zeros, are compared.
    """
    tables = []
    for table, frame in frames:
        if not len(frame):
            continue
        ids = pc.drop_null(pc.unique(pa.array(frame["CHILD"].array)))
        normal = _arrow_without_leading_zeros(ids)
        first = frame.iloc[0]
        origin = (first["area_code"], int(first["collection_year"]), first["file"], first["sheet"], table)
        tables.append((origin, ids, normal, pc.not_equal(ids, normal)))
    if not any(pc.any(zeros).as_py() for *_, zeros in tables):
        return []
    if not _ids_collide_without_zeros(tables):  # the usual case: two hash passes, no grouping
        return []
    targets = pa.concat_arrays([pc.filter(normal, zeros) for _, _, normal, zeros in tables]).unique()
    # The candidates of every table as one Arrow table of integers and ids, grouped in Arrow: the
    # origin of a table is its position in ``tables``, its area the position among the areas.
    areas = {origin[0]: n for n, origin in enumerate(dict.fromkeys(o for o, *_ in tables))}
    parts = []
    for position, ((area, year, *_), ids, normal, zeros) in enumerate(tables):
        candidate = pc.or_(zeros, pc.is_in(ids, value_set=targets))
        n = pc.sum(candidate).as_py() or 0
        parts.append(
            pa.table(
                {
                    "area": pa.array(np.full(n, areas[area], dtype="int32")),
                    "normal": pc.filter(normal, candidate).cast(pa.large_string()),
                    "child": pc.filter(ids, candidate).cast(pa.large_string()),
                    "year": pa.array(np.full(n, year, dtype="int32")),
                    "table": pa.array(np.full(n, position, dtype="int32")),
                }
            )
        )
    ids = pa.concat_tables(parts)
    groups = ids.group_by(["area", "normal"]).aggregate(
        [("child", "count_distinct"), ("year", "count_distinct")]
    )
    flagged = groups.filter(
        pc.and_(pc.greater(groups["child_count_distinct"], 1), pc.greater(groups["year_count_distinct"], 1))
    )
    if not flagged.num_rows:
        return []
    hits = ids.join(flagged.select(["area", "normal"]), keys=["area", "normal"], join_type="inner")
    per_table = hits.group_by(["table"]).aggregate([("child", "count_distinct")])
    counts = {
        tables[position][0][2:]: n
        for position, n in zip(
            per_table["table"].to_pylist(), per_table["child_count_distinct"].to_pylist(), strict=True
        )
    }
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
        for (file, sheet, table), n in sorted(
            counts.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2])
        )
    ]


def _ids_collide_without_zeros(tables: list) -> bool:
    """Whether some area has two distinct ids that are equal without their leading zeros: its
    distinct ids then have fewer distinct zero-less forms than ids."""
    by_area: dict[object, list[pa.Array]] = {}
    for (area, *_), ids, _normal, _zeros in tables:
        by_area.setdefault(area, []).append(ids.cast(pa.large_string()))
    for arrays in by_area.values():
        distinct = pa.concat_arrays(arrays).unique()
        if len(_arrow_without_leading_zeros(distinct).unique()) < len(distinct):
            return True
    return False


def _arrow_without_leading_zeros(ids: pa.Array) -> pa.Array:
    stripped = pc.utf8_ltrim(ids, characters="0")
    return pc.if_else(pc.and_(pc.equal(stripped, ""), pc.not_equal(ids, "")), "0", stripped)


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
    followed = {(area, year) for area, year in returns if (area, year + 1) in returns}
    if not frames or not followed:
        return []
    # Area, year and child as one integer per row: the search for a child's row in the next year is
    # then a sorted-integer look-up, not a join on text.
    area, area_texts = _codes([f["area_code"] for f in frames])
    child, _ = _codes([f["CHILD"] for f in frames])
    year = np.concatenate([f["collection_year"].to_numpy(dtype="int64") for f in frames])
    is_open = np.concatenate([f["DEC"].isna().to_numpy() for f in frames])
    low, span = int(year.min()), int(year.max() - year.min()) + 2
    key = (area.astype("int64") * span + (year - low)) * (int(child.max()) + 1) + child
    step = int(child.max()) + 1  # one year later is this much more
    followed_rows = _followed(area, area_texts, year, followed)
    candidates = np.flatnonzero(is_open & followed_rows)
    if not len(candidates):
        return []
    present = np.sort(key)
    wanted = key[candidates] + step
    found = np.searchsorted(present, wanted)
    missing = candidates[present[np.minimum(found, len(present) - 1)] != wanted]
    if not len(missing):
        return []
    starts = np.cumsum([0] + [len(f) for f in frames])
    rows = pd.concat(
        [
            f[["file", "sheet", "collection_year"]]
            .iloc[missing[(missing >= start) & (missing < end)] - start]
            .astype(object)
            for f, start, end in zip(frames, starts[:-1], starts[1:], strict=True)
        ],
        ignore_index=True,
    ).assign(child=child[missing])
    counts = rows.groupby(["file", "sheet", "collection_year"], dropna=False)["child"].nunique()
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


def _codes(columns: list[pd.Series]) -> tuple[np.ndarray, pd.Index]:
    """One integer per distinct text over ``columns``, row by row (null: ``len(texts)``), and the texts.

    Works on the categories of categorical columns (the held input), not on a text per row.
    """
    parts = [c if isinstance(c.dtype, pd.CategoricalDtype) else c.astype("category") for c in columns]
    texts = pd.Index(parts[0].cat.categories, dtype=object)  # the held input's categories, as they are
    for part in parts[1:]:
        texts = texts.append(part.cat.categories.difference(texts).astype(object))
    codes = []
    for number, part in enumerate(parts):
        found = np.arange(len(texts)) if number == 0 else texts.get_indexer(part.cat.categories)
        lookup = np.append(found[: len(part.cat.categories)], len(texts))  # code -1 (null) last
        codes.append(lookup[part.cat.codes.to_numpy()])
    return np.concatenate(codes).astype("int64"), texts


def _followed(area: np.ndarray, texts: pd.Index, year: np.ndarray, followed: set) -> np.ndarray:
    """Rows whose area's return has a next year's return."""
    mask = np.zeros(len(year), dtype=bool)
    for name, y in followed:  # a handful of returns
        code = len(texts) if name is None else texts.get_loc(name)
        mask |= (area == code) & (year == y)
    return mask
