"""The ``icare`` command: run the pipeline on the bundled sample or on your own returns."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

DEFAULT_OUTPUT = Path("outputs")
# Exit codes (docs/operations.md): 0 done, 1 a failure of icare itself (with its traceback),
# USAGE input, settings, output folder or storage to fix, INTERRUPTED by Ctrl-C (128 + SIGINT).
USAGE = 2
INTERRUPTED = 130
INTERRUPTED_MESSAGE = "icare: interrupted; previous outputs left as they were"


def usage_errors() -> tuple[type[Exception], ...]:
    """The errors that mean the input, a setting or the output folder is to be fixed (exit code 2).

    Imported when the command runs, not with this module: importing the pipeline takes seconds, and
    a Ctrl-C meanwhile is then handled like any other (``run``)."""
    from icare.classification import ClassificationError
    from icare.codelists import CodelistError
    from icare.concordance import ConcordanceError
    from icare.disclosure.rules import DisclosureRulesError
    from icare.output_folder import OutputFolderError
    from icare.population import PopulationError
    from icare.pseudonymise import MissingKeyError
    from icare.release.settings import ReleaseSettingsError
    from icare.sources.base import SourceInputError
    from icare.sources.registry import UnknownSourceError
    from icare.sources.spec import SourceSpecError
    from icare.statistics.settings import StatisticsSettingsError

    return (
        SourceInputError,
        MissingKeyError,
        UnknownSourceError,
        ClassificationError,
        ConcordanceError,
        CodelistError,
        SourceSpecError,
        StatisticsSettingsError,
        DisclosureRulesError,
        ReleaseSettingsError,
        PopulationError,
        OutputFolderError,
    )


def _parse_sources(values: tuple[str, ...]) -> dict[str, Path]:
    sources: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(
                f"{value!r}: use NAME=PATH, e.g. ssda903=returns/", param_hint="--source"
            )
        if name in sources:
            raise click.BadParameter(f"source {name!r} given twice", param_hint="--source")
        sources[name] = Path(path)
    return sources


@click.group()
@click.version_option(package_name="icare")
def main() -> None:
    """icare: national records of children in alternative care, harmonised onto ICare."""


@main.command()
@click.option(
    "--source",
    "sources",
    multiple=True,
    metavar="NAME=PATH",
    help="A source and the folder of its returns (repeatable). Default: the bundled sample.",
)
@click.option(
    "--output",
    "output_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT,
    show_default=True,
    help="Folder for icare.duckdb, parquet/ and run.json.",
)
@click.option(
    "--classification",
    "classification_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Another version of the ICare classification (YAML).",
)
@click.option(
    "--crosswalk",
    "crosswalk_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Crosswalk CSV from the provisional AC.* codes onto --classification.",
)
@click.option(
    "--statistics",
    "statistics_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Other statistics settings (YAML), instead of config/statistics.yaml.",
)
@click.option(
    "--disclosure",
    "disclosure_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Other disclosure rules (YAML) for the release, instead of config/disclosure.yaml.",
)
@click.option(
    "--release-config",
    "release_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Other release settings (YAML: title, licence, contact, citation of the release folder), "
    "instead of config/release.yaml (docs/release.md).",
)
@click.option(
    "--population",
    "population_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Child population for rates: the YAML description naming its CSV (docs/statistics.md). "
    "Default: the bundled sample's population when every source is its bundled sample, else no rates.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Quarantine every row with a failing value and normalise nothing (a local authority checking "
    "its own return). Default: the source's failure policy (docs/validation-policy.md).",
)
@click.option(
    "--allow-incomplete",
    is_flag=True,
    help="Publish even when some returns (area and collection year) have a missing, unreadable or empty "
    "header or episodes table, or a year has no files: their years get no stock or flows and the "
    "coverage table lists them. Default: such a run stops with exit code 2 and replaces nothing.",
)
@click.option("--quiet", is_flag=True, help="Print only the summary.")
def run(
    sources: tuple[str, ...],
    output_dir: Path,
    classification_path: Path | None,
    crosswalk_path: Path | None,
    statistics_path: Path | None,
    disclosure_path: Path | None,
    release_path: Path | None,
    population_path: Path | None,
    strict: bool,
    allow_incomplete: bool,
    quiet: bool,
) -> None:
    """Read, validate and harmonise returns; write Parquet and DuckDB outputs atomically."""
    started = time.perf_counter()

    def progress(message: str) -> None:
        if not quiet:
            click.echo(f"[{time.perf_counter() - started:6.1f}s] {message}", err=True)

    try:
        from icare.pipeline import RunOptions, bundled_samples
        from icare.pipeline import run as run_pipeline

        options = RunOptions(
            _parse_sources(sources) if sources else bundled_samples(),
            output_dir,
            classification_path,
            crosswalk_path,
            progress,
            statistics_path,
            disclosure_path=disclosure_path,
            release_path=release_path,
            population_path=population_path,
            strict=strict,
            allow_incomplete=allow_incomplete,
        )
        result = run_pipeline(options)
    except KeyboardInterrupt:
        # Ctrl-C: the staging folder was removed and the output folder released on the way out
        # (left to click, it would print "Aborted!" and exit 1).
        click.echo(INTERRUPTED_MESSAGE, err=True)
        sys.exit(INTERRUPTED)
    except usage_errors() as exc:
        click.echo(f"icare: error: {exc}", err=True)
        sys.exit(USAGE)
    except Exception as exc:
        _exit_if_storage_failure(exc)
        raise
    click.echo(format_summary(result.summary, output_dir, time.perf_counter() - started))


def _exit_if_storage_failure(error: Exception) -> None:
    """A refusal of the storage met outside the outputs' own writes (e.g. DuckDB spilling to disk
    during the statistics) is the machine's to fix, not a bug: one line and exit code 2."""
    from icare.output_folder import storage_reason

    reason = storage_reason(error)
    if reason is not None:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        because = "" if reason in first_line else f" ({reason})"
        message = f"{first_line}{because}; the previous outputs are left as they were"
        click.echo(f"icare: error: {message}", err=True)
        sys.exit(USAGE)


def format_summary(summary: dict, output_dir: Path, seconds: float) -> str:
    lines = [f"icare run {summary['run_id']} ({summary['classification_version']}) in {seconds:.1f} s"]
    for source, rows in summary["rows"].items():
        lines.append(
            f"  {source}: {rows['rows_read']:,} rows read, {rows['rows_accepted']:,} accepted "
            f"({rows.get('rows_accepted_with_corrections', 0):,} with corrected values), "
            f"{rows['rows_quarantined']:,} quarantined, {rows['rows_superseded']:,} superseded by later "
            f"returns or duplicates, {rows['rows_not_harmonised']:,} in tables not harmonised"
        )
    lines.append(f"  {summary['episodes']:,} episodes of {summary['children']:,} children")
    lines.append("  Episodes by ICare level-1 category:")
    for row in summary["episodes_by_icare_level1"]:
        lines.append(
            f"    {row['source']:<10} {row['icare_level1']:<6} {row['episodes']:>10,}  {row['label']}"
        )
    for figures in summary.get("latest", []):
        lines.append(
            f"  {figures['source']}: children in care on {figures['reference_date']} "
            f"({figures['areas']} area(s)), by ICare level-1 category:"
        )
        for row in figures["children_by_icare_level1"]:
            lines.append(f"    {row['icare_level1']:<6} {row['children']:>10,}  {row['label']}")
        if figures.get("children_placement_not_known"):
            lines.append(
                f"    {'':<6} {figures['children_placement_not_known']:>10,}  placement not known "
                "(see statistics_findings)"
            )
        lines.append(f"    {'total':<6} {figures['children_in_care']:>10,}")
        lines.append(
            f"  {figures['source']}: {figures['period_start']} to {figures['reference_date']}: "
            f"{figures['entries']:,} entries and {figures['exits']:,} exits (care spells)"
        )
        if figures.get("entries_without_entry_record"):
            lines.append(
                f"    of the entries, {figures['entries_without_entry_record']:,} start without an entry "
                "record (finding care_spell_starts_without_entry)"
            )
    lines += _rate_lines(summary)
    if summary.get("statistics_findings_by_kind"):
        lines.append("  Statistics findings by kind (see the statistics_findings table):")
        for kind, count in summary["statistics_findings_by_kind"].items():
            lines.append(f"    {kind:<40} {count:>8,}")
    lines += _coverage_lines(summary)
    if summary["quarantine_by_rule"]:
        lines.append("  Quarantine records by rule (see the quarantine table):")
        for rule, count in summary["quarantine_by_rule"].items():
            lines.append(f"    {rule:<32} {count:>8,}")
    if summary.get("corrections_by_rule"):
        lines.append("  Values corrected, rows kept, by rule (see the corrections table):")
        for rule, actions in summary["corrections_by_rule"].items():
            done = ", ".join(f"{action} {n:,}" for action, n in actions.items())
            lines.append(f"    {rule:<32} {sum(actions.values()):>8,}  ({done})")
    if summary.get("return_findings"):
        lines.append("  Findings about the returns, counted (see the return_findings table):")
        for name, count in summary["return_findings"].items():
            lines.append(f"    {name:<40} {count:>8,}")
    release = summary.get("release")
    if release:
        figures = release["tables"].values()
        lines.append(
            f"  Release ({release['disclosure_rules']}, {release['method']}, threshold "
            f"{release['threshold']}): {sum(f['values'] for f in figures):,} values, "
            f"{sum(f['published'] for f in figures):,} published, {sum(f['primary'] for f in figures):,} "
            f"withheld as small counts, {sum(f['secondary'] for f in figures):,} withheld to protect them"
        )
    lines.append(f"  Outputs: {output_dir / 'icare.duckdb'} and {output_dir / 'parquet'}/")
    if release:
        lines.append(f"  For publication: {output_dir / 'release'}/ (disclosure-controlled aggregates)")
    return "\n".join(lines)


def _coverage_lines(summary: dict) -> list[str]:
    """The returns whose years have no figures (published with --allow-incomplete), and why."""
    rows = summary.get("not_complete", [])
    if not rows:
        return []
    lines = [f"  {len(rows)} return(s) not complete: no stock or flows for their years (coverage table):"]
    for row in rows:
        area = row["area_code"] or "(no area)"
        lines.append(
            f"    {row['source']:<10} {area:<10} {row['collection_year']}  "
            f"{row['completeness']}: {row['reason']}"
        )
    return lines


def _rate_lines(summary: dict) -> list[str]:
    """The population used and the latest rates per area, or why there are none."""
    if "population" not in summary:
        return []
    if not summary["population"]:
        return ["  Rates: none (no population file; give --population FILE, see docs/statistics.md)"]
    lines = []
    for p in summary["population"]:
        lines += [f"  Population: {p['population_source']}", f"    vintage {p['vintage']}, file {p['data']}"]
    latest = summary["latest_rates"]
    if latest:
        first = latest[0]
        lines.append(
            f"  Children aged 0-17 in care per 100,000 children on {first['reference_date']} "
            f"(population of {first['population_year']}):"
        )
    for row in latest:
        area = row["area_code"] or "(no area)"
        if row["rate_per_100000"] is None:
            figure = f"no rate: {row['rate_missing_reason']}"
        else:
            figure = f"{row['children']:>6,} / {row['population']:>10,} = {row['rate_per_100000']:>8,.1f}"
        lines.append(f"    {row['source']:<10} {area:<10} {figure}")
    return lines


def console() -> None:
    """The installed ``icare`` command: ``main``, then the process ends without the interpreter's
    teardown.

    By then the outputs are written, closed and swapped in; the teardown would only free what is
    left, and DuckDB and Arrow hand their memory back page by page (measured: 0.27-0.49 s after a
    1,000,000-row run). An error that escapes ``main`` still ends the process normally, with its
    traceback.
    """
    try:
        main()
        code: object = 0
    except SystemExit as done:
        code = done.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what sys.exit("message") prints
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    console()
