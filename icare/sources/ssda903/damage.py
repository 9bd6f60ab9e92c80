"""Damaged copies of clean synthetic SSDA903 returns: the corpus that issue 14 is judged by.

Each kind of damage (here: files and layouts; ``damage_values``: values) is one documented
function, seen in real returns (docs/damaged-returns.md says where each comes from). It takes a copy
of a clean corpus written by ``synthetic.generate_returns`` (CSV, without its own ``defects``),
changes chosen files in place and returns the ``Change`` records of what it did. Choices are drawn
from ``random.Random`` seeded by the seed and the kind's name, so the same clean corpus and seed give
the same damaged bytes. The clean copy is what ``tests/truth.py`` computes the true figures from; a
damaged copy must give the same figures, or stop with a message naming the file.

Command line: ``python -m icare.sources.ssda903.damage OUT [--kind NAME ...]`` (``--help``).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from icare.sources.ssda903 import damage_values  # noqa: F401  (registers the kinds done to values)
from icare.sources.ssda903.damage_files import (
    KINDS,
    NBSP,
    TABLES,
    Change,
    Return,
    copy_corpus,
    damage_kind,
    pick_return,
    sample_rows,
    write_workbook,
)

# ---- Encodings, separators and layouts (national-sources.md §1.2, §9) -----------------------------


def _rewrite_return(kind: str, ret: Return, what: str, **form) -> list[Change]:
    for table_name in TABLES:
        ret.write(table_name, ret.read(table_name), **form)
    return [Change(kind, ret.relative(ret.path(t)), what, 1) for t in TABLES]


@damage_kind
def utf16_with_bom(root: Path, rng: random.Random) -> list[Change]:
    """One return's CSV files in UTF-16 with a byte-order mark (Excel's "Unicode text")."""
    return _rewrite_return("utf16_with_bom", pick_return(root, rng), "UTF-16 with BOM", encoding="utf-16")


@damage_kind
def windows_1252(root: Path, rng: random.Random) -> list[Change]:
    """One return in Windows-1252, with a non-breaking space (byte A0, not valid UTF-8) after a few
    placement postcodes, as pasted from a web page."""
    ret = pick_return(root, rng)
    episodes = ret.read("episodes")
    j = episodes.column("PL_POST")
    rows = sample_rows(episodes, rng, 0.05, lambda row: bool(row[j]))
    for row in rows:
        row[j] += NBSP
    ret.write("episodes", episodes)
    changes = _rewrite_return("windows_1252", ret, "Windows-1252", encoding="cp1252")
    what = "PL_POST ends with a non-breaking space"
    return [*changes, Change("windows_1252", ret.relative(ret.path("episodes")), what, len(rows))]


@damage_kind
def semicolon_separated(root: Path, rng: random.Random) -> list[Change]:
    """One return's CSV files separated by ``;`` (Excel's CSV where the decimal mark is a comma)."""
    return _rewrite_return("semicolon_separated", pick_return(root, rng), "';' separators", delimiter=";")


@damage_kind
def tab_separated(root: Path, rng: random.Random) -> list[Change]:
    """One return's ``.csv`` files separated by tabs (a tab-delimited export named .csv)."""
    return _rewrite_return("tab_separated", pick_return(root, rng), "tab separators", delimiter="\t")


@damage_kind
def title_and_blank_lines(root: Path, rng: random.Random) -> list[Change]:
    """A title row, an empty row of separators and a blank line above the header of each file."""
    ret = pick_return(root, rng)
    for table_name in TABLES:
        table = ret.read(table_name)
        title = f"SSDA903 {table_name} {ret.year - 1}/{ret.year % 100:02d} - local authority {ret.area}"
        ret.write(table_name, table, preamble=(title, "," * (len(table.columns) - 1), ""))
    return [
        Change("title_and_blank_lines", ret.relative(ret.path(t)), "3 lines above the header", 1)
        for t in TABLES
    ]


@damage_kind
def xlsx_merged_title(root: Path, rng: random.Random) -> list[Change]:
    """One return as a workbook whose sheets have a title merged across row 1 and a blank row 2."""
    ret = pick_return(root, rng)
    path = write_workbook(ret, title=True)
    return [
        Change("xlsx_merged_title", ret.relative(path), "merged title cell and blank row above the header", 3)
    ]


@damage_kind
def xlsx_hidden_draft_sheet(root: Path, rng: random.Random) -> list[Change]:
    """One return as a workbook with a hidden sheet "Episodes (draft)": a stale copy of the episodes
    (the ends of the closed ones not yet entered, the last tenth of the rows not yet typed)."""
    ret = pick_return(root, rng)
    draft = ret.read("episodes")
    dec, rec = draft.column("DEC"), draft.column("REC")
    draft.rows = [
        [*row[:dec], "", "", *row[rec + 1 :]] for row in draft.rows[: max(1, len(draft.rows) * 9 // 10)]
    ]
    path = write_workbook(ret, draft=draft)
    return [
        Change("xlsx_hidden_draft_sheet", ret.relative(path), "hidden stale episodes sheet", len(draft.rows))
    ]


@damage_kind
def xlsx_truncated(root: Path, rng: random.Random) -> list[Change]:
    """One return as a workbook cut off at 60% of its bytes (an interrupted copy or upload)."""
    ret = pick_return(root, rng)
    path = write_workbook(ret)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    return [Change("xlsx_truncated", ret.relative(path), "workbook truncated to 60% of its bytes", 1)]


@damage_kind
def xlsx_serial_dates(root: Path, rng: random.Random) -> list[Change]:
    """One return as a workbook whose DECOM and DEC are Excel serial numbers in General format."""
    ret = pick_return(root, rng)
    path = write_workbook(ret, serial_dates=True)
    return [Change("xlsx_serial_dates", ret.relative(path), "DECOM and DEC as serial numbers", 1)]


@damage_kind
def empty_file(root: Path, rng: random.Random) -> list[Change]:
    """One return's episodes file empty (0 bytes): an export that failed."""
    ret = pick_return(root, rng)
    ret.path("episodes").write_bytes(b"")
    return [Change("empty_file", ret.relative(ret.path("episodes")), "0 bytes", 1)]


@damage_kind
def header_only_file(root: Path, rng: random.Random) -> list[Change]:
    """One return's episodes file with its header line and no rows, while children were in care."""
    ret = pick_return(root, rng)
    table = ret.read("episodes")
    rows = len(table.rows)
    table.rows = []
    ret.write("episodes", table)
    return [Change("header_only_file", ret.relative(ret.path("episodes")), "every row removed", rows)]


@damage_kind
def missing_required_column(root: Path, rng: random.Random) -> list[Change]:
    """One return's episodes without the DEC column: read blindly, every episode would look open."""
    ret = pick_return(root, rng)
    table = ret.read("episodes")
    table.drop("DEC")
    ret.write("episodes", table)
    return [Change("missing_required_column", ret.relative(ret.path("episodes")), "column DEC removed", 1)]


@damage_kind
def postcodes_absent(root: Path, rng: random.Random) -> list[Change]:
    """One return's episodes without HOME_POST and PL_POST (left out for data protection)."""
    ret = pick_return(root, rng)
    table = ret.read("episodes")
    table.drop("HOME_POST")
    table.drop("PL_POST")
    ret.write("episodes", table)
    what = "columns HOME_POST and PL_POST removed"
    return [Change("postcodes_absent", ret.relative(ret.path("episodes")), what, 2)]


# ---- Files and folders (national-sources.md §8.1, §9) ---------------------------------------------


@damage_kind
def file_named_for_another_year(root: Path, rng: random.Random) -> list[Change]:
    """One return's episodes file named for two years earlier than its year folder."""
    ret = pick_return(root, rng)
    new = ret.folder / f"ssda903_episodes_{ret.year - 3}-{(ret.year - 2) % 100:02d}.csv"
    ret.path("episodes").rename(new)
    return [
        Change(
            "file_named_for_another_year",
            ret.relative(new),
            f"named for {ret.year - 2} in folder {ret.year}",
            1,
        )
    ]


@damage_kind
def symlinked_year_folder(root: Path, rng: random.Random) -> list[Change]:
    """One year folder is a symbolic link to a folder outside the corpus (a shared drive's archive)."""
    year = pick_return(root, rng).year
    store = root.parent / f"{root.name}-store"
    store.mkdir(exist_ok=True)
    target = store / str(year)
    if target.exists():
        shutil.rmtree(target)
    shutil.move(root / str(year), target)
    (root / str(year)).symlink_to(Path("..") / store.name / str(year), target_is_directory=True)
    return [Change("symlinked_year_folder", str(year), f"symbolic link to ../{store.name}/{year}", 1)]


@damage_kind
def duplicated_column_header(root: Path, rng: random.Random) -> list[Change]:
    """One return's episodes with the PLACE column twice (the second copy identical)."""
    ret = pick_return(root, rng)
    table = ret.read("episodes")
    place = table.column("PLACE")
    table.columns.append("PLACE")
    for row in table.rows:
        row.append(row[place])
    ret.write("episodes", table)
    return [Change("duplicated_column_header", ret.relative(ret.path("episodes")), "column PLACE twice", 1)]


@damage_kind
def duplicate_file_copies(root: Path, rng: random.Random) -> list[Change]:
    """Identical copies ``header - Copy.csv`` and ``episodes - Copy.csv`` beside one return's files."""
    ret = pick_return(root, rng)
    changes = []
    for table_name in ("header", "episodes"):
        copy = ret.folder / f"{table_name} - Copy.csv"
        shutil.copyfile(ret.path(table_name), copy)
        changes.append(
            Change("duplicate_file_copies", ret.relative(copy), f"identical copy of {table_name}.csv", 1)
        )
    return changes


# ---- Making a damaged corpus ---------------------------------------------------------------------


def damage_corpus(clean: Path, out: Path, kind: str, *, seed: int = 14) -> list[Change]:
    """Copy the clean corpus to ``out`` and apply one kind of damage; the changes made."""
    if kind not in KINDS:
        raise ValueError(f"unknown damage kind {kind!r}; known: {', '.join(KINDS)}")
    copy_corpus(Path(clean), Path(out))
    return KINDS[kind](Path(out), random.Random(f"{seed}:{kind}"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m icare.sources.ssda903.damage",
        description="Write damaged copies of clean synthetic SSDA903 returns: OUT/clean, OUT/<kind>/ for "
        "each kind, and OUT/damage.json listing every change.",
    )
    parser.add_argument("out", type=Path, nargs="?", help="output folder")
    parser.add_argument("--clean", type=Path, help="clean returns to damage (default: generate OUT/clean)")
    parser.add_argument(
        "--kind",
        action="append",
        choices=list(KINDS),
        metavar="NAME",
        help="a kind of damage (repeatable; default all; see --list)",
    )
    parser.add_argument("--children", type=int, default=400, help="children to generate (default 400)")
    parser.add_argument("--first-year", type=int, default=2017)
    parser.add_argument("--last-year", type=int, default=2025)
    parser.add_argument("--areas", default="201,202")
    parser.add_argument("--seed", type=int, default=14, help="seed of the generator and of the damage")
    parser.add_argument("--list", action="store_true", help="list the kinds with their descriptions and stop")
    args = parser.parse_args(argv)
    if args.list:
        for name, function in KINDS.items():
            print(f"{name}: {' '.join((function.__doc__ or '').split())}")
        return 0
    if args.out is None:
        parser.error("the output folder is required")
    clean = args.clean
    if clean is None:
        from icare.sources.ssda903.synthetic import generate_returns

        clean = args.out / "clean"
        areas = [a.strip() for a in args.areas.split(",") if a.strip()]
        generate_returns(
            clean,
            children=args.children,
            first_year=args.first_year,
            last_year=args.last_year,
            areas=areas,
            seed=args.seed,
        )
    changes = []
    for kind in args.kind or list(KINDS):
        changes += damage_corpus(clean, args.out / kind, kind, seed=args.seed)
    (args.out / "damage.json").write_text(json.dumps([asdict(c) for c in changes], indent=1) + "\n")
    print(f"{len(changes)} changes in {len(args.kind or KINDS)} damaged copies of {clean} under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
