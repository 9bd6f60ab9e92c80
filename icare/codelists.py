"""Valid national code lists by collection year, read from a reviewed CSV (``codelists.csv``).

The file has one row per (field, code, year range)::

    field,code,label,first_year,last_year,started_before,ended_on_or_before,note

``first_year``/``last_year`` are collection years named by the year in which they end; a blank
``last_year`` means the code is still valid. ``started_before`` / ``ended_on_or_before`` (ISO dates)
restrict a code, in the years of that row, to episodes that started before / ended on or before the
date (an open episode then fails the ``ended_on_or_before`` limit). A code may have several rows for
non-overlapping year ranges. Nothing here knows any national code: adding a collection year is a data
change only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

CODELIST_COLUMNS = [
    "field",
    "code",
    "label",
    "first_year",
    "last_year",
    "started_before",
    "ended_on_or_before",
    "note",
]


class CodelistError(ValueError):
    """A code-list file breaks a structural rule; the message names the file, line and problem."""


def load_codelists(path: str | Path) -> pd.DataFrame:
    """Read and validate a code-list CSV.

    Returns the columns of :data:`CODELIST_COLUMNS` with ``first_year`` as ``int64``, ``last_year`` as
    nullable ``Int64`` (NA = still valid), the two date limits as ``datetime64`` (NaT = no limit) and
    text columns as strings. A ``line`` column gives the CSV line of each row for messages.
    """
    file = Path(path)
    try:
        raw = pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CodelistError(f"{file}: cannot read code list ({exc})") from exc
    columns = [c.strip() for c in raw.columns]
    if columns != CODELIST_COLUMNS:
        raise CodelistError(
            f"{file}: columns must be exactly {','.join(CODELIST_COLUMNS)} (got {','.join(columns)})"
        )
    raw.columns = columns
    raw = raw.apply(lambda s: s.str.strip())
    if raw.empty:
        raise CodelistError(f"{file}: the code list has no rows")
    lines = pd.Series(np.arange(2, len(raw) + 2), index=raw.index)

    def fail(mask: pd.Series, problem: str) -> None:
        if mask.any():
            i = mask[mask].index[0]
            row = raw.loc[i]
            raise CodelistError(
                f"{file}: line {lines[i]} (field {row['field']!r}, code {row['code']!r}): {problem}; "
                f"row: {','.join(row.tolist())}"
            )

    fail(raw["field"] == "", "field is empty")
    fail(raw["code"] == "", "code is empty")
    fail(raw["label"] == "", "label is empty")
    first = pd.to_numeric(raw["first_year"].where(raw["first_year"].str.fullmatch(r"\d{4}")), errors="coerce")
    fail(first.isna(), "first_year must be a four-digit year")
    last_text = raw["last_year"]
    last = pd.to_numeric(last_text.where(last_text.str.fullmatch(r"\d{4}")), errors="coerce")
    fail((last_text != "") & last.isna(), "last_year must be blank or a four-digit year")
    fail(last.notna() & (last < first), "last_year is before first_year")
    dates = {}
    for col in ("started_before", "ended_on_or_before"):
        text = raw[col]
        shaped = text.str.fullmatch(r"\d{4}-\d{2}-\d{2}")
        parsed = pd.to_datetime(text.where(shaped), format="%Y-%m-%d", errors="coerce")
        fail((text != "") & parsed.isna(), f"{col} must be blank or an ISO date YYYY-MM-DD")
        dates[col] = parsed

    out = pd.DataFrame(
        {
            "field": raw["field"].astype("str"),
            "code": raw["code"].astype("str"),
            "label": raw["label"].astype("str"),
            "first_year": first.astype("int64"),
            "last_year": last.astype("Int64"),
            "started_before": dates["started_before"],
            "ended_on_or_before": dates["ended_on_or_before"],
            "note": raw["note"].replace("", None).astype("str"),
            "line": lines.astype("int64"),
        }
    )
    _check_overlaps(out, file)
    return out.reset_index(drop=True)


def _check_overlaps(frame: pd.DataFrame, file: Path) -> None:
    """Two rows of one field and code may not share a collection year."""
    ordered = frame.assign(_last=frame["last_year"].fillna(np.iinfo("int64").max).astype("int64"))
    ordered = ordered.sort_values(["field", "code", "first_year"], kind="stable")
    same = (ordered["field"] == ordered["field"].shift()) & (ordered["code"] == ordered["code"].shift())
    overlap = same & (ordered["first_year"] <= ordered["_last"].shift())
    if overlap.any():
        i = overlap[overlap].index[0]
        row = ordered.loc[i]
        prev = ordered.loc[ordered.index[ordered.index.get_loc(i) - 1]]
        raise CodelistError(
            f"{file}: line {row['line']} (field {row['field']!r}, code {row['code']!r}): years "
            f"{_span(row)} overlap line {prev['line']} ({_span(prev)}); one code may have only one "
            "row per collection year"
        )


def _span(row: pd.Series) -> str:
    last = "" if pd.isna(row["last_year"]) else str(int(row["last_year"]))
    return f"{int(row['first_year'])}-{last}"


def year_rows(codelists: pd.DataFrame, field: str, year: int) -> pd.DataFrame:
    """The rows of ``field`` valid in collection ``year``, with their date limits."""
    rows = codelists[codelists["field"] == field]
    last = rows["last_year"].fillna(np.iinfo("int64").max).astype("int64")
    return rows[(rows["first_year"] <= year) & (last >= year)]


def valid_codes(codelists: pd.DataFrame, field: str, year: int) -> frozenset[str]:
    """Codes of ``field`` valid in collection ``year`` (for some episode; date limits not applied)."""
    if field not in set(codelists["field"]):
        raise KeyError(
            f"field {field!r} is not in the code lists (fields: {sorted(set(codelists['field']))})"
        )
    return frozenset(year_rows(codelists, field, year)["code"])


def fields(codelists: pd.DataFrame) -> list[str]:
    return sorted(set(codelists["field"]))


def years(codelists: pd.DataFrame, up_to: int | None = None) -> list[int]:
    """Every collection year from the earliest ``first_year`` to the latest year named in the file.

    ``up_to`` extends the range (open-ended rows are valid in any later year).
    """
    first = int(codelists["first_year"].min())
    named = [int(codelists["first_year"].max())]
    if codelists["last_year"].notna().any():
        named.append(int(codelists["last_year"].max()))
    last = max([*named, up_to or 0])
    return list(range(first, last + 1))


def code_is_valid(
    codelists: pd.DataFrame,
    field: str,
    codes: pd.Series,
    year: pd.Series | int,
    start: pd.Series | None = None,
    end: pd.Series | None = None,
) -> pd.Series:
    """Vectorised check of each code against the list for its collection year and its date limits.

    ``start``/``end`` are parsed episode dates (NaT = unknown start / open episode). Without them the
    date limits are not applied; an unknown start passes (a missing start date is reported elsewhere),
    an open episode fails an ``ended_on_or_before`` limit. Blank codes give ``False``; callers decide
    whether blank is allowed.
    """
    index = codes.index
    years_ = pd.Series(year, index=index) if np.isscalar(year) else year
    frame = pd.DataFrame(
        {"_pos": np.arange(len(index)), "code": codes.to_numpy(dtype=object), "year": years_.to_numpy()}
    )
    rows = codelists.loc[
        codelists["field"] == field,
        ["code", "first_year", "last_year", "started_before", "ended_on_or_before"],
    ]
    merged = frame.merge(rows, on="code", how="inner")
    last = merged["last_year"].fillna(np.iinfo("int64").max).astype("int64")
    ok = (merged["first_year"] <= merged["year"]) & (last >= merged["year"])
    if start is not None:
        s = pd.Series(start.to_numpy(), index=np.arange(len(index))).reindex(merged["_pos"]).to_numpy()
        limit = merged["started_before"].to_numpy()
        ok &= pd.isna(limit) | pd.isna(s) | (s < limit)
    if end is not None:
        e = pd.Series(end.to_numpy(), index=np.arange(len(index))).reindex(merged["_pos"]).to_numpy()
        limit = merged["ended_on_or_before"].to_numpy()
        ok &= pd.isna(limit) | (~pd.isna(e) & (e <= limit))
    valid = np.zeros(len(index), dtype=bool)
    valid[merged.loc[ok.to_numpy(), "_pos"].to_numpy()] = True
    return pd.Series(valid, index=index)
