"""Locate the project's reviewed data files (classifications, source specs, concordances).

In a checkout (or an editable install) they live at the repository root, where reviewers see them.
A built wheel carries copies under ``icare/_data``. ``ICARE_DATA_DIR`` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_root() -> Path:
    """The folder holding ``classifications/``, ``config/`` and ``sources/``."""
    override = os.environ.get("ICARE_DATA_DIR")
    if override:
        return Path(override)
    checkout = _PACKAGE_DIR.parent
    if (checkout / "sources").is_dir() and (checkout / "classifications").is_dir():
        return checkout
    return _PACKAGE_DIR / "_data"


def classifications_dir() -> Path:
    return data_root() / "classifications"


def config_dir() -> Path:
    """Run settings that are reviewed like data (``statistics.yaml``)."""
    return data_root() / "config"


def source_dir(name: str) -> Path:
    """The data folder of one national source (reader spec, code lists, concordance, sample)."""
    return data_root() / "sources" / name


def read_yaml_mapping(path: Path, error: type[Exception], what: str, expected: str) -> dict:
    """A reviewed YAML file that must hold a mapping; any problem raises ``error`` naming the file.

    ``what`` names the file's content ("the statistics settings"), ``expected`` the mapping wanted
    ("a mapping of settings").
    """
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read {what} ({exc})") from exc
    if not isinstance(raw, dict):
        raise error(f"{path}: expected {expected}")
    return raw
