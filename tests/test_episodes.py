"""Combining returns and repairing open episodes, on hand-built frames with hand-checked answers."""

from __future__ import annotations

import pandas as pd

from icare import episodes as rules

APRIL, DAY = 4, 1


def frame(rows):
    columns = [
        "area_code",
        "child_key",
        "episode_start",
        "episode_end",
        "collection_year",
        "new_episode_type",
        "file",
        "sheet",
        "row_number",
        "value",
    ]
    out = pd.DataFrame(rows, columns=columns)
    out["episode_start"] = pd.to_datetime(out["episode_start"])
    out["episode_end"] = pd.to_datetime(out["episode_end"])
    out["episode_end_type"] = out["episode_end"].isna().map({True: "open", False: "exit"})
    out["exit_destination"] = None
    return out


def no_blocks():
    return pd.DataFrame(columns=["area_code", "child_key", "collection_year"])


def test_latest_return_wins_and_points_at_the_kept_row():
    rows = frame(
        [
            ("201", "a", "2022-05-01", None, 2023, "care_entry", "2023/e.csv", None, 2, "x"),
            ("201", "a", "2022-05-01", "2023-06-01", 2024, "care_entry", "2024/e.csv", None, 5, "x"),
        ]
    )
    split = rules.resolve_duplicates(rows, rules.EPISODE, ["episode_end"])
    assert split.kept["file"].tolist() == ["2024/e.csv"]
    assert split.superseded[["file", "reason", "kept_file", "kept_row_number"]].values.tolist() == [
        ["2023/e.csv", "replaced_by_later_return", "2024/e.csv", 5]
    ]
    assert split.rejected.empty


def test_identical_copies_in_one_return_are_one_record_but_conflicts_are_rejected():
    rows = frame(
        [
            ("201", "a", "2022-05-01", None, 2023, "care_entry", "e.csv", None, 2, "same"),
            ("201", "a", "2022-05-01", None, 2023, "care_entry", "e.csv", None, 3, "same"),
            ("201", "b", "2022-05-01", None, 2023, "care_entry", "e.csv", None, 4, "one"),
            ("201", "b", "2022-05-01", None, 2023, "care_entry", "e.csv", None, 5, "other"),
        ]
    )
    split = rules.resolve_duplicates(rows, rules.EPISODE, ["value"])
    assert split.kept["row_number"].tolist() == [2]
    assert split.superseded[["row_number", "reason", "kept_row_number"]].values.tolist() == [
        [3, "duplicate_row_in_return", 2]
    ]
    assert sorted(split.rejected["row_number"]) == [4, 5]
    assert set(split.rejected["rule"]) == {"conflicting_duplicate"}


def test_repair_rules_on_open_episodes_of_older_returns():
    latest = pd.Series({"201": 2024})
    rows = frame(
        [
            # R1: open in 2023, next episode (2024 return) continues care -> ends when the next starts.
            ("201", "r1", "2022-05-01", None, 2023, "care_entry", "f", None, 2, ""),
            ("201", "r1", "2023-06-01", "2023-09-01", 2024, "placement_change", "f", None, 3, ""),
            # R1A: next episode is a new entry on 2023-09-01 -> ends the day after the 2023 year end.
            ("201", "r1a", "2022-05-01", None, 2023, "care_entry", "f", None, 4, ""),
            ("201", "r1a", "2023-09-01", None, 2024, "care_entry", "f", None, 5, ""),
            # R2: no later episode at all -> ends 1 April 2023, destination not known.
            ("201", "r2", "2022-05-01", None, 2023, "care_entry", "f", None, 6, ""),
            # R3A: the 2024 return restates the child from 2022-05-03 -> the old row is superseded.
            ("201", "r3", "2022-05-01", None, 2023, "care_entry", "f", None, 7, ""),
            ("201", "r3", "2022-05-03", "2023-05-01", 2024, "care_entry", "f", None, 8, ""),
            # Open in the latest return: left open.
            ("201", "open", "2023-05-01", None, 2024, "care_entry", "f", None, 9, ""),
        ]
    )
    split = rules.repair_open_episodes(rows, latest, no_blocks(), APRIL, DAY)
    kept = split.kept.set_index("row_number")
    assert kept.loc[2, "episode_end"] == pd.Timestamp("2023-06-01")
    assert (kept.loc[2, "repair_rule"], kept.loc[2, "episode_end_type"]) == (
        rules.RULE_CONTINUED,
        "continues",
    )
    assert kept.loc[4, "episode_end"] == pd.Timestamp("2023-04-01")
    assert kept.loc[4, "repair_rule"] == rules.RULE_CEASED_BEFORE_REENTRY
    assert kept.loc[4, "exit_destination"] == "not_known"
    assert kept.loc[6, "episode_end"] == pd.Timestamp("2023-04-01")
    assert kept.loc[6, "repair_rule"] == rules.RULE_NOT_IN_LATER_RETURN
    assert pd.isna(kept.loc[9, "episode_end"]) and pd.isna(kept.loc[9, "repair_rule"])
    assert pd.isna(kept.loc[3, "repair_rule"])
    assert 7 not in kept.index
    assert split.superseded[["row_number", "reason", "kept_row_number"]].values.tolist() == [
        [7, rules.RULE_REPLACED, 8]
    ]


def test_reentry_before_the_year_end_limits_the_repaired_end():
    # The next entry starts on 1 April 2023 itself: the repaired end cannot be later than that.
    rows = frame(
        [
            ("201", "a", "2022-05-01", None, 2023, "care_entry", "f", None, 2, ""),
            ("201", "a", "2023-04-01", None, 2024, "care_entry", "f", None, 3, ""),
        ]
    )
    split = rules.repair_open_episodes(rows, pd.Series({"201": 2024}), no_blocks(), APRIL, DAY)
    assert split.kept.set_index("row_number").loc[2, "episode_end"] == pd.Timestamp("2023-04-01")


def test_repair_is_blocked_when_a_later_return_has_rejected_rows_for_the_child():
    rows = frame([("201", "a", "2022-05-01", None, 2023, "care_entry", "f", None, 2, "")])
    blocked = pd.DataFrame({"area_code": ["201"], "child_key": ["a"], "collection_year": [2024]})
    split = rules.repair_open_episodes(rows, pd.Series({"201": 2024}), blocked, APRIL, DAY)
    assert split.kept.empty
    assert split.rejected["rule"].tolist() == ["repair_blocked"]


def test_children_in_different_areas_are_not_mixed_up_and_unknown_area_works():
    latest = pd.Series({"201": 2024, "202": 2023})
    rows = frame(
        [
            ("201", "a", "2022-05-01", None, 2023, "care_entry", "f", None, 2, ""),
            ("202", "a", "2022-05-01", None, 2023, "care_entry", "f", None, 3, ""),  # 202's latest is 2023
            (None, "b", "2022-05-01", None, 2023, "care_entry", "f", None, 4, ""),
        ]
    )
    latest.loc[None] = 2023
    split = rules.repair_open_episodes(rows, latest, no_blocks(), APRIL, DAY)
    kept = split.kept.set_index("row_number")
    assert kept.loc[2, "repair_rule"] == rules.RULE_NOT_IN_LATER_RETURN
    assert pd.isna(kept.loc[3, "repair_rule"])
    assert pd.isna(kept.loc[4, "repair_rule"])  # unknown area, latest year 2023: still open, not repaired


def test_overlaps_are_flagged_not_cut():
    rows = frame(
        [
            ("201", "a", "2022-01-01", "2022-12-01", 2023, "care_entry", "f", None, 2, ""),
            ("201", "a", "2022-03-01", "2022-04-01", 2023, "placement_change", "f", None, 3, ""),  # nested
            ("201", "a", "2022-12-01", None, 2023, "placement_change", "f", None, 4, ""),
        ]
    )
    flags = rules.flag_overlaps(rows)
    assert flags.tolist() == [True, False, False]
    assert rows["episode_end"].iloc[0] == pd.Timestamp("2022-12-01")  # nothing was changed
