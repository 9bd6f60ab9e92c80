"""End to end on crafted returns: a zero-length episode followed the same day by another (the
second restated in a later return), and an X1 episode whose next row is quarantined, beside an
undamaged child. Figures worked out by hand from docs/episode-repair.md and docs/statistics.md."""

from __future__ import annotations

from datetime import date

from tests.builders import episode, header, write_return
from tests.conftest import TEST_PSEUDONYMISER, child_key
from tests.statistics_builders import rows_of

END_2023, END_2024 = date(2023, 3, 31), date(2024, 3, 31)


def returns(root):
    write_return(
        root,
        2023,
        headers=[header("A"), header("B"), header("U")],
        episodes=[
            # A entered on 20/03/2023 and moved the same day (rows 2 and 3: two episodes, one start date)
            episode("A", "20/03/2023", place="U4", dec="20/03/2023", rec="X1"),
            episode("A", "20/03/2023", rne="P", place="K2", provider="PR4"),
            # B: X1 on 01/09/2022; the next row (5) has a start date that is no date: quarantined (a
            # structural failure; a bad code would only be set unknown, docs/validation-policy.md)
            episode("B", "01/05/2022", place="U4", dec="01/09/2022", rec="X1"),
            episode("B", "31/09/2022", rne="P", place="K2", dec="01/12/2022", rec="X1"),
            episode("B", "01/12/2022", rne="P", place="K2", provider="PR4", dec="01/02/2023", rec="E4A"),
            # U: undamaged, in care throughout
            episode("U", "01/07/2022", place="U4"),
        ],
    )
    write_return(
        root,
        2024,
        headers=[header("A"), header("U")],
        episodes=[
            # A's second episode restated, ended: it replaces its own older row, not the zero-length one
            # (which ended before this return's year, so this return cannot carry it)
            episode("A", "20/03/2023", rne="P", place="K2", provider="PR4", dec="01/06/2023", rec="E4A"),
            episode("U", "01/07/2022", place="U4"),
        ],
    )


def test_awkward_episodes_through_the_pipeline(tmp_path, run_on):
    returns(tmp_path / "in")
    tables = {
        name: table.to_pandas() if hasattr(table, "to_pandas") else table
        for name, table in run_on(tmp_path / "in").items()
    }
    quarantine = tables["quarantine"]
    assert rows_of(quarantine, "file", "row_number", "rule") == [("2023/201/episodes.csv", 5, "date_format")]
    superseded = tables["superseded"]
    superseded = superseded[superseded["table_name"] == "episodes"]
    assert rows_of(superseded, "row_number", "reason", "kept_file", "kept_row_number") == [
        (3, "replaced_by_later_return", "2024/201/episodes.csv", 2),
        (7, "replaced_by_later_return", "2024/201/episodes.csv", 3),
    ]
    episodes = tables["episodes"]
    a = episodes[episodes["child_key"] == child_key(TEST_PSEUDONYMISER, "A")]
    assert a[["collection_year", "row_number", "episode_end_type", "overlaps_next"]].values.tolist() == [
        [2023, 2, "continues", False],
        [2024, 2, "exit", False],
    ]

    flow = rows_of(
        tables["flow_check"], "period_end", "stock_start", "entries", "exits", "stock_end", "balance"
    )
    # 2023: A, B and U enter; B leaves (one spell: 01/05/2022 to 01/02/2023, not an exit on 01/09/2022
    # and a re-entry on 01/12/2022); A and U are in care on 31/03/2023. 2024: A leaves on 01/06/2023.
    assert flow == [(END_2023, 0, 3, 1, 2, "balanced"), (END_2024, 2, 0, 1, 1, "balanced")]
    assert rows_of(tables["stock"], "reference_date", "icare_code", "children") == [
        (END_2023, "AC.F12", 1),  # U
        (END_2023, "AC.F29", 1),  # A, in the placement that began after the entry episode ceased
        (END_2024, "AC.F12", 1),
    ]
    assert rows_of(tables["exits"], "period_end", "icare_code", "exit_destination", "spells") == [
        (END_2023, "AC.F29", "reunification", 1),
        (END_2024, "AC.F29", "reunification", 1),
    ]
    b = child_key(TEST_PSEUDONYMISER, "B")
    spells = tables["care_spells"]
    assert rows_of(spells[spells["child_key"] == b], "spell_start", "spell_end", "duration_days") == [
        (date(2022, 5, 1), date(2023, 2, 1), 276)
    ]
    findings = tables["statistics_findings"]
    assert rows_of(findings, "child_key", "finding", "finding_date") == [
        (b, "continues_without_next_episode", date(2022, 9, 1))
    ]
