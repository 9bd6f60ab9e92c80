"""The kinds of damage done to values in returns: the raw defective form of the end dates (two-digit
years, open episodes with end reasons), codes in another case or padded, dates in other forms, ids
without their leading zeros, codes not valid in the year and unknown codes. Registered in ``KINDS``
(``damage_files``); ``damage.py`` has the kinds done to files and layouts and the command line.
"""

from __future__ import annotations

import random
from pathlib import Path

from icare.sources.ssda903.damage_files import (
    CODE_COLUMNS,
    DATE_COLUMNS,
    NBSP,
    TABLES,
    Change,
    damage_kind,
    pick_return,
    returns,
    rewrite_values,
    sample_rows,
)

# ---- The raw defective form (national-sources.md §8.2) -------------------------------------------


@damage_kind
def two_digit_year_end_dates(root: Path, rng: random.Random) -> list[Change]:
    """Every DEC written dd/mm/yy in the returns of two years (an export that shortened the year)."""
    years = sorted({r.year for r in returns(root)})
    chosen = sorted(rng.sample(years[1:-1] or years, min(2, len(years[1:-1] or years))))
    changes = []
    for ret in (r for r in returns(root) if r.year in chosen):
        table = ret.read("episodes")
        j = table.column("DEC")
        count = 0
        for row in table.rows:
            if row[j]:
                row[j] = row[j][:6] + row[j][8:]
                count += 1
        ret.write("episodes", table)
        changes.append(
            Change("two_digit_year_end_dates", ret.relative(ret.path("episodes")), "DEC dd/mm/yy", count)
        )
    return changes


@damage_kind
def open_episodes_with_end_reasons(root: Path, rng: random.Random) -> list[Change]:
    """A REC on a share of the open episodes (DEC blank) of every return: a reason typed in before
    the episode ended. The episode is still open; the REC must not end it."""
    changes = []
    for ret in returns(root):
        table = ret.read("episodes")
        dec, rec = table.column("DEC"), table.column("REC")
        rows = sample_rows(table, rng, 0.3, lambda row, dec=dec: not row[dec])
        for row in rows:
            row[rec] = rng.choice(("X1", "E4A", "E8", "E13"))
        ret.write("episodes", table)
        what = "REC on an open episode (DEC blank)"
        changes.append(
            Change("open_episodes_with_end_reasons", ret.relative(ret.path("episodes")), what, len(rows))
        )
    return changes


@damage_kind
def defective_form(root: Path, rng: random.Random) -> list[Change]:
    """Both of the above together: the raw form of the returns measured in national-sources.md §8.2."""
    return two_digit_year_end_dates(root, rng) + open_episodes_with_end_reasons(root, rng)


# ---- Values: case, spaces, dates, ids (national-sources.md §1.2, §8.2, §9) -----------------------


@damage_kind
def lower_case_codes(root: Path, rng: random.Random) -> list[Change]:
    """Every code of one return in lower case (e.g. ``u4``, ``c2``, ``e4a``)."""
    return rewrite_values(
        pick_return(root, rng), "lower_case_codes", CODE_COLUMNS, str.lower, "codes in lower case"
    )


@damage_kind
def padded_codes(root: Path, rng: random.Random) -> list[Change]:
    """Every code of one return followed by a space, two spaces or a non-breaking space (fixed-width
    fields, text pasted from a web page)."""

    def pad(value: str) -> str:
        return value + rng.choice((" ", "  ", NBSP))

    return rewrite_values(
        pick_return(root, rng), "padded_codes", CODE_COLUMNS, pad, "codes with trailing spaces"
    )


@damage_kind
def dates_with_midnight(root: Path, rng: random.Random) -> list[Change]:
    """Every date of one return followed by `` 00:00:00`` (a date-time column exported as text)."""

    def change(value: str) -> str:
        return value + " 00:00:00"

    return rewrite_values(
        pick_return(root, rng), "dates_with_midnight", DATE_COLUMNS, change, "dates with a time"
    )


@damage_kind
def iso_dates(root: Path, rng: random.Random) -> list[Change]:
    """Every date of one return written YYYY-MM-DD (exported from a database)."""

    def change(value: str) -> str:
        return f"{value[6:10]}-{value[3:5]}-{value[0:2]}"

    return rewrite_values(pick_return(root, rng), "iso_dates", DATE_COLUMNS, change, "dates YYYY-MM-DD")


@damage_kind
def dates_without_leading_zeros(root: Path, rng: random.Random) -> list[Change]:
    """Every date of one return written d/m/YYYY (Excel's short date in some locales)."""

    def change(value: str) -> str:
        return f"{int(value[0:2])}/{int(value[3:5])}/{value[6:10]}"

    return rewrite_values(
        pick_return(root, rng), "dates_without_leading_zeros", DATE_COLUMNS, change, "dates d/m/YYYY"
    )


@damage_kind
def ids_without_leading_zeros(root: Path, rng: random.Random) -> list[Change]:
    """CHILD without its leading zeros in every return of one year (the column was read as a number
    in a spreadsheet, national-sources.md §9), so ``0005811`` that year is ``5811``."""
    year = pick_return(root, rng).year

    def strip(value: str) -> str:
        return value.lstrip("0") or "0"

    columns = {t: ("CHILD",) for t in TABLES}
    changes = []
    for ret in (r for r in returns(root) if r.year == year):
        what = "CHILD without leading zeros"
        changes += rewrite_values(ret, "ids_without_leading_zeros", columns, strip, what)
    return changes


# ---- Codes not valid in the year, unknown codes, bad header values (national-sources.md §1.3-§1.11) -


@damage_kind
def rec_codes_before_they_existed(root: Path, rng: random.Random) -> list[Change]:
    """REC E45-E48 in the 2017/18 returns (collection year 2018), a year before the codes existed
    (national-sources.md, corrections §3.1): E43/E44 rewritten E45/E46, and two other exits E47/E48."""
    changes = []
    for ret in (r for r in returns(root) if r.year == 2018):
        table = ret.read("episodes")
        rec = table.column("REC")
        count = 0
        for row in table.rows:
            if row[rec] in ("E43", "E44"):
                row[rec] = {"E43": "E45", "E44": "E46"}[row[rec]]
                count += 1
        others = [row for row in table.rows if row[rec] not in ("", "X1", "E45", "E46")]
        for row, code in zip(rng.sample(others, min(2, len(others))), ("E47", "E48"), strict=False):
            row[rec] = code
            count += 1
        ret.write("episodes", table)
        changes.append(
            Change("rec_codes_before_they_existed", ret.relative(ret.path("episodes")), "REC E45-E48", count)
        )
    if not changes:
        raise ValueError(f"no return of collection year 2018 below {root}")
    return changes


@damage_kind
def p2_open_after_cutoff(root: Path, rng: random.Random) -> list[Change]:
    """PLACE P2 (independent living) on two open episodes of each return from 2023/24: P2 is not
    valid for an episode still open after 28 Oct 2023 (national-sources.md §1.3, corrections §3.3)."""
    changes = []
    for ret in (r for r in returns(root) if r.year >= 2024):
        table = ret.read("episodes")
        dec, place = table.column("DEC"), table.column("PLACE")
        candidates = [row for row in table.rows if not row[dec] and row[place] != "P2"]
        rows = rng.sample(candidates, min(2, len(candidates)))
        for row in rows:
            row[place] = "P2"
        ret.write("episodes", table)
        changes.append(
            Change(
                "p2_open_after_cutoff",
                ret.relative(ret.path("episodes")),
                "PLACE P2 on an open episode",
                len(rows),
            )
        )
    if not changes:
        raise ValueError(f"no return of collection year 2024 or later below {root}")
    return changes


@damage_kind
def unknown_provider_and_ethnic(root: Path, rng: random.Random) -> list[Change]:
    """PLACE_PROVIDER PR7 and ETHNIC ZZZZ (codes that do not exist) on a few rows of one return."""
    ret = pick_return(root, rng)
    episodes, header = ret.read("episodes"), ret.read("header")
    provider, ethnic = episodes.column("PLACE_PROVIDER"), header.column("ETHNIC")
    providers = sample_rows(episodes, rng, 0.05, lambda row: bool(row[provider]))
    ethnics = sample_rows(header, rng, 0.05, lambda row: True)
    for row in providers:
        row[provider] = "PR7"
    for row in ethnics:
        row[ethnic] = "ZZZZ"
    ret.write("episodes", episodes)
    ret.write("header", header)
    return [
        Change(
            "unknown_provider_and_ethnic",
            ret.relative(ret.path("episodes")),
            "PLACE_PROVIDER PR7",
            len(providers),
        ),
        Change("unknown_provider_and_ethnic", ret.relative(ret.path("header")), "ETHNIC ZZZZ", len(ethnics)),
    ]


@damage_kind
def bad_sex_and_dob(root: Path, rng: random.Random) -> list[Change]:
    """In one return's header, one child's SEX is 9 and another's DOB is 31/02 (no such day)."""
    ret = pick_return(root, rng)
    header = ret.read("header")
    sex, dob = header.column("SEX"), header.column("DOB")
    first, second = rng.sample(header.rows, 2)
    first[sex] = "9"
    second[dob] = "31/02/" + second[dob][6:10]
    ret.write("header", header)
    return [Change("bad_sex_and_dob", ret.relative(ret.path("header")), "SEX 9 and DOB 31/02", 2)]
