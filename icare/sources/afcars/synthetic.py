"""Deterministic synthetic NDACAN annual foster-care files (US AFCARS legacy file), with true counts.

Nothing here describes a real child. The generator simulates each child's removal episodes first
(``icare.sources.afcars.model``: children in care before the first year and new removals each year,
exponential time in care, emancipation at 18 or, for some, 21, re-entries in a later year with the same
record number), then writes one tab-delimited file per fiscal year holding every state, one row per
child per year, as NDACAN distributes it (``sources/afcars/source.yaml``; codes from
``sources/afcars/codelists.csv``). A child is removed at most once per fiscal year, because the file
could show only the latest removal.

Beside the files it writes ``true_counts.csv``: per fiscal year and state, the stock on 30 September
by CURPLSET, the stock on the day before the year, entries, exits, exits by DISREASN and exits by the
last CURPLSET. They are computed from the episodes' dates, never from the written rows, so a reader can
be checked against them. ``defects=True`` also damages the files (``icare.sources.afcars.defects``) and
lists every damage in ``defects.csv``; the true counts stay those of the undamaged model.

Command line: ``python -m icare.sources.afcars.synthetic OUT [--first-year 2021 --last-year 2023
--states CA,NY --stock 60 --entries 40 --seed 17 --defects]``. Output is byte-identical for the same
arguments.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from icare.sources.afcars import defects as damage
from icare.sources.afcars.model import (
    DISABILITY_FLAGS,
    REMOVAL_FLAGS,
    ModelSettings,
    age_at,
    child_years,
    fy_start,
    simulate,
)

# State postal code -> (FIPS state code, two large counties' FIPS county codes). Public codes.
STATES = {
    "CA": (6, (37, 73)), "NY": (36, (47, 81)), "TX": (48, (201, 113)), "FL": (12, (86, 11)),
    "IL": (17, (31, 43)), "PA": (42, (101, 3)), "OH": (39, (35, 49)), "GA": (13, (121, 89)),
    "NC": (37, (119, 183)), "MI": (26, (163, 125)), "NJ": (34, (13, 3)), "VA": (51, (59, 760)),
    "WA": (53, (33, 53)), "AZ": (4, (13, 19)), "MA": (25, (25, 17)), "TN": (47, (157, 37)),
    "IN": (18, (97, 89)), "MO": (29, (95, 189)), "MD": (24, (510, 33)), "WI": (55, (79, 25)),
}  # fmt: skip
SMALL_COUNTIES = "00008"  # NDACAN's code for counties with fewer than 700 cases
CURPLSET_CODES = ("1", "2", "3", "4", "5", "6", "7", "8")
DISREASN_CODES = ("1", "2", "3", "4", "5", "6", "7", "8")
TITLE = "AFCARS Foster Care File FY{fy} (synthetic)"


@dataclass(frozen=True)
class GeneratedFiles:
    root: Path
    files: list[Path]
    true_counts: pd.DataFrame
    defects: pd.DataFrame
    child_years: int


def file_name(fy: int) -> str:
    return f"FC{fy % 100:02d}v1.tab"


def generate(
    out: str | Path,
    *,
    first_year: int = 2021,
    last_year: int = 2023,
    states: tuple[str, ...] = ("CA", "NY"),
    stock: int = 60,
    entries: int = 40,
    seed: int = 17,
    defects: bool = False,
) -> GeneratedFiles:
    """Write ``FC<yy>v1.tab`` for each fiscal year and ``true_counts.csv`` (and ``defects.csv``)."""
    unknown = [s for s in states if s not in STATES]
    if unknown or first_year > last_year:
        raise ValueError(f"unknown states {unknown} or empty year range {first_year}-{last_year}")
    settings = ModelSettings(tuple(range(first_year, last_year + 1)), tuple(states), stock, entries, seed)
    episodes, children = simulate(settings)
    years = child_years(settings, episodes, children)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    files, found = [], []
    for i, fy in enumerate(settings.fiscal_years):
        columns = _columns(settings, episodes, children, years, years.fy == fy, fy)
        prefix, suffix_crlf = b"", False
        if defects:
            columns, found_here = damage.damage_rows(columns, file_name(fy), [seed, 2, fy])
            found.append(found_here)
            prefix, suffix_crlf, file_level = damage.file_level(file_name(fy), fy, i, TITLE)
            found.append(file_level)
        files.append(_write(root / file_name(fy), columns, prefix, suffix_crlf))
    truth = true_counts(settings, episodes, years)
    truth.to_csv(root / "true_counts.csv", index=False, lineterminator="\n")
    found_frame = pd.concat(found, ignore_index=True) if found else damage.empty()
    if defects:
        found_frame.to_csv(root / "defects.csv", index=False, lineterminator="\n")
    return GeneratedFiles(root, files, truth, found_frame, len(years.fy))


def _date_strings(days: np.ndarray, missing: np.ndarray) -> pa.Array:
    """mm/dd/yyyy for each day (null where ``missing``), through a table of the days in range."""
    days = np.asarray(days, dtype=np.int64)
    if not len(days):
        return pa.array([], pa.string())
    present = days[~missing]
    low = int(present.min()) if len(present) else 0
    high = int(present.max()) if len(present) else 0
    iso = np.datetime_as_string(np.arange(low, high + 1).astype("datetime64[D]"))
    table = pa.array([f"{d[5:7]}/{d[8:10]}/{d[0:4]}" for d in iso.tolist()], pa.string())
    index = pa.array(np.where(missing, 0, days - low), mask=missing)
    return table.take(index)


def _text(values: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int64)).cast(pa.string())


def _columns(settings, episodes, children, years, rows: np.ndarray, fy: int) -> dict[str, pa.Array]:
    """The columns of one fiscal year's file, rows ordered by state and record number."""
    idx = np.flatnonzero(rows)
    ep = years.episode[idx]
    child = episodes.child[ep]
    state = np.array([STATES[s][0] for s in settings.states])[episodes.state[ep]]
    order = np.lexsort((children.record[child], state))
    idx, ep, child, state = idx[order], ep[order], child[order], state[order]
    n = len(idx)
    start, end = int(fy_start(fy)), int(fy_start(fy + 1)) - 1
    removal, discharge, reason = episodes.removal[ep], episodes.discharge[ep], episodes.reason[ep]
    exited = discharge <= end
    entered = removal >= start
    dob = children.dob[child]
    postal = np.array(settings.states, dtype=object)[episodes.state[ep]]
    record = np.char.zfill(children.record[child].astype(str), 10)
    counties = np.array([[f"{STATES[s][0]:02d}{c:03d}" for c in STATES[s][1]] for s in settings.states])
    county = children.county[child]
    fips = np.where(county < 2, counties[episodes.state[ep], np.minimum(county, 1)], SMALL_COUNTIES)
    none = np.zeros(n, dtype=bool)
    columns: dict[str, pa.Array] = {
        "FY": _text(np.full(n, fy)),
        "STATE": _text(state),
        "ST": pa.array(postal.tolist(), pa.string()),
        "FIPSCODE": pa.array(fips.tolist(), pa.string()),
        "RECNUMBR": pa.array(record.tolist(), pa.string()),
        "STFCID": pa.array((postal + record.astype(object)).tolist(), pa.string()),
        "DOB": _date_strings(dob, none),
        "SEX": _text(children.sex[child]),
        "CLINDIS": _text(children.disability[child]),
    }
    for j, name in enumerate(DISABILITY_FLAGS):
        columns[name] = _text(children.disability_flags[child, j])
    first_removal = episodes.total_removals[ep] == 1
    columns |= {
        "REM1DT": _date_strings(episodes.first_removal[ep], none),
        "TOTALREM": _text(episodes.total_removals[ep]),
        "DLSTFCDT": _date_strings(episodes.previous_discharge[ep], first_removal),
        "LATREMDT": _date_strings(removal, none),
        "CURSETDT": _date_strings(years.setting_start[idx], none),
        "NUMPLEP": _text(years.placements[idx]),
        "MANREM": _text(episodes.manner[ep]),
    }
    for j, name in enumerate(REMOVAL_FLAGS):
        columns[name] = _text(episodes.removal_flags[ep, j])
    columns |= {
        "CURPLSET": _text(years.setting[idx]),
        "PLACEOUT": _text(years.placed_out[idx]),
        "DODFCDT": _date_strings(np.where(exited, discharge, 0), ~exited),
        "DISREASN": _text(np.where(exited, reason, 0)),
        "AgeAtStart": _text(age_at(np.maximum(removal, start), dob)),
        "AgeAtEnd": _text(age_at(np.minimum(discharge, end), dob)),
        "InAtStart": _text(~entered),
        "InAtEnd": _text(~exited),
        "Entered": _text(entered),
        "Exited": _text(exited),
        "Served": _text(np.ones(n)),
        "AgedOut": _text(exited & (reason == 4)),
    }
    return columns


def _write(path: Path, columns: dict[str, pa.Array], prefix: bytes, crlf: bool) -> Path:
    buffer = io.BytesIO()
    options = pacsv.WriteOptions(delimiter="\t", quoting_style="none", quoting_header="none")
    pacsv.write_csv(pa.table(columns), buffer, write_options=options)
    data = buffer.getvalue()
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    path.write_bytes(prefix + data)
    return path


def true_counts(settings: ModelSettings, episodes, years) -> pd.DataFrame:
    """Stock, entries and exits per fiscal year and state, from the episodes' dates (not the files).

    Long format: ``fiscal_year, state, measure, code, count``; ``code`` is ``_T`` for a total. Every
    combination is present (zeros included), so a reader's figures can be joined one to one.
    """
    parts = []
    for fy in settings.fiscal_years:
        start, end = int(fy_start(fy)), int(fy_start(fy + 1)) - 1
        in_year = years.fy == fy
        setting = np.zeros(len(episodes.child), dtype=np.int64)
        setting[years.episode[in_year]] = years.setting[in_year]
        removal, discharge = episodes.removal, episodes.discharge
        masks = {
            "stock_start": (removal <= start - 1) & (discharge > start - 1),
            "entries": (removal >= start) & (removal <= end),
            "exits": (discharge >= start) & (discharge <= end),
            "stock_end": (removal <= end) & (discharge > end),
        }
        for s, state in enumerate(settings.states):
            here = episodes.state == s
            for measure, mask in masks.items():
                parts.append((fy, state, measure, "_T", int((mask & here).sum())))
            by = {
                "stock_end_by_setting": (masks["stock_end"] & here, setting, CURPLSET_CODES),
                "exits_by_destination": (masks["exits"] & here, episodes.reason, DISREASN_CODES),
                "exits_by_setting": (masks["exits"] & here, setting, CURPLSET_CODES),
            }
            for measure, (mask, values, codes) in by.items():
                counted = np.bincount(values[mask], minlength=10)
                parts.extend((fy, state, measure, code, int(counted[int(code)])) for code in codes)
    return pd.DataFrame(parts, columns=["fiscal_year", "state", "measure", "code", "count"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--first-year", type=int, default=2021)
    parser.add_argument("--last-year", type=int, default=2023)
    parser.add_argument("--states", default="CA,NY", help=f"postal codes among {','.join(STATES)}")
    parser.add_argument(
        "--stock", type=int, default=60, help="children in care per state before the first year"
    )
    parser.add_argument("--entries", type=int, default=40, help="mean removals per state and year")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--defects", action="store_true")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    result = generate(
        args.out,
        first_year=args.first_year,
        last_year=args.last_year,
        states=tuple(args.states.split(",")),
        stock=args.stock,
        entries=args.entries,
        seed=args.seed,
        defects=args.defects,
    )
    seconds = time.perf_counter() - began
    print(f"{result.child_years} child-years in {len(result.files)} files, {seconds:.1f} s", file=sys.stderr)
    if args.defects:
        print(result.defects.groupby("kind").size().to_string(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
