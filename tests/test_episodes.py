"""Combining returns and repairing open episodes, on hand-built frames with hand-checked answers."""

from __future__ import annotations

import pandas as pd

from icare import episodes as rules

APRIL, DAY = 4, 1
COLUMNS = ["child_id", "episode_start", "episode_end", "collection_year", "new_episode_type", "value"]


def frame(rows, latest=2024):
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["episode_start"] = pd.to_datetime(out["episode_start"])
    out["episode_end"] = pd.to_datetime(out["episode_end"])
    out["episode_end_type"] = out["episode_end"].isna().map({True: "open", False: "exit"})
    out["exit_destination"] = None
    out["latest_collection_year"] = latest
    out["row_id"] = range(len(out))
    return out


def no_blocks():
    return pd.DataFrame({"child_id": pd.Series(dtype="int64"), "collection_year": pd.Series(dtype="int64")})


def test_latest_return_wins_and_points_at_the_kept_row():
    rows = frame(
        [
            (1, "2022-05-01", None, 2023, "care_entry", "x"),
            (1, "2022-05-01", "2023-06-01", 2024, "care_entry", "x"),
        ]
    )
    split = rules.resolve_duplicates(rows, rules.EPISODE, rows[["value"]])
    assert split.kept["row_id"].tolist() == [1]
    assert split.superseded.values.tolist() == [[0, "replaced_by_later_return", 1]]
    assert split.rejected.empty


def test_identical_copies_in_one_return_are_one_record_but_conflicts_are_rejected():
    rows = frame(
        [
            (1, "2022-05-01", None, 2023, "care_entry", "same"),
            (1, "2022-05-01", None, 2023, "care_entry", "same"),
            (2, "2022-05-01", None, 2023, "care_entry", "one"),
            (2, "2022-05-01", None, 2023, "care_entry", "other"),
        ]
    )
    split = rules.resolve_duplicates(rows, rules.EPISODE, rows[["value"]])
    assert split.kept["row_id"].tolist() == [0]
    assert split.superseded.values.tolist() == [[1, "duplicate_row_in_return", 0]]
    assert sorted(split.rejected["row_id"]) == [2, 3]
    assert set(split.rejected["rule"]) == {"conflicting_duplicate"}


def test_copy_in_an_older_return_and_a_newer_version():
    rows = frame(
        [
            (1, "2022-05-01", None, 2023, "care_entry", "a"),
            (1, "2022-05-01", None, 2023, "care_entry", "a"),
            (1, "2022-05-01", "2023-05-01", 2024, "care_entry", "b"),
        ]
    )
    split = rules.resolve_duplicates(rows, rules.EPISODE, rows[["value"]])
    assert split.kept["row_id"].tolist() == [2]
    assert sorted(split.superseded.values.tolist()) == [
        [0, "replaced_by_later_return", 2],
        [1, "duplicate_row_in_return", 0],
    ]


def test_repair_rules_on_open_episodes_of_older_returns():
    rows = frame(
        [
            # R1: open in 2023, next episode (2024 return) continues care -> ends when the next starts.
            (1, "2022-05-01", None, 2023, "care_entry", ""),
            (1, "2023-06-01", "2023-09-01", 2024, "placement_change", ""),
            # R1A: next episode is a new entry on 2023-09-01 -> ends the day after the 2023 year end.
            (2, "2022-05-01", None, 2023, "care_entry", ""),
            (2, "2023-09-01", None, 2024, "care_entry", ""),
            # R2: no later episode at all -> ends 1 April 2023, destination not known.
            (3, "2022-05-01", None, 2023, "care_entry", ""),
            # R3A: the 2024 return restates the child from 2022-05-03 -> the old row is superseded.
            (4, "2022-05-01", None, 2023, "care_entry", ""),
            (4, "2022-05-03", "2023-05-01", 2024, "care_entry", ""),
            # Open in the latest return: left open.
            (5, "2023-05-01", None, 2024, "care_entry", ""),
        ]
    )
    split = rules.repair_open_episodes(rows, no_blocks(), APRIL, DAY)
    kept = split.kept.set_index("row_id")
    assert kept.loc[0, "episode_end"] == pd.Timestamp("2023-06-01")
    assert (kept.loc[0, "repair_rule"], kept.loc[0, "episode_end_type"]) == (
        rules.RULE_CONTINUED,
        "continues",
    )
    assert kept.loc[2, "episode_end"] == pd.Timestamp("2023-04-01")
    assert kept.loc[2, "repair_rule"] == rules.RULE_CEASED_BEFORE_REENTRY
    assert kept.loc[2, "exit_destination"] == "not_known"
    assert kept.loc[4, "episode_end"] == pd.Timestamp("2023-04-01")
    assert kept.loc[4, "repair_rule"] == rules.RULE_NOT_IN_LATER_RETURN
    assert pd.isna(kept.loc[7, "episode_end"]) and pd.isna(kept.loc[7, "repair_rule"])
    assert pd.isna(kept.loc[1, "repair_rule"])
    assert 5 not in kept.index
    assert split.superseded.values.tolist() == [[5, rules.RULE_REPLACED, 6]]


def test_reentry_on_the_first_day_of_the_next_year_limits_the_repaired_end():
    rows = frame(
        [
            (1, "2022-05-01", None, 2023, "care_entry", ""),
            (1, "2023-04-01", None, 2024, "care_entry", ""),
        ]
    )
    split = rules.repair_open_episodes(rows, no_blocks(), APRIL, DAY)
    assert split.kept.set_index("row_id").loc[0, "episode_end"] == pd.Timestamp("2023-04-01")


def test_repair_is_blocked_when_a_later_return_has_rejected_rows_for_the_child():
    rows = frame([(1, "2022-05-01", None, 2023, "care_entry", "")])
    blocked = pd.DataFrame({"child_id": [1], "collection_year": [2024]})
    split = rules.repair_open_episodes(rows, blocked, APRIL, DAY)
    assert split.kept.empty
    assert split.rejected[["row_id", "rule"]].values.tolist() == [[0, "repair_blocked"]]


def test_latest_year_is_per_area():
    rows = frame(
        [(1, "2022-05-01", None, 2023, "care_entry", ""), (2, "2022-05-01", None, 2023, "care_entry", "")]
    )
    rows["latest_collection_year"] = [2024, 2023]  # child 2's area sent no 2024 return yet
    kept = rules.repair_open_episodes(rows, no_blocks(), APRIL, DAY).kept.set_index("row_id")
    assert kept.loc[0, "repair_rule"] == rules.RULE_NOT_IN_LATER_RETURN
    assert pd.isna(kept.loc[1, "repair_rule"])


def test_overlaps_are_flagged_not_cut():
    rows = frame(
        [
            (1, "2022-01-01", "2022-12-01", 2023, "care_entry", ""),
            (1, "2022-03-01", "2022-04-01", 2023, "placement_change", ""),  # nested
            (1, "2022-12-01", None, 2023, "placement_change", ""),
            (2, "2022-12-01", None, 2023, "care_entry", ""),  # another child: no overlap with child 1
        ]
    )
    assert rules.flag_overlaps(rows).tolist() == [True, False, False, False]
    assert rows["episode_end"].iloc[0] == pd.Timestamp("2022-12-01")  # nothing was changed


def test_older_rows_do_not_stand_in_for_a_conflicted_later_version():
    rows = frame(
        [
            (1, "2022-05-01", None, 2023, "care_entry", "a"),
            (1, "2022-05-01", None, 2023, "care_entry", "a"),  # a copy in the older return
            (1, "2022-05-01", "2023-05-01", 2024, "care_entry", "b"),
            (1, "2022-05-01", "2023-06-01", 2024, "care_entry", "c"),  # conflicts with the row above
        ]
    )
    split = rules.resolve_duplicates(rows, rules.EPISODE, rows[["value"]])
    assert split.kept.empty
    assert split.superseded.empty
    assert sorted(split.rejected[["row_id", "rule"]].values.tolist()) == [
        [0, "later_version_quarantined"],
        [1, "later_version_quarantined"],
        [2, "conflicting_duplicate"],
        [3, "conflicting_duplicate"],
    ]


# -- an episode that ends the day it starts, and the one that starts that day ----------------------


def keyed(rows, latest=2024):
    """``frame`` with the flag that tells a zero-length episode from the next one of the same day."""
    out = frame(rows, latest)
    out[rules.LASTS_PAST_START] = rules.lasts_past_start(out["episode_start"], out["episode_end"])
    return out


def test_zero_length_episode_and_the_next_one_the_same_day_are_two_episodes():
    rows = keyed(
        [
            # listed after the episode it precedes: the order is by start, zero-length first
            (1, "2023-01-10", None, 2023, "placement_change", "P"),
            (1, "2023-01-10", "2023-01-10", 2023, "care_entry", "X1"),
        ]
    )
    split = rules.resolve_duplicates(rows, rules.EPISODE_KEY, rows[["value", "episode_end"]])
    assert split.rejected.empty and split.superseded.empty
    assert split.kept["row_id"].tolist() == [1, 0]


def test_same_start_conflicts_are_still_rejected():
    rows = keyed(
        [
            # both lasting past the start, different ends: the same episode twice
            (1, "2023-01-10", "2023-02-01", 2023, "care_entry", "a"),
            (1, "2023-01-10", "2023-03-01", 2023, "care_entry", "a"),
            # both zero-length, different values: the same zero-length episode twice
            (2, "2023-01-10", "2023-01-10", 2023, "care_entry", "a"),
            (2, "2023-01-10", "2023-01-10", 2023, "care_entry", "b"),
            (2, "2023-01-10", None, 2023, "placement_change", "c"),  # the next episode: kept
        ]
    )
    split = rules.resolve_duplicates(rows, rules.EPISODE_KEY, rows[["value", "episode_end"]])
    assert sorted(split.rejected["row_id"]) == [0, 1, 2, 3]
    assert set(split.rejected["rule"]) == {"conflicting_duplicate"}
    assert split.kept["row_id"].tolist() == [4]


def test_a_later_return_restates_the_zero_length_episode_and_the_next_one():
    rows = keyed(
        [
            (1, "2023-03-20", "2023-03-20", 2023, "care_entry", "X1"),
            (1, "2023-03-20", None, 2023, "placement_change", "open"),
            (1, "2023-03-20", "2023-03-20", 2024, "care_entry", "X1"),
            (1, "2023-03-20", "2023-06-01", 2024, "placement_change", "ended"),
        ]
    )
    split = rules.resolve_duplicates(rows, rules.EPISODE_KEY, rows[["value", "episode_end"]])
    assert split.rejected.empty
    assert sorted(split.superseded.values.tolist()) == [
        [0, "replaced_by_later_return", 2],
        [1, "replaced_by_later_return", 3],
    ]
    assert split.kept["row_id"].tolist() == [2, 3]


def test_repair_and_overlaps_order_the_zero_length_episode_first():
    rows = frame(
        [
            # open in 2023; the 2024 return has a new entry that ceased the same day (X1), then a move
            (1, "2022-05-01", None, 2023, "care_entry", ""),
            (1, "2023-09-01", None, 2024, "placement_change", ""),
            (1, "2023-09-01", "2023-09-01", 2024, "care_entry", ""),
        ]
    )
    rows.loc[2, "episode_end_type"] = "continues"
    kept = rules.repair_open_episodes(rows, no_blocks(), APRIL, DAY).kept
    # the next episode is the new entry (zero-length, first that day): R1A, not R1
    assert kept["row_id"].tolist() == [0, 2, 1]
    assert kept.set_index("row_id").loc[0, "repair_rule"] == rules.RULE_CEASED_BEFORE_REENTRY
    assert kept.set_index("row_id").loc[0, "episode_end"] == pd.Timestamp("2023-04-01")
    # the zero-length episode ends when the next starts: no overlap either way round
    assert rules.flag_overlaps(kept).tolist() == [False, False, False]
    assert rules.flag_overlaps(rows.iloc[[1, 2]]).tolist() == [False, False]
