"""Find a source's files below an input folder and read the collection year and area from paths."""

from __future__ import annotations

from pathlib import Path

from icare.reading import CSV_SUFFIXES, WORKBOOK_SUFFIXES, file_sha256
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
    """A year folder wins over a year in the file name; ``2023-24`` in a name means 2024."""
    for part in relative.parts[:-1]:
        match = spec.year_patterns["folder"].fullmatch(part)
        if match:
            return int(match.group(1))
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
        base, paths = root, sorted(p for p in root.rglob("*") if _is_candidate(p))
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
                sha256=file_sha256(path),
                size_bytes=path.stat().st_size,
            )
        )
    return files
