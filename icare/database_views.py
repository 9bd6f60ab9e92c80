"""Conveniences for analysts inside ``icare.duckdb``: comments, ordered age bands and label views.

Comments are added to each table as it is loaded, the rest once every table is loaded (``publish``).
All of it is derived from ``schemas.outputs`` and the loaded classification, not from a list kept
here: a table added to ``TABLES`` gets its comments, its ordered ``age_band`` and, when it has ICare codes or
dimension codes, its ``<table>_labelled`` view without a change to this module (docs/database.md).

DuckDB's ``COMMENT ON`` and ``CREATE VIEW`` take no bound parameters (a view has no parameters, and
``COMMENT ON ... IS ?`` is a syntax error), so the few texts they need are written as SQL string
literals by ``sql_text``, which doubles every single quote (the only character that ends a DuckDB
string literal; backslashes are not escapes), and names by ``sql_name``, which doubles double quotes.
Everything written so comes from ``schemas.outputs`` or from the loaded tables, and every data value
that a query compares is bound as a parameter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from schemas.outputs import (
    RELEASE_DESCRIPTIONS,
    RELEASE_SCHEMA,
    RELEASE_TABLES,
    TABLE_DESCRIPTIONS,
    TABLES,
    UNDER_18,
)

MAIN_SCHEMA = "main"
# The ordered type of every ``age_band`` column in the database (Parquet keeps plain text).
AGE_BAND_TYPE = "age_band"
# Age band values that are not bands of the settings, in the order they sort after the bands.
UNKNOWN_AGE = "unknown"
TOTAL_AGE = "total"
LABELLED_SUFFIX = "_labelled"
LABEL_SUFFIX = "_label"
# Columns holding an ICare code (of the classification in ``icare_classification``): the code, its
# ancestors at each level, at the start or end of a spell, and before or after a transition.
ICARE_CODE_COLUMN = re.compile(
    r"^(icare_code|icare_level\d+|from_code|from_level\d+|to_code|to_level\d+)(_start|_end)?$"
)
# ``transitions.to_code`` of an exit is the exit destination, not an ICare category.
EXIT_DESTINATION = "exit_destination"
# Tables that already are code lists, or list codes of other columns: no label view.
NOT_LABELLED = frozenset({"icare_classification", "icare_dimensions", "concordance", "data_dictionary"})
DATA_DICTIONARY_COLUMNS = {
    "table_name": "published table (release tables as release.<table>)",
    "column_name": "column of the table",
    "type": "Arrow type as published in Parquet (age_band is an ordered ENUM in DuckDB)",
    "nullable": "the column may be empty",
    "description": "what the column holds",
}


def sql_text(text: str) -> str:
    """``text`` as a DuckDB string literal (single quotes doubled), for statements without parameters."""
    return "'" + text.replace("'", "''") + "'"


def sql_name(name: str) -> str:
    """``name`` as a quoted DuckDB identifier (double quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def comment_table(
    connection: duckdb.DuckDBPyConnection, schema: str, table: str, data_dictionary_description: str
) -> None:
    """``COMMENT ON`` a loaded table and its columns, in one transaction.

    Run by the writer thread that loaded the table, so the comments (some 900 catalog changes,
    about 0.6 s together) are written while the run goes on rather than at its end."""
    if (schema, table) == (MAIN_SCHEMA, "data_dictionary"):
        description, texts = data_dictionary_description, DATA_DICTIONARY_COLUMNS
    else:
        description, texts = _descriptions(schema, table)
    with _transaction(connection):
        _comment(connection, "TABLE", schema, table, description, list(texts), texts)


def add_conveniences(connection: duckdb.DuckDBPyConnection) -> None:
    """Ordered age bands and the commented label views, once every table is loaded, in one transaction."""
    with _transaction(connection):
        tables = _loaded_tables(connection)
        order_age_bands(connection, tables)
        views = add_label_views(connection, tables)
        comment_views(connection, views)


@contextmanager
def _transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    connection.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _loaded_tables(connection: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], list[str]]:
    """(schema, table) -> its columns in order, for every table in the database."""
    rows = connection.execute(
        "SELECT c.schema_name, c.table_name, c.column_name FROM duckdb_columns() AS c "
        "JOIN duckdb_tables() AS t USING (database_name, schema_name, table_name) "
        "WHERE NOT c.internal AND database_name = current_database() "
        "ORDER BY c.schema_name, c.table_name, c.column_index"
    ).fetchall()
    tables: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in rows:
        tables.setdefault((schema, table), []).append(column)
    return tables


def age_band_order(
    connection: duckdb.DuckDBPyConnection, tables: dict[tuple[str, str], list[str]]
) -> list[str]:
    """The values of the ``age_band`` type, in age order.

    The bands of the run's statistics settings in their order (``runs.statistics_settings``), then
    ``unknown``, then ``total`` (the rates' total over ages), with ``under 18`` (the release's total
    of the bands inside 0-17) after those bands, present or not, so the type is the
    same for every run with the same settings; a value of none of these kinds (none today) follows
    in text order rather than failing the run."""
    values: set[str] = set()
    for (schema, table), columns in tables.items():
        if "age_band" in columns:
            qualified = f"{sql_name(schema)}.{sql_name(table)}"
            found = connection.execute(
                f"SELECT DISTINCT age_band FROM {qualified} WHERE age_band IS NOT NULL"
            )
            values.update(str(v) for (v,) in found.fetchall())
    bands: list[str] = []
    children = 0  # the bands inside ages 0-17 come first: `under 18` (release totals) follows them
    if (MAIN_SCHEMA, "runs") in tables:
        for (settings,) in connection.execute("SELECT statistics_settings FROM runs").fetchall():
            for band in json.loads(settings).get("age_bands", []):
                if band["band"] not in bands:
                    bands.append(band["band"])
                    last = band.get("last_age")
                    children += last is not None and last <= 17
    known = [*bands[:children], UNDER_18, *bands[children:], UNKNOWN_AGE, TOTAL_AGE]
    return known + sorted(values - set(known))


def order_age_bands(connection: duckdb.DuckDBPyConnection, tables: dict[tuple[str, str], list[str]]) -> None:
    """Every ``age_band`` column as the ENUM ``age_band``, so ``ORDER BY age_band`` is in age order.

    Only aggregate tables have the column, so changing its type rewrites little."""
    values = ", ".join(sql_text(v) for v in age_band_order(connection, tables))
    connection.execute(f"CREATE TYPE {sql_name(AGE_BAND_TYPE)} AS ENUM ({values})")
    for (schema, table), columns in tables.items():
        if "age_band" in columns:
            connection.execute(
                f"ALTER TABLE {sql_name(schema)}.{sql_name(table)} ALTER age_band "
                f"SET DATA TYPE {sql_name(MAIN_SCHEMA)}.{sql_name(AGE_BAND_TYPE)}"
            )


def add_label_views(
    connection: duckdb.DuckDBPyConnection, tables: dict[tuple[str, str], list[str]]
) -> dict[tuple[str, str], tuple[str, list[str]]]:
    """``<table>_labelled`` beside every table with codes to label; returns view -> (table, labels).

    Each code column is followed by ``<column>_label``: the ICare label for an ICare code (at every
    level), the label of the dimension of the same name for a dimension code (``exit_destination``,
    ``provider_sector``, ``legal_basis``, ...). The labels are those of the row's classification
    version; a code without a label (``total``, ``out_of_care``) has an empty label."""
    if (MAIN_SCHEMA, "icare_classification") not in tables or (MAIN_SCHEMA, "icare_dimensions") not in tables:
        return {}
    dimensions = {
        d for (d,) in connection.execute("SELECT DISTINCT dimension FROM icare_dimensions").fetchall()
    }
    views: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for (schema, table), columns in tables.items():
        if table in NOT_LABELLED or table.endswith(LABELLED_SUFFIX):
            continue
        sql, labels = _label_view_sql(schema, table, columns, dimensions)
        if labels:
            view = table + LABELLED_SUFFIX
            connection.execute(f"CREATE VIEW {sql_name(schema)}.{sql_name(view)} AS {sql}")
            views[(schema, view)] = (table, labels)
    return views


def _label_view_sql(
    schema: str, table: str, columns: list[str], dimensions: set[str]
) -> tuple[str, list[str]]:
    versioned = "classification_version" in columns
    classification = f"{sql_name(MAIN_SCHEMA)}.icare_classification"
    dimension_table = f"{sql_name(MAIN_SCHEMA)}.icare_dimensions"
    selected, joins, labels = [], [], []
    for column in columns:
        selected.append(f"t.{sql_name(column)}")
        alias = f"l{len(joins)}"
        same_version = f" AND {alias}.classification_version = t.classification_version" if versioned else ""
        on_code = f"{alias}.code = t.{sql_name(column)}{same_version}"
        if ICARE_CODE_COLUMN.match(column):
            joins.append(f"LEFT JOIN {classification} AS {alias} ON {on_code}")
            label = f"{alias}.label"
            if column == "to_code" and EXIT_DESTINATION in dimensions:
                exit_alias = f"l{len(joins)}"
                exit_version = (
                    f" AND {exit_alias}.classification_version = t.classification_version"
                    if versioned
                    else ""
                )
                joins.append(
                    f"LEFT JOIN {dimension_table} AS {exit_alias} ON {exit_alias}.dimension = "
                    f"{sql_text(EXIT_DESTINATION)} AND {exit_alias}.code = t.{sql_name(column)}{exit_version}"
                )
                label = f"coalesce({label}, {exit_alias}.label)"
        elif column in dimensions:
            same_dimension = f"{alias}.dimension = {sql_text(column)}"
            joins.append(f"LEFT JOIN {dimension_table} AS {alias} ON {same_dimension} AND {on_code}")
            label = f"{alias}.label"
        else:
            continue
        selected.append(f"{label} AS {sql_name(column + LABEL_SUFFIX)}")
        labels.append(column)
    sql = f"SELECT {', '.join(selected)} FROM {sql_name(schema)}.{sql_name(table)} AS t {' '.join(joins)}"
    return sql, labels


def _descriptions(schema: str, table: str) -> tuple[str | None, dict[str, str]]:
    """A table's description and its columns' from ``schemas.outputs``."""
    if schema == RELEASE_SCHEMA and table in RELEASE_TABLES:
        return RELEASE_DESCRIPTIONS.get(table), {c.name: _column_text(c) for c in RELEASE_TABLES[table]}
    if schema == MAIN_SCHEMA and table in TABLES:
        return TABLE_DESCRIPTIONS.get(table), {c.name: _column_text(c) for c in TABLES[table]}
    return None, {}


def _column_text(column) -> str:
    if column.allowed:
        return f"{column.description} (one of {', '.join(column.allowed)})"
    return column.description


def comment_views(
    connection: duckdb.DuckDBPyConnection, views: dict[tuple[str, str], tuple[str, list[str]]]
) -> None:
    """``COMMENT ON`` each label view and its label columns (the other columns are described on the
    table, ``comment_table``: repeating some 400 comments would add a quarter of a second to the end
    of every run)."""
    for (schema, view), (table, labels) in views.items():
        description, _ = _descriptions(schema, table)
        texts = {
            c + LABEL_SUFFIX: f"label of {c} (from icare_classification or icare_dimensions)" for c in labels
        }
        about = f"{table} with the label of each code beside it ({description or table})"
        _comment(connection, "VIEW", schema, view, about, list(texts), texts)


def _comment(
    connection: duckdb.DuckDBPyConnection,
    kind: str,
    schema: str,
    name: str,
    description: str | None,
    columns: list[str],
    texts: dict[str, str],
) -> None:
    qualified = f"{sql_name(schema)}.{sql_name(name)}"
    if description:
        connection.execute(f"COMMENT ON {kind} {qualified} IS {sql_text(description)}")
    for column in columns:
        if column in texts:
            connection.execute(
                f"COMMENT ON COLUMN {qualified}.{sql_name(column)} IS {sql_text(texts[column])}"
            )
