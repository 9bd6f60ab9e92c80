"""What the release folder says about itself: title, publisher, licence, contact and citation
(``config/release.yaml``, docs/release.md).

The figures do not depend on these settings, so they are not part of the run id; they change only
the words and the licence written beside the figures.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from icare.resources import config_dir, read_yaml_mapping

DEFAULT_RELEASE_SETTINGS = "release.yaml"
AUTO_VERSION = "auto"


class ReleaseSettingsError(ValueError):
    """The release settings file is malformed; the message names the file and key."""


class _Strict(BaseModel):
    # A misspelt key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Licence(_Strict):
    id: str  # SPDX identifier, e.g. OGL-UK-3.0
    name: str
    url: str
    attribution: str | None = None


class Contact(_Strict):
    name: str
    email: str | None = None
    url: str | None = None


class Citation(_Strict):
    authors: tuple[str, ...]
    url: str | None = None

    @field_validator("authors")
    @classmethod
    def _some_author(cls, authors: tuple[str, ...]) -> tuple[str, ...]:
        if not authors or not all(a.strip() for a in authors):
            raise ValueError("list at least one author, none of them empty")
        return authors


class ReleaseSettings(_Strict):
    title: str
    description: str
    publisher: str
    licence: Licence
    contact: Contact
    citation: Citation
    version: str = AUTO_VERSION
    keywords: tuple[str, ...] = ()
    path: Path | None = None

    def release_version(self, run_id: str, started_at: datetime) -> str:
        """``auto``: the run's date and id (``YYYY.MM.DD+<run id>``); otherwise the fixed version."""
        if self.version != AUTO_VERSION:
            return self.version
        return f"{started_at:%Y.%m.%d}+{run_id}"


def load_release_settings(path: str | Path | None = None) -> ReleaseSettings:
    """Read ``config/release.yaml`` (or ``path``); errors name the file, the key and the problem."""
    file = Path(path) if path is not None else config_dir() / DEFAULT_RELEASE_SETTINGS
    raw = read_yaml_mapping(file, ReleaseSettingsError, "the release settings", "a mapping of settings")
    if "path" in raw:
        raise ReleaseSettingsError(f"{file}: path: not a setting (the file's own name is recorded)")
    try:
        return ReleaseSettings(**raw, path=file)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ReleaseSettingsError(f"{file}: {problems}") from None
