"""``release/SHA256SUMS``: the SHA-256 of every other file of the release folder, in the format
``sha256sum -c SHA256SUMS`` checks (run in the release folder)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from icare.release.folder import ReleaseContext

CHECKSUMS = "SHA256SUMS"
_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    """Hex digest of a file, read in chunks (a released table may be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def release_files(folder: Path, *, leave_out: tuple[str, ...] = (CHECKSUMS,)) -> list[Path]:
    """Every file below ``folder`` (sub-folders included), in path order, except ``leave_out``."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and path.relative_to(folder).as_posix() not in leave_out
    )


def write_checksums(context: ReleaseContext) -> None:
    """One ``<hex>  <path>`` line per file, paths relative to the release folder with ``/``."""
    lines = [
        f"{sha256_of(path)}  {path.relative_to(context.folder).as_posix()}\n"
        for path in release_files(context.folder)
    ]
    (context.folder / CHECKSUMS).write_text("".join(lines), encoding="utf-8")
