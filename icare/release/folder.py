"""Writing the release folder's own files, in a fixed order, into the run's staging folder.

The order matters: files that describe other files (the data package, the checksums) are written
after the files they describe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from icare.classification import Classification
from icare.disclosure import DisclosureRules
from icare.release.sdmx import write_sdmx_files


@dataclass(frozen=True)
class ReleaseContext:
    """What a release file may say about the run that made it (the released tables included)."""

    folder: Path  # the release folder being written (inside the run's staging folder)
    run_id: str
    started_at: datetime
    tables: Mapping[str, pa.Table]  # the released tables, by name (release/<name>.parquet)
    classification: Classification
    disclosure: DisclosureRules
    summary: Mapping[str, object]  # the run summary (run.json)
    previous: Path | None = None  # the release folder this run replaces, if there is one
    extra: Mapping[str, object] = field(default_factory=dict)


# Each writer adds its files to ``context.folder``. Files describing other files come last.
Writer = Callable[[ReleaseContext], None]
WRITERS: list[tuple[str, Writer]] = [
    ("sdmx", write_sdmx_files),  # release/sdmx/: TransMonEE SDMX-CSV and supplied.csv
]


def write_release_files(context: ReleaseContext) -> None:
    """Every writer of ``WRITERS`` in turn."""
    for _, writer in WRITERS:
        writer(context)
