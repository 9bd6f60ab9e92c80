"""``release/datapackage.json``: a Frictionless Data Package (v1) describing every data file of the
release folder: its columns (types from the files themselves, meanings from ``schemas/outputs.py``),
its SHA-256, the licence, the sources and the versions behind the figures.

Parquet tables are described as ``"type": "file"`` resources carrying their ``schema``: frictionless
5.21 reads Parquet through pandas, where an empty (withheld) count becomes a float NaN that its
integer and string fields reject, so a tabular Parquet resource cannot pass validation however right
the file is. Validation then checks each table's bytes and hash; the tests check that every Parquet
file's own schema matches the fields declared here. CSV files are tabular resources, read in full.
"""

from __future__ import annotations

import csv
import json
import mimetypes
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

import icare
from icare.release.checksums import CHECKSUMS, release_files, sha256_of
from icare.release.codelists import CODELIST_DIR, codelist_field
from icare.sources.spec import load_source_spec
from schemas.outputs import RELEASE_DESCRIPTIONS, RELEASE_TABLES, release_name

if TYPE_CHECKING:
    from icare.release.folder import ReleaseContext

DATAPACKAGE = "datapackage.json"
# The folder's own documentation: described by the card, covered by the checksums, not data.
DOCUMENTATION = ("README.md", "CHANGELOG.md", "CITATION.cff")
# An open-data CSV marks a withheld value `c` (DfE EES); any CSV may leave a cell empty.
MISSING_VALUES = ["", "c"]
META_SUFFIX = ".meta.csv"
_NAME_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def write_datapackage(context: ReleaseContext) -> None:
    (context.folder / DATAPACKAGE).write_text(
        json.dumps(datapackage(context), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def datapackage(context: ReleaseContext) -> dict:
    """The descriptor: package metadata, then one resource per data file in path order."""
    settings = context.settings
    files = release_files(context.folder, leave_out=(DATAPACKAGE, CHECKSUMS, *DOCUMENTATION))
    return {
        "profile": "data-package",
        "name": "icare-release",
        "title": settings.title,
        "description": settings.description,
        "version": context.version,
        # The run's date, not its time: the CLI and Dagster runs of the same inputs on one day
        # write the same files (every dated statement of the folder uses that date).
        "created": f"{context.released_on.isoformat()}T00:00:00Z",
        "keywords": list(settings.keywords),
        **({"homepage": settings.citation.url} if settings.citation.url else {}),
        "licenses": [
            {"name": settings.licence.id, "title": settings.licence.name, "path": settings.licence.url}
        ],
        "contributors": [
            {"title": settings.publisher, "role": "publisher"},
            *({"title": author, "role": "author"} for author in settings.citation.authors),
        ],
        "sources": sources(context),
        "icare": provenance(context),
        "resources": [resource(context.folder, path) for path in files],
    }


def sources(context: ReleaseContext) -> list[dict]:
    """The national sources read and any population figures behind the rates."""
    listed = [
        {"title": f"{load_source_spec(name).title} ({name}, concordance {version})"}
        for name, version in sorted(context.concordance_versions.items())
    ]
    for population in context.summary.get("population") or ():
        listed.append({"title": f"{population['population_source']} ({population['vintage']})"})
    return listed


def provenance(context: ReleaseContext) -> dict:
    """What the changelog of the next release compares: the run and every version behind it."""
    statistics = context.statistics
    return {
        "run_id": context.run_id,
        "icare_version": icare.__version__,
        "classification_version": context.classification.version_id,
        "concordance_versions": dict(sorted(context.concordance_versions.items())),
        "statistics_settings": statistics.version_id if statistics is not None else None,
        "disclosure_rules": context.disclosure.version_id,
        "sample_data": context.sample_data,
    }


def resource(folder: Path, path: Path) -> dict:
    """One file: a Parquet table, a CSV (code list or other), or any other file by its format."""
    relative = path.relative_to(folder).as_posix()
    described = {
        "name": resource_name(relative),
        "path": relative,
        "bytes": path.stat().st_size,
        "hash": f"sha256:{sha256_of(path)}",
    }
    if path.suffix == ".parquet":
        return described | parquet_resource(path)
    if path.suffix == ".csv":
        return described | csv_resource(path, relative)
    media = mimetypes.guess_type(path.name)[0]
    return (
        described
        | {"type": "file", "format": path.suffix.lstrip(".") or "bin"}
        | ({"mediatype": media} if media else {})
    )


def resource_name(relative: str) -> str:
    """A Frictionless name (lower case letters, digits, ``-._``): a released table keeps its name
    (``stock``); any other file is named by its path (``stock.csv``, ``codelists-areas.csv``), so
    the open-data CSV of a table and the table differ."""
    if relative.endswith(".parquet") and "/" not in relative:
        relative = relative[: -len(".parquet")]
    return _NAME_UNSAFE.sub("-", relative.lower()).strip("-")


def parquet_resource(path: Path) -> dict:
    """A released table: fields and types from the file, meanings from RELEASE_TABLES."""
    table = path.stem
    columns = {col.name: col for col in RELEASE_TABLES.get(table, [])}
    fields = []
    for arrow_field in pq.read_schema(path):
        col = columns.get(arrow_field.name)
        field = {"name": arrow_field.name, "type": frictionless_type(arrow_field.type)}
        if col is not None:
            field["description"] = col.description
            if not col.nullable:
                field["constraints"] = {"required": True}
            if col.allowed:
                field.setdefault("constraints", {})["enum"] = list(col.allowed)
        fields.append(field)
    return {
        "type": "file",
        "title": release_name(table) if table in RELEASE_TABLES else table,
        **({"description": RELEASE_DESCRIPTIONS[table]} if table in RELEASE_DESCRIPTIONS else {}),
        "format": "parquet",
        "mediatype": "application/vnd.apache.parquet",
        "schema": {"fields": fields},
    }


def csv_resource(path: Path, relative: str) -> dict:
    """A CSV table. Code lists have known columns; any other CSV (open-data or SDMX files written by
    other writers) is described from its header as text, with labels from its ``.meta.csv`` if any."""
    header = csv_header(path)
    if relative.startswith(f"{CODELIST_DIR}/"):
        fields = [codelist_field(name) for name in header]
        missing = [""]
    else:
        labels = _meta_labels(path)
        fields = [
            {"name": name, "type": "string", **({"description": labels[name]} if name in labels else {})}
            for name in header
        ]
        missing = MISSING_VALUES
    return {
        "type": "table",
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        "schema": {"fields": fields, "missingValues": missing},
    }


def csv_header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle), [])


def frictionless_type(arrow_type: pa.DataType) -> str:
    """The Table Schema type of an Arrow type (dictionary-encoded text is text)."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "number"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "datetime"
    return "string"


def _meta_labels(path: Path) -> dict[str, str]:
    """Column labels of an EES data file from its ``<name>.meta.csv`` (col_name, label)."""
    if path.name.endswith(META_SUFFIX):
        return {}
    meta = path.with_name(path.name[: -len(".csv")] + META_SUFFIX)
    if not meta.is_file():
        return {}
    with meta.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {row["col_name"]: row["label"] for row in rows if row.get("col_name") and row.get("label")}
