"""``release/CHANGELOG.md``: what differs from the release this run replaces in the same output
folder: the versions behind the figures, the tables, and per table the rows added and removed, the
values changed (listed by key) and the confidentiality statuses that changed.

Each table is compared in DuckDB, both versions joined on their key columns; no row is looped over
in Python, only the few changes listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from icare.release.datapackage import DATAPACKAGE, provenance

if TYPE_CHECKING:
    from icare.release.folder import ReleaseContext

CHANGELOG = "CHANGELOG.md"
LISTED = 20  # changed, added and removed rows listed per table; the counts cover all
# Text columns that hold a value of the row, not a part of its key.
VALUE_TEXT = frozenset(
    {"balance", "completeness", "reason", "rate_missing_reason", "method", "disclosure_rules"}
)
# Recorded once at the top (a new classification changes it in every row), never a key.
UNCOMPARED = frozenset({"classification_version"})
PRESENT = "__icare_present"
STATUS_SUFFIX = "_status"
DISCLOSURE_METADATA = b"icare.disclosure_rules"


@dataclass
class TableChanges:
    name: str
    rows_before: int
    rows_after: int
    columns_added: list[str] = field(default_factory=list)
    columns_removed: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    changed: int = 0
    changed_by_column: dict[str, int] = field(default_factory=dict)
    statuses: list[tuple[str, str | None, str | None, int]] = field(default_factory=list)
    listed: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return (
            bool(self.columns_added or self.columns_removed or self.added or self.removed or self.changed)
            or self.rows_before != self.rows_after
        )


def write_changelog(context: ReleaseContext) -> None:
    (context.folder / CHANGELOG).write_text(changelog(context), encoding="utf-8")


def changelog(context: ReleaseContext) -> str:
    title = f"# Changes in release {context.version}\n\nRun {context.run_id} of {context.released_on}.\n"
    if context.previous is None:
        return title + "\nFirst release in this output folder: there is no earlier release to compare with.\n"
    before = previous_provenance(context.previous)
    parts = [
        title,
        f"\nCompared with the release it replaced (version {before.get('version', 'unknown')}).\n",
    ]
    parts.append("\n## Versions\n\n" + _versions(before, provenance(context)))
    old_names = {path.stem for path in context.previous.glob("*.parquet")}
    new_names = set(context.tables)
    tables = []
    if added := sorted(new_names - old_names):
        tables.append(f"- Tables added: {', '.join(added)}")
    if removed := sorted(old_names - new_names):
        tables.append(f"- Tables removed: {', '.join(removed)}")
    parts.append("\n## Tables\n\n" + ("\n".join(tables) if tables else "The same tables.") + "\n")
    changes = [
        compare_tables(name, pq.read_table(context.previous / f"{name}.parquet"), context.tables[name])
        for name in sorted(new_names & old_names)
    ]
    unchanged = [c.name for c in changes if not c.any]
    parts.append("\n## Figures\n")
    if unchanged:
        parts.append(f"\nNo change in: {', '.join(unchanged)}.\n")
    parts.extend(_table_section(c) for c in changes if c.any)
    return "".join(parts)


def previous_provenance(folder: Path) -> dict:
    """The versions behind the earlier release: from its data package, or, for a release made before
    data packages were written, from its tables (classification column, disclosure metadata)."""
    package = folder / DATAPACKAGE
    if package.is_file():
        descriptor = json.loads(package.read_text(encoding="utf-8"))
        return {"version": descriptor.get("version"), **descriptor.get("icare", {})}
    found: dict[str, object] = {}
    for path in sorted(folder.glob("*.parquet")):
        metadata = pq.read_schema(path).metadata or {}
        if DISCLOSURE_METADATA in metadata:
            found["disclosure_rules"] = metadata[DISCLOSURE_METADATA].decode()
        names = pq.read_schema(path).names
        if "classification_version" in names and "classification_version" not in found:
            values = pc.unique(pq.read_table(path, columns=["classification_version"])[0]).drop_null()
            if len(values):
                found["classification_version"] = ", ".join(sorted(values.to_pylist()))
    return found


def _versions(before: dict, after: dict) -> str:
    lines = []
    for key, value in after.items():
        if key in before and before[key] != value:
            lines.append(f"- {key}: {_shown(before[key])} → {_shown(value)}")
    unchanged = [k for k, v in after.items() if k in before and before[k] == v and k != "run_id"]
    if unchanged:
        lines.append(f"- Unchanged: {', '.join(unchanged)}")
    return "\n".join(lines) + "\n" if lines else "No version recorded by the earlier release.\n"


def _shown(value: object) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else f"`{value}`"


def key_columns(schema: pa.Schema) -> list[str]:
    """The columns naming a row: text, dates, flags and years, but not statuses or values."""
    keys = []
    for arrow_field in schema:
        name, kind = arrow_field.name, arrow_field.type
        if name in UNCOMPARED or name in VALUE_TEXT or name.endswith(STATUS_SUFFIX):
            continue
        text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind)
        year = pa.types.is_integer(kind) and name.endswith("_year")
        if text or year or pa.types.is_date(kind) or pa.types.is_boolean(kind):
            keys.append(name)
    return keys


def compare_tables(name: str, before: pa.Table, after: pa.Table) -> TableChanges:
    """Rows added, removed and changed between two versions of a released table, by key."""
    changes = TableChanges(name, before.num_rows, after.num_rows)
    changes.columns_added = [c for c in after.column_names if c not in before.column_names]
    changes.columns_removed = [c for c in before.column_names if c not in after.column_names]
    keys = key_columns(after.schema)
    if keys != key_columns(before.schema):
        return changes  # the rows are named differently: only the counts and columns compare
    changes.keys = keys
    values = [
        c for c in after.column_names if c in before.column_names and c not in keys and c not in UNCOMPARED
    ]
    connection = duckdb.connect()
    connection.register("new_rows", after.append_column(PRESENT, pa.repeat(True, after.num_rows)))
    connection.register("old_rows", before.append_column(PRESENT, pa.repeat(True, before.num_rows)))
    on = " AND ".join(f"n.{_q(k)} IS NOT DISTINCT FROM o.{_q(k)}" for k in keys) or "TRUE"
    both = f"n.{PRESENT} AND o.{PRESENT}"
    differs = " OR ".join(f"n.{_q(v)} IS DISTINCT FROM o.{_q(v)}" for v in values) or "FALSE"
    joined = f"new_rows n FULL OUTER JOIN old_rows o ON {on}"
    per_column = "".join(
        f", count(*) FILTER (WHERE {both} AND n.{_q(v)} IS DISTINCT FROM o.{_q(v)})" for v in values
    )
    counts = connection.execute(
        f"SELECT count(*) FILTER (WHERE o.{PRESENT} IS NULL), count(*) FILTER (WHERE n.{PRESENT} IS NULL), "
        f"count(*) FILTER (WHERE {both} AND ({differs})){per_column} FROM {joined}"
    ).fetchone()
    changes.added, changes.removed, changes.changed = counts[:3]
    changes.changed_by_column = {v: n for v, n in zip(values, counts[3:], strict=True) if n}
    for status in (v for v in values if v.endswith(STATUS_SUFFIX)):
        moved = connection.execute(
            f"SELECT o.{_q(status)}, n.{_q(status)}, count(*) FROM {joined} "
            f"WHERE {both} AND o.{_q(status)} IS DISTINCT FROM n.{_q(status)} GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        changes.statuses.extend((status, old, new, n) for old, new, n in moved)
    changes.listed = _listed_rows(connection, joined, keys, values, both, differs)
    connection.close()
    return changes


def _listed_rows(
    connection: duckdb.DuckDBPyConnection,
    joined: str,
    keys: list[str],
    values: list[str],
    both: str,
    differs: str,
) -> list[str]:
    """Up to LISTED rows of each kind (changed, added, removed), keys in order, as Markdown items."""
    shown_keys = ", ".join(f"coalesce(n.{_q(k)}, o.{_q(k)})" for k in keys)
    pairs = ", ".join(f"o.{_q(v)}, n.{_q(v)}" for v in values) or "NULL, NULL"
    lines = []
    for kind, where in (
        ("changed", f"{both} AND ({differs})"),
        ("added", f"o.{PRESENT} IS NULL"),
        ("removed", f"n.{PRESENT} IS NULL"),
    ):
        rows = connection.execute(
            f"SELECT {shown_keys}, {pairs} FROM {joined} WHERE {where} ORDER BY ALL LIMIT ?", [LISTED]
        ).fetchall()
        for row in rows:
            key = " · ".join("∅" if v is None else str(v) for v in row[: len(keys)])
            olds, news = row[len(keys) :: 2], row[len(keys) + 1 :: 2]
            if kind == "changed":
                what = ", ".join(
                    f"{v}: {_cell(a)} → {_cell(b)}"
                    for v, a, b in zip(values, olds, news, strict=False)
                    if a != b
                )
            else:
                source = news if kind == "added" else olds
                what = ", ".join(f"{v}: {_cell(x)}" for v, x in zip(values, source, strict=False))
            lines.append(f"- {kind} `{key}`: {what}")
    return lines


def _table_section(changes: TableChanges) -> str:
    lines = [f"\n### {changes.name}\n"]
    if changes.columns_added:
        lines.append(f"- Columns added: {', '.join(changes.columns_added)}")
    if changes.columns_removed:
        lines.append(f"- Columns removed: {', '.join(changes.columns_removed)}")
    lines.append(f"- Rows: {changes.rows_before:,} before, {changes.rows_after:,} now")
    if not changes.keys:
        lines.append("- Rows not compared one by one: their key columns changed")
        return "\n".join(lines) + "\n"
    by_column = ", ".join(f"{c} {n:,}" for c, n in changes.changed_by_column.items())
    lines.append(
        f"- Rows added: {changes.added:,}; removed: {changes.removed:,}; "
        f"with a changed value: {changes.changed:,}"
        f"{f' ({by_column})' if by_column else ''}"
    )
    for status, old, new, count in changes.statuses:
        lines.append(f"- {status}: {_cell(old)} → {_cell(new)} in {count:,} rows")
    if changes.listed:
        lines.append(
            f"\nRows by key ({' · '.join(changes.keys)}; at most {LISTED} of each kind; ∅ = empty):\n"
        )
        lines.extend(changes.listed)
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    return "empty" if value is None else str(value)


def _q(name: str) -> str:
    """A column name as a quoted SQL identifier (names come from the tables' schemas)."""
    return '"' + name.replace('"', '""') + '"'
