"""Account for every input row: accepted, quarantined, superseded or not harmonised.

Built from the final outcome of each row, not from counters kept along the way, and checked: each
row has exactly one outcome and, per file and table, rows read = accepted + quarantined +
superseded + not harmonised. A mismatch is a bug and stops the run before anything is written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from icare.sources.base import RawTable
from icare.vectorised import min_max_by
from schemas.outputs import column_names

KEY = ["file", "sheet", "row_number"]
OUTCOMES = ["rows_accepted", "rows_quarantined", "rows_superseded", "rows_not_harmonised"]
RECONCILIATION_COLUMNS = column_names("reconciliation")


class ReconciliationError(RuntimeError):
    """Rows were lost or double-counted: the run stops and writes nothing."""


def _rows(frame: pd.DataFrame, outcome: str) -> pd.DataFrame:
    numbered = frame["row_number"].notna().to_numpy()
    return (frame[KEY] if numbered.all() else frame.loc[numbered, KEY]).assign(outcome=outcome)


def _codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return codes.astype("int64"), pd.Index(uniques)


def _count_outcomes(outcomes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows per file, sheet and outcome (a row once per outcome), and the rows with several outcomes.

    File, sheet, row and outcome are packed into one integer per row and sorted once: hashing the
    text keys of millions of rows was most of the cost of reconciling.
    """
    (file_codes, files), (sheet_codes, sheets), (outcome_codes, names) = (
        _codes(outcomes[c]) for c in ("file", "sheet", "outcome")
    )
    rows = outcomes["row_number"].to_numpy(dtype="int64")
    lowest = int(rows.min()) if len(rows) else 0
    span = int(rows.max()) - lowest + 1 if len(rows) else 1
    if len(files) * len(sheets) * span * len(names) >= 2**62:
        raise ReconciliationError(f"too many rows to reconcile ({span:,} row numbers per table)")
    pair = file_codes * len(sheets) + sheet_codes
    key = pair * span + (rows - lowest)
    packed = key * len(names) + outcome_codes
    order = np.argsort(packed, kind="stable")
    first = np.ones(len(order), dtype=bool)  # first copy of each (row, outcome): a row counts once
    first[1:] = packed[order][1:] != packed[order][:-1]
    unique = order[first]  # sorted by row, so a row's outcomes are neighbours
    same_row = key[unique][1:] == key[unique][:-1]
    clash = np.zeros(len(unique), dtype=bool)
    clash[1:] |= same_row
    clash[:-1] |= same_row
    cell, count = np.unique(pair[unique] * len(names) + outcome_codes[unique], return_counts=True)
    pair_of_cell, outcome = np.divmod(cell, len(names))
    file, sheet = np.divmod(pair_of_cell, len(sheets))
    counts = pd.DataFrame(
        {"file": files.take(file), "sheet": sheets.take(sheet), "outcome": names.take(outcome), "n": count}
    )
    return counts, outcomes.iloc[np.sort(unique[clash])]


def _count_dense(parts: list[pd.DataFrame]) -> pd.DataFrame | None:
    """``_count_outcomes``'s counts without sorting: one flag byte per row read, one bit per outcome.

    Each table's rows get consecutive cells (from its lowest to its highest row number), so a row is
    found by arithmetic instead of a sort or hash; a row given an outcome twice sets the same bit
    once. Returns None (the caller sorts instead) when a row has several outcomes, which needs the
    rows named, or when the row numbers are too sparse for one byte per row.
    """
    pairs: dict[tuple[str, str], int] = {}
    pair_parts, row_parts, outcome_parts, names = [], [], [], []
    for part in parts:
        file_codes, files = pd.factorize(part["file"], use_na_sentinel=True)
        sheet_codes, sheets = pd.factorize(part["sheet"], use_na_sentinel=True)
        if (file_codes < 0).any():
            return None  # a row without a file: left to the general path
        local = file_codes.astype("int64") * (len(sheets) + 1) + (sheet_codes + 1)  # sheet -1: none
        present = np.flatnonzero(np.bincount(local))
        ids = np.zeros(int(present.max()) + 1 if len(present) else 1, dtype="int64")
        for code in present:  # one per table in the part
            file, sheet = divmod(int(code), len(sheets) + 1)
            key = (files[file], "" if sheet == 0 else sheets[sheet - 1])
            ids[code] = pairs.setdefault(key, len(pairs))
        pair_parts.append(ids[local])
        row_parts.append(part["row_number"].to_numpy(dtype="int64"))
        outcome = part["outcome"].iloc[0]
        if outcome not in names:
            names.append(outcome)
        outcome_parts.append(np.full(len(part), names.index(outcome), dtype="uint8"))
    if not pairs:
        return None
    pair, rows, outcome = (np.concatenate(p) for p in (pair_parts, row_parts, outcome_parts))
    lowest, highest = min_max_by(pair, rows, len(pairs))
    spans = highest - lowest + 1
    if int(spans.sum()) > 2 * len(rows) + 1_000_000:
        return None
    starts = np.concatenate([[0], np.cumsum(spans)[:-1]])
    flags = np.zeros(int(spans.sum()), dtype="uint8")
    cell = starts[pair] + rows - lowest[pair]
    for code in range(len(names)):
        flags[cell[outcome == code]] |= np.uint8(1 << code)
    if ((flags & (flags - np.uint8(1))) != 0).any():
        return None  # rows with several outcomes: named by the general path
    keys = list(pairs)
    counts = []
    for code, name in enumerate(names):
        marked = np.flatnonzero(flags & np.uint8(1 << code))
        per_pair = np.searchsorted(marked, starts + spans) - np.searchsorted(marked, starts)
        counts += [(keys[p][0], keys[p][1], name, int(n)) for p, n in enumerate(per_pair) if n]
    return pd.DataFrame(counts, columns=["file", "sheet", "outcome", "n"])


def _accepted_with_corrections(accepted: pd.DataFrame, corrections: pd.DataFrame | None) -> pd.DataFrame:
    """Accepted rows with at least one correction, counted per file and sheet.

    Corrections are few beside the accepted rows: the accepted rows are first narrowed to the row
    numbers corrected (integers), so only those are compared on their file and sheet.
    """
    columns = ["file", "sheet_key", "rows_accepted_with_corrections"]
    if corrections is None or corrections.empty or accepted.empty:
        return pd.DataFrame(columns=columns)
    corrected = _keyed(corrections[KEY]).drop_duplicates()
    numbers = corrected["row_number"].to_numpy(dtype="int64")
    candidates = accepted.loc[np.isin(accepted["row_number"].to_numpy(dtype="int64"), numbers), KEY]
    hits = _keyed(candidates).drop_duplicates().merge(corrected, on=["file", "sheet_key", "row_number"])
    counts = hits.groupby(["file", "sheet_key"]).size().rename("rows_accepted_with_corrections")
    return counts.reset_index()


def _keyed(rows: pd.DataFrame) -> pd.DataFrame:
    """File, sheet ("" for none) and row number as plain values, comparable across frames."""
    sheet = rows["sheet"].astype(object)
    return pd.DataFrame(
        {
            "file": rows["file"].astype(object).to_numpy(),
            "sheet_key": sheet.where(sheet.notna(), "").to_numpy(),
            "row_number": rows["row_number"].to_numpy(dtype="int64"),
        }
    )


def reconcile(
    tables: list[RawTable],
    harmonised_tables: set[str],
    accepted: pd.DataFrame,
    quarantined: pd.DataFrame,
    superseded: pd.DataFrame,
    corrections: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per table read (a CSV file or a workbook sheet), with its rows' outcomes.

    ``rows_accepted_with_corrections`` is a part of ``rows_accepted``: the accepted rows that have a
    record in ``corrections``, so the outcomes still add up to the rows read.
    """
    read_parts, outcome_parts = [], []
    for raw in tables:
        base = {
            "source": raw.input.source,
            "collection_year": raw.input.collection_year,
            "area_code": raw.input.area_code,
            "file": raw.input.file,
            "sheet": raw.sheet,
            "table_name": raw.table,
            "rows_read": len(raw.rows),
        }
        read_parts.append(base)
        if raw.table is not None and raw.table not in harmonised_tables and not raw.missing_columns:
            rows = pd.DataFrame({"file": raw.input.file, "sheet": raw.sheet, "row_number": raw.rows})
            outcome_parts.append(rows.assign(outcome="rows_not_harmonised"))
    outcome_parts += [
        _rows(accepted, "rows_accepted"),
        _rows(quarantined, "rows_quarantined"),
        _rows(superseded, "rows_superseded"),
    ]
    counts = _count_dense([p for p in outcome_parts if len(p)])
    if counts is None:
        outcomes = pd.concat(
            [p for p in outcome_parts if len(p)] or [pd.DataFrame(columns=[*KEY, "outcome"])]
        )
        outcomes["row_number"] = outcomes["row_number"].astype("int64")
        outcomes["sheet"] = outcomes["sheet"].astype(object).where(outcomes["sheet"].notna(), "")
        counts, clashes = _count_outcomes(outcomes)
        if len(clashes):
            example = clashes.sort_values(KEY).head(4).to_dict("records")
            raise ReconciliationError(f"rows with more than one outcome: {example}")
    counts = (
        counts.set_index(["file", "sheet", "outcome"])["n"]
        .unstack("outcome", fill_value=0)
        .reindex(columns=OUTCOMES, fill_value=0)
        .reset_index()
    )
    read = pd.DataFrame(read_parts, columns=RECONCILIATION_COLUMNS[:7])
    read["sheet_key"] = read["sheet"].astype(object).where(read["sheet"].notna(), "")
    table = read.merge(counts.rename(columns={"sheet": "sheet_key"}), on=["file", "sheet_key"], how="left")
    table = table.merge(
        _accepted_with_corrections(accepted, corrections), on=["file", "sheet_key"], how="left"
    )
    table = table.drop(columns="sheet_key")
    table[OUTCOMES] = table[OUTCOMES].fillna(0).astype("int64")
    table["rows_accepted_with_corrections"] = (
        table["rows_accepted_with_corrections"].fillna(0).astype("int64")
    )
    unbalanced = table["rows_read"] != table[OUTCOMES].sum(axis=1)
    if unbalanced.any():
        raise ReconciliationError(
            "rows read do not equal accepted + quarantined + superseded + not harmonised for: "
            f"{table.loc[unbalanced].to_dict('records')}"
        )
    return table[RECONCILIATION_COLUMNS].sort_values(["source", "file", "sheet"], na_position="first")
