"""The child population denominators of the rates: a described CSV file, validated before any input is read.

A population is two files (docs/statistics.md "Rates", "The population file"): a small YAML description
(``population_source``, ``vintage``, optional ``licence`` and ``notes``, and ``data``: the CSV file) and
the CSV itself, one row per source, area, year, sex and single year of age 0-17. Single years let any
configured set of age bands be summed from the same file. A malformed file stops the run with a
message naming the file, the row, the column, the rule and the value; nothing is guessed or repaired.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
from pandera.errors import SchemaErrors

from icare import resources
from icare.sources.registry import available_sources
from icare.statistics.settings import RATE_LAST_AGE
from schemas.checks import row_rule, split_check_error

COLUMNS = ("source", "area_code", "year", "sex", "age", "population")
# Harmonised sex values of the published tables (schemas.outputs SEX); M and F are required for
# every source, area and year, so that the total over sexes is the whole population.
SEXES = ("M", "F", "U")
REQUIRED_SEXES = ("M", "F")
KEY = ("source", "area_code", "year", "sex", "age")
DESCRIPTION_KEYS = {"population_source", "vintage", "data", "licence", "notes"}
# At most this many failures are listed in one message (the count of the others is given).
MAX_LISTED = 20

# The registered table the statistics SQL reads (``population_in``) and the published ``population``.
ARROW_SCHEMA = pa_arrow.schema(
    [
        pa_arrow.field("source", pa_arrow.string(), nullable=False),
        pa_arrow.field("area_code", pa_arrow.string()),
        pa_arrow.field("year", pa_arrow.int64(), nullable=False),
        pa_arrow.field("sex", pa_arrow.string(), nullable=False),
        pa_arrow.field("age", pa_arrow.int64(), nullable=False),
        pa_arrow.field("population", pa_arrow.int64(), nullable=False),
        pa_arrow.field("population_source", pa_arrow.string(), nullable=False),
        pa_arrow.field("population_vintage", pa_arrow.string(), nullable=False),
    ]
)


class PopulationError(ValueError):
    """The population file cannot be used; the message names the file, row, column, rule and value."""


@dataclass(frozen=True)
class PopulationFile:
    """One described population file: where it is, what it is, and its checksums (for the run id)."""

    description: Path
    data: Path
    population_source: str
    vintage: str
    licence: str | None
    notes: str | None
    sha256: str  # of the description and the data together

    def record(self) -> dict[str, object]:
        """What the ``runs`` table and ``run.json`` say about the file (names, not full paths)."""
        return {
            "description": self.description.name,
            "data": self.data.name,
            "sha256": self.sha256,
            "population_source": self.population_source,
            "vintage": self.vintage,
            "licence": self.licence,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Population:
    """Every row of one or more population files, in the layout of ``ARROW_SCHEMA``."""

    files: tuple[PopulationFile, ...]
    table: pa_arrow.Table

    def records(self) -> list[dict[str, object]]:
        return [f.record() for f in self.files]


def empty_table() -> pa_arrow.Table:
    """No population: the rates and population tables are then published empty."""
    return ARROW_SCHEMA.empty_table()


def _text(path: Path, raw: dict, key: str, required: bool) -> str | None:
    value = raw.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise PopulationError(f"{path}: required key {key!r} is missing or empty")
        return None
    if not isinstance(value, str | int | float):
        raise PopulationError(f"{path}: {key} must be text, got {value!r}")
    return str(value)


def _describe(path: Path) -> tuple[str, str, str | None, str | None, Path]:
    hint = " (give the YAML description, which names the CSV in `data`)" if path.suffix == ".csv" else ""
    raw = resources.read_yaml_mapping(
        path,
        PopulationError,
        "the population description",
        f"a mapping with population_source, vintage and data{hint}",
    )
    unknown = sorted(set(raw) - DESCRIPTION_KEYS)
    if unknown:
        raise PopulationError(f"{path}: unknown key(s) {unknown}; known: {sorted(DESCRIPTION_KEYS)}")
    data = path.parent / str(_text(path, raw, "data", True))
    if not data.is_file():
        raise PopulationError(f"{path}: data file {data} does not exist")
    return (
        str(_text(path, raw, "population_source", True)),
        str(_text(path, raw, "vintage", True)),
        _text(path, raw, "licence", False),
        _text(path, raw, "notes", False),
        data,
    )


def _whole_number(text: pd.Series, low: int | None = None, high: int | None = None) -> pd.Series:
    """Digits only (no sign, decimal point or thousands separator), within [low, high] when given."""
    ok = text.str.fullmatch(r"[0-9]{1,12}").fillna(False).astype(bool)
    number = pd.to_numeric(text.where(ok), errors="coerce")
    if low is not None:
        ok &= number >= low
    if high is not None:
        ok &= number <= high
    return ok.fillna(False).astype(bool)


def _check(rule: str, message: str, test) -> pa.Check:
    """A column check whose error reads ``rule: message`` (``split_check_error`` splits it)."""
    return pa.Check(test, name=rule, error=f"{rule}: {message}", ignore_na=True)


def population_schema(sources: Sequence[str]) -> pa.DataFrameSchema:
    """The rules of one population CSV file, read as text (extra columns are ignored)."""
    known = sorted(sources)

    def duplicated(frame: pd.DataFrame) -> pd.Series:
        return ~frame.duplicated(list(KEY), keep=False)

    return pa.DataFrameSchema(
        {
            "source": pa.Column(
                str,
                checks=[
                    _check(
                        "unknown_source",
                        f"not an icare source id ({', '.join(known)})",
                        lambda s: s.isin(known),
                    )
                ],
            ),
            "area_code": pa.Column(
                str,
                nullable=True,
                checks=[
                    _check(
                        "surrounding_space",
                        "has white space before or after the value",
                        lambda s: s == s.str.strip(),
                    )
                ],
            ),
            "year": pa.Column(
                str,
                checks=[
                    _check(
                        "year_format",
                        "must be a calendar year of four digits (the estimate's year)",
                        lambda s: s.str.fullmatch(r"[0-9]{4}").fillna(False).astype(bool),
                    )
                ],
            ),
            "sex": pa.Column(
                str,
                checks=[_check("sex_code", f"must be one of {', '.join(SEXES)}", lambda s: s.isin(SEXES))],
            ),
            "age": pa.Column(
                str,
                checks=[
                    _check(
                        "age_range",
                        f"must be a single year of age, a whole number from 0 to {RATE_LAST_AGE}",
                        lambda s: _whole_number(s, 0, RATE_LAST_AGE),
                    )
                ],
            ),
            "population": pa.Column(
                str,
                checks=[
                    _check(
                        "population_count",
                        "must be a whole number of children, 0 or more, written with digits only",
                        _whole_number,
                    )
                ],
            ),
        },
        checks=[
            row_rule(
                "age",
                "duplicate",
                "the same source, area_code, year, sex and age is on another row too",
                duplicated,
            )
        ],
        strict=False,
        name="population",
    )


def _failures(data: Path, errors: SchemaErrors, frame: pd.DataFrame) -> list[str]:
    """One line per failure: file, row (the header is row 1), column, rule, value."""
    lines = []
    cases = errors.failure_cases
    for case in cases.itertuples(index=False):
        rule, column, description = split_check_error(case.check, case.column)
        if rule == "column_in_dataframe":
            lines.append(
                f"{data}: column {case.failure_case!r} is missing (rule missing_column); "
                f"the columns are {', '.join(COLUMNS)}"
            )
            continue
        if pd.isna(case.index):
            lines.append(f"{data}: column {column!r}: rule {rule}: {description}")
            continue
        row = int(case.index) + 2
        value = frame.at[case.index, column] if column in frame.columns else case.failure_case
        shown = "(empty)" if pd.isna(value) else repr(str(value))
        lines.append(f"{data}: row {row}, column {column!r}: rule {rule}: {description}; value {shown}")
    return sorted(set(lines), key=lambda line: (_row_of(line), line))


def _row_of(line: str) -> int:
    _, found, rest = line.partition(": row ")
    return int(rest.split(",", 1)[0]) if found else 0


def _raise(lines: list[str]) -> None:
    listed = lines[:MAX_LISTED]
    more = len(lines) - len(listed)
    tail = [f"... and {more} more"] if more else []
    raise PopulationError("the population file is malformed:\n  " + "\n  ".join(listed + tail))


def _incomplete(data: Path, frame: pd.DataFrame) -> list[str]:
    """Every source, area and year needs ages 0-17 for M and F (and for U when U is given).

    A partial set would make a band's or a total's population silently too small.
    """
    lines = []
    ages = set(range(RATE_LAST_AGE + 1))
    groups = frame.groupby(["source", "area_code", "year"], dropna=False, sort=True)
    for (source, area, year), group in groups:
        given = {sex: set(rows["age"]) for sex, rows in group.groupby("sex")}
        for sex in sorted(set(REQUIRED_SEXES) | set(given)):
            missing = sorted(ages - given.get(sex, set()))
            if missing:
                where = f"source {source}, area_code {'(empty)' if pd.isna(area) else area}, year {year}"
                lines.append(
                    f"{data}: {where}, sex {sex}: rule incomplete_ages: ages {_ranges(missing)} are missing "
                    f"(every age 0-{RATE_LAST_AGE} is needed for sexes {', '.join(REQUIRED_SEXES)}, and for "
                    "U when U is given)"
                )
    return lines


def _ranges(numbers: list[int]) -> str:
    parts, start = [], None
    for i, n in enumerate(numbers):
        if start is None:
            start = n
        if i + 1 == len(numbers) or numbers[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    return ", ".join(parts)


def _sha256(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def read_population_file(path: str | Path, sources: Sequence[str] | None = None) -> Population:
    """Read and check one described population file (``path`` is its YAML description)."""
    path = Path(path)
    population_source, vintage, licence, notes, data = _describe(path)
    try:
        frame = pd.read_csv(
            data,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding="utf-8-sig",
            skip_blank_lines=True,
        )
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise PopulationError(f"{data}: cannot read the population CSV ({exc})") from exc
    try:
        population_schema(sources if sources is not None else available_sources()).validate(frame, lazy=True)
    except SchemaErrors as errors:
        _raise(_failures(data, errors, frame))
    frame = frame[list(COLUMNS)].copy()
    for column in ("year", "age", "population"):
        frame[column] = frame[column].astype("int64")
    incomplete = _incomplete(data, frame)
    if incomplete:
        _raise(incomplete)
    file = PopulationFile(path, data, population_source, vintage, licence, notes, _sha256(path, data))
    return Population((file,), _arrow(frame, population_source, vintage))


def _arrow(frame: pd.DataFrame, population_source: str, vintage: str) -> pa_arrow.Table:
    columns = {
        "source": frame["source"].tolist(),
        "area_code": frame["area_code"].astype(object).where(frame["area_code"].notna(), None).tolist(),
        "year": frame["year"].tolist(),
        "sex": frame["sex"].tolist(),
        "age": frame["age"].tolist(),
        "population": frame["population"].tolist(),
        "population_source": [population_source] * len(frame),
        "population_vintage": [vintage] * len(frame),
    }
    return pa_arrow.table(columns, schema=ARROW_SCHEMA)


def load_population(paths: Sequence[str | Path], sources: Sequence[str] | None = None) -> Population | None:
    """Every given population file, checked and combined; ``None`` when no file is given.

    Two files may not both give a source, area and year: which one to use would be a guess.
    """
    if not paths:
        return None
    parts = [read_population_file(path, sources) for path in paths]
    seen: dict[tuple, Path] = {}
    for part in parts:
        (file,) = part.files
        keys = part.table.select(["source", "area_code", "year"]).to_pylist()
        for key in sorted({tuple(k.values()) for k in keys}, key=str):
            if key in seen:
                raise PopulationError(
                    f"{file.data} and {seen[key]} both give source {key[0]}, area_code {key[1]}, "
                    f"year {key[2]}: give each source, area and year in one population file only"
                )
            seen[key] = file.data
    table = pa_arrow.concat_tables([part.table for part in parts])
    return Population(tuple(f for part in parts for f in part.files), table)
