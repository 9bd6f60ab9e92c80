"""Which national sources exist: every ``sources/<name>/source.yaml`` names its reader class."""

from __future__ import annotations

import importlib

import yaml

from icare.resources import data_root


class UnknownSourceError(KeyError):
    """A source name with no reader; a KeyError (a missing key), shown as its plain message."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def available_sources() -> dict[str, str]:
    """Source id -> ``module:Class`` of its reader, from the source folders' specs.

    A folder whose spec says ``status: data-only`` (e.g. ``afcars``) has no reader yet and is left out.
    """
    found = {}
    for spec_path in sorted((data_root() / "sources").glob("*/source.yaml")):
        spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        if spec.get("status") == "data-only":  # files and concordance shipped, no reader yet
            continue
        found[spec["id"]] = spec["reader"]
    return found


def reader_class(name: str) -> type:
    sources = available_sources()
    if name not in sources:
        known = ", ".join(sorted(sources)) or "none"
        raise UnknownSourceError(f"unknown source {name!r} (known sources: {known})")
    module_name, _, class_name = sources[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
