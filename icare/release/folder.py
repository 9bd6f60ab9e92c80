"""Writing the release folder's own files, in a fixed order, into the run's staging folder.

The order matters: files that describe other files (the data package, the checksums) are written
after the files they describe.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from icare.classification import Classification
from icare.disclosure import DisclosureRules
from icare.release.card import write_card, write_citation
from icare.release.changelog import write_changelog
from icare.release.checksums import write_checksums
from icare.release.codelists import write_codelists
from icare.release.datapackage import write_datapackage
from icare.release.open_data import write_open_data
from icare.release.sdmx import write_sdmx_files
from icare.release.settings import ReleaseSettings, load_release_settings

if TYPE_CHECKING:
    from icare.statistics import StatisticsSettings


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
    # Title, licence, contact and citation (config/release.yaml or --release-config).
    settings: ReleaseSettings = field(default_factory=load_release_settings)
    statistics: StatisticsSettings | None = None  # the run's statistics settings (its age bands)
    concordance_versions: Mapping[str, str] = field(default_factory=dict)  # source -> concordance
    sample_data: bool = False  # every input is a source's bundled synthetic sample

    @property
    def released_on(self) -> date:
        """The run's date: every dated statement of the folder uses it, so a re-run of the same
        inputs on the same day writes the same files."""
        return self.started_at.date()

    @property
    def version(self) -> str:
        return self.settings.release_version(self.run_id, self.started_at)


# Each writer adds its files to ``context.folder``. Files describing other files come last: the data
# package describes every file before it, and the checksums cover every file, the data package too.
Writer = Callable[[ReleaseContext], None]
WRITERS: list[tuple[str, Writer]] = [
    ("code lists", write_codelists),
    ("dataset card", write_card),
    ("citation", write_citation),
    ("changelog", write_changelog),
    # Other formats of the same figures, before the data package that describes them.
    ("open-data CSVs (EES layout)", write_open_data),
    ("sdmx", write_sdmx_files),  # release/sdmx/: TransMonEE SDMX-CSV and supplied.csv
    ("data package", write_datapackage),
    ("checksums", write_checksums),
]


def write_release_files(context: ReleaseContext) -> None:
    """Every writer of ``WRITERS`` in turn."""
    for _, writer in WRITERS:
        writer(context)
