"""Spells and published statistics, computed in DuckDB SQL over the harmonised episodes.

The SQL lives in ``icare/statistics/sql/`` (one statement per file, run in name order), so each
definition of ``docs/statistics.md`` can be read in one place. Values reach the SQL only as bound
parameters or registered tables, never by formatting them into the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from icare.classification import Classification
from icare.statistics.progress import reporting
from icare.statistics.settings import FINEST, StatisticsSettings, rate_age_bands
from icare.statistics.timeline import CHILD_COLUMNS, number_children, timeline_steps
from schemas.outputs import TOTAL, UNDER_18, arrow_schema, column_names

SQL_DIR = Path(__file__).resolve().parent / "sql"
# The SQL file that reads the per-child steps computed in numpy (icare/statistics/timeline.py).
TIMELINE_SQL = "01_timeline.sql"
_PARAMETER = re.compile(r"\$([a-z_]+)")
# A statement that makes a table: its name and its query.
_CREATE_TABLE = re.compile(r"^CREATE TABLE (\w+) AS\s*$", re.MULTILINE)
# The parameter of a statement made for one range of children at a time (with $last_child).
_BY_CHILD = "$first_child"
# Each care spell's and placement spell's own values and each care spell's steps for the pathways,
# found with the timeline's steps; each is read by one statement.
SPELL_STEPS = ("care_spell_steps", "placement_spell_steps", "care_spell_paths")
# A statement that reads the timeline (the view, or the macro over it).
_TIMELINE = re.compile(r"\b(child_)?timeline\b")
# Oldest age (completed years) the age-band lookup covers; older ages are published as "unknown".
MAX_AGE = 130

# Published statistics tables, in the order they are written.
STATISTICS_TABLES = (
    "care_spells",
    "placement_spells",
    "stock",
    "entries",
    "exits",
    "moves",
    "transitions",
    "pathways",
    "durations",
    "durations_totals",
    "flow_check",
    "statistics_findings",
    "population",
    "rates",
)

# Code columns that get level-1 and level-2 roll-ups: code column -> (level-1 column, level-2 column).
ROLL_UPS: dict[str, dict[str, tuple[str, str]]] = {
    "care_spells": {
        "icare_code_start": ("icare_level1_start", "icare_level2_start"),
        "icare_code_end": ("icare_level1_end", "icare_level2_end"),
    },
    "placement_spells": {
        "icare_code_start": ("icare_level1_start", "icare_level2_start"),
        "icare_code_end": ("icare_level1_end", "icare_level2_end"),
    },
    "stock": {"icare_code": ("icare_level1", "icare_level2")},
    "entries": {"icare_code": ("icare_level1", "icare_level2")},
    "exits": {"icare_code": ("icare_level1", "icare_level2")},
    "moves": {"icare_code": ("icare_level1", "icare_level2")},
    "durations": {"icare_code": ("icare_level1", "icare_level2")},
    "rates": {"icare_code": ("icare_level1", "icare_level2")},
    "transitions": {
        "from_code": ("from_level1", "from_level2"),
        "to_code": ("to_level1", "to_level2"),
    },
}

# Tables whose leading published columns identify a row: ordering by them gives the order of
# ORDER BY ALL (the published order), without comparing every column (a child is its source, area
# and key; its care spells and their placement spells are numbered).
UNIQUE_LEADING_COLUMNS: dict[str, tuple[str, ...]] = {
    "care_spells": ("source", "area_code", "child_key", "care_spell_no"),
    "placement_spells": ("source", "area_code", "child_key", "care_spell_no", "placement_spell_no"),
}
# The children are numbered (child_id) in the order of what identifies them (CHILD_COLUMNS,
# timeline.number_children), and the spells' statements read rows made with the timeline in the
# order of child_id and the spell numbers: the spells come out in their published order when DuckDB
# keeps the order it reads (``_spells``); their CHILD_COLUMNS are then taken from the children by
# child_id.
# Statements that work per child (they name $first_child and $last_child: the children's per-period
# counts, pathway steps, moves) run for up to CHILD_RANGES ranges of children in turn, one per
# ROWS_PER_CHILD_RANGE timeline rows: each range needs a fraction of the working memory. Measured at
# 5M (3.25M episodes) when the placement spells grouped the timeline per range, their peak over their
# start: 1 range +1.43 GB, 4 ranges +0.73 GB (CPU +10 %), 13 ranges +0.60 GB (CPU +40 %: each range
# scans the whole timeline). At 1M (651,415 episodes: 2 ranges) the statistics' peak over their start
# was +321 MB; 4 ranges gave +254 MB but about 0.3 s more CPU and wall time. The spells, made with
# the timeline, are read out whole (by ranges they cost about 0.5 CPU-s more at 5M, for a peak no
# lower).
CHILD_RANGES = 4
ROWS_PER_CHILD_RANGE = 400_000

# Columns of the harmonised episodes the statistics read.
EPISODE_COLUMNS = (
    "source",
    "area_code",
    "child_key",
    "sex",
    "birth_month",
    "episode_start",
    "episode_end",
    "episode_end_type",
    "new_episode_type",
    "exit_destination",
    "icare_code",
    "provider_sector",
    "legal_basis",
    "purpose",
)


def _statements() -> list[tuple[str, str]]:
    return [(path.name, path.read_text(encoding="utf-8")) for path in sorted(SQL_DIR.glob("*.sql"))]


def _parameters(sql: str, values: Mapping[str, object]) -> dict[str, object]:
    """The bound values a statement names (DuckDB refuses unused ones)."""
    return {name: values[name] for name in sorted(set(_PARAMETER.findall(sql)))}


def _not_stated_code(classification: Classification) -> str | None:
    """The category of a child in care whose placement is not known (``AC.U``, translated into the
    classification in force), or None when it has none: such children are then in no category row."""
    try:
        return classification.translate(NOT_STATED)
    except KeyError:
        return None


NOT_STATED = "AC.U"  # the provisional code of "type of care not stated" (docs/validation-policy.md)


def _age_lookup(settings: StatisticsSettings) -> pa.Table:
    ages, bands = [], []
    for band in settings.age_bands:
        last = MAX_AGE if band.last_age is None else band.last_age
        for age in range(band.first_age, last + 1):
            ages.append(age)
            bands.append(band.band)
    return pa.table({"age": pa.array(ages, pa.int64()), "age_band": pa.array(bands, pa.string())})


def _codes(classification: Classification) -> pa.Table:
    levels = classification.level_columns(pd.Series(classification.codes()), prefix="level")
    columns = {"code": pa.array(classification.codes(), pa.string())}
    for n in range(1, 5):
        name = f"level{n}"
        values = levels[name] if name in levels else pd.Series([None] * len(levels))
        columns[name] = pa.array(values.astype(object).where(values.notna(), None).tolist(), pa.string())
    return pa.table(columns)


def _pathway_levels(settings: StatisticsSettings) -> pa.Table:
    names = [str(level) for level in settings.pathway_levels]
    numbers = [None if level == FINEST else int(level) for level in settings.pathway_levels]
    return pa.table({"level_name": pa.array(names, pa.string()), "level": pa.array(numbers, pa.int64())})


def _own_columns(table: str) -> list[str]:
    """The published columns a statement makes: all but the level roll-ups and the classification
    version, which are added in Arrow once every statement has run (``_with_roll_ups``)."""
    added = {level for levels in ROLL_UPS.get(table, {}).values() for level in levels}
    return [c for c in column_names(table) if c not in added and c != "classification_version"]


def _final_select(table: str, query: str) -> str:
    """``query``'s rows with the table's own published columns (``_own_columns``), ordered as
    published, except the spells, which have ``child_id`` instead of ``CHILD_COLUMNS`` (taken from
    the children after the read-out) and keep the order of the rows they read (``_spells``). ORDER
    BY ALL without the roll-ups and the version gives the published order: a level is a function of
    its code, which comes before it, and the version is constant.

    Table and column names come from ``schemas.outputs.TABLES`` (the project's constants).
    """
    if table in UNIQUE_LEADING_COLUMNS:
        select = ", ".join(f't."{c}"' for c in _own_columns(table) if c not in CHILD_COLUMNS)
        return f"SELECT {select}, t.child_id FROM ({query}) AS t"
    select = ", ".join(f't."{c}"' for c in _own_columns(table))
    return f"SELECT {select} FROM ({query}) AS t ORDER BY ALL"


def _with_roll_ups(table: str, own: pa.Table, codes: pa.Table, version: str) -> pa.Table:
    """The published table: ``own`` (``_own_columns``) with the level roll-ups of its codes looked
    up in the classification's ``codes`` (empty for an unknown or empty code) and the classification
    version, in the published column order and types. Made as soon as a table is read out, so that
    ``icare run`` can write it while the later statements run; the later statements read the held
    copy, without these columns and with its text as dictionary arrays (``_coded``)."""
    schema = arrow_schema(table)
    columns = {name: own[name].cast(schema.field(name).type) for name in own.column_names}
    for code_column, (level1, level2) in ROLL_UPS.get(table, {}).items():
        rows = pc.index_in(own[code_column], value_set=codes["code"])
        columns[level1] = codes["level1"].take(rows)
        columns[level2] = codes["level2"].take(rows)
    if "classification_version" in column_names(table):
        columns["classification_version"] = pa.repeat(pa.scalar(version, pa.string()), own.num_rows)
    return pa.table([columns[name] for name in schema.names], schema=schema)


def _read_out(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    query: str,
    values: Mapping[str, object],
    children: pa.Table,
) -> pa.Table:
    """The published table made by ``query``, straight into Arrow: DuckDB never holds it as a table,
    so its rows are not held twice. The spells take their ``CHILD_COLUMNS`` from ``children`` (row i
    is child i + 1) and keep ``child_id`` (later statements join on it)."""
    if table not in UNIQUE_LEADING_COLUMNS:
        sql = _final_select(table, query)
        return _published(connection.sql(sql, params=_parameters(sql, values)).to_arrow_table(), table)
    return _spells(connection, table, query, values, children)


def _spells(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    query: str,
    values: Mapping[str, object],
    children: pa.Table,
) -> pa.Table:
    """The spells, in their published order, with their children's
    ``CHILD_COLUMNS`` taken by child_id: moving a child's texts through DuckDB's joins and out into
    Arrow cost more than taking them here (as dictionary codes where the episodes have them; the
    child key, then a code into the episodes' keys, is decoded by ``_with_roll_ups``).

    The statements read the spells' own values made with the timeline (``timeline._CareSpells``,
    ``_PlacementSpells``), in the order of child_id and the spell numbers (``UNIQUE_LEADING_COLUMNS``),
    and DuckDB is told to keep that order (``preserve_insertion_order``) instead of the spells being
    sorted and every column gathered again afterwards (about 0.6 CPU-s at 5M rows).
    """
    sql = _final_select(table, query)
    connection.execute("SET preserve_insertion_order = true")
    try:
        result = connection.sql(sql, params=_parameters(sql, values)).to_arrow_table()
    finally:
        connection.execute("SET preserve_insertion_order = false")
    spells = {name: _held(name, result[name]) for name in result.column_names}
    del result
    child_rows = pc.subtract(spells["child_id"], 1)
    for name in CHILD_COLUMNS:
        spells[name] = _coded(name, children[name]).take(child_rows)
    return _published(pa.table(spells), table)


def _held(name: str, column: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A column of the spells as read out, as held while the statistics run: text encoded
    (``_coded``), any other column copied into an array of its own. DuckDB's Arrow result keeps
    more memory resident than its size while it is held (measured at 5M rows, the statistics' peak:
    1.83 GB with the spells' columns held as read out, 1.56 GB with them copied, as the sort's
    gather used to copy them; the copy costs no measurable CPU)."""
    coded = _coded(name, column)
    if coded is not column or column.num_chunks == 0:
        return coded
    return pa.concat_arrays(column.chunks)


def _coded(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A spells column as held while the statistics run: text as a dictionary array, except the child
    key (a value per child). Later statements scan, join and group the codes as integers (measured
    at 1M: stock, transitions, pathways about 0.1 CPU-s less), the sort takes integers instead of
    text, and the held spells are smaller; ``_with_roll_ups`` gives the published text back."""
    if name == "child_key" or not pa.types.is_string(column.type):
        return column
    return pc.dictionary_encode(column)


def _published(result: pa.Table, table: str) -> pa.Table:
    """The published types of the table's own columns (and ``child_id``, when the result has it); a
    dictionary column (``_coded``) keeps its dictionary over the published type."""
    schema = arrow_schema(table)
    own = pa.schema(
        [_as_held(schema.field(name), result.schema.field(name).type) for name in _own_columns(table)]
    )
    published = result.select(own.names).cast(own)
    if "child_id" not in result.column_names:
        return published
    return published.append_column("child_id", result["child_id"])


def _as_held(field: pa.Field, held: pa.DataType) -> pa.Field:
    """``field`` as a dictionary over its type when the column is ``held`` as a dictionary."""
    if not pa.types.is_dictionary(held):
        return field
    return field.with_type(pa.dictionary(held.index_type, field.type))


def _make_by_child(
    connection: duckdb.DuckDBPyConnection,
    table: str,
    query: str,
    values: Mapping[str, object],
    children: Sequence[tuple[int, int]],
) -> None:
    """An internal table made by ``query`` for each range of ``children`` in turn (the first range
    creates it, the others add their rows), so that each range's working memory is released before
    the next. ``table`` is a name from the project's own SQL files."""
    for i, (first, last) in enumerate(children):
        sql = f'CREATE TABLE "{table}" AS {query}' if i == 0 else f'INSERT INTO "{table}" {query}'
        connection.execute(sql, _parameters(sql, {**values, "first_child": first, "last_child": last}))


def _child_ranges(children: int, rows: int) -> list[tuple[int, int]]:
    """Consecutive ranges of child_id (1 to ``children``), one per ROWS_PER_CHILD_RANGE timeline rows,
    at most CHILD_RANGES; always one range at least."""
    parts = max(1, min(CHILD_RANGES, -(-rows // ROWS_PER_CHILD_RANGE), children))
    bounds = [children * i // parts for i in range(parts + 1)]
    return [(first + 1, last) for first, last in pairwise(bounds)]


def compute_statistics(
    episodes: pd.DataFrame | pa.Table,
    periods: pd.DataFrame,
    classification: Classification,
    settings: StatisticsSettings,
    care_spell_gap_days: Mapping[str, int],
    on_statement: Callable[[str, Callable[[], object]], object] | None = None,
    population: pa.Table | None = None,
    on_table: Callable[[str, pa.Table], object] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, pa.Table]:
    """Every statistics table for the given episodes and reporting periods, as Arrow tables.

    ``periods`` has one row per source, area and reporting period (``reporting_periods``);
    ``care_spell_gap_days`` gives each source's tolerance for chaining episodes into a care spell.
    ``on_statement(name, run)``, when given, is called to run each SQL file (profiling hooks in).
    ``population`` (``icare.population.Population.table``, checked) gives the rates' denominators;
    without it the ``population`` and ``rates`` tables are empty. ``on_table(name, table)``, when
    given, is called with each published table as soon as it is made (the same table as returned),
    so that ``icare run`` writes the large spells while the later statements run. ``progress(message)``,
    when given, is told of each step as it starts ("statistics: stock (9/21) ..."), so that a long
    statistics step shows where it is.
    """
    run_statement = reporting(on_statement or (lambda _name, run: run()), progress, _statements())
    values: dict[str, object] = {
        "temporary_purpose": settings.temporary_move_purpose,
        "resolve_temporary": settings.resolve_temporary_moves,
        "re_entry_months": settings.re_entry_months,
        "rare_threshold": settings.rare_pathway_threshold,
        "classification_version": classification.version_id,
        "population_year_offset": settings.population_year_offset,
        "not_stated": _not_stated_code(classification),
        "total": TOTAL,
        "child_ages_band": UNDER_18,
    }
    population = _population_arrow(population, settings, classification)
    episodes, children = number_children(_episodes_arrow(episodes))
    connection = duckdb.connect()
    codes, version = _codes(classification), classification.version_id
    published: dict[str, pa.Table] = {}
    try:
        connection.execute("SET preserve_insertion_order = false")
        connection.register("episodes_in", episodes)
        connection.register("periods", _periods_arrow(periods))
        connection.register(
            "source_rules",
            pa.table(
                {
                    "source": pa.array(list(care_spell_gap_days), pa.string()),
                    "care_spell_gap_days": pa.array(list(care_spell_gap_days.values()), pa.int64()),
                }
            ),
        )
        connection.register("codes", _codes(classification))
        connection.register("population_in", population)
        connection.register("age_lookup", _age_lookup(settings))
        connection.register("pathway_levels", _pathway_levels(settings))
        connection.register(
            "move_types", pa.table({"new_episode_type": pa.array(settings.placement_move_types, pa.string())})
        )
        statements = _statements()
        timeline_readers = [i for i, (_name, sql) in enumerate(statements) if _TIMELINE.search(sql)]
        ranges: list[tuple[int, int]] = []
        for i, (name, sql) in enumerate(statements):
            if name == TIMELINE_SQL:
                ranges = _register_timeline_steps(connection, episodes, values, run_statement)
            made = _CREATE_TABLE.search(sql)
            table, query = (made.group(1), sql[made.end() :].strip().rstrip(";")) if made else ("", sql)
            if table in STATISTICS_TABLES:
                # Published: read out as soon as made, and read by later statements from that copy.
                read = run_statement(
                    name,
                    lambda t=table, q=query: _read_out(connection, t, q, values, children),
                )
                connection.register(table, read)
                published[table] = _with_roll_ups(table, read.select(_own_columns(table)), codes, version)
                if on_table is not None:
                    on_table(table, published[table])
            elif made and _BY_CHILD in sql:
                run_statement(
                    name, lambda t=table, q=query, r=ranges: _make_by_child(connection, t, q, values, r)
                )
            else:
                run_statement(name, lambda sql=sql: connection.execute(sql, _parameters(sql, values)))
            for steps in SPELL_STEPS:
                if steps in sql:  # its one reader has run
                    connection.unregister(steps)
            if i == timeline_readers[-1]:
                # The timeline is not published: dropped once its last reader has run.
                connection.execute("DROP VIEW timeline")
                connection.unregister("timeline_steps")
            if table in UNIQUE_LEADING_COLUMNS:
                _return_memory(connection)  # the largest statements: their threads' memory
    finally:
        connection.close()
    return {table: published[table] for table in STATISTICS_TABLES}


def _register_timeline_steps(
    connection: duckdb.DuckDBPyConnection,
    episodes: pa.Table,
    values: Mapping[str, object],
    run_statement: Callable[[str, Callable[[], object]], object],
) -> list[tuple[int, int]]:
    """The per-child steps of the timeline, computed in numpy (``timeline.py``: one sort instead of a
    chain of SQL windows), as the Arrow table ``timeline_steps`` that ``01_timeline.sql`` reads, and
    each care spell's and placement spell's own values and each care spell's steps as ``SPELL_STEPS``
    (``02_care_spells.sql``, ``03_placement_spells.sql``, ``15_pathway_steps.sql``); and the ranges
    of children the per-child statements are made for (``_child_ranges``).

    The connection holds the only references, so unregistering them frees the memory.
    """
    steps, *spells = run_statement(
        "timeline steps (numpy)", lambda: timeline_steps(connection, episodes, values)
    )
    _return_memory(connection)
    connection.register("timeline_steps", steps)
    for name, table in zip(SPELL_STEPS, spells, strict=True):
        connection.register(name, table)
    children = pc.max(steps["child_id"]).as_py() or 0
    return _child_ranges(children, steps.num_rows)


def _return_memory(connection: duckdb.DuckDBPyConnection) -> None:
    """Free what DuckDB's worker threads hold after a large step, so that it is not held through the
    next (the statistics' peak is what is held plus the largest statement's working memory).

    DuckDB's worker threads keep memory they used until they stop (dropping a table does not return
    it; measured: about 60 MB after a DISTINCT over the children at 1M), so they are restarted
    (``threads`` back to its default). A restart costs CPU (the next statement's memory is faulted
    in again: restarting after every statement cost about 0.3 CPU-s at 1M), so it is done after the
    timeline and the spells only.
    """
    connection.execute("SET threads = 1")
    connection.execute("RESET threads")


def _population_arrow(
    population: pa.Table | None, settings: StatisticsSettings, classification: Classification
) -> pa.Table:
    """The denominators as the rates SQL reads them; settings that rates cannot honour stop here."""
    from icare.population import ARROW_SCHEMA  # icare.population imports the settings module

    if population is None or population.num_rows == 0:
        return ARROW_SCHEMA.empty_table()
    rate_age_bands(settings)  # raises on a band holding both 17 and 18, or one named "total"
    if TOTAL in classification.codes():
        raise ValueError(f"{classification.version_id} has a code {TOTAL!r}, the marker of the rates' totals")
    return population.select(ARROW_SCHEMA.names).cast(ARROW_SCHEMA)


def _episodes_arrow(episodes: pd.DataFrame | pa.Table) -> pa.Table:
    """The columns the statistics read, plus ``episode_row`` (the row's position): the timeline sorts
    narrow rows and takes the other columns by it."""
    if isinstance(episodes, pd.DataFrame):
        episodes = pa.Table.from_pandas(episodes[list(EPISODE_COLUMNS)], preserve_index=False)
    else:
        episodes = episodes.select(list(EPISODE_COLUMNS))
    return episodes.append_column("episode_row", pa.array(np.arange(episodes.num_rows, dtype=np.int64)))


def _periods_arrow(periods: pd.DataFrame) -> pa.Table:
    return pa.table(
        {
            "source": pa.array(periods["source"].tolist(), pa.string()),
            "area_code": pa.array(
                periods["area_code"].astype(object).where(periods["area_code"].notna(), None).tolist(),
                pa.string(),
            ),
            "period_start": pa.array(pd.to_datetime(periods["period_start"]).dt.date.tolist(), pa.date32()),
            "period_end": pa.array(pd.to_datetime(periods["period_end"]).dt.date.tolist(), pa.date32()),
        }
    )
