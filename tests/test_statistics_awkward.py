"""Hand-computed figures for the awkward cases realistic data showed (issue 14, item 8), each beside
two undamaged children whose figures must not change.

Periods are England statistical years: 2023 = 1 April 2022 - 31 March 2023, 2024 = 1 April 2023 -
31 March 2024. Every expected figure was worked out by hand from docs/statistics.md.
"""

from __future__ import annotations

from datetime import date

from icare.run_summary import findings_by_kind, latest_figures
from tests.statistics_builders import compute, ep, rows_of

END_2023, END_2024 = date(2023, 3, 31), date(2024, 3, 31)

# u: in care from 01/07/2022, still open; v: in care 01/02/2023 to 15/05/2023, home to parents.
UNDAMAGED = [
    ep("u", "01/07/2022", code="AC.F11", new="care_entry"),
    ep("v", "01/02/2023", "15/05/2023", code="AC.F12", new="care_entry", sex="M"),
]


def flow(tables) -> list[tuple]:
    return rows_of(
        tables["flow_check"], "period_end", "stock_start", "entries", "exits", "stock_end", "balance"
    )


def stock(tables) -> list[tuple]:
    return rows_of(tables["stock"], "reference_date", "icare_code", "sex", "children")


def entries(tables) -> list[tuple]:
    return rows_of(tables["entries"], "period_end", "icare_code", "sex", "spells", "re_entries")


def exits(tables) -> list[tuple]:
    return rows_of(tables["exits"], "period_end", "icare_code", "exit_destination", "sex", "spells")


def spells_of(tables, child: str) -> list[tuple]:
    spells = tables["care_spells"]
    return rows_of(
        spells[spells["child_key"] == child],
        "spell_start",
        "spell_end",
        "exit_destination",
        "icare_code_start",
        "icare_code_end",
        "placement_spells",
        "duration_days",
        "starts_with_entry",
        "re_entry",
    )


def findings(tables) -> list[tuple]:
    return rows_of(tables["statistics_findings"], "child_key", "finding", "finding_date")


def test_undamaged_children_alone():
    tables = compute(UNDAMAGED)
    assert stock(tables) == [
        (END_2023, "AC.F11", "F", 1),
        (END_2023, "AC.F12", "M", 1),
        (END_2024, "AC.F11", "F", 1),
    ]
    assert entries(tables) == [(END_2023, "AC.F11", "F", 1, 0), (END_2023, "AC.F12", "M", 1, 0)]
    assert exits(tables) == [(END_2024, "AC.F12", "reunification", "M", 1)]
    assert flow(tables) == [(END_2023, 0, 2, 0, 2, "balanced"), (END_2024, 2, 0, 1, 1, "balanced")]
    assert tables["statistics_findings"].empty


def test_zero_length_episode_then_one_starting_that_day_is_one_spell_in_that_order():
    # z entered care on 01/03/2023 and moved the same day: the entry episode ceased that day (X1),
    # listed here after the episode it precedes. Ordered by start alone, the open episode would come
    # first and the zero-length one would overlap it (finding overlap_resolved).
    z = [
        ep("z", "01/03/2023", code="AC.F29", new="placement_change"),
        ep("z", "01/03/2023", "01/03/2023", code="AC.F12", new="care_entry", end_type="continues"),
    ]
    tables = compute(UNDAMAGED + z)
    assert spells_of(tables, "z") == [
        (date(2023, 3, 1), None, None, "AC.F12", "AC.F29", 2, None, True, False)
    ]
    # z enters in 2023 (category of the entry episode) and is in AC.F29 on both reference dates
    assert stock(tables) == [
        (END_2023, "AC.F11", "F", 1),
        (END_2023, "AC.F12", "M", 1),
        (END_2023, "AC.F29", "F", 1),
        (END_2024, "AC.F11", "F", 1),
        (END_2024, "AC.F29", "F", 1),
    ]
    assert entries(tables) == [
        (END_2023, "AC.F11", "F", 1, 0),
        (END_2023, "AC.F12", "F", 1, 0),
        (END_2023, "AC.F12", "M", 1, 0),
    ]
    assert exits(tables) == [(END_2024, "AC.F12", "reunification", "M", 1)]
    assert flow(tables) == [(END_2023, 0, 3, 0, 3, "balanced"), (END_2024, 3, 0, 1, 2, "balanced")]
    assert tables["statistics_findings"].empty  # no overlap: the entry ceased before the move began


def test_continues_into_a_later_episode_that_is_not_an_entry_is_one_spell():
    # c's episode ceased on 01/09/2022 with X1, but the next row (01/09/2022) is missing or
    # quarantined; the next one kept starts on 01/06/2023 with RNE = P. Before: an exit on 01/09/2022
    # (destination not known) in 2023 and a re-entry on 01/06/2023 in 2024. Now one care spell; from
    # 01/09/2022 to 01/06/2023 c is in care, placement not known.
    c = [
        ep("c", "01/05/2022", "01/09/2022", code="AC.F12", new="care_entry", end_type="continues"),
        ep("c", "01/06/2023", "01/10/2023", code="AC.F29", new="placement_change"),
    ]
    tables = compute(UNDAMAGED + c)
    # 01/05/2022 to 01/10/2023: 365 + 153 days
    assert spells_of(tables, "c") == [
        (date(2022, 5, 1), date(2023, 10, 1), "reunification", "AC.F12", "AC.F29", 2, 518, True, False)
    ]
    # the placement spells stop where the placement is known: no placement days are invented
    placements = tables["placement_spells"]
    assert rows_of(placements[placements["child_key"] == "c"], "placement_start", "placement_end") == [
        (date(2022, 5, 1), date(2022, 9, 1)),
        (date(2023, 6, 1), date(2023, 10, 1)),
    ]
    # 31/03/2023: c is in care, placement not known: counted under "type of care not stated" (AC.U),
    # so the categories add up to flow_check's stock
    assert stock(tables) == [
        (END_2023, "AC.F11", "F", 1),
        (END_2023, "AC.F12", "M", 1),
        (END_2023, "AC.U", "F", 1),
        (END_2024, "AC.F11", "F", 1),
    ]
    assert entries(tables) == [
        (END_2023, "AC.F11", "F", 1, 0),
        (END_2023, "AC.F12", "F", 1, 0),
        (END_2023, "AC.F12", "M", 1, 0),
    ]
    assert exits(tables) == [
        (END_2024, "AC.F12", "reunification", "M", 1),
        (END_2024, "AC.F29", "reunification", "F", 1),
    ]
    assert flow(tables) == [(END_2023, 0, 3, 0, 3, "balanced"), (END_2024, 3, 0, 2, 1, "balanced")]
    (finding,) = tables["statistics_findings"].itertuples()
    assert (finding.child_key, finding.finding, finding.finding_date) == (
        "c",
        "continues_without_next_episode",
        date(2022, 9, 1),
    )
    assert "the care spell continues, placement not known" in finding.detail
    # the summary's latest figures: in 2023, 3 in care, all in a category (c under AC.U), so none is
    # left over as "placement not known"
    latest = latest_figures(compute(UNDAMAGED + c, years=(2023,)), {})
    assert (latest[0]["children_in_care"], latest[0]["children_placement_not_known"]) == (3, 0)
    by_level1 = {row["icare_level1"]: row["children"] for row in latest[0]["children_by_icare_level1"]}
    assert by_level1 == {"AC.F": 2, "AC.U": 1}


def test_continues_into_a_later_new_entry_is_an_exit_and_a_re_entry():
    # the next episode kept says the child entered care again (RNE = S): the child left in between,
    # on a date not known; the exit is counted on the X1 date, the only day c is known in care.
    c = [
        ep("c", "01/05/2022", "01/09/2022", code="AC.F12", new="care_entry", end_type="continues"),
        ep("c", "01/06/2023", "01/10/2023", code="AC.F29", new="care_entry"),
    ]
    tables = compute(UNDAMAGED + c)
    assert spells_of(tables, "c") == [
        (date(2022, 5, 1), date(2022, 9, 1), "not_known", "AC.F12", "AC.F12", 1, 123, True, False),
        (date(2023, 6, 1), date(2023, 10, 1), "reunification", "AC.F29", "AC.F29", 1, 122, True, True),
    ]
    assert flow(tables) == [(END_2023, 0, 3, 1, 2, "balanced"), (END_2024, 2, 1, 2, 1, "balanced")]
    assert stock(tables) == [
        (END_2023, "AC.F11", "F", 1),
        (END_2023, "AC.F12", "M", 1),
        (END_2024, "AC.F11", "F", 1),
    ]
    (detail,) = tables["statistics_findings"]["detail"]
    assert "is a new entry: counted as an exit on this date" in detail


def test_continues_with_no_later_episode_is_an_exit_on_that_date():
    c = [ep("c", "01/05/2022", "01/09/2022", code="AC.F12", new="care_entry", end_type="continues")]
    tables = compute(UNDAMAGED + c)
    assert spells_of(tables, "c") == [
        (date(2022, 5, 1), date(2022, 9, 1), "not_known", "AC.F12", "AC.F12", 1, 123, True, False)
    ]
    assert flow(tables) == [(END_2023, 0, 3, 1, 2, "balanced"), (END_2024, 2, 0, 1, 1, "balanced")]
    (detail,) = tables["statistics_findings"]["detail"]
    assert "no later episode: counted as an exit on this date" in detail


def test_care_spell_starting_without_an_entry_record_is_an_entry_and_a_finding():
    # e's first episode (01/06/2023, RNE = P) is inside the periods: its earlier rows are missing,
    # so the spell is counted among the 2024 entries and reported. f's first episode (01/06/2021,
    # RNE = P) starts before the periods the data covers: not an entry of any period.
    odd = [
        ep("e", "01/06/2023", code="AC.F29", new="placement_change"),
        ep("f", "01/06/2021", "01/06/2022", code="AC.F29", new="placement_change"),
    ]
    tables = compute(UNDAMAGED + odd)
    assert entries(tables) == [
        (END_2023, "AC.F11", "F", 1, 0),
        (END_2023, "AC.F12", "M", 1, 0),
        (END_2024, "AC.F29", "F", 1, 0),
    ]
    assert exits(tables) == [
        (END_2023, "AC.F29", "reunification", "F", 1),
        (END_2024, "AC.F12", "reunification", "M", 1),
    ]
    assert flow(tables) == [(END_2023, 1, 2, 1, 2, "balanced"), (END_2024, 2, 1, 1, 2, "balanced")]
    assert findings(tables) == [
        ("e", "care_spell_starts_without_entry", date(2023, 6, 1)),
        ("f", "care_spell_starts_without_entry", date(2021, 6, 1)),
    ]
    found = tables["statistics_findings"]
    details = dict(zip(found["child_key"], found["detail"], strict=True))
    assert "counted among the entries of its period" in details["e"]
    assert "not an entry of any period" in details["f"]
    # visible in the summary: counted by kind, and among the latest period's entries
    assert findings_by_kind(tables) == {"care_spell_starts_without_entry": 2}
    (latest,) = latest_figures(tables, {})
    assert (latest["entries"], latest["entries_without_entry_record"]) == (1, 1)
