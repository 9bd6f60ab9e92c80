"""The installed ``icare`` command end to end: the bundled sample, own data, and unusable input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from icare.pseudonymise import KEY_ENVIRONMENT_VARIABLE
from tests.builders import episode, header, write_csv, write_return
from tests.conftest import TEST_KEY

ICARE = str(Path(sys.executable).with_name("icare"))


def icare(*args: str, key: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != KEY_ENVIRONMENT_VARIABLE}
    if key:
        env[KEY_ENVIRONMENT_VARIABLE] = key
    return subprocess.run([ICARE, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.slow
def test_run_on_the_bundled_sample_writes_every_output(tmp_path):
    done = icare("run", "--output", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "rows read" in done.stdout and "accepted" in done.stdout and "quarantined" in done.stdout
    assert "Episodes by ICare level-1 category" in done.stdout
    assert "AC.F" in done.stdout
    assert "read and validate" in done.stderr  # progress goes to stderr
    with duckdb.connect(str(tmp_path / "out" / "icare.duckdb"), read_only=True) as db:
        episodes = db.execute("SELECT count(*) FROM episodes").fetchone()[0]
        read, accepted, quarantined, superseded, other = db.execute(
            "SELECT sum(rows_read), sum(rows_accepted), sum(rows_quarantined), sum(rows_superseded), "
            "sum(rows_not_harmonised) FROM reconciliation"
        ).fetchone()
        development = db.execute("SELECT development_key FROM runs").fetchone()[0]
    assert episodes > 0
    assert read == accepted + quarantined + superseded + other
    assert f"{episodes:,} episodes" in done.stdout
    assert development is True


def test_own_data_without_a_key_stops_with_a_clear_message(tmp_path):
    write_return(tmp_path / "in", 2024, headers=[header("1")], episodes=[episode("1", "01/05/2023")])
    done = icare("run", "--source", f"ssda903={tmp_path / 'in'}", "--output", str(tmp_path / "out"))
    assert done.returncode == 2
    assert KEY_ENVIRONMENT_VARIABLE in done.stderr
    assert not (tmp_path / "out" / "icare.duckdb").exists()


def test_own_data_with_a_key(tmp_path):
    write_return(tmp_path / "in", 2024, headers=[header("1")], episodes=[episode("1", "01/05/2023")])
    done = icare(
        "run",
        "--quiet",
        "--source",
        f"ssda903={tmp_path / 'in'}",
        "--output",
        str(tmp_path / "o"),
        key=TEST_KEY,
    )
    assert done.returncode == 0, done.stderr
    assert "1 episodes of 1 children" in done.stdout
    assert done.stderr == ""


def test_missing_folder(tmp_path):
    done = icare("run", "--source", f"ssda903={tmp_path / 'nowhere'}", key=TEST_KEY, cwd=tmp_path)
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_no_recognisable_table(tmp_path):
    write_csv(tmp_path / "in" / "2024" / "notes.csv", ["A"], [{"A": "x"}])
    done = icare("run", "--source", f"ssda903={tmp_path / 'in'}", key=TEST_KEY, cwd=tmp_path)
    assert done.returncode == 2
    assert "no recognisable table" in done.stderr and "CHILD" in done.stderr


def test_unknown_source_and_malformed_option(tmp_path):
    done = icare("run", "--source", "afcars=x", key=TEST_KEY, cwd=tmp_path)
    assert done.returncode == 2
    assert "icare: error: unknown source 'afcars' (known sources: ssda903)\n" in done.stderr  # no quotes
    done = icare("run", "--source", "ssda903", key=TEST_KEY, cwd=tmp_path)
    assert done.returncode == 2 and "NAME=PATH" in done.stderr


class _Exited(Exception):
    """Stands in for ``os._exit``, which would end the test process."""


@pytest.mark.parametrize(
    ("ending", "code", "printed"),
    [(lambda: None, 0, ""), (lambda: sys.exit(2), 2, ""), (lambda: sys.exit("stopped"), 1, "stopped\n")],
)
def test_the_command_exits_with_mains_code_and_flushed_output(monkeypatch, capsys, ending, code, printed):
    from icare import cli

    def fake_exit(status: int) -> None:
        raise _Exited(status)

    def fake_main() -> None:
        print("summary")
        ending()

    monkeypatch.setattr(cli, "main", fake_main)
    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    with pytest.raises(_Exited) as exited:
        cli.console()
    assert exited.value.args == (code,)
    out, err = capsys.readouterr()
    assert out == "summary\n"
    assert err == printed
