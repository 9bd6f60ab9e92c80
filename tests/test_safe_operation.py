"""Safe operation (issue 14, item 10): one run at a time per output folder, the folder checked before
any input is read, a refusing storage or Ctrl-C ending in one line with the previous outputs intact,
a killed run's left-overs cleared, progress from the statistics, and no key made of white space."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from icare import output_folder, pipeline, publish
from icare.cli import INTERRUPTED_MESSAGE, main
from icare.output_folder import (
    LOCK_FILE,
    OutputLockedError,
    OutputWriteError,
    clear_leftovers,
    storage_reason,
    writing,
)
from icare.pipeline import RunOptions
from icare.pseudonymise import KEY_ENVIRONMENT_VARIABLE, MissingKeyError, Pseudonymiser
from icare.statistics import STATISTICS_TABLES
from tests.builders import episode, header, write_return
from tests.conftest import TEST_KEY

OUTPUTS = ["icare.duckdb", "parquet", "release", "run.json"]


@pytest.fixture
def returns(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    write_return(
        root,
        2024,
        headers=[header("1"), header("2", sex="2")],
        episodes=[episode("1", "01/05/2023"), episode("2", "02/02/2024", place="U1")],
    )
    return root


@pytest.fixture
def published(returns: Path, run_on, tmp_path: Path) -> Path:
    """An output folder holding a first run's outputs."""
    out = tmp_path / "out"
    run_on(returns, out)
    return out


def icare_run(returns: Path, out: Path, *more: str, key: str = TEST_KEY):
    """``icare run`` in this process (exit code, standard error)."""
    arguments = ["run", "--quiet", "--source", f"ssda903={returns}", "--output", str(out), *more]
    return CliRunner().invoke(main, arguments, env={KEY_ENVIRONMENT_VARIABLE: key})


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (but the lock file) and its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != LOCK_FILE
    }


def listing(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name != LOCK_FILE)


def assert_released() -> None:
    """No claim left behind by this process (a later test would find the folder locked)."""
    assert output_folder._claims == {}


# 1. One run at a time per output folder


@pytest.fixture
def other_process_lock():
    """Another process holding the lock of a folder, as a running ``icare run`` does."""
    holders: list[subprocess.Popen] = []

    def hold(out: Path) -> subprocess.Popen:
        code = (
            "import fcntl, os, sys\n"
            f"fd = os.open({str(out / LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.ftruncate(fd, 0); os.pwrite(fd, str(os.getpid()).encode(), 0)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
        )
        holder = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        holders.append(holder)
        assert holder.stdout.readline().strip() == "locked"
        return holder

    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


def test_a_second_run_into_a_locked_folder_stops_at_once_touching_nothing(
    returns, published, other_process_lock
):
    leftover = published / ".staging-0123456789abcdef"
    (leftover / "parquet").mkdir(parents=True)  # not cleared: it may be the other run's
    before = snapshot(published)
    holder = other_process_lock(published)

    done = icare_run(returns, published)

    assert done.exit_code == 2
    assert done.stderr == (
        f"icare: error: another icare run is writing to {published} (pid {holder.pid}); nothing was "
        "changed: wait for it to finish, or give another --output\n"
    )
    assert snapshot(published) == before and leftover.is_dir()
    assert_released()


def test_the_lock_of_a_killed_run_does_not_block_the_next(returns, published, other_process_lock):
    holder = other_process_lock(published)
    holder.kill()
    holder.wait()
    assert (published / LOCK_FILE).read_text() == str(holder.pid)  # the file stays; its lock is gone

    done = icare_run(returns, published)

    assert done.exit_code == 0, done.stderr
    assert (published / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert_released()


def test_a_publication_is_refused_while_another_process_or_thread_holds_the_folder(
    tmp_path, other_process_lock
):
    """``StagedOutputs`` (what Dagster's ``publish_outputs`` writes through) claims the folder too."""
    out = tmp_path / "out"
    out.mkdir()
    holder = other_process_lock(out)
    with pytest.raises(OutputLockedError, match=rf"writing to {out} \(pid {holder.pid}\)"):
        publish.StagedOutputs(out, "run", "version").__enter__()
    holder.kill()
    holder.wait()

    claimed, release = threading.Event(), threading.Event()

    def claim() -> None:
        with publish.claim_output(out):
            claimed.set()
            release.wait(30)

    thread = threading.Thread(target=claim)
    thread.start()
    try:
        assert claimed.wait(30)
        with pytest.raises(OutputLockedError, match=rf"\(pid {os.getpid()}\)"):
            publish.StagedOutputs(out, "run", "version").__enter__()
    finally:
        release.set()
        thread.join()
    assert listing(out) == []
    assert_released()


def test_a_run_claims_the_folder_once_for_its_publication_too(returns, tmp_path):
    """``icare run`` holds the folder while its own ``StagedOutputs`` claims it again (same thread)."""
    depths: list[int] = []
    real_enter = publish.StagedOutputs.__enter__

    def entered(staging):
        depths.append(output_folder._claims[(tmp_path / "out").resolve()].depth)
        return real_enter(staging)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(publish.StagedOutputs, "__enter__", entered)
        assert icare_run(returns, tmp_path / "out").exit_code == 0
    assert depths == [1]  # claimed by the run when the publication came
    assert_released()


# 2. The output folder is checked before any input is read


@pytest.fixture
def no_input_read(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("input read before the output folder was checked")

    monkeypatch.setattr(pipeline, "discover_source", refuse)


def test_an_output_folder_that_cannot_be_made_stops_the_run_before_any_input(
    returns, tmp_path, no_input_read
):
    """A regular file where a parent folder should be: refused even to root, unlike permissions."""
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "out"
    done = icare_run(returns, out)
    assert done.exit_code == 2
    assert done.stderr == f"icare: error: cannot create the output folder {out}: Not a directory\n"
    assert_released()


def test_a_read_only_output_folder_stops_the_run_before_any_input(returns, tmp_path, no_input_read):
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        try:
            (out / "probe").touch()
        except PermissionError:
            pass
        else:
            (out / "probe").unlink()
            pytest.skip("permissions do not stop this user (root) writing: nothing to test")
        done = icare_run(returns, out)
    finally:
        out.chmod(0o755)
    assert done.exit_code == 2
    assert done.stderr == f"icare: error: cannot write to the output folder {out}: Permission denied\n"
    assert listing(out) == []


def test_a_folder_that_refuses_the_probe_file_stops_the_run(returns, tmp_path, monkeypatch, no_input_read):
    """A read-only file system, simulated where the probe file is created (works as root too)."""
    real_open = os.open

    def read_only(path, flags, *args):
        if output_folder.PROBE_PREFIX in str(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(output_folder.os, "open", read_only)
    done = icare_run(returns, tmp_path / "out")
    assert done.exit_code == 2
    assert done.stderr == (
        f"icare: error: cannot write to the output folder {tmp_path / 'out'}: Read-only file system\n"
    )
    assert listing(tmp_path / "out") == []


# 3. A storage that refuses a write: one line, exit code 2, previous outputs intact


def refuse_parquet(monkeypatch, table: str, number: int) -> None:
    """Writing ``table``'s Parquet file fails as the storage would (errno ``number``)."""
    real = publish.pq.ParquetWriter

    class Refusing(real):
        def write_table(self, data, *args, **kwargs):
            if Path(self.where).stem == table:
                raise OSError(number, f"Error writing bytes to file. Detail: [errno {number}]")
            return super().write_table(data, *args, **kwargs)

    monkeypatch.setattr(publish.pq, "ParquetWriter", Refusing)


class CheckpointRefused:
    """The staging database's connection, whose checkpoint fails as DuckDB's does on a full disk."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection

    def cursor(self):
        return self.connection.cursor()

    def execute(self, statement: str, *args):
        if statement == "CHECKPOINT":
            raise duckdb.FatalException(
                'FATAL Error: Failed to create checkpoint because of error: Could not write file "x": '
                "No space left on device"
            )
        return self.connection.execute(statement, *args)

    def close(self) -> None:
        self.connection.close()


def refuse_checkpoint(monkeypatch) -> None:
    real = publish._open_database
    monkeypatch.setattr(publish, "_open_database", lambda path: CheckpointRefused(real(path)))


def refuse_swap(monkeypatch) -> None:
    """The file system turns read-only once the previous outputs are moved aside."""
    real = publish.os.replace

    def replace(source, target):
        if output_folder.STAGING_PREFIX in str(source):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(source))
        return real(source, target)

    monkeypatch.setattr(publish.os, "replace", replace)


@pytest.mark.parametrize(
    ("refuse", "what", "reason"),
    [
        (lambda patch: refuse_parquet(patch, "episodes", errno.ENOSPC), "episodes.parquet", "No space"),
        (lambda patch: refuse_parquet(patch, "stock", errno.EACCES), "stock.parquet", "Permission"),
        (refuse_checkpoint, "icare.duckdb", "No space left on device"),
        (refuse_swap, "the outputs into", "Read-only file system"),
    ],
    ids=["parquet-full", "parquet-no-permission", "duckdb-checkpoint-full", "swap-read-only"],
)
def test_a_refused_write_ends_in_one_line_and_leaves_the_previous_outputs(
    returns, published, monkeypatch, refuse, what, reason
):
    before = snapshot(published)
    write_return(returns, 2025, headers=[header("9")], episodes=[episode("9", "01/05/2024")])
    refuse(monkeypatch)

    done = icare_run(returns, published)

    assert done.exit_code == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("icare: error: could not write ") and what in line and reason in line
    assert line.endswith("; the previous outputs are left as they were")
    assert snapshot(published) == before
    assert listing(published) == OUTPUTS  # no staging folder, no .previous-
    assert_released()


def test_other_failures_of_the_writer_stay_failures_of_icare(returns, run_on, tmp_path, monkeypatch):
    """An OSError that is not the storage refusing (here no errno) is not dressed up as one."""
    real = publish.StagedOutputs._load

    def broken(staging, name, table):
        if name == '"children"':
            raise OSError("something else")
        return real(staging, name, table)

    monkeypatch.setattr(publish.StagedOutputs, "_load", broken)
    with pytest.raises(OSError, match="something else") as raised:
        run_on(returns, tmp_path / "out")
    assert not isinstance(raised.value, OutputWriteError)
    assert listing(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OSError(errno.ENOSPC, "whatever the library says"), "No space left on device"),
        (OSError(errno.EDQUOT, "quota"), "Disk quota exceeded"),
        (PermissionError(errno.EPERM, "not allowed"), "Operation not permitted"),
        (duckdb.IOException('IO Error: Could not write "a": Read-only file system'), "Read-only file system"),
        (duckdb.IOException('IO Error: Could not read file "a": No such file or directory'), None),
        (OSError(errno.EIO, "Input/output error"), None),
        (ValueError("No space left on device"), None),  # only OSError and DuckDB's errors are read
    ],
)
def test_storage_reason(error, reason):
    assert storage_reason(error) == reason
    wrapped = RuntimeError("raised while writing")
    wrapped.__cause__ = error
    assert storage_reason(wrapped) == reason


def test_writing_names_what_could_not_be_written():
    expected = r"^could not write x.parquet: No space left on device;"
    with pytest.raises(OutputWriteError, match=expected) as e, writing("x.parquet"):
        raise OSError(errno.ENOSPC, "Error writing bytes")
    assert e.value.__cause__.errno == errno.ENOSPC
    with pytest.raises(KeyError), writing("x.parquet"):
        raise KeyError("not the storage")


def test_a_storage_failure_outside_the_outputs_exits_2(returns, tmp_path, monkeypatch):
    """E.g. DuckDB unable to spill to its temporary folder during the statistics."""

    def full(*args, **kwargs):
        raise duckdb.IOException('IO Error: Could not write file ".tmp/duckdb_temp": No space left on device')

    monkeypatch.setattr(pipeline, "statistics_tables", full)
    done = icare_run(returns, tmp_path / "out")
    assert done.exit_code == 2
    assert done.stderr == (
        'icare: error: IO Error: Could not write file ".tmp/duckdb_temp": No space left on device; '
        "the previous outputs are left as they were\n"
    )


def test_a_failed_swap_into_a_folder_without_outputs_leaves_none(returns, run_on, tmp_path, monkeypatch):
    """The new outputs already moved in go back too, not only those that replaced previous ones: no
    database is left without its Parquet files, run.json or release."""
    real = publish.os.replace

    def replace(source, target):
        if output_folder.STAGING_PREFIX in str(source) and Path(source).name == "release":
            raise OSError(errno.EIO, "Input/output error")
        return real(source, target)

    monkeypatch.setattr(publish.os, "replace", replace)
    with pytest.raises(OSError, match="Input/output error"):
        run_on(returns, tmp_path / "out")
    assert listing(tmp_path / "out") == []


# 4. A killed run's left-overs are cleared by the next run, whatever its input


def test_leftover_staging_folders_are_removed_even_when_the_next_run_fails_on_its_input(published, tmp_path):
    for run_id in ("0123456789abcdef", "fedcba9876543210"):
        (published / f".staging-{run_id}" / "parquet").mkdir(parents=True)
        (published / f".staging-{run_id}" / "icare.duckdb").write_bytes(b"half written")
    (published / ".icare-probe-4242").write_bytes(b"icare")
    before = snapshot(published)

    done = icare_run(tmp_path / "no such folder", published)

    assert done.exit_code == 2
    assert "input folder" in done.stderr
    assert listing(published) == OUTPUTS
    assert snapshot(published) == {k: v for k, v in before.items() if not k.startswith(".")}


def make_outputs(folder: Path, content: str, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name in ("parquet", "release"):
            (folder / name).mkdir()
            (folder / name / "t.parquet").write_text(content)
        else:
            (folder / name).write_text(content)


def outputs_of(folder: Path) -> dict[str, str]:
    return {name: v.decode() for name, v in snapshot(folder).items()}


def test_a_swap_killed_while_moving_the_previous_outputs_out_is_undone(tmp_path):
    out = tmp_path / "out"
    make_outputs(out / ".previous-abc", "old", ["icare.duckdb", "parquet"])  # moved out so far
    make_outputs(out, "old", ["release", "run.json"])  # not yet
    make_outputs(out / ".staging-abc", "new", OUTPUTS)
    clear_leftovers(out, publish.MANAGED)
    assert outputs_of(out) == {
        "icare.duckdb": "old",
        "parquet/t.parquet": "old",
        "release/t.parquet": "old",
        "run.json": "old",
    }


def test_a_swap_killed_while_moving_the_new_outputs_in_is_completed(tmp_path):
    out = tmp_path / "out"
    make_outputs(out / ".previous-abc", "old", OUTPUTS)
    make_outputs(out, "new", ["icare.duckdb", "parquet"])  # moved in so far
    make_outputs(out / ".staging-abc", "new", ["release", "run.json"])
    clear_leftovers(out, publish.MANAGED)
    assert outputs_of(out) == {
        "icare.duckdb": "new",
        "parquet/t.parquet": "new",
        "release/t.parquet": "new",
        "run.json": "new",
    }


# 5. Ctrl-C


def test_ctrl_c_prints_one_line_exits_130_and_removes_the_staging_folder(returns, published, monkeypatch):
    before = snapshot(published)
    write_return(returns, 2025, headers=[header("9")], episodes=[episode("9", "01/05/2024")])
    staging: list[Path] = []

    def interrupted(*args, **kwargs):
        staging.extend(published.glob(f"{output_folder.STAGING_PREFIX}*"))  # the writer is writing
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "statistics_tables", interrupted)
    done = icare_run(returns, published)
    assert done.exit_code == 130
    assert done.stderr == f"{INTERRUPTED_MESSAGE}\n"  # no traceback, not click's "Aborted!"
    assert len(staging) == 1 and not staging[0].exists()
    assert snapshot(published) == before
    assert listing(published) == OUTPUTS
    assert_released()


def test_a_real_sigint_ends_the_installed_command_with_130(returns, published):
    """The signal itself, in the command as installed (``console``, which ends with ``os._exit``):
    sent once the staging folder exists, while the statistics run (held here by a sleep)."""
    before = snapshot(published)
    write_return(returns, 2025, headers=[header("9")], episodes=[episode("9", "01/05/2024")])
    arguments = ["icare", "run", "--quiet", "--source", f"ssda903={returns}", "--output", str(published)]
    code = (
        "import sys, time\n"
        "import icare.pipeline\n"
        "icare.pipeline.statistics_tables = lambda *args, **kwargs: time.sleep(120)\n"
        "from icare.cli import console\n"
        f"sys.argv = {arguments!r}\n"
        "console()\n"
    )
    environment = {**os.environ, KEY_ENVIRONMENT_VARIABLE: TEST_KEY}
    command = subprocess.Popen(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=environment
    )
    try:
        for _ in range(600):
            if list(published.glob(f"{output_folder.STAGING_PREFIX}*")) or command.poll() is not None:
                break
            threading.Event().wait(0.1)
        command.send_signal(signal.SIGINT)
        _, stderr = command.communicate(timeout=60)
    finally:
        command.kill()
    assert command.returncode == 130
    assert stderr == f"{INTERRUPTED_MESSAGE}\n"
    assert snapshot(published) == before
    assert listing(published) == OUTPUTS


def test_ctrl_c_during_the_swap_puts_the_previous_outputs_back(returns, published, run_on, monkeypatch):
    before = snapshot(published)
    write_return(returns, 2025, headers=[header("9")], episodes=[episode("9", "01/05/2024")])
    real = publish.os.replace

    def replace(source, target):
        if output_folder.STAGING_PREFIX in str(source) and Path(source).name == "release":
            raise KeyboardInterrupt  # after the database and the Parquet files were moved in
        return real(source, target)

    monkeypatch.setattr(publish.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        run_on(returns, published)
    assert snapshot(published) == before
    assert listing(published) == OUTPUTS


# 6. Progress of the statistics


def test_the_statistics_report_each_step(returns, pseudonym_key, tmp_path):
    messages: list[str] = []
    pipeline.run(RunOptions({"ssda903": returns}, tmp_path / "out", progress=messages.append))
    steps = [m for m in messages if m.startswith("statistics: ") and m.endswith(" ...")]
    labels = [m.removeprefix("statistics: ").rsplit(" (", 1)[0] for m in steps]
    counters = [m.rsplit(" (", 1)[1].removesuffix(") ...") for m in steps]
    total = len(steps)
    assert counters == [f"{i}/{total}" for i in range(1, total + 1)]
    assert set(STATISTICS_TABLES) <= set(labels)
    assert "timeline steps (numpy)" in labels
    # Between the step's start and its end, as the other steps are told.
    assert messages.index("statistics ...") < messages.index(steps[0])
    done = next(i for i, m in enumerate(messages) if m.startswith("statistics: done"))
    assert messages.index(steps[-1]) < done


# 7. A key of white space


@pytest.mark.parametrize("key", ["   ", "\t\n", " " * 40])
@pytest.mark.parametrize("sample_only", [True, False])
def test_a_key_of_white_space_is_refused(monkeypatch, key, sample_only):
    monkeypatch.setenv(KEY_ENVIRONMENT_VARIABLE, key)
    with pytest.raises(MissingKeyError, match=f"^{KEY_ENVIRONMENT_VARIABLE} holds only white space"):
        Pseudonymiser.from_environment(sample_only=sample_only)


def test_a_key_of_white_space_stops_icare_run_with_exit_2(returns, tmp_path):
    done = icare_run(returns, tmp_path / "out", key=" " * 32)
    assert done.exit_code == 2
    assert done.stderr.startswith(f"icare: error: {KEY_ENVIRONMENT_VARIABLE} holds only white space")
    assert not (tmp_path / "out").exists()  # refused before the output folder is claimed


def test_outputs_of_a_normal_run_are_complete(published):
    """The lock file is the only thing a run adds beside the outputs."""
    assert sorted(p.name for p in published.iterdir()) == sorted([*OUTPUTS, LOCK_FILE])
    assert pq.read_table(published / "parquet" / "episodes.parquet").num_rows == 2
