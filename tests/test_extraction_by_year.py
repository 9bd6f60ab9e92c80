"""Extracting one collection year at a time, sealing and combining gives what ``icare run`` gives.

The Dagster assets extract each collection year in its own partition and combine the years before
harmonising; the CLI extracts a source's files at once. Both go through ``extract_source`` (which
seals: child ids become child keys) and ``harmonise_source``.
"""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

from icare.classification import load_classification
from icare.pipeline import (
    StepTimer,
    assemble_tables,
    combine_extractions,
    extract_source,
    harmonise_source,
    open_source,
    process_source,
)
from icare.sources.ssda903.synthetic import generate_returns
from tests.conftest import TEST_PSEUDONYMISER


@pytest.fixture(scope="module")
def returns(tmp_path_factory):
    # Laid out as <area>/<table>_2022-23.xlsx: path order mixes the years, so combining must put
    # the files back in discovery order.
    root = tmp_path_factory.mktemp("returns")
    generated = generate_returns(root / "by_year", children=80, fmt="xlsx", defects=True).root
    flat = root / "returns"
    for path in sorted(generated.rglob("*.xlsx")):
        year, area = int(path.parts[-3]), path.parts[-2]
        target = flat / area / f"{path.stem}_{year - 1}-{year % 100:02d}{path.suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    return flat


@pytest.fixture(scope="module")
def source():
    return open_source("ssda903", load_classification(), TEST_PSEUDONYMISER)


def _by_year(files):
    years: dict[object, list] = {}
    for f in files:
        years.setdefault(f.collection_year, []).append(f)
    return years


def test_per_year_extraction_combined_equals_one_extraction(returns, source):
    timer = StepTimer()
    files = source.discover(returns)
    years = _by_year(files)
    assert len(years) > 1
    assert [f.collection_year for f in files] != sorted(f.collection_year for f in files)
    whole = process_source(source, files, timer)
    parts = [extract_source(source, year_files, timer) for year_files in reversed(years.values())]
    combined = harmonise_source(source, combine_extractions(parts), timer)

    classification = load_classification()
    expected = assemble_tables([whole], classification)
    actual = assemble_tables([combined], classification)
    assert len(expected["quarantine"]) > 0  # the defects reached the quarantine
    for name in expected:
        pd.testing.assert_frame_equal(actual[name], expected[name], obj=name)
    assert [f.file for f in combined.files] == [f.file for f in files]


def test_a_sealed_extraction_holds_no_child_id_as_received(returns, source):
    files = source.discover(returns)
    raw = source.extract(files)
    sealed = source.seal(raw)
    assert sealed.pseudonymised and not raw.pseudonymised
    received = set(raw.valid["header"]["CHILD"]) | set(raw.valid["episodes"]["CHILD"])
    dobs = set(raw.valid["header"]["DOB"].dropna())
    stored = pickle.dumps(sealed)
    for value in list(received)[:50] + list(dobs)[:50]:
        assert value.encode() not in stored, value
    for frame in (*sealed.valid.values(), *sealed.rejected.values()):
        assert not {"UPN", "MOTHER", "MC_DOB", "HOME_POST", "PL_POST"} & set(frame.columns)
    keys = TEST_PSEUDONYMISER.child_keys(
        "ssda903", raw.valid["header"]["area_code"], raw.valid["header"]["CHILD"]
    )
    assert sealed.valid["header"]["CHILD"].tolist() == keys.tolist()
    assert source.seal(sealed) is sealed  # sealing twice changes nothing


def test_combining_needs_sealed_extractions(returns, source):
    files = source.discover(returns)
    raw = source.extract(files[:1])
    with pytest.raises(ValueError, match="sealed"):
        combine_extractions([raw, raw])


def test_harmonising_takes_the_valid_rows_once(returns, source):
    """The valid rows are handed to harmonisation (so it can free the input as it goes), not kept."""
    extraction = extract_source(source, source.discover(returns), StepTimer())
    result = harmonise_source(source, extraction, StepTimer())
    assert len(result.harmonised.episodes) and extraction.valid == {} and extraction.handed_over
    assert len(extraction.tables) and len(result.reconciliation)  # what the reconciliation read stays
    with pytest.raises(ValueError, match="already taken"):
        harmonise_source(source, extraction, StepTimer())
