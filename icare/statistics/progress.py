"""The statistics step told as it goes: one progress line per statement, so a long run shows where
it is (``icare run`` prints them with the other steps)."""

from __future__ import annotations

import re
from collections.abc import Callable

RunStatement = Callable[[str, Callable[[], object]], object]
# What a statement makes, which names its step: 10_stock.sql makes the table stock.
_CREATES = re.compile(r"^CREATE (?:TABLE|VIEW|MACRO) (\w+)", re.MULTILINE)
# Steps run through ``run_statement`` besides the SQL files: the timeline's steps, made in numpy.
OTHER_STEPS = 1


def reporting(
    run_statement: RunStatement, progress: Callable[[str], None] | None, statements: list[tuple[str, str]]
) -> RunStatement:
    """``run_statement`` telling ``progress`` of each step as it starts: "statistics: stock (9/21) ...",
    by what the statement makes (else its file name), numbered out of every step."""
    if progress is None:
        return run_statement
    labels = {
        name: made.group(1) if (made := _CREATES.search(sql)) else name.removesuffix(".sql")
        for name, sql in statements
    }
    steps = len(labels) + OTHER_STEPS
    started = 0

    def reported(name: str, run: Callable[[], object]) -> object:
        nonlocal started
        started += 1
        progress(f"statistics: {labels.get(name, name)} ({min(started, steps)}/{steps}) ...")
        return run_statement(name, run)

    return reported
