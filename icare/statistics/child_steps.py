"""The timeline's per-child steps as whole-array operations on the episodes sorted by child and start.

A child's rows (or a care spell's) are a run of consecutive rows, so "within the child" is a boundary
mask, a running maximum or sum restarts at each run, and "the last such row before this one" is a
running maximum of row positions. ``timeline.py`` sorts the rows (``order_key``) and chains these
steps. Definitions: docs/statistics.md "Episodes and overlaps", "Care spells" and "Placement spells,
moves and temporary moves".
"""

from __future__ import annotations

import numpy as np


def order_key(
    child: np.ndarray, start: np.ndarray, start_missing: np.ndarray, end: np.ndarray, end_missing: np.ndarray
) -> np.ndarray:
    """One int64 per row that sorts a child's episodes by start, an empty start last, and on one day
    an episode that also ends that day (zero-length) before the others: it ceased, then the next
    one began (docs/episode-repair.md). child_id in the high half; in the low half, the start as
    days after the earliest start, doubled, plus 1 unless zero-length."""
    known = ~start_missing
    earliest = int(start[known].min()) if known.any() else 0
    if known.any() and int(start[known].max()) - earliest >= 2**30:
        raise ValueError("episode start dates span too many days to order the timeline")
    days = np.where(known, start.astype(np.int64) - earliest, 2**31 - 1)
    zero_length = known & ~end_missing & (end == start)
    key = child.astype(np.int64) << 32
    key += 2 * days + ~zero_length
    return key


def positions(n: int) -> np.ndarray:
    """0, 1, ..., n - 1 as the timeline's 32-bit row positions."""
    return np.arange(n, dtype=np.int32)


def first_of_group(group: np.ndarray) -> np.ndarray:
    """True on the first row of each run of equal keys (rows sorted by the key)."""
    first = np.ones(len(group), dtype=bool)
    first[1:] = group[1:] != group[:-1]
    return first


def group_starts(first: np.ndarray) -> np.ndarray:
    """Position of the first row of each row's group."""
    return np.maximum.accumulate(np.where(first, positions(len(first)), 0))


def numbered(starts: np.ndarray, first: np.ndarray) -> np.ndarray:
    """1, 2, ... : how many rows of the group so far start something (a running sum restarted at each
    group). Every group's first row must start one, as a child's first episode starts a care spell and
    a care spell's first episode starts a placement spell."""
    count = np.cumsum(starts, dtype=np.int32)
    return count - count[group_starts(first)] + 1


def previous_in_group(flags: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The flag of the group's previous row (False on its first row)."""
    previous = np.zeros(len(flags), dtype=bool)
    previous[1:] = flags[:-1]
    return previous & ~first


def next_starts(start: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The start of the child's next episode, and whether there is one (not on the child's last row)."""
    next_start = np.empty_like(start)
    next_start[:-1] = start[1:]
    next_start[-1:] = 0
    has_next = np.zeros(len(start), dtype=bool)
    has_next[:-1] = ~first[1:]
    return next_start, has_next


def cover_ends(
    end: np.ndarray,
    end_missing: np.ndarray,
    ends_continuing: np.ndarray,
    next_start: np.ndarray,
    has_next: np.ndarray,
    gap: np.ndarray,
    next_is_entry: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The day after the last day the episode covers, whether it has none (open), and whether the
    days from its end to the next start are in care with the placement not known.

    The child is in care on every day d with episode_start <= d < cover_end. An episode that ended
    as "continues" covers the gap to the next one when that starts within the source's tolerated
    gap (``care_spell_gap_days``). When the next starts later and is not a new care entry, the
    rows between are missing or quarantined: the care spell goes on, so the episode covers the gap
    too, with the placement not known (statistics.md "Care spells"). Otherwise it covers up to its end.
    """
    continues = ends_continuing & has_next & ~end_missing & (next_start >= end)
    within = next_start <= end + gap
    unknown_gap = continues & ~within & ~next_is_entry
    bridges = (continues & within) | unknown_gap
    return np.where(bridges, next_start, end), end_missing & ~bridges, unknown_gap


def earlier_reaches(reach: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far the child's earlier episodes reach (their latest ``reach``), and the position of the
    earlier episode reaching furthest (the later-starting one on a tie); -1 on a child's first row.

    A running maximum restarted at each child: adding child number x a span larger than any reach
    makes every later child's values exceed every earlier child's.
    """
    low = int(reach.min()) if len(reach) else 0
    span = (int(reach.max()) - low + 1) if len(reach) else 1
    offset = np.cumsum(first, dtype=np.int64)
    offset -= 1
    offset *= span
    reach_so_far = offset + reach  # this row included (in place: no more full-length temporaries)
    reach_so_far -= low
    np.maximum.accumulate(reach_so_far, out=reach_so_far)
    reach_so_far -= offset
    del offset
    reach_so_far += low
    # A row reaching at least as far as every earlier row of its child is the furthest so far.
    furthest = first.copy()
    furthest[1:] |= reach[1:] >= reach_so_far[:-1]
    furthest_so_far = np.maximum.accumulate(np.where(furthest, positions(len(reach)), 0))
    earlier_reach = np.empty_like(reach)
    earlier_reach[1:] = reach_so_far[:-1]
    del reach_so_far
    furthest_earlier = np.full(len(reach), -1, dtype=np.int32)
    furthest_earlier[1:] = furthest_so_far[:-1]
    furthest_earlier[first] = -1
    earlier_reach[first] = 0
    return earlier_reach, furthest_earlier


def starts_care_spells(
    start: np.ndarray,
    first: np.ndarray,
    earlier_reach: np.ndarray,
    ends_continuing: np.ndarray,
    furthest_earlier: np.ndarray,
) -> np.ndarray:
    """An episode starts a new care spell unless an earlier episode of the child still runs on its
    start day, or the one reaching furthest ended as "continues" on that day (statistics.md "Care
    spells")."""
    continued = ends_continuing[np.maximum(furthest_earlier, 0)]
    return first | (start > earlier_reach) | ((start == earlier_reach) & ~continued)


def normal_placement_rows(is_temporary: np.ndarray, starts_care_spell: np.ndarray) -> np.ndarray:
    """Position of the normal placement: the last non-temporary episode of the same care spell before
    this one (-1 when there is none). statistics.md "Placement spells, moves and temporary moves"."""
    last_placement = np.maximum.accumulate(np.where(~is_temporary, positions(len(is_temporary)), -1))
    before = np.full(len(is_temporary), -1, dtype=np.int32)
    before[1:] = last_placement[:-1]
    return np.where(before >= group_starts(starts_care_spell), before, -1)


def starts_placement_spells(
    starts_care_spell: np.ndarray,
    is_temporary: np.ndarray,
    move_type: np.ndarray,
    after_temporary: np.ndarray,
    code_id: np.ndarray,
    normal_code_id: np.ndarray,
) -> np.ndarray:
    """A placement spell starts with the care spell, and at a non-temporary episode whose new-episode
    type is a move type, unless it follows a temporary move and returns to the normal placement's
    category (statistics.md "Placement spells, moves and temporary moves")."""
    returns = after_temporary & (code_id == normal_code_id)
    return starts_care_spell | (~is_temporary & move_type & ~returns)
