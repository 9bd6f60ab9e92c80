"""The output folder made safe to write: one writer at a time, checked before any input is read,
left-overs of a killed run cleared, and failures of the storage named in one line.

``claimed(output_dir, managed)`` is taken by ``icare run`` before it reads any input and by every
publication (``icare.publish.StagedOutputs``, so Dagster's ``publish_outputs`` too) for as long as
they write. Two runs writing into one folder would each swap in its own files: the folder could end
with the database of one run and the Parquet files of the other, or a database that lacks tables.
The lock is the operating system's (``flock`` on ``LOCK_FILE`` inside the folder): it is released
when the process ends, however it ends, so a lock file left by a killed run never blocks the next.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

LOCK_FILE = ".icare-lock"
STAGING_PREFIX = ".staging-"  # a run's staging folder: .staging-<run id>
PREVIOUS_PREFIX = ".previous-"  # the previous outputs while they are swapped out: .previous-<run id>
PROBE_PREFIX = ".icare-probe-"  # the file that shows the folder can be written: .icare-probe-<pid>
# Failures of the storage, not of icare: the message says what could not be written and why (a
# file-size limit, EFBIG, stops a write as a full disk does).
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS})


class OutputFolderError(Exception):
    """The output folder cannot be used: the run stops with ``icare: error:`` and exit code 2."""


class OutputLockedError(OutputFolderError):
    """Another run is writing into the same output folder."""


class OutputWriteError(OutputFolderError):
    """The storage refused a write (full, read-only, no permission); the previous outputs stand."""


def storage_reason(error: BaseException) -> str | None:
    """Why the storage refused a write, if ``error`` (or an error it was raised from) says so.

    Python and Arrow raise ``OSError`` with its errno; DuckDB raises ``duckdb.IOException`` (or
    ``FatalException`` from a checkpoint) whose text ends with the system's message (e.g. "No space
    left on device")."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
            return os.strerror(error.errno)
        if isinstance(error, duckdb.Error):  # IOException, or FatalException when a checkpoint fails
            for number in sorted(STORAGE_ERRNOS):
                if os.strerror(number) in str(error):
                    return os.strerror(number)
        error = error.__cause__ or error.__context__
    return None


@contextmanager
def writing(what: object) -> Iterator[None]:
    """Turn a refusal of the storage while writing ``what`` into an ``OutputWriteError`` naming it."""
    try:
        yield
    except OutputFolderError:
        raise
    except Exception as error:
        reason = storage_reason(error)
        if reason is None:
            raise
        raise OutputWriteError(
            f"could not write {what}: {reason}; the previous outputs are left as they were"
        ) from error


@dataclass
class _Claim:
    descriptor: int
    thread: int  # the thread that claimed it: only it may claim it again
    depth: int = 0  # claims inside one another on that thread


_claims: dict[Path, _Claim] = {}
_claims_lock = threading.Lock()


@contextmanager
def claimed(output_dir: Path, managed: tuple[str, ...]) -> Iterator[None]:
    """The output folder, made and locked for this run, for as long as the block runs.

    The first claim of a folder in a process checks that files can be created in it and clears
    what a killed run left (``clear_leftovers``); a claim inside it on the same thread (``icare
    run`` claims, then its publication does) only counts. Raises ``OutputLockedError`` when another
    process, or another thread of this one, holds the folder (nothing in it is changed), and
    ``OutputWriteError`` when the folder cannot be made or written.
    """
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputWriteError(f"cannot create the output folder {output_dir}: {_reason(error)}") from error
    key = output_dir.resolve()
    with _claims_lock:
        claim = _claims.get(key)
        if claim is not None and claim.thread != threading.get_ident():
            raise OutputLockedError(_locked_message(output_dir, os.getpid()))
        if claim is None:
            claim = _claims[key] = _Claim(_lock(output_dir), threading.get_ident())
        claim.depth += 1
    try:
        if claim.depth == 1:
            _probe(output_dir)
            with writing(f"the output folder {output_dir}"):
                clear_leftovers(output_dir, managed)
        yield
    finally:
        with _claims_lock:
            claim.depth -= 1
            if claim.depth == 0:
                del _claims[key]
                os.close(claim.descriptor)  # releases the lock


def _lock(output_dir: Path) -> int:
    """The descriptor of ``LOCK_FILE``, locked, holding this process's id (for the other run's message)."""
    path = output_dir / LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise OutputWriteError(f"cannot write to the output folder {output_dir}: {_reason(error)}") from error
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(descriptor)
        raise OutputLockedError(_locked_message(output_dir, holder)) from None
    except BaseException:
        os.close(descriptor)
        raise
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return descriptor


def _locked_message(output_dir: Path, pid: object) -> str:
    return (
        f"another icare run is writing to {output_dir} (pid {pid}); nothing was changed: wait for it "
        "to finish, or give another --output"
    )


def _probe(output_dir: Path) -> None:
    """Create, write and remove a file: a folder that cannot take one stops the run before any input
    is read, rather than after minutes of work."""
    probe = output_dir / f"{PROBE_PREFIX}{os.getpid()}"
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(descriptor, b"icare")
        finally:
            os.close(descriptor)
        probe.unlink()
    except OSError as error:
        raise OutputWriteError(f"cannot write to the output folder {output_dir}: {_reason(error)}") from error


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def clear_leftovers(output_dir: Path, managed: tuple[str, ...]) -> None:
    """Finish what a killed run left half done, whatever this run's input (called under the lock).

    A swap that was cut short (a ``.previous-<run id>`` folder is left) is undone while the staging
    folder still holds every output, and completed once some had moved in (the staging folder is
    complete and closed by then): the folder always ends with one run's outputs. Then every staging
    folder and probe file is removed: a staging folder is named by its run's id, which depends on
    the input, so a later run on other input would never meet it again.
    """
    for previous in sorted(output_dir.glob(f"{PREVIOUS_PREFIX}*")):
        staging = output_dir / (STAGING_PREFIX + previous.name.removeprefix(PREVIOUS_PREFIX))
        staged = [name for name in managed if (staging / name).exists()]
        if len(staged) == len(managed):  # cut short while the previous outputs were moved out
            for name in managed:
                if (previous / name).exists() and not (output_dir / name).exists():
                    os.replace(previous / name, output_dir / name)
        else:  # cut short while the new outputs were moved in (or just after): finish moving them
            for name in staged:
                os.replace(staging / name, output_dir / name)
        shutil.rmtree(previous)
    for staging in output_dir.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(staging)
    for probe in output_dir.glob(f"{PROBE_PREFIX}*"):
        probe.unlink()
