"""Invariants of the harmonised tables on generated returns (hypothesis picks the generator's seed,
size and years; with and without injected defects)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icare.sources.ssda903.synthetic import generate_returns
from tests.conftest import run_with_test_key

RETURNS = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 10_000),
        "children": st.integers(20, 120),
        "first_year": st.integers(2019, 2023),
        "span": st.integers(1, 3),
    }
)


def harmonise(params: dict, defects: bool) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as folder:
        generated = generate_returns(
            Path(folder) / "in",
            children=params["children"],
            first_year=params["first_year"],
            last_year=params["first_year"] + params["span"],
            seed=params["seed"],
            defects=defects,
        )
        return run_with_test_key(Path(folder) / "in", Path(folder) / "out"), generated.defects


def assert_invariants(tables: dict) -> None:
    r = tables["reconciliation"]
    outcomes = r[["rows_accepted", "rows_quarantined", "rows_superseded", "rows_not_harmonised"]].sum(axis=1)
    assert (r["rows_read"] == outcomes).all()
    episodes = tables["episodes"]
    assert not episodes.duplicated(["area_code", "child_key", "episode_start"]).any()
    closed = episodes["episode_end"].notna()
    assert (episodes.loc[closed, "episode_end"] >= episodes.loc[closed, "episode_start"]).all()
    assert episodes["child_key"].isin(tables["children"]["child_key"]).all()
    latest = episodes.groupby("area_code")["collection_year"].transform("max")
    open_old = episodes["episode_end"].isna() & (episodes["collection_year"] < latest)
    assert not open_old.any(), "an open episode from an older return was left unrepaired"
    assert (episodes["episode_end_type"] == "open").eq(episodes["episode_end"].isna()).all()
    exits = episodes["episode_end_type"] == "exit"
    assert episodes.loc[exits, "exit_destination"].notna().all()
    assert episodes["icare_level1"].notna().all()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RETURNS)
def test_clean_returns_need_no_quarantine_or_repair(params):
    tables, _ = harmonise(params, defects=False)
    assert_invariants(tables)
    assert tables["quarantine"].empty
    assert tables["episodes"]["repair_rule"].isna().all()
    assert not tables["episodes"]["overlaps_next"].any()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RETURNS)
def test_defects_are_caught_and_nothing_is_lost(params):
    tables, defects = harmonise(params, defects=True)
    assert_invariants(tables)
    # Each defect is either quarantined (structural) or corrected and on record (the failure policy).
    rules = set(tables["quarantine"]["rule"]) | set(tables["corrections"]["rule"])
    if defects.get("two_digit_year") or defects.get("dec_before_decom"):
        assert rules & {"date_format", "before_start", "date_two_digit_year"}
    if defects.get("unknown_place") or defects.get("place_invalid_for_year"):
        assert rules & {"code_list", "retired_by_date"}
    if defects.get("whitespace_padded_code"):
        assert "surrounding_space" in rules
    # A child whose header row is missing in one return still has it in another, and an overlap can
    # fall on a child whose rows break another rule: the crafted tests pin those cases exactly.
    if defects.get("duplicate_row"):
        assert (tables["superseded"]["reason"] == "duplicate_row_in_return").any()
