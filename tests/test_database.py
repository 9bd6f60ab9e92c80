"""icare.duckdb as analysts meet it: readable by DuckDB 1.1, commented, ordered, labelled, and every
SQL example of the README and docs/ running on the database of the bundled sample (docs/database.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from icare.database_views import sql_name, sql_text
from icare.pipeline import RunOptions, bundled_samples, run
from icare.pseudonymise import KEY_ENVIRONMENT_VARIABLE
from schemas.outputs import CONF_STATUS, RELEASE_TABLES, TABLE_DESCRIPTIONS, TABLES
from tests.builders import episode, header, write_return
from tests.conftest import run_with_test_key

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SQL_BLOCK = re.compile(r"^```sql\n(.*?)^```", re.MULTILINE | re.DOTALL)
# The oldest DuckDB that must open icare.duckdb, installed on first use into a git-ignored folder.
OLD_DUCKDB = "1.1.3"
OLD_DUCKDB_DIR = ROOT / ".test-cache" / f"duckdb-{OLD_DUCKDB}"


def _open(path: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(path), read_only=True)


@pytest.fixture(scope="module")
def sample_database(tmp_path_factory) -> Path:
    """The database ``icare run`` writes from the bundled sample (it needs no key)."""
    output = tmp_path_factory.mktemp("sample") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(KEY_ENVIRONMENT_VARIABLE, raising=False)
        run(RunOptions(bundled_samples(), output))
    return output / "icare.duckdb"


@pytest.fixture(scope="module")
def crafted_database(tmp_path_factory) -> Path:
    """Two children: one entering aged 2 (band 1-4) and leaving to adoption, one entering under 1."""
    tmp_path = tmp_path_factory.mktemp("crafted")
    root = tmp_path / "in"
    write_return(
        root,
        2024,
        headers=[header("1", dob="15/03/2021"), header("2", sex="2", dob="01/12/2023")],
        episodes=[
            episode("1", "01/05/2023", dec="01/06/2023", rec="E11"),
            episode("2", "02/02/2024", place="U1"),
        ],
    )
    run_with_test_key(root, tmp_path / "out")
    return tmp_path / "out" / "icare.duckdb"


def _comments(connection, schema: str, table: str) -> tuple[str | None, dict[str, str | None]]:
    (table_comment,) = connection.execute(
        "SELECT comment FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [schema, table]
    ).fetchone()
    columns = connection.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    return table_comment, dict(columns)


def test_every_table_and_column_carries_its_schema_description(crafted_database):
    with _open(crafted_database) as db:
        for table, columns in TABLES.items():
            table_comment, column_comments = _comments(db, "main", table)
            assert table_comment == TABLE_DESCRIPTIONS[table], table
            for column in columns:
                expected = column.description
                if column.allowed:
                    expected += f" (one of {', '.join(column.allowed)})"
                assert column_comments[column.name] == expected, (table, column.name)
        for table, columns in RELEASE_TABLES.items():
            table_comment, column_comments = _comments(db, "release", table)
            assert table_comment
            assert set(column_comments) == {c.name for c in columns}
            assert all(column_comments.values()), table
        # A description with a quote in it arrives whole (the children table's: "child's latest").
        assert "child's latest header row" in _comments(db, "main", "children")[0]
        _, dictionary = _comments(db, "main", "data_dictionary")
        assert all(dictionary.values())


def test_sql_text_doubles_quotes_and_keeps_everything_else():
    assert sql_text("child's") == "'child''s'"
    assert sql_text("a\\'b") == "'a\\''b'"  # a backslash is no escape in DuckDB
    assert sql_name('odd"name') == '"odd""name"'
    with duckdb.connect() as db:
        text = "it's; DROP TABLE x; -- \\ \" ''"
        assert db.execute(f"SELECT {sql_text(text)}").fetchone()[0] == text


def test_age_band_is_ordered_by_age_in_every_table(crafted_database):
    with _open(crafted_database) as db:
        (settings,) = db.execute("SELECT statistics_settings FROM runs").fetchone()
        bands = [b["band"] for b in json.loads(settings)["age_bands"]]
        assert bands[:2] == ["under 1", "1-4"]
        types = db.execute(
            "SELECT schema_name, table_name, data_type FROM duckdb_columns() "
            "WHERE column_name = 'age_band' AND NOT internal"
        ).fetchall()
        ordered = [*bands[:5], "under 18", *bands[5:], "unknown", "total"]  # under 18 after 16-17
        expected = "ENUM(" + ", ".join(f"'{b}'" for b in ordered) + ")"
        assert {t for _, _, t in types} == {expected}
        tables = {(s, t) for s, t, _ in types}
        assert ("main", "stock") in tables and ("release", "entries") in tables
        assert ("main", "entries_labelled") in tables  # the views carry the type along
        # Child 2 entered aged 0 and child 1 aged 2: "under 1" sorts first although "1-4" < "under 1".
        entries = db.execute("SELECT age_band, children FROM entries ORDER BY age_band").fetchall()
        assert entries == [("under 1", 1), ("1-4", 1)]


def test_label_views_put_each_label_beside_its_code(crafted_database):
    with _open(crafted_database) as db:
        views = {
            (s, v)
            for s, v in db.execute(
                "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        }
        for name in ("episodes", "stock", "entries", "exits", "care_spells", "rates"):
            assert ("main", f"{name}_labelled") in views, name
        assert ("release", "exits_labelled") in views
        columns = [
            c
            for (c,) in db.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' "
                "AND table_name = 'exits_labelled' ORDER BY column_index"
            ).fetchall()
        ]
        at = columns.index("exit_destination")
        assert columns[at + 1] == "exit_destination_label"
        assert columns[columns.index("icare_level1") + 1] == "icare_level1_label"
        exit_row = db.execute(
            "SELECT icare_level1, icare_level1_label, exit_destination, exit_destination_label, children "
            "FROM exits_labelled"
        ).fetchall()
        (level1_label,) = db.execute("SELECT label FROM icare_classification WHERE code = 'AC.F'").fetchone()
        (adoption,) = db.execute(
            "SELECT label FROM icare_dimensions WHERE dimension = 'exit_destination' AND code = 'adoption'"
        ).fetchone()
        assert exit_row == [("AC.F", level1_label, "adoption", adoption, 1)]
        # A view has exactly its table's rows (no label join duplicates a row).
        for name in ("episodes", "stock", "entries", "transitions"):  # no population: no rates
            counts = db.execute(
                f"SELECT (SELECT count(*) FROM {name}), (SELECT count(*) FROM {name}_labelled)"
            )
            table_rows, view_rows = counts.fetchone()
            assert table_rows == view_rows > 0, name
        missing = db.execute(
            "SELECT count(*) FROM episodes_labelled WHERE icare_code_label IS NULL "
            "OR icare_level1_label IS NULL OR (legal_basis IS NOT NULL AND legal_basis_label IS NULL)"
        ).fetchone()[0]
        assert missing == 0


def test_database_is_written_in_the_storage_format_of_duckdb_1_1(crafted_database):
    with _open(crafted_database) as db:
        tags = db.execute("SELECT tags FROM duckdb_databases() WHERE database_name = current_database()")
        assert tags.fetchone()[0]["storage_version"].startswith("v1.")


@pytest.fixture(scope="session")
def old_duckdb() -> Path:
    """A folder holding DuckDB 1.1 for Python, installed once (pip, from PyPI) and kept between runs."""
    if not (OLD_DUCKDB_DIR / "duckdb").is_dir():
        staging = OLD_DUCKDB_DIR.with_name(OLD_DUCKDB_DIR.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:"]
        try:
            done = subprocess.run(
                [*command, "--target", str(staging), f"duckdb=={OLD_DUCKDB}"],
                capture_output=True,
                text=True,
                timeout=300,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            pytest.skip(f"DuckDB {OLD_DUCKDB} could not be installed to test old readers: {error}")
        if done.returncode != 0:
            pytest.skip(
                f"DuckDB {OLD_DUCKDB} could not be installed to test old readers: {done.stderr[-500:]}"
            )
        try:
            staging.rename(OLD_DUCKDB_DIR)
        except OSError:  # another test session installed it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return OLD_DUCKDB_DIR


OLD_READER = """
import json, sys
import duckdb
with duckdb.connect(sys.argv[1], read_only=True) as db:
    tables = db.execute("SELECT schema_name, table_name, comment FROM duckdb_tables()").fetchall()
    count = 'SELECT count(*) FROM "{}"."{}"'
    counts = {f"{s}.{t}": db.execute(count.format(s, t)).fetchone()[0] for s, t, _ in tables}
    print(json.dumps({
        "version": duckdb.__version__,
        "counts": counts,
        "comments": {f"{s}.{t}": c for s, t, c in tables},
        "stock_labelled": db.execute("SELECT count(*) FROM stock_labelled").fetchone()[0],
        "bands": [b for (b,) in db.execute("SELECT DISTINCT age_band FROM stock ORDER BY 1").fetchall()],
    }))
"""


@pytest.mark.slow
def test_duckdb_1_1_opens_the_database_of_the_bundled_sample(sample_database, old_duckdb):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(old_duckdb)}
    done = subprocess.run(
        [sys.executable, "-c", OLD_READER, str(sample_database)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["version"] == OLD_DUCKDB
    with _open(sample_database) as db:
        tables = db.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
        counts = {
            f"{s}.{t}": db.execute(f"SELECT count(*) FROM {sql_name(s)}.{sql_name(t)}").fetchone()[0]
            for s, t in tables
        }
        bands = [b for (b,) in db.execute("SELECT DISTINCT age_band FROM stock ORDER BY age_band").fetchall()]
    assert seen["counts"] == counts
    assert {f"main.{t}" for t in TABLES} <= set(counts)
    assert seen["comments"]["main.stock"] == TABLE_DESCRIPTIONS["stock"]
    assert seen["stock_labelled"] == counts["main.stock"] > 0
    assert seen["bands"] == bands and bands[0] == "under 1"


def _sql_examples() -> list[pytest.param]:
    examples = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for block in SQL_BLOCK.finditer(text):
            line = text[: block.start()].count("\n") + 1
            name = f"{document.relative_to(ROOT)}:{line}"
            examples.append(pytest.param(block.group(1), id=name))
    return examples


@pytest.mark.slow
@pytest.mark.parametrize("sql", _sql_examples())
def test_every_sql_example_in_the_docs_runs_on_the_sample_database(sql, sample_database):
    statements = duckdb.extract_statements(sql)
    assert statements, "an empty ```sql block"
    with _open(sample_database) as db:
        for statement in statements:
            db.execute(statement).fetchall()


def test_only_confidentiality_statuses_are_named_status():
    """``_status`` means the release's confidentiality status (docs/database.md), nothing else."""
    misnamed = [
        (table, c.name)
        for table, columns in [*TABLES.items(), *RELEASE_TABLES.items()]
        for c in columns
        if (c.name == "status" or c.name.endswith("_status")) and c.allowed != CONF_STATUS
    ]
    assert not misnamed
    confidential = [c.name for c in RELEASE_TABLES["pathways"] if c.allowed == CONF_STATUS]
    assert confidential == ["spells_status", "spells_in_rare_pathways_status"]
    assert "spell_state" in [c.name for c in TABLES["pathways"]]
