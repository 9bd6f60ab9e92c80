"""The dataset card (``release/README.md``) and ``release/CITATION.cff``: what the release holds,
what it covers, where it comes from, how it was made and protected, its limits and how to cite it.

Both are made from the run's context only and dated by the run's day, so the same run written by
the CLI or by Dagster gives the same files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import yaml

import icare
from icare.resources import config_dir
from icare.sources.spec import load_source_spec
from schemas.outputs import COVERAGE, RELEASE_COUNTS, RELEASE_DESCRIPTIONS, RELEASE_TABLES, TOTAL

if TYPE_CHECKING:
    from icare.release.folder import ReleaseContext

CARD = "README.md"
SETTLED_STATUSES = ("final", "official")  # a classification status that needs no warning
RATE_COLUMN = "rate_per_100000"
CITATION = "CITATION.cff"
# Method documents of the icare repository (named, not linked: the folder is read away from it).
METHOD_DOCS = (
    ("docs/statistics.md", "definitions of every statistic (stock, entries, exits, spells, rates)"),
    ("docs/classification.md", "the ICare classification and its levels"),
    ("docs/mapping-decisions.md", "how national codes map onto ICare categories"),
    ("docs/disclosure.md", "disclosure control of the released figures"),
    ("docs/tables.md", "every column of every table"),
    ("docs/release.md", "this folder: its files, versions, licence, checksums and changelog"),
)


def write_card(context: ReleaseContext) -> None:
    (context.folder / CARD).write_text(card(context), encoding="utf-8")


def write_citation(context: ReleaseContext) -> None:
    (context.folder / CITATION).write_text(citation(context), encoding="utf-8")


def card(context: ReleaseContext) -> str:
    settings = context.settings
    licence = settings.licence
    sections = [
        f"# {settings.title}\n\n{settings.description}\n",
        _facts(context),
        "## What is here\n\n" + _tables(context.tables),
        "## Coverage\n\n" + _coverage(context.tables),
        "## Sources and versions\n\n" + _sources(context),
        "## Methods\n\nThe methods are documented in the icare repository:\n\n"
        + "".join(f"- `{doc}`: {what}\n" for doc, what in METHOD_DOCS),
        "## Disclosure control\n\n" + _disclosure(context),
        "## Known limitations\n\n" + "".join(f"- {item}\n" for item in limitations(context)),
        "## Licence\n\n"
        f"The figures are released under the {licence.name} ({licence.id}): {licence.url}"
        + (f"\n\nAttribution: {licence.attribution}" if licence.attribution else "")
        + "\n",
        "## How to cite\n\n"
        + how_to_cite(context)
        + "\n\nThe same in machine-readable form: `CITATION.cff`.\n",
    ]
    return "\n".join(sections)


def _facts(context: ReleaseContext) -> str:
    settings = context.settings
    contact = settings.contact
    reach = ", ".join(v for v in (contact.email, contact.url) if v)
    return (
        f"- Version: {context.version}\n"
        f"- Run: {context.run_id} of {context.released_on.isoformat()}\n"
        f"- Publisher: {settings.publisher}\n"
        f"- Contact: {contact.name}{f' ({reach})' if reach else ''}\n"
        f"- Licence: {settings.licence.name}\n"
        "- Files: `datapackage.json` describes every data file (columns, types, meanings, SHA-256); "
        "`SHA256SUMS` lists the checksum of every file (`sha256sum -c SHA256SUMS`); `CHANGELOG.md` "
        "says what differs from the release this one replaced; `codelists/` labels every code used.\n"
    )


def _tables(tables: Mapping[str, pa.Table]) -> str:
    order = [name for name in RELEASE_TABLES if name in tables] + sorted(set(tables) - set(RELEASE_TABLES))
    rows = [
        f"| `{name}.parquet` | {tables[name].num_rows:,} | {RELEASE_DESCRIPTIONS.get(name, '')} |"
        for name in order
    ]
    return (
        "Released tables (also in the DuckDB schema `release` of the run's database):\n\n"
        "| File | Rows | What |\n|---|---:|---|\n" + "\n".join(rows) + "\n\n"
        f"A value withheld by disclosure control is empty, and the `<count>_status` column beside it "
        f"says why. Where a table has margin rows, a dimension summed over holds `{TOTAL}`.\n"
    )


def _coverage(tables: Mapping[str, pa.Table]) -> str:
    """Per source: areas and collection years by completeness, and the dates counted."""
    coverage = tables.get(COVERAGE)
    if coverage is None or coverage.num_rows == 0:
        return "No return was read.\n"
    grouped = coverage.group_by(["source", "completeness"]).aggregate(
        [("area_code", "count_distinct"), ("collection_year", "min"), ("collection_year", "max")]
    )
    lines = []
    for row in sorted(grouped.to_pylist(), key=lambda r: (r["source"], r["completeness"])):
        lines.append(
            f"- {row['source']}: {row['completeness']} returns from {row['area_code_count_distinct']} "
            f"area(s), collection years {row['collection_year_min']} to {row['collection_year_max']}"
        )
    stock = tables.get("stock")
    if stock is not None and stock.num_rows:
        dates = stock.group_by("source").aggregate([("reference_date", "min"), ("reference_date", "max")])
        for row in sorted(dates.to_pylist(), key=lambda r: r["source"]):
            lines.append(
                f"- {row['source']}: children in care counted on each period end from "
                f"{row['reference_date_min']} to {row['reference_date_max']}"
            )
    return (
        "\n".join(lines) + "\n\nA collection year is named by the year in which it ends (2024 = 2023/24); "
        "only complete returns give figures (`coverage.parquet` lists every return and why one is not "
        "complete).\n"
    )


def _sources(context: ReleaseContext) -> str:
    lines = [
        f"- {load_source_spec(name).title} (`{name}`), concordance `{version}`"
        for name, version in sorted(context.concordance_versions.items())
    ]
    classification = context.classification
    lines.append(
        f"- Classification: {classification.title}, `{classification.version_id}` ({classification.status})"
    )
    if context.statistics is not None:
        lines.append(
            f"- Statistics settings: `{context.statistics.version_id}` (age bands "
            f"`{context.statistics.age_band_set}`)"
        )
    lines.append(f"- Disclosure rules: `{context.disclosure.version_id}`")
    for population in context.summary.get("population") or ():
        lines.append(
            f"- Population for rates: {population['population_source']}, vintage "
            f"{population['vintage']} ({population['licence']})"
        )
    lines.append(f"- Made by icare {icare.__version__}")
    return "\n".join(lines) + "\n"


def _disclosure(context: ReleaseContext) -> str:
    rules = context.disclosure
    if rules.method == "round":
        method = f"every count rounded to the nearest multiple of {rules.rounding_base}"
    else:
        method = (
            f"counts from 1 to {rules.threshold - 1} withheld (primary), then other values withheld "
            "so that none can be worked out from published totals (secondary)"
        )
    statuses = next(
        col.description for cols in RELEASE_TABLES.values() for col in cols if col.name.endswith("_status")
    )
    totals = {"values": 0, "published": 0, "primary": 0, "secondary": 0}
    for table in (context.summary.get("release") or {}).get("tables", {}).values():
        for key in totals:
            totals[key] += int(table.get(key, 0))
    counted = ", ".join(sorted(RELEASE_COUNTS))
    return (
        f"Rules `{rules.version_id}`: {method}. Protected tables: {counted}.\n\n"
        f"Each `<count>_status` column holds the SDMX CONF_STATUS of its count: {statuses}.\n\n"
        f"In this release: {totals['values']:,} values, {totals['published']:,} published, "
        f"{totals['primary']:,} withheld as small counts, {totals['secondary']:,} withheld to protect "
        "them (per table and column: `disclosure_summary.parquet`).\n"
    )


def limitations(context: ReleaseContext) -> list[str]:
    """What a reader must know before using the figures, from the run's own facts."""
    items = []
    if context.sample_data:
        items.append(
            "Figures for synthetic sample data: every input is icare's invented sample; they describe "
            "no real child and are not statistics."
        )
    classification = context.classification
    if classification.status not in SETTLED_STATUSES:
        items.append(
            f"The classification `{classification.version_id}` is {classification.status}: its "
            "categories and codes may change in a later version."
        )
    default_rules = config_dir() / "disclosure.yaml"
    if context.disclosure.path is not None and context.disclosure.path.resolve() == default_rules.resolve():
        items.append(
            "Disclosure control uses the project's default rules (config/disclosure.yaml), not a "
            "verified national rule."
        )
    coverage = context.tables.get(COVERAGE)
    if coverage is not None:
        left_out = pc.sum(pc.not_equal(coverage["completeness"], "complete")).as_py() or 0
        if left_out:
            items.append(
                f"{left_out} return(s) could not give figures: their years are left out (`coverage.parquet`)."
            )
    items.append("Area names are not given: the sources' code lists do not name areas.")
    if any(RATE_COLUMN in table.column_names for table in context.tables.values()):
        items.append(
            "Rates are given only where a population is known for the area, sex and age; other "
            "rates are empty with a reason."
        )
    return items


def how_to_cite(context: ReleaseContext) -> str:
    settings = context.settings
    url = f" {settings.citation.url}" if settings.citation.url else ""
    return (
        f"{', '.join(settings.citation.authors)} ({context.released_on.year}). {settings.title}, "
        f"version {context.version}. {settings.publisher}.{url}"
    )


def citation(context: ReleaseContext) -> str:
    """Citation File Format 1.2.0 for the release (a dataset)."""
    settings = context.settings
    data = {
        "cff-version": "1.2.0",
        "message": "If you use these figures, please cite them as below.",
        "type": "dataset",
        "title": settings.title,
        "abstract": settings.description,
        "version": context.version,
        "date-released": context.released_on,
        "authors": [{"name": author} for author in settings.citation.authors],
        "license": settings.licence.id,
        "keywords": list(settings.keywords),
        **({"url": settings.citation.url} if settings.citation.url else {}),
        **(
            {"contact": [{"name": settings.contact.name, "email": settings.contact.email}]}
            if settings.contact.email
            else {}
        ),
    }
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
