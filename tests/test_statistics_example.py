"""The worked example of docs/statistics.md, run end to end through ``icare run``.

Three children in one 2023/24 return (collection year 2024) of local authority 201. The expected rows
are those printed in the docs, worked out by hand there.
"""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest

from tests.builders import episode, header, write_return
from tests.conftest import run_with_test_key
from tests.statistics_builders import rows_of

PERIOD_END = date(2024, 3, 31)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    root = tmp_path_factory.mktemp("example") / "returns"
    write_return(
        root,
        2024,
        headers=[
            header("A1", sex="1", dob="20/06/2015"),
            header("B2", sex="2", dob="11/09/2008"),
            header("C3", sex="2", dob="05/11/2023"),
        ],
        episodes=[
            episode(
                "A1", "10/05/2023", ls="V2", place="U4", dec="01/09/2023", rec="X1", reason_change="CARPL"
            ),
            episode(
                "A1",
                "01/09/2023",
                rne="P",
                ls="V2",
                place="K2",
                provider="PR4",
                urn="123456",
                dec="15/02/2024",
                rec="E4A",
            ),
            episode(
                "B2", "14/03/2021", ls="C2", place="U1", dec="20/03/2024", rec="X1", reason_change="OTHER"
            ),
            episode("B2", "20/03/2024", rne="P", ls="C2", place="T1", provider=""),
            episode("C3", "01/02/2024", ls="V2", place="U4", dec="10/02/2024", rec="X1"),
            episode("C3", "10/02/2024", rne="L", ls="C2", place="U4", dec="31/03/2024", rec="E13"),
        ],
    )
    tables = run_with_test_key(root, tmp_path_factory.mktemp("example-out"))
    assert tables["quarantine"].empty
    return {name: (t.to_pandas() if isinstance(t, pa.Table) else t) for name, t in tables.items()}


def test_stock(example):
    assert rows_of(
        example["stock"],
        "reference_date",
        "icare_code",
        "sex",
        "age_band",
        "provider_sector",
        "children",
        "temporary_moves_resolved",
    ) == [(PERIOD_END, "AC.F11", "F", "10-15", "public_own_authority", 1, 1)]


def test_entries_and_exits(example):
    assert rows_of(
        example["entries"], "icare_code", "sex", "age_band", "children", "spells", "re_entries"
    ) == [
        ("AC.F12", "F", "under 1", 1, 1, 0),
        ("AC.F12", "M", "5-9", 1, 1, 0),
    ]
    assert rows_of(
        example["exits"], "icare_code", "exit_destination", "sex", "age_band", "children", "spells"
    ) == [
        ("AC.F12", "relatives_kin", "F", "under 1", 1, 1),
        ("AC.F29", "reunification", "M", "5-9", 1, 1),
    ]


def test_moves_and_transitions(example):
    assert rows_of(
        example["moves"], "icare_code", "sex", "age_band", "moves_in_period", "children", "moves"
    ) == [
        ("AC.F11", "F", "10-15", "0", 1, 0),
        ("AC.F12", "F", "under 1", "0", 1, 0),
        ("AC.F29", "M", "5-9", "1", 1, 1),
    ]
    assert rows_of(
        example["transitions"], "transition", "from_code", "to_code", "sex", "age_band", "transitions"
    ) == [
        ("entry", "out_of_care", "AC.F12", "F", "under 1", 1),
        ("entry", "out_of_care", "AC.F12", "M", "5-9", 1),
        ("exit", "AC.F12", "relatives_kin", "F", "under 1", 1),
        ("exit", "AC.F29", "reunification", "M", "5-9", 1),
        ("move", "AC.F12", "AC.F29", "M", "5-9", 1),
    ]


def test_spells_and_durations(example):
    assert rows_of(
        example["care_spells"], "spell_start", "spell_end", "placement_spells", "moves", "duration_days"
    ) == [
        (date(2021, 3, 14), None, 1, 0, None),
        (date(2023, 5, 10), date(2024, 2, 15), 2, 1, 281),
        (date(2024, 2, 1), date(2024, 3, 31), 1, 0, 59),
    ]
    days = example["durations"]
    assert rows_of(days, "unit", "icare_code", "spells", "days_median") == [
        ("care_spell", "AC.F12", 1, 59.0),
        ("care_spell", "AC.F29", 1, 281.0),
        ("placement_spell", "AC.F12", 1, 59.0),
        ("placement_spell", "AC.F12", 1, 114.0),
        ("placement_spell", "AC.F29", 1, 167.0),
    ]


def test_pathways_are_all_rare_at_the_default_threshold(example):
    pathways = example["pathways"]
    assert set(pathways["pathway"]) == {"other"}
    # every level partitions the same three spells: two ended, one open
    by_level = pathways.groupby(["pathway_level", "spell_state"])["spells"].sum().to_dict()
    assert by_level == {
        (level, state): n for level in ("1", "2", "finest") for state, n in (("ended", 2), ("open", 1))
    }


def test_flow_check_balances(example):
    assert rows_of(
        example["flow_check"], "stock_start", "entries", "exits", "stock_end", "difference", "balance"
    ) == [(1, 2, 2, 1, 0, "balanced")]
    assert example["statistics_findings"].empty
    assert set(example["stock"]["classification_version"]) == {"icare-ac-provisional@0.2.0"}
