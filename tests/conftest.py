"""Shared fixtures: a test pseudonymisation key and a runner for crafted returns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from icare.pipeline import RunOptions, run
from icare.pseudonymise import KEY_ENVIRONMENT_VARIABLE, Pseudonymiser

TEST_KEY = "test-key-for-icare-unit-tests-0123456789"
TEST_PSEUDONYMISER = Pseudonymiser(TEST_KEY.encode())


@pytest.fixture
def pseudonym_key(monkeypatch) -> Pseudonymiser:
    monkeypatch.setenv(KEY_ENVIRONMENT_VARIABLE, TEST_KEY)
    return TEST_PSEUDONYMISER


def run_with_test_key(
    input_dir: Path, output_dir: Path, *, strict: bool = False, allow_incomplete: bool = False
) -> dict[str, pd.DataFrame]:
    """Run the whole pipeline on a folder of returns with the test key; returns the published tables.

    The episodes come back from ``run`` in Arrow (the form they were written in); tests read them in
    pandas, as the other harmonised tables. ``allow_incomplete``: for returns crafted incomplete
    (the run otherwise stops on them, icare.coverage).
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KEY_ENVIRONMENT_VARIABLE, TEST_KEY)
        options = RunOptions(
            {"ssda903": input_dir}, output_dir, strict=strict, allow_incomplete=allow_incomplete
        )
        tables = dict(run(options).tables)
    tables["episodes"] = tables["episodes"].to_pandas(date_as_object=False)
    return tables


@pytest.fixture
def run_on(tmp_path, pseudonym_key):
    def _run(
        input_dir: Path,
        output_dir: Path | None = None,
        *,
        strict: bool = False,
        allow_incomplete: bool = False,
    ) -> dict[str, pd.DataFrame]:
        """``strict``: as ``icare run --strict`` (every failing value quarantines its row);
        ``allow_incomplete``: as ``--allow-incomplete``."""
        return run_with_test_key(
            input_dir, output_dir or tmp_path / "out", strict=strict, allow_incomplete=allow_incomplete
        )

    return _run


def child_key(pseudonymiser: Pseudonymiser, child: str, area: str | None = "201") -> str:
    return pseudonymiser.child_keys("ssda903", pd.Series([area]), pd.Series([child])).iloc[0]
