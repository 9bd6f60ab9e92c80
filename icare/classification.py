"""Load the alternative-care classification (codes, hierarchy, dimensions) from a versioned data file.

The official ICare code list is not available (``shared/reference/icare.md`` §1), so the project's
provisional ``AC.*`` tree lives in ``classifications/icare-ac-provisional.yaml``. Nothing here knows
any code: a new version of that file, or an official list plus a ``from_code,to_code`` crosswalk,
is loaded without code changes. Every output records :attr:`Classification.version_id` so that a
figure can always be traced to the classification that produced it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from icare import resources

DEFAULT_CLASSIFICATION = "icare-ac-provisional.yaml"

_REQUIRED_TOP = (
    "id",
    "version",
    "status",
    "categories",
    "dimensions",
    "exit_destinations",
    "new_episode_types",
)
_REQUIRED_CATEGORY = (
    "code",
    "level",
    "parent",
    "label",
    "definition",
    "basis",
    "in_alternative_care",
    "boundary",
)
_REQUIRED_VALUE = ("code", "label", "definition")
_CROSSWALK_COLUMNS = ("from_code", "to_code")


class ClassificationError(ValueError):
    """A classification or crosswalk file breaks a structural rule; the message names file, code and rule."""


@dataclass(frozen=True)
class Category:
    """One node of the care-type tree."""

    code: str
    label: str
    level: int
    parent: str | None
    definition: str
    basis: str
    in_alternative_care: bool
    boundary: bool


@dataclass(frozen=True)
class CodedValue:
    """One value of a flat code list (a dimension, exit destination or new-episode type)."""

    code: str
    label: str
    definition: str


@dataclass(frozen=True)
class Dimension:
    """A flat code list kept outside the tree so that national detail survives harmonisation."""

    name: str
    label: str
    description: str
    values: tuple[CodedValue, ...]

    def codes(self) -> frozenset[str]:
        return frozenset(v.code for v in self.values)

    def get(self, code: str) -> CodedValue:
        for value in self.values:
            if value.code == code:
                return value
        raise KeyError(f"{code!r} is not a value of dimension {self.name!r}")


class Classification:
    """A validated, immutable classification; build it with :func:`load_classification`."""

    def __init__(
        self,
        *,
        id: str,
        version: str,
        status: str,
        path: Path,
        title: str,
        description: str,
        level_names: Mapping[int, str],
        categories: Iterable[Category],
        dimensions: Mapping[str, Dimension],
        exit_destinations: Dimension,
        new_episode_types: Dimension,
        crosswalk: Mapping[str, str] | None = None,
        crosswalk_path: Path | None = None,
    ) -> None:
        self.id = id
        self.version = version
        self.status = status
        self.path = path
        self.title = title
        self.description = description
        self.level_names: dict[int, str] = dict(level_names)
        self._categories: dict[str, Category] = {c.code: c for c in categories}
        self.dimensions: dict[str, Dimension] = dict(dimensions)
        self.exit_destinations = exit_destinations
        self.new_episode_types = new_episode_types
        self.crosswalk: dict[str, str] | None = dict(crosswalk) if crosswalk is not None else None
        self.crosswalk_path = crosswalk_path

        self._children: dict[str | None, list[str]] = {}
        for cat in self._categories.values():
            self._children.setdefault(cat.parent, []).append(cat.code)
        for kids in self._children.values():
            kids.sort()
        self._lineage: dict[str, tuple[str, ...]] = {}
        for code in self._categories:
            chain = [code]
            while (parent := self._categories[chain[-1]].parent) is not None:
                chain.append(parent)
            self._lineage[code] = tuple(reversed(chain))
        self.max_level: int = max((c.level for c in self._categories.values()), default=0)

    # -- identity ---------------------------------------------------------------------------------

    @property
    def version_id(self) -> str:
        """Identifier recorded with every output, so figures can be traced to the exact classification."""
        base = f"{self.id}@{self.version}"
        if self.crosswalk_path is not None:
            return f"{base}+crosswalk:{self.crosswalk_path.stem}"
        return base

    def __repr__(self) -> str:
        return f"Classification({self.version_id!r}, {len(self._categories)} codes, path={str(self.path)!r})"

    def __len__(self) -> int:
        return len(self._categories)

    # -- lookups ----------------------------------------------------------------------------------

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._categories

    def get(self, code: str) -> Category:
        try:
            return self._categories[code]
        except (KeyError, TypeError):
            raise KeyError(f"{code!r} is not a code of classification {self.version_id}") from None

    def parent(self, code: str) -> str | None:
        return self.get(code).parent

    def ancestors(self, code: str) -> list[str]:
        """Root first, excluding ``code`` itself."""
        self.get(code)
        return list(self._lineage[code][:-1])

    def lineage(self, code: str) -> list[str]:
        """Root first, including ``code``."""
        self.get(code)
        return list(self._lineage[code])

    def roll_up(self, code: str, level: int) -> str:
        """The ancestor of ``code`` at ``level``; ``code`` itself when it is not deeper than ``level``.

        Used to publish figures at a chosen level of the hierarchy.
        """
        if isinstance(level, bool) or not isinstance(level, int) or level < 1:
            raise ValueError(f"level must be an integer >= 1, got {level!r}")
        lineage = self.lineage(code)
        return lineage[min(level, len(lineage)) - 1]

    def children(self, code: str | None = None) -> list[str]:
        """Direct children sorted by code; ``None`` gives the level-1 codes."""
        if code is not None:
            self.get(code)
        return list(self._children.get(code, []))

    def codes(self, level: int | None = None) -> list[str]:
        """All codes (or those of one level), sorted by code."""
        return sorted(c.code for c in self._categories.values() if level is None or c.level == level)

    # -- crosswalk --------------------------------------------------------------------------------

    def translate(self, code: str) -> str:
        """Map a provisional ``AC.*`` code into this classification (identity when no crosswalk).

        Concordances target ``AC.*`` codes; translating at the end is what lets an official list be
        dropped in without touching them. Unknown codes raise rather than pass through silently.
        """
        if self.crosswalk is None:
            self.get(code)
            return code
        try:
            return self.crosswalk[code]
        except (KeyError, TypeError):
            raise KeyError(
                f"{code!r} has no entry in crosswalk {self.crosswalk_path} used by {self.version_id}"
            ) from None

    def translate_series(self, codes: pd.Series) -> pd.Series:
        """Vectorised :meth:`translate`; nulls stay null."""
        uniques = codes.dropna().unique()
        mapping = {code: self.translate(code) for code in uniques}
        return codes.map(mapping).astype("str")

    # -- tables -----------------------------------------------------------------------------------

    def level_columns(self, codes: pd.Series, prefix: str = "icare_level") -> pd.DataFrame:
        """Ancestor of each code at every level (``{prefix}1`` .. ``{prefix}{max_level}``).

        Maps over the unique values only, so it is cheap on millions of episodes. Nulls stay null,
        as do levels deeper than the code. Codes not in the classification raise ``KeyError``.
        """
        positions, uniques = pd.factorize(codes, use_na_sentinel=True)
        unknown = sorted({str(code) for code in uniques if code not in self})
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise KeyError(f"codes not in classification {self.version_id}: {shown}{more}")
        columns: dict[str, pd.Series] = {}
        for level in range(1, self.max_level + 1):
            ancestors = [
                self._lineage[code][level - 1] if len(self._lineage[code]) >= level else None
                for code in uniques
            ]
            # One entry per distinct code, then one gather by position (a null code stays null).
            at_level = pd.array([*ancestors, None], dtype="str")
            columns[f"{prefix}{level}"] = pd.Series(at_level.take(positions), index=codes.index)
        return pd.DataFrame(columns, index=codes.index)

    def to_frame(self) -> pd.DataFrame:
        """One row per category, with ancestor columns, for publishing the classification beside the data."""
        cats = [self._categories[code] for code in self.codes()]
        frame = pd.DataFrame(
            {
                "classification_version": self.version_id,
                "code": [c.code for c in cats],
                "level": pd.array([c.level for c in cats], dtype="int64"),
                "parent": pd.Series([c.parent for c in cats], dtype="str"),
                "label": [c.label for c in cats],
                "definition": [c.definition for c in cats],
                "basis": [c.basis for c in cats],
                "in_alternative_care": pd.array([c.in_alternative_care for c in cats], dtype="bool"),
                "boundary": pd.array([c.boundary for c in cats], dtype="bool"),
            }
        )
        levels = self.level_columns(frame["code"], prefix="level")
        return pd.concat([frame, levels], axis=1)

    def dimensions_frame(self) -> pd.DataFrame:
        """All flat code lists in long form (including ``exit_destination`` and ``new_episode_type``)."""
        dims = [*self.dimensions.values(), self.exit_destinations, self.new_episode_types]
        rows = [
            {
                "classification_version": self.version_id,
                "dimension": dim.name,
                "code": value.code,
                "label": value.label,
                "definition": value.definition,
            }
            for dim in dims
            for value in dim.values
        ]
        columns = ["classification_version", "dimension", "code", "label", "definition"]
        return pd.DataFrame(rows, columns=columns)


# -- loading --------------------------------------------------------------------------------------


def load_classification(
    path: str | Path | None = None, crosswalk: str | Path | None = None
) -> Classification:
    """Read and validate a classification file, optionally with a crosswalk from ``AC.*`` codes.

    ``path`` defaults to the shipped provisional classification. ``crosswalk`` overrides a
    ``crosswalk:`` entry in the YAML (which is resolved relative to the YAML file).
    """
    file = Path(path) if path is not None else resources.classifications_dir() / DEFAULT_CLASSIFICATION
    data = _read_yaml(file)
    for key in _REQUIRED_TOP:
        if key not in data:
            raise ClassificationError(f"{file}: required top-level key {key!r} is missing")
    for key in ("id", "version", "status"):
        _require_str(file, data[key], f"top-level key {key!r}", allow_empty=False)

    categories = _parse_categories(file, data["categories"])
    level_names = _parse_levels(file, data.get("levels"), categories)

    raw_dims = data["dimensions"]
    if not isinstance(raw_dims, Mapping):
        raise ClassificationError(f"{file}: 'dimensions' must be a mapping of dimension name to definition")
    dimensions = {str(name): _parse_dimension(file, str(name), body) for name, body in raw_dims.items()}
    exits = _parse_dimension(file, "exit_destination", data["exit_destinations"])
    new_episodes = _parse_dimension(file, "new_episode_type", data["new_episode_types"])

    crosswalk_path: Path | None = None
    if crosswalk is not None:
        crosswalk_path = Path(crosswalk)
    elif data.get("crosswalk") is not None:
        _require_str(file, data["crosswalk"], "top-level key 'crosswalk'", allow_empty=False)
        crosswalk_path = file.parent / data["crosswalk"]
    mapping = _read_crosswalk(crosswalk_path, file, {c.code for c in categories}) if crosswalk_path else None

    return Classification(
        id=data["id"],
        version=data["version"],
        status=data["status"],
        path=file,
        title=str(data.get("title") or data["id"]),
        description=str(data.get("description") or ""),
        level_names=level_names,
        categories=categories,
        dimensions=dimensions,
        exit_destinations=exits,
        new_episode_types=new_episodes,
        crosswalk=mapping,
        crosswalk_path=crosswalk_path,
    )


def _read_yaml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClassificationError(f"{file}: cannot read classification file ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ClassificationError(f"{file}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ClassificationError(f"{file}: the top level must be a mapping")
    return data


def _require_str(file: Path, value: Any, what: str, *, allow_empty: bool) -> None:
    # YAML silently turns 0.1 into a float and no/yes into booleans; insist on real strings.
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise ClassificationError(f"{file}: {what} must be a non-empty string, got {value!r}")


def _parse_categories(file: Path, raw: Any) -> list[Category]:
    if not isinstance(raw, list) or not raw:
        raise ClassificationError(f"{file}: 'categories' must be a non-empty list")
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            raise ClassificationError(f"{file}: categories[{i}] must be a mapping, got {entry!r}")
        code = entry.get("code")
        _require_str(file, code, f"categories[{i}] 'code'", allow_empty=False)
        for key in _REQUIRED_CATEGORY:
            if key not in entry:
                raise ClassificationError(f"{file}: code {code!r}: required key {key!r} is missing")
        if code in seen:
            raise ClassificationError(f"{file}: code {code!r}: duplicate code (codes must be unique)")
        seen.add(code)
        _require_str(file, entry["label"], f"code {code!r}: 'label'", allow_empty=False)
        for key in ("definition", "basis"):
            if not isinstance(entry[key], str):
                raise ClassificationError(f"{file}: code {code!r}: {key!r} must be a string")
        for key in ("in_alternative_care", "boundary"):
            if not isinstance(entry[key], bool):
                raise ClassificationError(
                    f"{file}: code {code!r}: {key!r} must be a boolean (true/false), got {entry[key]!r}"
                )
        level = entry["level"]
        if isinstance(level, bool) or not isinstance(level, int) or level < 1:
            raise ClassificationError(
                f"{file}: code {code!r}: 'level' must be an integer >= 1, got {level!r}"
            )
        parent = entry["parent"]
        if parent is not None:
            _require_str(file, parent, f"code {code!r}: 'parent'", allow_empty=False)
        entries.append(entry)

    by_code = {e["code"]: e for e in entries}
    for e in entries:
        if e["parent"] is not None and e["parent"] not in by_code:
            raise ClassificationError(
                f"{file}: code {e['code']!r}: parent {e['parent']!r} does not exist in the classification"
            )
    # Cycles are checked before levels so that the message names the real fault.
    for e in entries:
        path = [e["code"]]
        while (parent := by_code[path[-1]]["parent"]) is not None:
            if parent in path:
                cycle = " -> ".join([*path[path.index(parent) :], parent])
                raise ClassificationError(f"{file}: code {e['code']!r}: parent links form a cycle ({cycle})")
            path.append(parent)
    for e in entries:
        code, level, parent = e["code"], e["level"], e["parent"]
        if parent is None and level != 1:
            raise ClassificationError(
                f"{file}: code {code!r}: has no parent, so its level must be 1 (got {level})"
            )
        if parent is not None:
            expected = by_code[parent]["level"] + 1
            if level != expected:
                raise ClassificationError(
                    f"{file}: code {code!r}: level must be parent level + 1 "
                    f"(parent {parent!r} is level {by_code[parent]['level']}, so {expected}; got {level})"
                )
        if e["boundary"] and parent is not None and not by_code[parent]["boundary"]:
            raise ClassificationError(
                f"{file}: code {code!r}: a boundary code's parent must be a boundary code "
                f"(parent {parent!r} is not)"
            )
        if e["boundary"] and e["in_alternative_care"]:
            raise ClassificationError(
                f"{file}: code {code!r}: a boundary code is by definition not in alternative care "
                "(boundary and in_alternative_care are both true)"
            )
    return [
        Category(
            code=e["code"],
            label=e["label"].strip(),
            level=e["level"],
            parent=e["parent"],
            definition=e["definition"].strip(),
            basis=e["basis"].strip(),
            in_alternative_care=e["in_alternative_care"],
            boundary=e["boundary"],
        )
        for e in entries
    ]


def _parse_levels(file: Path, raw: Any, categories: list[Category]) -> dict[int, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, int) and not isinstance(k, bool) and isinstance(v, str) for k, v in raw.items()
    ):
        raise ClassificationError(f"{file}: 'levels' must map level numbers to names, got {raw!r}")
    for cat in categories:
        if cat.level not in raw:
            raise ClassificationError(
                f"{file}: code {cat.code!r}: level {cat.level} is not named in 'levels'"
            )
    return dict(raw)


def _parse_dimension(file: Path, name: str, raw: Any) -> Dimension:
    # A bare list of values is accepted as shorthand for {values: [...]}.
    body: Mapping[str, Any] = {"values": raw} if isinstance(raw, list) else raw
    if not isinstance(body, Mapping):
        raise ClassificationError(f"{file}: dimension {name!r} must be a mapping with 'values'")
    values = body.get("values")
    if not isinstance(values, list) or not values:
        raise ClassificationError(f"{file}: dimension {name!r}: 'values' must be a non-empty list")
    parsed: list[CodedValue] = []
    seen: set[str] = set()
    for i, value in enumerate(values):
        if not isinstance(value, Mapping):
            raise ClassificationError(f"{file}: dimension {name!r}: values[{i}] must be a mapping")
        code = value.get("code")
        _require_str(file, code, f"dimension {name!r}: values[{i}] 'code'", allow_empty=False)
        for key in _REQUIRED_VALUE:
            if key not in value:
                raise ClassificationError(
                    f"{file}: dimension {name!r}: code {code!r}: required key {key!r} is missing"
                )
        if code in seen:
            raise ClassificationError(
                f"{file}: dimension {name!r}: code {code!r}: duplicate value code (must be unique)"
            )
        seen.add(code)
        _require_str(file, value["label"], f"dimension {name!r}: code {code!r}: 'label'", allow_empty=False)
        _require_str(
            file, value["definition"], f"dimension {name!r}: code {code!r}: 'definition'", allow_empty=True
        )
        parsed.append(
            CodedValue(code=code, label=value["label"].strip(), definition=value["definition"].strip())
        )
    return Dimension(
        name=name,
        label=str(body.get("label") or name),
        description=str(body.get("description") or "").strip(),
        values=tuple(parsed),
    )


def _read_crosswalk(path: Path, classification_file: Path, target_codes: set[str]) -> dict[str, str]:
    """Read ``from_code,to_code``; each from_code once, every to_code a code of the loaded classification."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in _CROSSWALK_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ClassificationError(
                    f"{path}: crosswalk must have columns from_code,to_code (missing: {', '.join(missing)})"
                )
            rows = list(reader)
    except OSError as exc:
        raise ClassificationError(f"{path}: cannot read crosswalk file ({exc})") from exc
    mapping: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        source = (row["from_code"] or "").strip()
        target = (row["to_code"] or "").strip()
        if not source or not target:
            raise ClassificationError(f"{path}: line {line}: from_code and to_code must both be filled")
        if source in mapping:
            raise ClassificationError(
                f"{path}: code {source!r}: from_code appears more than once "
                f"(each from_code must map to exactly one to_code; got {mapping[source]!r} and {target!r})"
            )
        if target not in target_codes:
            raise ClassificationError(
                f"{path}: code {target!r}: to_code (for from_code {source!r}) is not a code of "
                f"{classification_file}"
            )
        mapping[source] = target
    if not mapping:
        raise ClassificationError(f"{path}: crosswalk has no rows")
    return mapping
