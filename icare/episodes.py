"""Combine several annual returns into one set of episodes, and repair what older returns left open.

Generic over longitudinal sources: it works on harmonised column names (``area_code``,
``child_key``, ``episode_start``, ``episode_end``, ``collection_year``, ``new_episode_type``) and
knows no national code. The rules are documented in docs/episode-repair.md; each changed row records
the rule in ``repair_rule``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CHILD = ["area_code", "child_key"]
EPISODE = [*CHILD, "episode_start"]
ORIGIN = ["file", "sheet", "row_number"]

RULE_CONTINUED = "R1_continued"
RULE_CEASED_BEFORE_REENTRY = "R1A_ceased_before_reentry"
RULE_NOT_IN_LATER_RETURN = "R2_not_in_later_return"
RULE_REPLACED = "R3A_replaced_in_later_return"


@dataclass
class Split:
    """Rows kept, rows represented by another row (superseded), and rows rejected (quarantine)."""

    kept: pd.DataFrame
    superseded: pd.DataFrame  # origin columns + reason + kept_file, kept_sheet, kept_row_number
    rejected: pd.DataFrame  # rows + rule + message


def _superseded(rows: pd.DataFrame, kept: pd.DataFrame, reason: str) -> pd.DataFrame:
    return rows.assign(
        reason=reason,
        kept_file=kept["file"].to_numpy(),
        kept_sheet=kept["sheet"].to_numpy(),
        kept_row_number=kept["row_number"].to_numpy(),
    )


def resolve_duplicates(frame: pd.DataFrame, key: list[str], compare: list[str]) -> Split:
    """Rows with the same key: the latest return wins; duplicates within one return are checked.

    Within one return (same collection year and area) identical rows are one record (the first in
    file order is kept); rows that differ are a conflict that cannot be settled without guessing,
    so all of them are rejected. Across returns, the row from the latest return wins.
    """
    ordered = frame.sort_values([*key, "collection_year", *ORIGIN], ascending=True, kind="stable")
    same_return = [*key, "collection_year"]
    in_return = ordered.duplicated(same_return, keep=False)
    distinct_versions = ordered.loc[in_return].drop_duplicates([*same_return, *compare])
    conflicted_keys = distinct_versions.loc[
        distinct_versions.duplicated(same_return, keep=False), same_return
    ]
    conflict = (
        ordered[same_return].reset_index().merge(conflicted_keys.drop_duplicates(), on=same_return)["index"]
    )
    rejected = ordered.loc[conflict]
    rejected = rejected.assign(
        rule="conflicting_duplicate",
        message="this episode appears more than once in the same return with different values; "
        "the return must say which is right",
    )
    remaining = ordered.drop(index=conflict)
    first_in_return = ~remaining.duplicated(same_return, keep="first")
    copies = remaining.loc[~first_in_return]
    originals = remaining.loc[first_in_return]
    copy_of = copies[same_return].merge(originals[[*same_return, *ORIGIN]], on=same_return, how="left")
    superseded = [_superseded(copies, copy_of, "duplicate_row_in_return")]
    latest = ~originals.duplicated(key, keep="last")
    older = originals.loc[~latest]
    kept = originals.loc[latest]
    replaced_by = older[key].merge(kept[[*key, *ORIGIN]], on=key, how="left")
    superseded.append(_superseded(older, replaced_by, "replaced_by_later_return"))
    return Split(kept=kept, superseded=pd.concat(superseded), rejected=rejected)


def year_end(years: pd.Series, start_month: int, start_day: int) -> pd.Series:
    """Last day of each collection year (the day before the next year starts)."""
    starts = pd.to_datetime(
        pd.DataFrame({"year": years.astype("int64"), "month": start_month, "day": start_day})
    )
    return starts - pd.Timedelta(days=1)


def repair_open_episodes(
    episodes: pd.DataFrame,
    latest_year: pd.Series,
    blocked: pd.DataFrame,
    start_month: int,
    start_day: int,
) -> Split:
    """Close episodes that an older return left open and no later return carried on.

    ``latest_year`` is the latest collection year read per area; ``blocked`` lists children
    (area_code, child_key, collection_year) with rejected episode rows in a return: an open episode
    older than such a return is not repaired (the fix could be in the rejected row) but rejected.
    Rules, in order (docs/episode-repair.md):

    - R3A: a later return has another episode of the child that started before this return's year
      end: the later return restated the child's history, this row is superseded.
    - R1: the child's next episode continues care: this one ends when the next starts.
    - R1A: the next episode is a new entry: this one ends on the first day after its return's year
      (the return showed the child in care at its year end) or when the next starts, if earlier;
      exit destination not known.
    - R2: no later episode: it ends on the first day after its return's year, destination not known.
    """
    frame = episodes.sort_values([*EPISODE, "collection_year"], kind="stable").copy()
    frame["repair_rule"] = pd.Series(pd.NA, index=frame.index, dtype="str")
    latest = frame["area_code"].map(latest_year).astype("float64")
    open_old = frame["episode_end"].isna() & (frame["collection_year"].astype("float64") < latest)
    if frame.empty or not open_old.any():
        return Split(
            frame, frame.iloc[:0].assign(reason=None), frame.iloc[:0].assign(rule=None, message=None)
        )
    period_end = year_end(frame["collection_year"], start_month, start_day)

    candidates = frame.loc[open_old, [*CHILD, "collection_year"]].assign(period_end=period_end[open_old])
    candidates["row"] = candidates.index

    # Blocked: a later return of this child has rejected episode rows.
    hit = candidates.merge(blocked.rename(columns={"collection_year": "blocked_year"}), on=CHILD)
    blocked_rows = pd.Index(hit.loc[hit["blocked_year"] > hit["collection_year"], "row"].unique())
    rejected = frame.loc[blocked_rows].assign(
        rule="repair_blocked",
        message="open episode from an older return cannot be closed: a later return of this child has "
        "quarantined episode rows; fix those and run again",
    )

    # R3A: a later return holds another episode of the child starting on or before this year's end.
    others = frame[[*CHILD, "collection_year", "episode_start", *ORIGIN]].rename(
        columns={"collection_year": "other_year", "episode_start": "other_start"}
    )
    pairs = candidates.merge(others, on=CHILD)
    restated = pairs[
        (pairs["other_year"] > pairs["collection_year"]) & (pairs["other_start"] <= pairs["period_end"])
    ]
    restated = restated.drop_duplicates("row").set_index("row")
    restated_rows = restated.index.difference(blocked_rows)
    superseded = _superseded(frame.loc[restated_rows], restated.loc[restated_rows], RULE_REPLACED)

    frame = frame.drop(index=blocked_rows.union(restated_rows))
    open_old = open_old.reindex(frame.index)
    period_end = period_end.reindex(frame.index)
    grouped = frame.groupby(CHILD, sort=False, dropna=False)
    next_start = grouped["episode_start"].shift(-1)
    next_type = grouped["new_episode_type"].shift(-1)
    has_next = next_start.notna()
    day_after_year = period_end + pd.Timedelta(days=1)

    continued = open_old & has_next & (next_type != "care_entry")
    reentry = open_old & has_next & (next_type == "care_entry")
    unreported = open_old & ~has_next
    frame.loc[continued, "episode_end"] = next_start[continued]
    frame.loc[continued, "episode_end_type"] = "continues"
    frame.loc[continued, "repair_rule"] = RULE_CONTINUED
    frame.loc[reentry, "episode_end"] = np.minimum(day_after_year[reentry], next_start[reentry])
    frame.loc[unreported, "episode_end"] = day_after_year[unreported]
    ceased = reentry | unreported
    frame.loc[ceased, "episode_end_type"] = "exit"
    frame.loc[ceased, "exit_destination"] = "not_known"
    frame.loc[reentry, "repair_rule"] = RULE_CEASED_BEFORE_REENTRY
    frame.loc[unreported, "repair_rule"] = RULE_NOT_IN_LATER_RETURN
    return Split(kept=frame, superseded=superseded, rejected=rejected)


def flag_overlaps(episodes: pd.DataFrame) -> pd.Series:
    """True where an episode is still running when the child's next episode starts (dirty data).

    Overlaps are reported, not cut: which record is right is a question for the statistics stage
    (docs/episode-repair.md), and cutting the longer episode loses children from the stock.
    """
    ordered = episodes.sort_values(EPISODE, kind="stable")
    next_start = ordered.groupby(CHILD, sort=False, dropna=False)["episode_start"].shift(-1)
    end = ordered["episode_end"]
    overlaps = next_start.notna() & (end.isna() | (end > next_start))
    return overlaps.reindex(episodes.index)
