"""Hand-computed statistics for the awkward cases, one small crafted episode set each.

Periods are England statistical years: 2023 = 1 April 2022 - 31 March 2023, 2024 = 1 April 2023 -
31 March 2024. Every expected figure below was worked out by hand from docs/statistics.md.
"""

from __future__ import annotations

from datetime import date

import pytest

from icare.statistics import load_statistics_settings
from tests.statistics_builders import compute, ep, rows_of

Y2023 = (date(2022, 4, 1), date(2023, 3, 31))
Y2024 = (date(2023, 4, 1), date(2024, 3, 31))


def flow(tables) -> list[tuple]:
    return rows_of(
        tables["flow_check"],
        "period_end",
        "stock_start",
        "entries",
        "exits",
        "stock_end",
        "difference",
        "overlap_records_set_aside_start",
        "overlap_records_set_aside_end",
        "balance",
    )


def stock(tables, *columns: str) -> list[tuple]:
    return rows_of(tables["stock"], "reference_date", "icare_code", *columns, "children")


def test_same_day_chain_across_the_year_boundary_is_one_spell():
    tables = compute(
        [
            ep("a", "01/02/2023", "31/03/2023", new="care_entry", end_type="continues"),
            ep("a", "31/03/2023", "30/06/2023", new="legal_status_change", code="AC.F12"),
        ]
    )
    spells = tables["care_spells"]
    assert rows_of(spells, "spell_start", "spell_end", "episodes", "placement_spells", "duration_days") == [
        (date(2023, 2, 1), date(2023, 6, 30), 2, 1, 149)
    ]
    # Counted once on 31/03/2023, in the episode that starts that day; no exit then re-entry.
    assert stock(tables) == [(date(2023, 3, 31), "AC.F12", 1)]
    assert rows_of(tables["entries"], "period_end", "spells") == [(Y2023[1], 1)]
    assert rows_of(tables["exits"], "period_end", "spells") == [(Y2024[1], 1)]
    assert flow(tables) == [
        (Y2023[1], 0, 1, 0, 1, 0, 0, 0, "balanced"),
        (Y2024[1], 1, 0, 1, 0, 0, 0, 0, "balanced"),
    ]


def test_child_leaving_on_the_reference_date_is_an_exit_not_in_the_stock():
    tables = compute([ep("a", "01/01/2023", "31/03/2023", new="care_entry", destination="adoption")])
    assert tables["stock"].empty
    assert rows_of(tables["exits"], "period_end", "exit_destination", "children", "spells") == [
        (Y2023[1], "adoption", 1, 1)
    ]
    assert flow(tables)[0] == (Y2023[1], 0, 1, 1, 0, 0, 0, 0, "balanced")


@pytest.mark.parametrize(
    ("re_entered", "is_re_entry"),
    [("01/03/2023", True), ("01/06/2023", True), ("02/06/2023", False)],
)
def test_re_entry_within_twelve_months_of_the_previous_exit(re_entered, is_re_entry):
    tables = compute(
        [
            ep("a", "01/05/2022", "01/06/2022", new="care_entry"),
            ep("a", re_entered, new="care_entry", code="AC.F29"),
        ]
    )
    spells = tables["care_spells"]
    assert rows_of(spells, "care_spell_no", "previous_spell_end", "re_entry") == [
        (1, None, False),
        (2, date(2022, 6, 1), is_re_entry),
    ]
    assert tables["entries"]["re_entries"].sum() == int(is_re_entry)


TEMPORARY_MOVE = [
    ep("a", "01/01/2022", "20/03/2023", code="AC.F11", new="care_entry", end_type="continues"),
    ep(
        "a",
        "20/03/2023",
        "05/04/2023",
        code="AC.X6",
        purpose="temporary_move",
        provider=None,
        end_type="continues",
    ),
    ep("a", "05/04/2023", code="AC.F11"),
]


def test_temporary_move_spanning_the_reference_date_counts_in_the_normal_placement():
    tables = compute(TEMPORARY_MOVE)
    assert rows_of(
        tables["stock"],
        "reference_date",
        "icare_code",
        "provider_sector",
        "children",
        "temporary_moves_resolved",
    ) == [
        (date(2023, 3, 31), "AC.F11", "public_own_authority", 1, 1),
        (date(2024, 3, 31), "AC.F11", "public_own_authority", 1, 0),
    ]
    # The hospital stay and the return to the same carer are not moves.
    assert rows_of(tables["placement_spells"], "placement_spell_no", "episodes", "temporary_episodes") == [
        (1, 3, 1)
    ]
    assert tables["moves"]["moves"].sum() == 0
    # The entry (01/01/2022) lies before the reported periods, and there is no move.
    assert tables["transitions"].empty


def test_temporary_move_resolution_can_be_switched_off():
    tables = compute(TEMPORARY_MOVE, resolve_temporary_moves=False)
    assert rows_of(
        tables["stock"], "reference_date", "icare_code", "children", "temporary_moves_resolved"
    ) == [
        (date(2023, 3, 31), "AC.X6", 1, 0),
        (date(2024, 3, 31), "AC.F11", 1, 0),
    ]


def test_return_from_a_temporary_move_to_another_category_is_a_move():
    rows = [*TEMPORARY_MOVE[:2], ep("a", "05/04/2023", code="AC.F29")]
    tables = compute(rows)
    moves = tables["transitions"][tables["transitions"]["transition"] == "move"]
    assert rows_of(moves, "period_end", "from_code", "to_code", "transitions") == [
        (Y2024[1], "AC.F11", "AC.F29", 1)
    ]
    assert rows_of(tables["placement_spells"], "placement_spell_no", "placement_start", "placement_end") == [
        (1, date(2022, 1, 1), date(2023, 4, 5)),
        (2, date(2023, 4, 5), None),
    ]


def test_overlapping_records_count_once_in_the_later_one_and_join_one_spell():
    tables = compute(
        [
            ep("a", "01/01/2023", "30/06/2023", new="care_entry", destination="adoption"),
            ep("a", "01/03/2023", "10/04/2023", code="AC.F29"),
        ]
    )
    assert stock(tables) == [(date(2023, 3, 31), "AC.F29", 1)]
    # One care spell from the first start to the last end; the exit is the record that ends last.
    assert rows_of(
        tables["care_spells"], "spell_start", "spell_end", "exit_destination", "icare_code_end"
    ) == [(date(2023, 1, 1), date(2023, 6, 30), "adoption", "AC.F12")]
    assert flow(tables) == [
        (Y2023[1], 0, 1, 0, 1, 0, 0, 1, "balanced"),
        (Y2024[1], 1, 0, 1, 0, 0, 1, 0, "balanced"),
    ]
    assert rows_of(tables["statistics_findings"], "finding", "finding_date") == [
        ("overlap_resolved", date(2023, 1, 1))
    ]


def test_spell_exit_is_the_furthest_reaching_records_even_without_a_destination():
    # Overlapping exits; the record that ends last gives no destination (England always does, another
    # source might not). The spell's exit is that record's: destination not known, not taken from
    # the record that ended earlier.
    tables = compute(
        [
            ep("a", "01/01/2023", "30/04/2023", new="care_entry", destination="adoption"),
            ep("a", "01/03/2023", "30/06/2023", code="AC.F29") | {"exit_destination": None},
        ]
    )
    assert rows_of(tables["care_spells"], "spell_end", "exit_destination", "icare_code_end") == [
        (date(2023, 6, 30), "not_known", "AC.F29")
    ]


def test_record_nested_inside_a_longer_one_does_not_shorten_care():
    tables = compute(
        [
            ep("a", "01/05/2022", "01/12/2023", new="care_entry"),
            ep("a", "01/07/2022", "01/09/2022", code="AC.F29"),
        ]
    )
    # On 31/03/2023 only the long record covers the day: the child is in care, in AC.F12.
    assert stock(tables) == [(date(2023, 3, 31), "AC.F12", 1)]
    assert rows_of(tables["care_spells"], "spell_end", "episodes") == [(date(2023, 12, 1), 2)]


def test_open_episode_is_in_every_later_stock_and_an_open_pathway():
    tables = compute([ep("a", "01/06/2021", new="care_entry", code="AC.F11")], rare_pathway_threshold=1)
    assert stock(tables) == [(date(2023, 3, 31), "AC.F11", 1), (date(2024, 3, 31), "AC.F11", 1)]
    assert rows_of(tables["care_spells"], "end_type", "spell_end", "duration_days") == [("open", None, None)]
    finest = tables["pathways"][tables["pathways"]["pathway_level"] == "finest"]
    assert rows_of(finest, "period_end", "spell_state", "pathway", "spells") == [
        (Y2023[1], "open", "AC.F11", 1),
        (Y2024[1], "open", "AC.F11", 1),
    ]
    assert tables["entries"].empty and tables["exits"].empty


def test_child_turning_18_changes_age_band_between_stock_and_exit():
    tables = compute(
        [ep("a", "01/01/2020", "15/06/2023", new="care_entry", born="15/06/2005", destination="other")]
    )
    assert rows_of(tables["stock"], "reference_date", "age_band") == [(date(2023, 3, 31), "16-17")]
    assert rows_of(tables["exits"], "age_band", "exit_destination") == [("18 and over", "other")]


def test_ages_use_the_first_day_of_the_birth_month_and_the_bands_can_change():
    rows = [ep("a", "01/01/2020", born="20/03/2020", new="care_entry")]
    # Born in March 2020: 3 on 31/03/2023 (exact at a month end).
    assert rows_of(compute(rows)["stock"], "reference_date", "age_band") == [
        (date(2023, 3, 31), "1-4"),
        (date(2024, 3, 31), "1-4"),
    ]
    unicef = compute(rows, settings=load_statistics_settings(age_bands="unicef"))
    assert rows_of(unicef["stock"], "reference_date", "age_band") == [
        (date(2023, 3, 31), "3-5"),
        (date(2024, 3, 31), "3-5"),
    ]
    unknown = [{**rows[0], "birth_month": None}]
    assert set(compute(unknown)["stock"]["age_band"]) == {"unknown"}


def test_code_change_with_the_same_carer_continues_the_placement_spell():
    # England H5 retired for new placements from 28/10/2023, recorded again as K3 (both AC.F3).
    tables = compute(
        [
            ep(
                "a",
                "01/06/2023",
                "28/10/2023",
                code="AC.F3",
                new="care_entry",
                end_type="continues",
                born="01/01/2007",
            ),
            ep("a", "28/10/2023", code="AC.F3", new="same_carer_setting_change", born="01/01/2007"),
        ],
        rare_pathway_threshold=1,
    )
    assert rows_of(tables["care_spells"], "placement_spells", "moves") == [(1, 0)]
    assert stock(tables) == [(date(2024, 3, 31), "AC.F3", 1)]
    finest = tables["pathways"][tables["pathways"]["pathway_level"] == "finest"]
    assert list(finest["pathway"]) == ["AC.F3"]


def test_durations_quartiles_interpolate_between_ordered_days():
    tables = compute(
        [
            ep("a", "01/05/2023", "11/05/2023", new="care_entry"),  # 10 days
            ep("b", "01/05/2023", "21/05/2023", new="care_entry"),  # 20 days
            ep("c", "01/05/2023", "09/08/2023", new="care_entry"),  # 100 days
        ]
    )
    care = tables["durations"][tables["durations"]["unit"] == "care_spell"]
    assert rows_of(care, "period_end", "spells", "days_q1", "days_median", "days_q3") == [
        (Y2024[1], 3, 15.0, 20.0, 60.0)
    ]


def test_pathways_roll_up_by_level_and_collapse_repeats():
    tables = compute(
        [
            ep("a", "01/05/2023", "01/06/2023", code="AC.F12", new="care_entry", end_type="continues"),
            ep("a", "01/06/2023", "01/07/2023", code="AC.F11", end_type="continues"),
            # a legal-status change inside the placement spell does not add a step
            ep("a", "01/07/2023", "15/07/2023", code="AC.F29", end_type="continues"),
            ep(
                "a",
                "15/07/2023",
                "01/08/2023",
                code="AC.F21",
                new="legal_status_change",
                end_type="continues",
            ),
            ep("a", "01/08/2023", "01/12/2023", code="AC.F3"),
        ],
        rare_pathway_threshold=1,
    )
    assert rows_of(tables["pathways"], "pathway_level", "spell_state", "pathway", "spells") == [
        ("1", "ended", "AC.F", 1),
        ("2", "ended", "AC.F1 > AC.F2 > AC.F3", 1),
        ("finest", "ended", "AC.F12 > AC.F11 > AC.F29 > AC.F3", 1),
    ]
    assert rows_of(tables["moves"], "icare_code", "moves_in_period", "children", "moves") == [
        ("AC.F3", "3 or more", 1, 3)
    ]
    moves = tables["transitions"][tables["transitions"]["transition"] == "move"]
    assert rows_of(moves, "from_code", "to_code") == [
        ("AC.F11", "AC.F29"),
        ("AC.F12", "AC.F11"),
        ("AC.F21", "AC.F3"),
    ]


def test_rare_pathways_are_grouped_as_other():
    common = [ep(f"c{i}", "01/05/2023", "01/06/2023", new="care_entry") for i in range(5)]
    rare = [ep(f"r{i}", "01/05/2023", "01/06/2023", new="care_entry", code="AC.F29") for i in range(4)]
    finest = compute(common + rare)["pathways"]
    finest = finest[finest["pathway_level"] == "finest"]
    assert rows_of(finest, "pathway", "spells", "spells_in_rare_pathways") == [
        ("AC.F12", 5, 0),
        ("other", 4, 4),
    ]


def test_a_child_entering_twice_is_one_child_and_two_spells():
    tables = compute(
        [
            ep("a", "01/05/2023", "01/06/2023", new="care_entry"),
            ep("a", "01/09/2023", new="care_entry", code="AC.F29"),
        ]
    )
    assert rows_of(tables["entries"], "icare_code", "children", "spells", "re_entries") == [
        ("AC.F12", 1, 1, 0),
        ("AC.F29", 0, 1, 1),
    ]


def test_continues_without_a_next_episode_ends_the_spell_with_destination_not_known():
    tables = compute([ep("a", "01/05/2023", "01/06/2023", new="care_entry", end_type="continues")])
    assert rows_of(tables["care_spells"], "end_type", "exit_destination") == [("exit", "not_known")]
    assert list(tables["statistics_findings"]["finding"]) == ["continues_without_next_episode"]


def test_areas_are_counted_separately_and_add_up():
    rows = [ep("a", "01/01/2023", area="201"), ep("a", "01/01/2023", area="202", code="AC.F29")]
    frame_periods = compute(rows, years=(2023,))
    # Only area 201 has a period here: area 202's records are outside every reported period.
    assert rows_of(frame_periods["stock"], "area_code", "icare_code", "children") == [("201", "AC.F12", 1)]
