"""Deterministic synthetic SSDA903 returns (England's "children looked after" data), for tests and benchmarks.

Nothing here describes a real child. The generator first simulates each child's true care history, then
cuts it into yearly returns exactly as local authorities submit them.

Model (see ``shared/reference/national-sources.md`` §1 for the codes and §8 for multi-year returns):

* **Children.** Each candidate child enters care on a date drawn uniformly from the 18 years before the
  first collection year to the end of the last one, at an age drawn like England's starters (about 19%
  under 1, many of them at birth; 14% aged 1-4; 15% aged 5-9; 40% aged 10-15; 12% aged 16-17). About a
  fifth of 14-17 year-old starters are unaccompanied asylum-seeking children (UASC; 94% male, accommodated
  under V2, category of need N8). Candidates are simulated in batches and the first ``children`` whose
  history touches the collection window are kept, so ``children`` is the number of distinct children in
  the returns. Children are dealt to the areas in turn.
* **Episodes.** A care spell starts with RNE = S and a legal status drawn by age (C1 interim care order,
  V2 accommodation, L1/L2 emergency protection for a few days, J1/J2 youth justice, V3/V4 short breaks).
  Each episode lasts a log-normal number of days whose median depends on the placement (long-term
  fostering ~16 months, short-term fostering ~6 months, hospital a month; temporary moves 1-7 days; short
  breaks 1-10 days). At its end one of these happens:
  a change of legal status only (RNE = L: C1 -> C2, V2 -> C1, L1/L2 -> C1, J1/J2 -> V2, C2 -> E1 on the
  adoption track); a placement move (RNE = P, or B with a legal change; REASON_PLACE_CHANGE on the ceasing
  episode); a change of placement with the same carer (RNE = T/U: U6 -> U4, U3 -> U1, U5 -> A5);
  a temporary move (T0-T4 for 1-7 days, then back to the same PLACE, provider, postcode and URN with
  RNE = P); or an exit. Continuations start on the day the previous episode ends (REC = X1).
* **Placements** are drawn by age: under 5s mostly in foster care (U6/U4, some kinship U1/U3, fostering
  for adoption U5/U2, P1 with parents, R3 mother-and-baby units for babies); 10-15 year-olds in foster care
  or children's homes (K2), rarely S1/R1/K1/Z1; 16-17 year-olds also in semi-independent accommodation (H5
  before 28 Oct 2023, registered supported accommodation K3 from then) and independent living (P2, only in
  episodes that end on or before 28 Oct 2023). R5/K1 come with J1/J2 remands. Placement for adoption
  (A3-A6) only happens to children on the adoption track (a share of children who enter under 2) once
  they have been in care for a year and are under 5; it ends in adoption (E11/E12) or rarely disrupts.
* **Date rules** are applied per episode: H5 episodes that run past 28 Oct 2023 end by 31 Mar 2025 and
  continue as K3 with the same carer (RNE = T); P2 episodes end on 28 Oct 2023 at the latest and continue
  in K3 (RNE = P); an episode in an "other" placement is written Z1 in returns up to 2025 and Z11-Z14 (the
  same sub-type all along) from 2026; special guardianship exits are E43/E44 before April 2018 and E45-E48
  after; CUSTOD is used only for moves after March 2018; SEX is 1/2 up to 2024 and M/F (rarely U) from 2025.
* **Exits** depend on age (return home E4A/E4B, SGO, child arrangements order E41, E13, transfer E3,
  other E8, custody E9, moved abroad E16, rarely death E2; independent living E5/E6 from 16). A child
  leaves care on their 18th birthday (E5, E6, E17 if fostered, E7, ...). Some children come back months
  later in a new spell (RNE = S), short-break children every few weeks. Episodes still open at the end of
  the last year stay open.
* **Returns.** Return Y (1 April Y-1 to 31 March Y) of an area holds every episode of its children open
  at any time in that year (DECOM <= 31/03/Y and DEC blank or >= 01/04/Y-1), with DEC, REC and
  REASON_PLACE_CHANGE blank when the episode was still open on 31 March Y; so an episode open at a year
  end appears again, with the same DECOM, in the next return. The header has one row per child with an
  episode in the return, the UASC table one row per UASC child in it (DUC = 18th birthday once reached).

Layout: ``<out>/<Y>/<area>/{header,episodes,uasc}.csv``, or ``<out>/<Y>/<area>/ssda903_<Y>.xlsx`` with
sheets Header, Episodes and UASC, every cell written as text. Dates are dd/mm/YYYY; blank is an empty
field or cell. Output is byte-identical for the same arguments.

``defects=True`` then corrupts a small, counted share of the returns (``DEFECT_KINDS``; about 0.05% of
episode rows per row-level kind and 0.15% of children per child-level kind, at least one of each):

* ``two_digit_year``: a DEC or DECOM written dd/mm/yy (rows);
* ``unknown_place``: PLACE set to a code that does not exist (rows);
* ``place_invalid_for_year``: a code not valid in that return: P2 on an open episode from 2024, K3 before
  2024 (rows);
* ``dec_before_decom``: DEC 1-30 days before DECOM (rows);
* ``missing_decom``: DECOM blank (rows);
* ``duplicate_row``: an episode row repeated within one return (extra rows);
* ``whitespace_padded_code``: PLACE written with a leading or trailing space, e.g. " U4" (rows);
* ``overlapping_episode``: an extra episode of the same child nested inside a closed episode (extra rows);
* ``child_without_header``: the child's header (and UASC) row is missing from one return (children);
* ``open_episode_child_missing_next_return``: the child has an open episode at 31 March Y but is left out
  (episodes, header and UASC) of return Y+1 (children).

Command line: ``python -m icare.sources.ssda903.synthetic OUT --children N --first-year 2022
--last-year 2025 --format csv --seed 903 [--defects]`` (or ``--episodes ROWS`` to size N).
"""

from __future__ import annotations

import argparse
import io
import math
import re
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

# --------------------------------------------------------------------------------------------------
# Code lists (national-sources.md §1.4-1.10). Internal codes are indexes into these tuples; -1 = blank.
# --------------------------------------------------------------------------------------------------

PLACES = (
    "A3", "A4", "A5", "A6", "H5", "K1", "K2", "K3", "P1", "P2", "P3", "R1", "R2", "R3", "R5", "S1",
    "T0", "T1", "T2", "T3", "T4", "U1", "U2", "U3", "U4", "U5", "U6", "Z1",
)  # fmt: skip
PLACE_OUT = (*PLACES, "Z11", "Z12", "Z13", "Z14")  # Z1 is written Z11-Z14 from collection year 2026
LS_CODES = ("C1", "C2", "E1", "V2", "V3", "V4", "L1", "L2", "L3", "J1", "J2")
RNE_CODES = ("S", "L", "P", "T", "B", "U")
REC_CODES = (
    "X1", "E11", "E12", "E2", "E3", "E4A", "E4B", "E13", "E41", "E43", "E44", "E45", "E46", "E47", "E48",
    "E5", "E6", "E7", "E8", "E9", "E14", "E15", "E16", "E17",
)  # fmt: skip
REASONS = ("CARPL", "CLOSE", "ALLEG", "STAND", "APPRR", "CREQB", "CREQO", "CHILD", "LAREQ", "OTHER", "CUSTOD")
PROVIDERS = ("PR0", "PR1", "PR2", "PR3", "PR4", "PR5")
CIN_CODES = ("N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8")
ETHNIC_CODES = (
    "WBRI", "WIRI", "WIRT", "WOTH", "WROM", "MWBC", "MWBA", "MWAS", "MOTH", "AIND", "APKN", "ABAN", "AOTH",
    "BCRB", "BAFR", "BOTH", "CHNE", "OOTH", "REFU", "NOBT",
)  # fmt: skip

HEADER_COLUMNS = ("CHILD", "SEX", "DOB", "ETHNIC", "UPN", "MOTHER", "MC_DOB")
EPISODE_COLUMNS = (
    "CHILD", "DECOM", "RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "DEC", "REC", "REASON_PLACE_CHANGE",
    "HOME_POST", "PL_POST", "URN",
)  # fmt: skip
UASC_COLUMNS = ("CHILD", "SEX", "DOB", "DUC")
SHEETS = {"header": "Header", "episodes": "Episodes", "uasc": "UASC"}

DEFECT_KINDS = (
    "two_digit_year",
    "unknown_place",
    "place_invalid_for_year",
    "dec_before_decom",
    "missing_decom",
    "duplicate_row",
    "whitespace_padded_code",
    "overlapping_episode",
    "child_without_header",
    "open_episode_child_missing_next_return",
)
ROW_DEFECT_RATE = 0.0005  # share of episode rows per row-level defect kind (at least one each)
CHILD_DEFECT_RATE = 0.0015  # share of children per child-level defect kind (at least one each)

_PI = {c: i for i, c in enumerate(PLACES)}
_LI = {c: i for i, c in enumerate(LS_CODES)}
_RI = {c: i for i, c in enumerate(REC_CODES)}
_NI = {c: i for i, c in enumerate(RNE_CODES)}
_XI = {c: i for i, c in enumerate(REASONS)}


def _day(y: int, m: int, d: int) -> int:
    return int(np.datetime64(f"{y:04d}-{m:02d}-{d:02d}", "D").astype(np.int64))


CUTOFF = _day(2023, 10, 28)  # Ofsted registration of supported accommodation for 16-17s (§1.3)
H5_LAST_DAY = _day(2025, 3, 31)  # H5 is absent from 2025/26 returns
SGO_SPLIT = _day(2018, 4, 1)  # E43/E44 up to 2017/18, E45-E48 and CUSTOD from 2018/19
Z_SPLIT_YEAR = 2026  # Z1 up to 2024/25, Z11-Z14 from 2025/26
SEX_LETTERS_YEAR = 2025  # SEX 1/2 up to 2023/24, M/F/U from 2024/25
_NEVER = np.iinfo(np.int64).max // 4


def _idx(table: dict[str, int], codes: Sequence[str]) -> np.ndarray:
    return np.array([table[c] for c in codes], dtype=np.int64)


_FOSTER = _idx(_PI, ("U1", "U2", "U3", "U4", "U5", "U6"))
_KIN_FOSTER = _idx(_PI, ("U1", "U2", "U3"))
_TEMP = _idx(_PI, ("T0", "T1", "T2", "T3", "T4"))
_ADOPT = _idx(_PI, ("A3", "A4", "A5", "A6"))
_URN_PLACES = _idx(_PI, ("K1", "K2", "K3", "R1", "S1"))
_NO_TEMP_FROM = _idx(_PI, ("P1", "R2", "R5", "K1", "S1", "P2", "P3", "H5"))

# --------------------------------------------------------------------------------------------------
# Probability tables
# --------------------------------------------------------------------------------------------------

# Age at entry: groups under 1, 1-4, 5-9, 10-15, 16-17, with day ranges.
_ENTRY_AGE_P = np.array([0.19, 0.14, 0.15, 0.40, 0.12])
_ENTRY_AGE_DAYS = np.array([[0, 365], [365, 1826], [1826, 3652], [3652, 5844], [5844, 6540]])
_UASC_SHARE_14_17 = 0.22


def _table(rows: Sequence[dict[str, float]], codes: Sequence[str]) -> np.ndarray:
    """Cumulative probability rows over ``codes`` (each row normalised)."""
    out = np.zeros((len(rows), len(codes)))
    index = {c: i for i, c in enumerate(codes)}
    for r, row in enumerate(rows):
        for code, p in row.items():
            out[r, index[code]] = p
        out[r] /= out[r].sum()
    return np.cumsum(out, axis=1)


# Placement at entry or after a move, by age group; a sixth row for UASC children.
_PLACE_CUM = _table(
    [
        {"U6": .50, "U4": .04, "U3": .10, "U1": .02, "U5": .07, "U2": .03, "P1": .08, "R3": .12, "R2": .02,
         "Z1": .01},
        {"U6": .53, "U4": .12, "U3": .12, "U1": .05, "U5": .03, "U2": .01, "P1": .09, "R3": .02, "K2": .01,
         "Z1": .01, "R2": .005},
        {"U6": .41, "U4": .25, "U3": .09, "U1": .07, "P1": .08, "K2": .06, "S1": .01, "R1": .01, "Z1": .01,
         "R2": .005},
        {"U6": .31, "U4": .24, "U3": .06, "U1": .05, "P1": .06, "K2": .20, "S1": .025, "R1": .01, "K1": .005,
         "Z1": .02, "R2": .005, "R3": .003},
        {"U6": .16, "U4": .17, "U3": .04, "U1": .03, "P1": .03, "K2": .15, "H5": .30, "P2": .05, "Z1": .03,
         "S1": .01, "P3": .003, "K1": .004, "R1": .005, "R2": .003, "R3": .005},
        {"U6": .40, "U4": .15, "H5": .30, "K2": .08, "Z1": .03, "P2": .04},
    ],
    PLACES,
)  # fmt: skip
_PLACE_J1_CUM = _table([{"R5": .35, "K1": .15, "K2": .20, "U6": .30}], PLACES)[0]  # fmt: skip
_PLACE_J2_CUM = _table([{"K1": .10, "K2": .40, "U6": .50}], PLACES)[0]  # fmt: skip
_PLACE_BREAK_CUM = _table([{"U6": .45, "R1": .25, "K2": .30}], PLACES)[0]  # fmt: skip

# Legal status at entry by age group; a sixth row for UASC children.
_LS_CUM = _table(
    [
        {"C1": .52, "V2": .28, "L1": .06, "L2": .12, "L3": .005},
        {"C1": .48, "V2": .34, "V3": .01, "V4": .005, "L1": .09, "L2": .05, "L3": .005},
        {"C1": .42, "V2": .41, "V3": .02, "V4": .01, "L1": .09, "L2": .03, "L3": .005},
        {"C1": .30, "V2": .50, "V3": .015, "V4": .005, "L1": .09, "L2": .02, "J1": .04, "J2": .03},
        {"C1": .12, "V2": .68, "V3": .01, "V4": .005, "L1": .07, "L2": .01, "J1": .06, "J2": .04},
        {"V2": .96, "L1": .04},
    ],
    LS_CODES,
)  # fmt: skip
# Legal status after a change of legal status only (-1: none possible; C2 -> E1 is the adoption track's).
_NEXT_LS = np.full(len(LS_CODES), -1)
for _a, _b in {"C1": "C2", "V2": "C1", "L1": "C1", "L2": "C1", "L3": "C1", "J1": "V2", "J2": "V2"}.items():
    _NEXT_LS[_LI[_a]] = _LI[_b]

_CIN_CUM = _table(
    [
        {"N1": .62, "N2": .03, "N3": .03, "N4": .08, "N5": .14, "N6": .015, "N7": .005, "N8": .08},
        {"N8": .92, "N4": .05, "N1": .03},
        {"N2": .90, "N3": .05, "N4": .05},
    ],
    CIN_CODES,
)  # fmt: skip

# Provider by placement: PR0..PR5 then "blank" (T0-T4 and Z placements need none).
_PROV_CODES = (*PROVIDERS, "")
_PROV_BY_PLACE = {
    "foster_kin": {"PR1": 0.85, "PR2": 0.10, "PR4": 0.05},
    "foster": {"PR1": 0.55, "PR4": 0.38, "PR5": 0.05, "PR2": 0.02},
    "adopt": {"PR1": 0.65, "PR2": 0.20, "PR5": 0.15},
    "home": {"PR4": 0.78, "PR1": 0.14, "PR5": 0.06, "PR2": 0.02},
    "secure": {"PR1": 0.70, "PR2": 0.30},
    "supported": {"PR4": 0.60, "PR5": 0.20, "PR1": 0.20},
    "other_res": {"PR4": 0.50, "PR5": 0.30, "PR1": 0.20},
    "public": {"PR3": 1.0},
    "parents": {"PR0": 1.0},
    "none": {"": 1.0},
}
_PROV_GROUP = {
    **dict.fromkeys(("U1", "U2", "U3"), "foster_kin"),
    **dict.fromkeys(("U4", "U5", "U6"), "foster"),
    **dict.fromkeys(("A3", "A4", "A5", "A6"), "adopt"),
    "K2": "home", "K1": "secure",
    **dict.fromkeys(("H5", "K3", "P2"), "supported"),
    **dict.fromkeys(("R1", "R3", "S1", "P3"), "other_res"),
    **dict.fromkeys(("R2", "R5"), "public"),
    "P1": "parents",
    **dict.fromkeys(("T0", "T1", "T2", "T3", "T4", "Z1"), "none"),
}  # fmt: skip
_PROV_CUM = _table([_PROV_BY_PLACE[_PROV_GROUP[p]] for p in PLACES], _PROV_CODES)

# Median episode length in days by placement (log-normal, sigma below).
_MEDIAN_DAYS = np.array(
    [{"U4": 480, "U1": 480, "U6": 170, "U3": 200, "U5": 150, "U2": 150, "K2": 200, "K1": 100, "K3": 220,
      "H5": 220, "P2": 180, "P1": 200, "P3": 150, "R1": 300, "R2": 30, "R3": 70, "R5": 60, "S1": 320,
      "Z1": 120}.get(p, 150) for p in PLACES],
    dtype=float,
)  # fmt: skip
_SIGMA = 0.95

# Exit destinations by age group (SGO resolved later by date and carer), and on the 18th birthday.
_EXIT_CODES = ("E4A", "E4B", "E13", "E41", "SGO", "E3", "E8", "E2", "E9", "E16", "E5", "E6", "E7")
_EXIT_CUM = _table(
    [
        {"E4A": .45, "E4B": .03, "E13": .05, "E41": .07, "SGO": .28, "E3": .04, "E8": .06, "E2": .01,
         "E16": .005},
        {"E4A": .45, "E4B": .04, "E13": .06, "E41": .07, "SGO": .28, "E3": .03, "E8": .05, "E2": .003,
         "E16": .005},
        {"E4A": .52, "E4B": .07, "E13": .07, "E41": .06, "SGO": .18, "E3": .03, "E8": .06, "E2": .002,
         "E16": .005},
        {"E4A": .55, "E4B": .10, "E13": .08, "E41": .03, "SGO": .07, "E3": .03, "E8": .10, "E2": .002,
         "E9": .015, "E16": .008},
        {"E4A": .35, "E4B": .10, "E13": .10, "E41": .01, "SGO": .03, "E3": .03, "E8": .12, "E2": .002,
         "E9": .03, "E16": .01, "E5": .14, "E6": .06, "E7": .01},
    ],
    _EXIT_CODES,
)  # fmt: skip
_EXIT_BASE = np.array([0.14, 0.20, 0.22, 0.22, 0.28])  # weight of "exit" among transitions, by age group
_AGE18_CODES = ("E5", "E6", "E17", "E7", "E13", "E4A", "E8")
_AGE18_CUM = _table([{"E5": .36, "E6": .12, "E17": .30, "E7": .02, "E13": .06, "E4A": .06, "E8": .08}],
                    _AGE18_CODES)[0]  # fmt: skip

_REENTRY_P = np.zeros(len(REC_CODES))
for _c, _p in {"E4A": .16, "E4B": .22, "E13": .12, "E8": .12, "E41": .04, "E43": .03, "E44": .03, "E45": .03,
               "E46": .03, "E47": .03, "E48": .03, "E9": .15, "E14": .20, "E16": .02, "E11": .005,
               "E12": .005, "E5": .08, "E6": .08}.items():  # fmt: skip
    _REENTRY_P[_RI[_c]] = _p

_REASON_CUM = _table(
    [{"CARPL": .36, "CLOSE": .04, "ALLEG": .02, "STAND": .03, "APPRR": .01, "CREQB": .13, "CREQO": .12,
      "CHILD": .07, "LAREQ": .08, "OTHER": .13, "CUSTOD": .01}],
    REASONS,
)[0]  # fmt: skip
_TEMP_CUM = _table([{"T0": .05, "T1": .15, "T2": .15, "T3": .30, "T4": .35}], PLACES)[0]  # fmt: skip

_ETHNIC_CUM = _table(
    [
        {"WBRI": .66, "WIRI": .003, "WIRT": .002, "WOTH": .05, "WROM": .005, "MWBC": .03, "MWBA": .01,
         "MWAS": .01, "MOTH": .03, "AIND": .01, "APKN": .015, "ABAN": .005, "AOTH": .02, "BCRB": .01,
         "BAFR": .03, "BOTH": .02, "CHNE": .002, "OOTH": .04, "REFU": .004, "NOBT": .02},
        {"OOTH": .35, "BAFR": .30, "AOTH": .25, "BOTH": .05, "NOBT": .05},
    ],
    ETHNIC_CODES,
)  # fmt: skip


def _draw(rng: np.random.Generator, cum: np.ndarray, n: int | None = None) -> np.ndarray:
    """Category indexes from cumulative probabilities: one row for all draws, or one row per draw."""
    if cum.ndim == 1:
        u = rng.random(n)
        return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)
    u = rng.random(len(cum))
    return np.minimum((u[:, None] >= cum).sum(axis=1), cum.shape[1] - 1)


# --------------------------------------------------------------------------------------------------
# Dates
# --------------------------------------------------------------------------------------------------


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = days.astype("M8[D]")
    months = d.astype("M8[M]")
    year = months.astype("M8[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    dom = (d - months.astype("M8[D]")).astype(np.int64) + 1
    return year, month, dom


def _add_years(days: np.ndarray, years: int) -> np.ndarray:
    """Same day of the month ``years`` later; 29 February rolls to 1 March."""
    d = days.astype("M8[D]")
    months = d.astype("M8[M]")
    dom = (d - months.astype("M8[D]")).astype(np.int64)
    return ((months + 12 * years).astype("M8[D]").astype(np.int64)) + dom


def _age_years(birth_year: np.ndarray, birth_md: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Completed years of age on ``days``."""
    year, month, dom = _ymd(days)
    return year - birth_year - ((month * 32 + dom) < birth_md)


def _age_group(age: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.array([1, 5, 10, 16]), age, side="right")


def _date_strings(first: int, last: int) -> list[str]:
    iso = np.datetime_as_string(np.arange(first, last + 1).astype("M8[D]")).tolist()
    return [f"{s[8:10]}/{s[5:7]}/{s[0:4]}" for s in iso]


# --------------------------------------------------------------------------------------------------
# Simulation of true care histories
# --------------------------------------------------------------------------------------------------

_STATE_KEYS = (
    "cid", "dob", "by", "bmd", "b18", "uasc", "home", "t", "rne", "ls", "cin", "place", "zsub", "prov",
    "urn", "post", "spell", "track", "s_place", "s_zsub", "s_prov", "s_urn", "s_post",
)  # fmt: skip
_EPISODE_KEYS = (
    "cid",
    "decom",
    "dec",
    "rne",
    "ls",
    "cin",
    "place",
    "zsub",
    "prov",
    "urn",
    "post",
    "rec",
    "reason",
)


class _Simulator:
    def __init__(self, rng: np.random.Generator, window_start: int, window_end: int, n_posts: int):
        self.rng = rng
        self.ws = window_start
        self.we = window_end
        self.n_posts = n_posts

    # -- placements ------------------------------------------------------------------------------

    def _fix_place(self, place: np.ndarray, t: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Apply the age and 28 Oct 2023 rules to drawn placements."""
        place = place.copy()
        h5, p2, k3 = _PI["H5"], _PI["P2"], _PI["K3"]
        semi = np.isin(place, (h5, p2, k3))
        place[semi & (age < 16)] = _PI["U6"]
        semi = semi & (age >= 16)
        place[semi & (place == k3) & (t < CUTOFF)] = h5
        place[semi & ((place == h5) | (place == p2)) & (t >= CUTOFF)] = k3
        return place

    def _set_placement(
        self, S: dict, pos: np.ndarray, place: np.ndarray, *, same_carer: bool = False
    ) -> None:
        """Give rows ``pos`` a new placement: code, Z sub-type, provider, URN and postcode."""
        rng, n = self.rng, len(pos)
        if n == 0:
            return
        S["place"][pos] = place
        if same_carer:
            urn_now = S["urn"][pos]
            needs = np.isin(place, _URN_PLACES) & (urn_now < 0)
            S["urn"][pos] = np.where(needs, rng.integers(100000, 1000000, n), urn_now)
            no_prov = np.isin(place, _TEMP) | (place == _PI["Z1"])
            S["prov"][pos] = np.where(no_prov, -1, S["prov"][pos])
            return
        S["zsub"][pos] = rng.integers(1, 5, n)
        prov = _draw(rng, _PROV_CUM[place])
        S["prov"][pos] = np.where(prov == len(PROVIDERS), -1, prov)
        S["urn"][pos] = np.where(np.isin(place, _URN_PLACES), rng.integers(100000, 1000000, n), -1)
        S["post"][pos] = np.where(place == _PI["P1"], S["home"][pos], rng.integers(0, self.n_posts, n))

    def _general_place(self, S: dict, pos: np.ndarray, t: np.ndarray, age: np.ndarray) -> np.ndarray:
        row = np.where(S["uasc"][pos], 5, _age_group(age))
        return self._fix_place(_draw(self.rng, _PLACE_CUM[row]), t, age)

    # -- entry into care ---------------------------------------------------------------------------

    def enter(self, S: dict, pos: np.ndarray, t: np.ndarray, series: np.ndarray | None = None) -> None:
        """Start a care spell (RNE = S) on day ``t`` for rows ``pos``; ``series`` keeps V3/V4 breaks."""
        rng, n = self.rng, len(pos)
        if n == 0:
            return
        age = _age_years(S["by"][pos], S["bmd"][pos], t)
        grp = _age_group(age)
        uasc = S["uasc"][pos]
        ls = _draw(rng, _LS_CUM[np.where(uasc, 5, grp)])
        if series is not None:
            ls = np.where(series >= 0, series, ls)
        cin_row = np.where(uasc, 1, np.where(np.isin(ls, (_LI["V3"], _LI["V4"])), 2, 0))
        place = self._general_place(S, pos, t, age)
        j1, j2 = ls == _LI["J1"], ls == _LI["J2"]
        brk = np.isin(ls, (_LI["V3"], _LI["V4"]))
        place = np.where(j1, _draw(rng, _PLACE_J1_CUM, n), place)
        place = np.where(j2, _draw(rng, _PLACE_J2_CUM, n), place)
        place = np.where(brk, _draw(rng, _PLACE_BREAK_CUM, n), place)
        S["t"][pos] = t
        S["rne"][pos] = _NI["S"]
        S["ls"][pos] = ls
        S["cin"][pos] = _draw(rng, _CIN_CUM[cin_row])
        S["spell"][pos] = t
        S["track"][pos] = (age < 2) & ~brk & (rng.random(n) < 0.45)
        S["s_place"][pos] = -1
        self._set_placement(S, pos, place)

    # -- one step: every child in care writes its current episode and moves on ----------------------

    def step(self, S: dict) -> tuple[dict, dict]:
        rng = self.rng
        n = len(S["t"])
        t, place, ls = S["t"], S["place"], S["ls"]
        age = _age_years(S["by"], S["bmd"], t)
        grp = _age_group(age)

        # Natural length of the episode.
        dur = np.maximum(1, np.rint(rng.lognormal(np.log(_MEDIAN_DAYS[place]), _SIGMA)).astype(np.int64))
        dur = np.minimum(dur, 4000)
        is_temp = np.isin(place, _TEMP)
        dur = np.where(is_temp, rng.integers(1, 8, n), dur)
        dur = np.where(np.isin(place, _ADOPT), rng.integers(90, 541, n), dur)
        dur = np.where(np.isin(ls, (_LI["L1"], _LI["L2"], _LI["L3"])), rng.integers(1, 9, n), dur)
        dur = np.where(ls == _LI["J2"], rng.integers(1, 4, n), dur)
        dur = np.where(
            ls == _LI["J1"], np.maximum(1, rng.lognormal(np.log(45), 0.6, n).astype(np.int64)), dur
        )
        dur = np.where(ls == _LI["V3"], rng.integers(1, 11, n), dur)
        dur = np.where(ls == _LI["V4"], rng.integers(90, 366, n), dur)
        natural = t + dur

        # Date limits: 18th birthday, P2 by 28 Oct 2023, H5 by 31 Mar 2025 (from 28 Oct 2023 on).
        p2_limit = np.where(place == _PI["P2"], CUTOFF, _NEVER)
        h5_limit = np.where(place == _PI["H5"], CUTOFF + rng.integers(0, H5_LAST_DAY - CUTOFF + 1, n), _NEVER)
        dec = np.minimum.reduce([natural, S["b18"], p2_limit, h5_limit])
        at18 = dec == S["b18"]
        p2_end = ~at18 & (dec == p2_limit)
        h5_end = ~at18 & ~p2_end & (dec == h5_limit)
        open_end = dec > self.we

        rec = np.full(n, -1)
        reason = np.full(n, -1)
        N = {k: S[k].copy() for k in _STATE_KEYS}
        alive = ~open_end
        N["t"] = dec.copy()

        # Forced ends.
        pos = np.flatnonzero(alive & at18)
        codes = np.array([_RI[c] for c in _AGE18_CODES])[_draw(rng, _AGE18_CUM, len(pos))]
        codes = np.where((codes == _RI["E17"]) & ~np.isin(place[pos], _FOSTER), _RI["E5"], codes)
        rec[pos] = codes
        alive[pos] = False

        pos = np.flatnonzero(alive & p2_end)
        rec[pos], reason[pos] = _RI["X1"], _XI["CARPL"]
        N["rne"][pos] = _NI["P"]
        self._set_placement(N, pos, np.full(len(pos), _PI["K3"]))

        pos = np.flatnonzero(alive & h5_end)
        rec[pos] = _RI["X1"]
        N["rne"][pos] = _NI["T"]
        self._set_placement(N, pos, np.full(len(pos), _PI["K3"]), same_carer=True)

        free = alive & ~at18 & ~p2_end & ~h5_end
        exits = np.zeros(n, dtype=bool)

        # Back from a temporary move: same placement, provider, postcode and URN (rule 383).
        pos = np.flatnonzero(free & is_temp)
        if len(pos):
            rec[pos] = _RI["X1"]
            N["rne"][pos] = _NI["P"]
            back = self._fix_place(
                S["s_place"][pos], dec[pos], _age_years(S["by"][pos], S["bmd"][pos], dec[pos])
            )
            kept = back == S["s_place"][pos]
            N["place"][pos] = back
            for k in ("zsub", "prov", "urn", "post"):
                N[k][pos] = S["s_" + k][pos]
            self._set_placement(N, pos[~kept], back[~kept])
            N["s_place"][pos] = -1

        # Placed for adoption: adopted (E11/E12), or rarely the placement disrupts.
        pos = np.flatnonzero(free & np.isin(place, _ADOPT))
        if len(pos):
            u = rng.random(len(pos))
            adopted = u < 0.92
            rec[pos[adopted]] = np.where(u[adopted] < 0.92 * 0.82, _RI["E11"], _RI["E12"])
            exits[pos[adopted]] = True
            d = pos[~adopted]
            rec[d], reason[d] = _RI["X1"], _XI["CARPL"]
            N["rne"][d] = _NI["P"]
            N["track"][d] = False
            self._set_placement(N, d, np.full(len(d), _PI["U6"]))

        # Emergency protection: a few days, then an interim care order or home.
        emerg = free & np.isin(ls, (_LI["L1"], _LI["L2"], _LI["L3"])) & ~is_temp
        pos = np.flatnonzero(emerg)
        if len(pos):
            u = rng.random(len(pos))
            go_home = u < 0.30
            rec[pos[go_home]] = np.array([_RI["E4A"], _RI["E4B"], _RI["E13"], _RI["E8"]])[
                _draw(rng, np.array([0.7, 0.8, 0.9, 1.0]), int(go_home.sum()))
            ]
            exits[pos[go_home]] = True
            stay = pos[~go_home]
            move = u[~go_home] >= 0.30 + 0.70 * 0.78
            rec[stay] = _RI["X1"]
            N["ls"][stay] = _LI["C1"]
            N["rne"][stay] = np.where(move, _NI["B"], _NI["L"])
            mv = stay[move]
            reason[mv] = _draw(rng, _REASON_CUM, len(mv))
            self._set_placement(N, mv, self._general_place(N, mv, dec[mv], age[mv]))

        # Short breaks end at home.
        brk = free & np.isin(ls, (_LI["V3"], _LI["V4"])) & ~is_temp
        pos = np.flatnonzero(brk)
        rec[pos] = np.where(rng.random(len(pos)) < 0.95, _RI["E4A"], _RI["E8"])
        exits[pos] = True

        # Youth justice: remand ends (E14), custody (E9), or accommodated under V2.
        just = free & np.isin(ls, (_LI["J1"], _LI["J2"])) & ~is_temp
        pos = np.flatnonzero(just)
        if len(pos):
            u = rng.random(len(pos))
            secure = np.isin(place[pos], (_PI["R5"], _PI["K1"]))
            leave = u < np.where(secure, 0.65, 0.50)
            j1 = ls[pos] == _LI["J1"]
            v = rng.random(len(pos))
            code = np.where(
                j1,
                np.where(v < 0.6, _RI["E14"], np.where(v < 0.85, _RI["E9"], _RI["E4A"])),
                np.where(v < 0.6, _RI["E4A"], _RI["E8"]),
            )
            rec[pos[leave]] = code[leave]
            exits[pos[leave]] = True
            stay = pos[~leave]
            rec[stay] = _RI["X1"]
            N["ls"][stay] = _LI["V2"]
            move = secure[~leave] | (rng.random(len(stay)) < 0.4)
            N["rne"][stay] = np.where(move, _NI["B"], _NI["L"])
            mv = stay[move]
            reason[mv] = _draw(rng, _REASON_CUM, len(mv))
            self._set_placement(N, mv, self._general_place(N, mv, dec[mv], age[mv]))

        # Everyone else: legal change, move, same-carer change, temporary move or exit.
        gen = free & ~is_temp & ~np.isin(place, _ADOPT) & ~emerg & ~brk & ~just
        pos = np.flatnonzero(gen)
        if len(pos):
            self._general_transition(S, N, pos, dec, age, grp, rec, reason, exits)

        # Exits: SGO by date and carer, E15 for some UASC, then maybe a later re-entry.
        pos = np.flatnonzero(exits)
        if len(pos):
            self._exit(S, N, pos, dec, rec, alive)

        # A continuation that keeps an H5 placement past 28 Oct 2023 (e.g. a legal change only) becomes
        # registered supported accommodation with the same carer: L turns into U.
        pos = np.flatnonzero(alive & (rec == _RI["X1"]) & (N["place"] == _PI["H5"]) & (N["t"] >= CUTOFF))
        if len(pos):
            N["rne"][pos] = np.where(N["rne"][pos] == _NI["L"], _NI["U"], N["rne"][pos])
            self._set_placement(N, pos, np.full(len(pos), _PI["K3"]), same_carer=True)

        reason = np.where((reason == _XI["CUSTOD"]) & (dec < SGO_SPLIT), _XI["OTHER"], reason)
        episode = {
            "cid": S["cid"],
            "decom": t,
            "dec": dec,
            "rne": S["rne"],
            "ls": ls,
            "cin": S["cin"],
            "place": place,
            "zsub": S["zsub"],
            "prov": S["prov"],
            "urn": S["urn"],
            "post": S["post"],
            "rec": rec,
            "reason": reason,
        }
        alive &= N["t"] <= self.we
        return episode, {k: v[alive] for k, v in N.items()}

    def _general_transition(self, S, N, pos, dec, age, grp, rec, reason, exits) -> None:
        rng = self.rng
        m = len(pos)
        ls, place = S["ls"][pos], S["place"][pos]
        in_care = dec[pos] - S["spell"][pos]
        # On the adoption track while under 5 on the day the next episode would start.
        track = S["track"][pos] & (_age_years(S["by"][pos], S["bmd"][pos], dec[pos]) < 5)
        next_ls = _NEXT_LS[ls]

        mult = np.ones(m)
        mult[np.isin(ls, (_LI["C2"], _LI["E1"]))] *= 0.5
        mult[ls == _LI["V2"]] *= 1.4
        mult[place == _PI["P1"]] *= 1.6
        mult[track] *= 0.3
        short_foster = np.isin(place, (_PI["U6"], _PI["U3"]))
        w = np.zeros((m, 7))  # exit, L, P, B, T, U, temporary move
        w[:, 0] = _EXIT_BASE[grp[pos]] * mult
        w[:, 1] = np.where(ls == _LI["C1"], 0.45, np.where(ls == _LI["V2"], 0.06, 0.0))
        w[:, 2] = 0.30
        w[:, 3] = np.where(w[:, 1] > 0, 0.03, 0.0)
        w[:, 4] = np.where(short_foster, 0.10, 0.0)
        w[:, 5] = np.where(short_foster & (ls == _LI["C1"]), 0.04, 0.0)
        w[:, 6] = np.where(np.isin(place, _NO_TEMP_FROM), 0.0, 0.06)
        action = _draw(rng, np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1))

        # Adoption track (children under 4 who entered under 2): C1 -> C2 -> E1 (placement order) -> A5/A6,
        # or placed for adoption with consent (A3/A4) from C2/V2.
        u = rng.random(m)
        adopt = np.zeros(m, dtype=bool)
        consent = np.zeros(m, dtype=bool)
        action = np.where(track & (ls == _LI["C1"]) & (in_care >= 90) & (u < 0.7), 1, action)
        to_e1 = track & (ls == _LI["C2"]) & (in_care >= 240) & (u < 0.65)
        consent |= track & (ls == _LI["C2"]) & (in_care >= 365) & (u >= 0.65) & (u < 0.75)
        consent |= track & (ls == _LI["V2"]) & (in_care >= 365) & (u < 0.3)
        adopt |= track & (ls == _LI["E1"]) & (in_care >= 365) & (u < 0.85)
        adopt |= consent
        next_ls = np.where(to_e1, _LI["E1"], next_ls)
        action = np.where(to_e1, 1, action)
        action = np.where(adopt, 7, action)

        # Exit.
        ex = pos[action == 0]
        if len(ex):
            codes = np.array([_RI.get(c, -2) for c in _EXIT_CODES])[_draw(rng, _EXIT_CUM[grp[ex]])]
            rec[ex] = codes  # -2 marks SGO, resolved in _exit
            exits[ex] = True

        cont = pos[action > 0]
        rec[cont] = _RI["X1"]
        act = action[action > 0]
        nls = next_ls[action > 0]

        # L: legal status only.
        p = cont[act == 1]
        N["rne"][p] = _NI["L"]
        N["ls"][p] = nls[act == 1]
        # P and B: a new placement with new carers (B also changes the legal status).
        for code, a_ in (("P", 2), ("B", 3)):
            p = cont[act == a_]
            N["rne"][p] = _NI[code]
            if a_ == 3:
                N["ls"][p] = nls[act == 3]
            reason[p] = _draw(rng, _REASON_CUM, len(p))
            self._set_placement(N, p, self._general_place(N, p, dec[p], age[p]))
        # T and U: same carer, placement becomes long-term (U also changes the legal status).
        for code, a_ in (("T", 4), ("U", 5)):
            p = cont[act == a_]
            N["rne"][p] = _NI[code]
            if a_ == 5:
                N["ls"][p] = nls[act == 5]
            newp = np.where(S["place"][p] == _PI["U3"], _PI["U1"], _PI["U4"])
            self._set_placement(N, p, newp, same_carer=True)
        # Temporary move (T0-T4, 1-7 days); the current placement is kept to return to.
        p = cont[act == 6]
        if len(p):
            N["rne"][p] = _NI["P"]
            for k in ("place", "zsub", "prov", "urn", "post"):
                N["s_" + k][p] = S[k][p]
            tcode = _draw(rng, _TEMP_CUM, len(p))
            tcode = np.where((tcode == _PI["T3"]) & ~np.isin(S["place"][p], _FOSTER), _PI["T4"], tcode)
            self._set_placement(N, p, tcode)
        # Placed for adoption: with the current (foster-for-adoption) carers A3/A5 (RNE T), else A4/A6 (P).
        sel = act == 7
        p = cont[sel]
        if len(p):
            cons = consent[action > 0][sel]
            with_carer = np.isin(S["place"][p], (_PI["U5"], _PI["U2"])) | (
                np.isin(S["place"][p], _FOSTER) & (rng.random(len(p)) < 0.2)
            )
            code = np.where(
                cons, np.where(with_carer, _PI["A3"], _PI["A4"]), np.where(with_carer, _PI["A5"], _PI["A6"])
            )
            N["rne"][p] = np.where(with_carer, _NI["T"], _NI["P"])
            reason[p] = np.where(with_carer, -1, _XI["CARPL"])
            wc, nc = p[with_carer], p[~with_carer]
            self._set_placement(N, wc, code[with_carer], same_carer=True)
            N["prov"][wc] = np.where(N["prov"][wc] < 0, 1, N["prov"][wc])
            self._set_placement(N, nc, code[~with_carer])

    def _exit(self, S, N, pos, dec, rec, alive) -> None:
        rng = self.rng
        m = len(pos)
        place = S["place"][pos]
        d = dec[pos]
        r = rec[pos]
        sgo = r == -2
        kin = np.isin(place, _KIN_FOSTER)
        foster = np.isin(place, _FOSTER)
        u = rng.random(m)
        new_sgo = np.where(
            kin,
            _RI["E45"],
            np.where(
                foster,
                np.where(u < 0.35, _RI["E46"], np.where(u < 0.85, _RI["E47"], _RI["E48"])),
                np.where(u < 0.7, _RI["E47"], _RI["E48"]),
            ),
        )
        old_sgo = np.where(foster, _RI["E43"], _RI["E44"])
        r = np.where(sgo, np.where(d < SGO_SPLIT, old_sgo, new_sgo), r)
        r = np.where(S["uasc"][pos] & (r != _RI["E2"]) & (rng.random(m) < 0.04), _RI["E15"], r)
        rec[pos] = r

        # Re-entry in a new spell; short-break children come back every few weeks.
        ls = S["ls"][pos]
        series = np.where(np.isin(ls, (_LI["V3"], _LI["V4"])), ls, -1)
        p_back = np.where(ls == _LI["V3"], 0.80, np.where(ls == _LI["V4"], 0.50, _REENTRY_P[r]))
        gap = np.maximum(7, rng.lognormal(np.log(200), 0.9, m)).astype(np.int64)
        gap = np.where(ls == _LI["V3"], rng.integers(14, 76, m), gap)
        gap = np.where(ls == _LI["V4"], rng.integers(7, 46, m), gap)
        back_t = d + gap
        back = (rng.random(m) < p_back) & (back_t < S["b18"][pos] - 30) & (back_t <= self.we)
        alive[pos[~back]] = False
        b = pos[back]
        self.enter(N, b, back_t[back], series[back])


def _simulate(
    rng: np.random.Generator, n_candidates: int, window_start: int, window_end: int, cid0: int, n_posts: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Simulate ``n_candidates`` children; return their in-window episodes and child attributes."""
    grp = _draw(rng, np.cumsum(_ENTRY_AGE_P), n_candidates)
    lo, hi = _ENTRY_AGE_DAYS[grp, 0], _ENTRY_AGE_DAYS[grp, 1]
    age_days = lo + (rng.random(n_candidates) * (hi - lo)).astype(np.int64)
    newborn = (grp == 0) & (rng.random(n_candidates) < 0.35)
    age_days = np.where(newborn, rng.integers(0, 8, n_candidates), age_days)
    entry = rng.integers(window_start - 18 * 365 - 5, window_end + 1, n_candidates)
    dob = entry - age_days
    b18 = _add_years(dob, 18)
    uasc = (age_days >= 14 * 365 + 3) & (rng.random(n_candidates) < _UASC_SHARE_14_17)
    male = rng.random(n_candidates) < np.where(uasc, 0.94, 0.54)
    home = rng.integers(0, n_posts, n_candidates)
    # A child who is 18 before the window opens can never appear in a return.
    ok = (b18 > window_start) & (b18 > entry + 30)
    cand = np.flatnonzero(ok)
    m = len(cand)
    by, bm, bd = _ymd(dob[cand])
    S = {k: np.full(m, -1, dtype=np.int64) for k in _STATE_KEYS}
    S["cid"] = cid0 + cand
    S["dob"], S["by"], S["bmd"], S["b18"] = dob[cand], by, bm * 32 + bd, b18[cand]
    S["uasc"] = uasc[cand]
    S["track"] = np.zeros(m, dtype=bool)
    S["home"] = home[cand]
    sim = _Simulator(rng, window_start, window_end, n_posts)
    sim.enter(S, np.arange(m), entry[cand])

    parts: list[dict[str, np.ndarray]] = []
    while len(S["t"]):
        episode, S = sim.step(S)
        keep = episode["dec"] >= window_start
        parts.append({k: episode[k][keep] for k in _EPISODE_KEYS})
    episodes = {k: np.concatenate([p[k] for p in parts]) for k in _EPISODE_KEYS}
    children = {"dob": dob, "b18": b18, "uasc": uasc, "male": male, "home": home}
    return episodes, children


# --------------------------------------------------------------------------------------------------
# Building the returns
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedReturns:
    root: Path
    years: tuple[int, ...]
    areas: tuple[str, ...]
    children: int
    episode_rows: int
    header_rows: int
    uasc_rows: int
    defects: dict[str, int]


@dataclass
class _History:
    """The kept children (index k) and their true episodes, sorted by area, child id, DECOM."""

    episodes: dict[str, np.ndarray]  # keys _EPISODE_KEYS, "cid" replaced by child index "k"
    dob: np.ndarray
    b18: np.ndarray
    uasc: np.ndarray
    male: np.ndarray
    home: np.ndarray
    area: np.ndarray  # area index per child
    n_posts: int


def _window(first_year: int, last_year: int) -> tuple[int, int]:
    return _day(first_year - 1, 4, 1), _day(last_year, 3, 31)


def _simulate_children(
    rng: np.random.Generator, children: int, first_year: int, last_year: int, n_areas: int
) -> _History:
    ws, we = _window(first_year, last_year)
    n_posts = max(500, min(20000, children // 4))
    ep_parts, ch_parts = [], []
    have, cid0, efficiency = 0, 0, 0.3
    while have < children:
        batch = math.ceil((children - have) / efficiency * 1.1) + 50
        eps, chs = _simulate(rng, batch, ws, we, cid0, n_posts)
        ep_parts.append(eps)
        ch_parts.append(chs)
        found = len(np.unique(eps["cid"]))
        have += found
        cid0 += batch
        efficiency = max(0.02, found / batch)
    eps = {k: np.concatenate([p[k] for p in ep_parts]) for k in _EPISODE_KEYS}
    chs = {k: np.concatenate([p[k] for p in ch_parts]) for k in ch_parts[0]}
    kept = np.unique(eps["cid"])[:children]
    rows = np.isin(eps["cid"], kept)
    eps = {k: v[rows] for k, v in eps.items()}
    k = np.searchsorted(kept, eps.pop("cid"))
    area = np.arange(children) % n_areas
    order = np.lexsort((eps["decom"], k))  # child index order is the output order within an area
    eps = {key: v[order] for key, v in eps.items()}
    eps["k"] = k[order]
    return _History(
        eps,
        chs["dob"][kept],
        chs["b18"][kept],
        chs["uasc"][kept],
        chs["male"][kept],
        chs["home"][kept],
        area,
        n_posts,
    )


def _child_ids(rng: np.random.Generator, area: np.ndarray, n_areas: int) -> np.ndarray:
    """CHILD ids, unique within each area: digits, some zero-padded, a few alphanumeric; ascending in k."""
    ids = np.empty(len(area), dtype=object)
    for a in range(n_areas):
        members = np.flatnonzero(area == a)
        n = len(members)
        hi = max(10**6, 4 * n)
        width = len(str(hi - 1)) + 1
        values = np.sort(rng.choice(np.arange(1, hi), size=n, replace=False))
        style = rng.random(n)
        out = []
        for v, s in zip(values.tolist(), style.tolist(), strict=True):
            if s < 0.25:
                out.append(str(v).zfill(width))  # leading zeros, e.g. "0012345"
            elif s < 0.96:
                out.append(str(v))
            else:
                out.append("C" + str(v).zfill(width - 1))  # alphanumeric
        ids[members] = out
    return ids


def _postcodes(rng: np.random.Generator, n: int) -> list[str]:
    letters = np.array(list("ABCDEFGHJKLMNOPRSTUWYZ"))
    lt = letters[rng.integers(0, len(letters), (n, 4))]
    dg = rng.integers(0, 10, (n, 2))
    dg[:, 0] = np.maximum(dg[:, 0], 1)
    return [
        f"{a}{b}{c} {d}{e}{f}"
        for a, b, c, d, e, f in zip(lt[:, 0], lt[:, 1], dg[:, 0], dg[:, 1], lt[:, 2], lt[:, 3], strict=True)
    ]


def _take(dictionary: pa.Array, idx: np.ndarray, blank: np.ndarray | None = None) -> pa.Array:
    mask = idx < 0 if blank is None else (blank | (idx < 0))
    return pc.take(dictionary, pa.array(np.where(mask, 0, idx), mask=mask))


class _Writer:
    """Turns a ``_History`` into per-return Arrow tables (every value text; blank = null)."""

    def __init__(
        self, hist: _History, rng: np.random.Generator, areas: Sequence[str], first_year: int, last_year: int
    ):
        self.h = hist
        self.areas = tuple(areas)
        self.years = tuple(range(first_year, last_year + 1))
        n = len(hist.dob)
        self.ids = pa.array(_child_ids(rng, hist.area, len(areas)), pa.string())
        self.ethnic = _draw(rng, _ETHNIC_CUM[hist.uasc.astype(np.int64)])
        upn_letter = rng.integers(0, 26, n)
        upn_digits = rng.integers(0, 10**12, n, dtype=np.int64)
        unknown = rng.random(n) < 0.06
        upn = [
            f"UN{1 + d % 5}" if u else f"{chr(65 + letter)}{d:012d}"
            for letter, d, u in zip(upn_letter.tolist(), upn_digits.tolist(), unknown.tolist(), strict=True)
        ]
        self.upn = pa.array(upn, pa.string())
        self.sex_u = rng.random(n) < 0.003
        # A few girls aged 14+ have a child of their own (MOTHER = 1 from the birth, with MC_DOB).
        ws, we = _window(first_year, last_year)
        first = np.maximum(_add_years(hist.dob, 14), ws)
        last = np.minimum(hist.b18 - 1, we)
        self.mc_dob = np.where(
            ~hist.male & (first < last) & (rng.random(n) < 0.06),
            first + (rng.random(n) * np.maximum(1, last - first)).astype(np.int64),
            _NEVER,
        )
        self.mother_blank = rng.random(n) < 0.1
        eps = hist.episodes
        lo = int(min(hist.dob.min(), eps["decom"].min())) - 1
        self.date0 = lo
        self.dates = pa.array(_date_strings(lo, we + 1), pa.string())
        self.posts = pa.array(_postcodes(rng, hist.n_posts), pa.string())
        urns = np.unique(eps["urn"][eps["urn"] >= 0])
        self.urn_values = urns
        self.urns = pa.array([str(u) for u in urns.tolist()], pa.string())
        self.codes = {
            "place": pa.array(PLACE_OUT),
            "ls": pa.array(LS_CODES),
            "cin": pa.array(CIN_CODES),
            "rne": pa.array(RNE_CODES),
            "rec": pa.array(REC_CODES),
            "reason": pa.array(REASONS),
            "prov": pa.array(PROVIDERS),
            "ethnic": pa.array(ETHNIC_CODES),
            "sex": pa.array(["1", "2", "M", "F", "U"]),
            "mother": pa.array(["0", "1"]),
        }

    def _dates(self, days: np.ndarray, blank: np.ndarray | None = None) -> pa.Array:
        return _take(self.dates, days - self.date0, blank)

    def rows_for_year(self, year: int) -> np.ndarray:
        start, end = _window(year, year)
        e = self.h.episodes
        rows = np.flatnonzero((e["decom"] <= end) & (e["dec"] >= start))
        # Group the rows by area (stable: child order and DECOM are kept within an area).
        return rows[np.argsort(self.h.area[e["k"][rows]], kind="stable")]

    def episodes(self, year: int, rows: np.ndarray) -> pa.Table:
        _, end = _window(year, year)
        e = {key: v[rows] for key, v in self.h.episodes.items()}
        open_ = e["dec"] > end
        place = e["place"]
        if year >= Z_SPLIT_YEAR:
            place = np.where(place == _PI["Z1"], len(PLACES) - 1 + e["zsub"], place)
        urn = np.where(e["urn"] >= 0, np.searchsorted(self.urn_values, e["urn"]), -1)
        cols = {
            "CHILD": pc.take(self.ids, pa.array(e["k"])),
            "DECOM": self._dates(e["decom"]),
            "RNE": _take(self.codes["rne"], e["rne"]),
            "LS": _take(self.codes["ls"], e["ls"]),
            "CIN": _take(self.codes["cin"], e["cin"]),
            "PLACE": _take(self.codes["place"], place),
            "PLACE_PROVIDER": _take(self.codes["prov"], e["prov"]),
            "DEC": self._dates(np.where(open_, self.date0, e["dec"]), open_),
            "REC": _take(self.codes["rec"], e["rec"], open_),
            "REASON_PLACE_CHANGE": _take(self.codes["reason"], e["reason"], open_),
            "HOME_POST": _take(self.posts, self.h.home[e["k"]]),
            "PL_POST": _take(self.posts, e["post"]),
            "URN": _take(self.urns, urn),
        }
        return pa.table(cols)

    def _sex(self, year: int, kids: np.ndarray) -> pa.Array:
        male = self.h.male[kids]
        if year >= SEX_LETTERS_YEAR:
            code = np.where(self.sex_u[kids], 4, np.where(male, 2, 3))
        else:
            code = np.where(male, 0, 1)
        return _take(self.codes["sex"], code)

    def header(self, year: int, kids: np.ndarray) -> pa.Table:
        _, end = _window(year, year)
        mc = self.mc_dob[kids]
        is_mother = mc <= end
        mother = np.where(self.h.male[kids] | self.mother_blank[kids], -1, is_mother.astype(np.int64))
        return pa.table(
            {
                "CHILD": pc.take(self.ids, pa.array(kids)),
                "SEX": self._sex(year, kids),
                "DOB": self._dates(self.h.dob[kids]),
                "ETHNIC": _take(self.codes["ethnic"], self.ethnic[kids]),
                "UPN": pc.take(self.upn, pa.array(kids)),
                "MOTHER": _take(self.codes["mother"], mother),
                "MC_DOB": self._dates(np.where(is_mother, mc, self.date0), ~is_mother),
            }
        )

    def uasc(self, year: int, kids: np.ndarray) -> pa.Table:
        _, end = _window(year, year)
        kids = kids[self.h.uasc[kids]]
        b18 = self.h.b18[kids]
        ceased = b18 <= end
        return pa.table(
            {
                "CHILD": pc.take(self.ids, pa.array(kids)),
                "SEX": self._sex(year, kids),
                "DOB": self._dates(self.h.dob[kids]),
                "DUC": self._dates(np.where(ceased, b18, self.date0), ~ceased),
            }
        )


def _first_of_runs(values: np.ndarray) -> np.ndarray:
    if len(values) == 0:
        return values
    return values[np.r_[True, values[1:] != values[:-1]]]


# --------------------------------------------------------------------------------------------------
# Defects
# --------------------------------------------------------------------------------------------------


def _fmt_day(day: int, *, two_digit_year: bool = False) -> str:
    s = np.datetime_as_string(np.datetime64(int(day), "D"))
    return f"{s[8:10]}/{s[5:7]}/{s[2:4] if two_digit_year else s[0:4]}"


def _inject_defects(rng: np.random.Generator, writer: _Writer, returns: list[dict]) -> dict[str, int]:
    """Corrupt a few rows of the returns (``returns``: one dict per return, updated in place)."""
    counts = dict.fromkeys(DEFECT_KINDS, 0)
    e = writer.h.episodes
    n_child = max(1, round(CHILD_DEFECT_RATE * len(writer.h.dob)))
    n_row = max(1, round(ROW_DEFECT_RATE * sum(len(r["rows"]) for r in returns)))
    by_key = {(r["year"], r["area"]): i for i, r in enumerate(returns)}
    for r in returns:
        r["k"] = e["k"][r["rows"]]
        r["open"] = e["dec"][r["rows"]] > _window(r["year"], r["year"])[1]
        r["gone"] = set()  # children whose rows leave this return entirely
        r["no_header"] = set()  # children whose header (and UASC) row leaves this return
        r["edits"] = {}  # (row, column) -> new value
        r["extra"] = []  # (position, row values) of added rows

    # An open episode at 31 March Y whose child is then missing from return Y+1.
    cands = [
        (i, int(k))
        for i, r in enumerate(returns)
        if (r["year"] + 1, r["area"]) in by_key
        for k in np.unique(r["k"][r["open"]]).tolist()
    ]
    for j in np.sort(rng.choice(len(cands), size=min(n_child, len(cands)), replace=False)) if cands else []:
        i, k = cands[j]
        returns[by_key[(returns[i]["year"] + 1, returns[i]["area"])]]["gone"].add(k)
        counts["open_episode_child_missing_next_return"] += 1

    # A child with episodes but no header row in one return.
    cands = [(i, int(k)) for i, r in enumerate(returns) for k in r["kids"].tolist() if k not in r["gone"]]
    for j in np.sort(rng.choice(len(cands), size=min(n_child, len(cands)), replace=False)) if cands else []:
        i, k = cands[j]
        returns[i]["no_header"].add(k)
        counts["child_without_header"] += 1

    # Row-level defects, on rows of children untouched above; each row is used once.
    ret = np.concatenate([np.full(len(r["rows"]), i) for i, r in enumerate(returns)])
    row = np.concatenate([np.arange(len(r["rows"])) for r in returns])
    rows = np.concatenate([r["rows"] for r in returns])
    year = np.array([r["year"] for r in returns])[ret]
    closed = ~np.concatenate([r["open"] for r in returns])
    length = e["dec"][rows] - e["decom"][rows]
    temporary = np.isin(e["place"][rows], _TEMP)
    used = np.concatenate([np.isin(r["k"], list(r["gone"] | r["no_header"])) for r in returns])

    def pick(eligible: np.ndarray):
        idx = np.flatnonzero(eligible & ~used)
        idx = np.sort(rng.choice(idx, size=min(n_row, len(idx)), replace=False)) if len(idx) else idx
        used[idx] = True
        return [(int(ret[x]), int(row[x]), int(rows[x]), bool(closed[x])) for x in idx]

    def place_of(i: int, r_: int) -> str:
        return returns[i]["episodes"].column("PLACE")[r_].as_py()

    everything = np.ones(len(ret), dtype=bool)
    for n, (i, r_, x, has_end) in enumerate(pick(everything)):
        column = "DEC" if n % 2 == 0 and has_end else "DECOM"
        day = e["dec"][x] if column == "DEC" else e["decom"][x]
        returns[i]["edits"][(r_, column)] = _fmt_day(day, two_digit_year=True)
        counts["two_digit_year"] += 1
    for n, (i, r_, _, _) in enumerate(pick(everything)):
        returns[i]["edits"][(r_, "PLACE")] = ("U7", "K4", "P4", "X1")[n % 4]
        counts["unknown_place"] += 1
    # P2 on an open episode from 2023/24 (rule 217t); K3 before it existed.
    for i, r_, _, _ in pick(((year >= 2024) & ~closed) | (year < 2024)):
        returns[i]["edits"][(r_, "PLACE")] = "P2" if returns[i]["year"] >= 2024 else "K3"
        counts["place_invalid_for_year"] += 1
    for i, r_, x, _ in pick(closed):
        returns[i]["edits"][(r_, "DEC")] = _fmt_day(e["decom"][x] - int(rng.integers(1, 31)))
        counts["dec_before_decom"] += 1
    for i, r_, _, _ in pick(everything):
        returns[i]["edits"][(r_, "DECOM")] = None
        counts["missing_decom"] += 1
    for n, (i, r_, _, _) in enumerate(pick(everything)):
        value = place_of(i, r_)
        returns[i]["edits"][(r_, "PLACE")] = f" {value}" if n % 2 == 0 else f"{value} "
        counts["whitespace_padded_code"] += 1
    for i, r_, _, _ in pick(everything):
        returns[i]["extra"].append((r_ + 0.25, returns[i]["episodes"].slice(r_, 1).to_pylist()[0]))
        counts["duplicate_row"] += 1
    # A nested episode: starts after and ends before a closed episode of the same child.
    for i, r_, x, _ in pick(closed & ~temporary & (length >= 10)):
        values = returns[i]["episodes"].slice(r_, 1).to_pylist()[0]
        d0, d1 = int(e["decom"][x]), int(e["dec"][x])
        start = d0 + 1 + int(rng.integers(0, (d1 - d0) // 2))
        stop = min(d1 - 1, start + 1 + int(rng.integers(0, max(1, d1 - start - 2))))
        in_home = values["PLACE"] != "U6"
        values.update(
            DECOM=_fmt_day(start),
            DEC=_fmt_day(stop),
            RNE="P",
            REC="X1",
            REASON_PLACE_CHANGE="CARPL",
            PLACE="U6" if in_home else "K2",
            PLACE_PROVIDER="PR1" if in_home else "PR4",
            URN=None if in_home else str(int(rng.integers(100000, 1000000))),
        )
        returns[i]["extra"].append((r_ + 0.5, values))
        counts["overlapping_episode"] += 1

    for r in returns:
        table = r["episodes"]
        columns = {}
        for c in EPISODE_COLUMNS:
            edits = {row_: v for (row_, col), v in r["edits"].items() if col == c}
            if edits:
                values = table.column(c).to_numpy(zero_copy_only=False).copy()
                for row_, v in edits.items():
                    values[row_] = v
                columns[c] = pa.array(values, pa.string())
            else:
                columns[c] = table.column(c)
        table = pa.table(columns)
        order = np.arange(table.num_rows, dtype=float)
        keep = ~np.isin(r["k"], list(r["gone"]))
        if r["extra"]:
            extra = pa.Table.from_pylist([v for _, v in r["extra"]], schema=table.schema)
            table = pa.concat_tables([table, extra])
            order = np.concatenate([order, [pos for pos, _ in r["extra"]]])
            keep = np.concatenate([keep, np.ones(len(r["extra"]), dtype=bool)])
        index = np.argsort(order, kind="stable")
        r["episodes"] = table.take(index[keep[index]])
        drop = r["gone"] | r["no_header"]
        r["header"] = r["header"].filter(pa.array(~np.isin(r["kids"], list(drop))))
        uasc_kids = r["kids"][writer.h.uasc[r["kids"]]]
        r["uasc"] = r["uasc"].filter(pa.array(~np.isin(uasc_kids, list(drop))))
    return counts


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------

_FIXED_TIME = datetime(2000, 1, 1)


def _write_csv(table: pa.Table, path: Path) -> None:
    # Every value is a plain code, date, id or postcode (no commas or quotes), so nothing needs quoting.
    buffer = io.BytesIO()
    buffer.write((",".join(table.column_names) + "\n").encode())
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    path.write_bytes(buffer.getvalue())


def _cells_xml(table: pa.Table, first_row: int) -> bytes:
    """The ``<row>`` elements of ``table``, one inline-string cell per non-blank value, as openpyxl's
    write-only writer emits them (it stores every string as an inline string). Built with Arrow
    kernels: openpyxl's pure-Python serialiser (no lxml here) manages about 30,000 cells a second."""
    n = table.num_rows
    if n == 0:
        return b""
    numbers = pc.cast(pa.array(np.arange(first_row, first_row + n)), pa.string())
    cells = []
    for j, name in enumerate(table.column_names):
        letter = chr(ord("A") + j)
        values = table.column(name).combine_chunks().cast(pa.string())
        for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
            values = pc.replace_substring(values, raw, escaped)
        padded = pc.match_substring_regex(values, r"^\s|\s$")
        opening = pc.if_else(padded, '<t xml:space="preserve">', "<t>")
        cell = pc.binary_join_element_wise(
            f'<c r="{letter}', numbers, '" t="inlineStr"><is>', opening, values, "</t></is></c>", ""
        )
        cells.append(pc.fill_null(cell, ""))
    rows = pc.binary_join_element_wise('<row r="', numbers, '">', *cells, "</row>", "")
    rows = rows.cast(pa.large_string())
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[rows.offset : rows.offset + n + 1]
    return rows.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]


def _write_xlsx(tables: dict[str, pa.Table], path: Path) -> None:
    """One workbook, sheets Header, Episodes and UASC, every cell text (blank = no cell)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    wb.properties.created = _FIXED_TIME
    wb.properties.creator = "icare synthetic SSDA903 generator"
    rows = {}
    for number, (key, sheet) in enumerate(SHEETS.items(), start=1):
        ws = wb.create_sheet(sheet)
        ws.append(list(tables[key].column_names))  # the header row, by openpyxl
        rows[f"xl/worksheets/sheet{number}.xml"] = _cells_xml(tables[key], first_row=2)
    buffer = io.BytesIO()
    wb.save(buffer)
    path.write_bytes(_finish_zip(buffer.getvalue(), rows))


def _finish_zip(data: bytes, rows: dict[str, bytes]) -> bytes:
    """Add the data rows to the sheets, and fix the timestamps so identical input gives identical bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename in rows:
                head, tail = content.split(b"</sheetData>")
                if b"<row " not in head:
                    raise RuntimeError(f"unexpected worksheet layout in {item.filename}")
                content = head + rows[item.filename] + b"</sheetData>" + tail
            if item.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                    rb"\g<1>2000-01-01T00:00:00Z\g<2>",
                    content,
                )
            info = zipfile.ZipInfo(item.filename, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            dst.writestr(info, content, compresslevel=1)
    return out.getvalue()


def _build(children: int, first_year: int, last_year: int, areas: Sequence[str], seed: int):
    if children < 1:
        raise ValueError("children must be at least 1")
    if first_year > last_year:
        raise ValueError("first_year must not be after last_year")
    if first_year < 2000 or last_year > 2100:
        raise ValueError("years must lie between 2000 and 2100")
    if not areas or len(set(areas)) != len(areas):
        raise ValueError("areas must be distinct and non-empty")
    rng = np.random.default_rng(seed)
    hist = _simulate_children(rng, children, first_year, last_year, len(areas))
    writer = _Writer(hist, np.random.default_rng([seed, 1]), areas, first_year, last_year)
    return hist, writer


def generate_returns(
    out_dir: str | Path,
    *,
    children: int = 300,
    first_year: int = 2022,
    last_year: int = 2025,
    areas: Sequence[str] = ("201", "202"),
    seed: int = 903,
    fmt: Literal["csv", "xlsx"] = "csv",
    defects: bool = False,
) -> GeneratedReturns:
    """Simulate ``children`` children and write their SSDA903 returns for the collection years given."""
    if fmt not in ("csv", "xlsx"):
        raise ValueError("fmt must be 'csv' or 'xlsx'")
    areas = tuple(str(a) for a in areas)
    root = Path(out_dir)
    hist, writer = _build(children, first_year, last_year, areas, seed)

    returns: list[dict] = []
    for year in writer.years:
        rows = writer.rows_for_year(year)
        area_of_row = hist.area[hist.episodes["k"][rows]]
        bounds = np.searchsorted(area_of_row, np.arange(len(areas) + 1))
        for a, area in enumerate(areas):
            r = rows[bounds[a] : bounds[a + 1]]
            kids = _first_of_runs(hist.episodes["k"][r])
            returns.append(
                {
                    "year": year,
                    "area": area,
                    "rows": r,
                    "kids": kids,
                    "episodes": writer.episodes(year, r),
                    "header": writer.header(year, kids),
                    "uasc": writer.uasc(year, kids),
                }
            )

    counts = dict.fromkeys(DEFECT_KINDS, 0)
    if defects:
        counts = _inject_defects(np.random.default_rng([seed, 2]), writer, returns)

    episode_rows = header_rows = uasc_rows = 0
    for r in returns:
        folder = root / str(r["year"]) / r["area"]
        folder.mkdir(parents=True, exist_ok=True)
        tables = {"header": r["header"], "episodes": r["episodes"], "uasc": r["uasc"]}
        workbook = folder / f"ssda903_{r['year']}.xlsx"
        if fmt == "csv":
            workbook.unlink(missing_ok=True)  # never leave a stale copy of the other format behind
            for key, table in tables.items():
                _write_csv(table, folder / f"{key}.csv")
        else:
            for key in tables:
                (folder / f"{key}.csv").unlink(missing_ok=True)
            _write_xlsx(tables, workbook)
        episode_rows += r["episodes"].num_rows
        header_rows += r["header"].num_rows
        uasc_rows += r["uasc"].num_rows
    return GeneratedReturns(root, writer.years, areas, children, episode_rows, header_rows, uasc_rows, counts)


@lru_cache(maxsize=32)
def _rows_per_child(first_year: int, last_year: int) -> float:
    pilot = 20000
    hist = _simulate_children(np.random.default_rng(903), pilot, first_year, last_year, 1)
    e = hist.episodes
    total = 0
    for year in range(first_year, last_year + 1):
        start, end = _window(year, year)
        total += int(np.count_nonzero((e["decom"] <= end) & (e["dec"] >= start)))
    return total / pilot


def children_for_episode_rows(target_rows: int, first_year: int, last_year: int) -> int:
    """Number of children that gives about ``target_rows`` episode rows over the years (from a pilot run)."""
    return max(1, round(target_rows / _rows_per_child(first_year, last_year)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m icare.sources.ssda903.synthetic",
        description="Write deterministic synthetic SSDA903 returns (<OUT>/<year>/<area>/...).",
    )
    parser.add_argument("out", type=Path, help="output folder")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--children", type=int, default=300, help="number of children (default 300)")
    size.add_argument(
        "--episodes", type=int, help="size the number of children for about this many episode rows"
    )
    parser.add_argument(
        "--first-year", type=int, default=2022, help="first collection year (ending 31 March)"
    )
    parser.add_argument("--last-year", type=int, default=2025, help="last collection year")
    parser.add_argument(
        "--areas", default="201,202", help="comma-separated 3-digit LA codes (default 201,202)"
    )
    parser.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    parser.add_argument("--defects", action="store_true", help="inject the documented defects")
    parser.add_argument("--seed", type=int, default=903)
    args = parser.parse_args(argv)
    children = args.children
    if args.episodes is not None:
        children = children_for_episode_rows(args.episodes, args.first_year, args.last_year)
    result = generate_returns(
        args.out,
        children=children,
        first_year=args.first_year,
        last_year=args.last_year,
        areas=[a.strip() for a in args.areas.split(",") if a.strip()],
        seed=args.seed,
        fmt=args.format,
        defects=args.defects,
    )
    print(
        f"wrote {result.episode_rows} episode rows, {result.header_rows} header rows and "
        f"{result.uasc_rows} UASC rows for {result.children} children, "
        f"years {result.years[0]}-{result.years[-1]}, areas {', '.join(result.areas)} under {result.root}"
    )
    if args.defects:
        print("defects: " + ", ".join(f"{k}={v}" for k, v in result.defects.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
