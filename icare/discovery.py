"""Find a source's files below an input folder and read the collection year and area from paths.

Symbolic links to folders are followed (returns are often gathered by linking each area's folder),
each real folder once, so a link to a folder above it cannot make the search go round for ever.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from icare import manifest
from icare.reading import CSV_SUFFIXES, WORKBOOK_SUFFIXES, UnreadableFileError, file_sha256
from icare.sources.base import InputFile, SourceInputError
from icare.sources.spec import SourceSpec

READABLE_SUFFIXES = CSV_SUFFIXES | WORKBOOK_SUFFIXES


def _is_candidate(path: Path) -> bool:
    name = path.name
    return (
        path.is_file()
        and path.suffix.lower() in READABLE_SUFFIXES
        and not name.startswith((".", "~$"))  # hidden files and Excel lock files
    )


def collection_year(relative: Path, spec: SourceSpec) -> int | None:
    """The year folder's year, else the year in the file name (``2023-24`` in a name means 2024).

    Where both are given they must agree (``icare.manifest.check_path_years``).
    """
    folder = folder_year(relative, spec)
    return folder if folder is not None else name_year(relative, spec)


def folder_year(relative: Path, spec: SourceSpec) -> int | None:
    for part in relative.parts[:-1]:
        match = spec.year_patterns["folder"].fullmatch(part)
        if match:
            return int(match.group(1))
    return None


def name_year(relative: Path, spec: SourceSpec) -> int | None:
    stem = relative.stem
    match = spec.year_patterns["file_span"].search(stem)
    if match:
        start, end = int(match.group(1)), int(match.group(2))
        if (start + 1) % 100 == end:
            return start + 1
    match = spec.year_patterns["file_year"].search(stem)
    return int(match.group(1)) if match else None


def area_code(relative: Path, spec: SourceSpec) -> str | None:
    for part in relative.parts[:-1]:
        match = spec.area_patterns["folder"].fullmatch(part)
        if match:
            return match.group(1)
    match = spec.area_patterns["file_token"].search(relative.stem)
    return match.group(1) if match else None


def discover(root: Path, spec: SourceSpec) -> list[InputFile]:
    """Every readable file below ``root`` (or ``root`` itself), sorted by path for repeatable runs."""
    root = Path(root)
    if not root.exists():
        raise SourceInputError(f"{spec.id}: input folder {root} does not exist")
    if root.is_file():
        base, paths = root.parent, [root]
    else:
        base, paths = root, sorted(p for p in _walk(root, spec) if _is_candidate(p))
    if not paths:
        raise SourceInputError(
            f"{spec.id}: no CSV or XLSX files found below {root} "
            f"(expected e.g. {root}/2024/episodes.csv or {root}/ssda903_2023-24.xlsx)"
        )
    files = []
    for path in paths:
        relative = path.relative_to(base)
        files.append(
            InputFile(
                source=spec.id,
                path=path,
                file=relative.as_posix(),
                collection_year=collection_year(relative, spec),
                area_code=area_code(relative, spec),
                sha256=_checksum(path),
                size_bytes=path.stat().st_size,
            )
        )
    manifest.check_path_years(files, spec)
    return files


def _checksum(path: Path) -> str:
    """The file's SHA-256, or empty when it cannot be read (reading it then quarantines it as
    ``unreadable_file``, with the reason)."""
    try:
        return file_sha256(path)
    except UnreadableFileError:
        return ""


def _walk(root: Path, spec: SourceSpec) -> Iterator[Path]:
    """Every file below ``root``, through linked folders too, each real folder visited once."""

    def refuse(error: OSError) -> None:
        raise SourceInputError(f"{spec.id}: cannot list the folder {error.filename}: {error.strerror}")

    seen: set[str] = set()
    for folder, subfolders, names in os.walk(root, onerror=refuse, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []  # a folder reached twice (a link to it, or to a folder above it)
            continue
        seen.add(real)
        subfolders.sort()
        yield from (Path(folder) / name for name in names)
