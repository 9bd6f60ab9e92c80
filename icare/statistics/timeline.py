"""The timeline's per-child steps, computed in numpy over the episodes sorted once by child and start.

In SQL each step (next start, how far earlier episodes reach, care spell number, normal placement,
placement spell number) is a window over the previous step's result, and every window level is a
full sort of the episodes. Here the rows are sorted once (``_SortedRows``) and each step is a few
whole-array operations (``child_steps.py``): a child's rows (or a care spell's) are a run of
consecutive rows, so "within the child" is a boundary mask, a running maximum or sum restarts at
each run, and "the last such row before this one" is a running maximum of row positions. No Python
loop visits an episode.

Definitions: docs/statistics.md "Episodes and overlaps", "Care spells" and "Placement spells, moves
and temporary moves". ``01_timeline.sql`` reads the result as the view ``timeline``.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from icare.statistics.child_steps import (
    cover_ends,
    earlier_reaches,
    first_of_group,
    group_starts,
    next_starts,
    normal_placement_rows,
    numbered,
    order_key,
    positions,
    previous_in_group,
    starts_care_spells,
    starts_placement_spells,
)

# What identifies a child, in the order children are numbered (``number_children``).
CHILD_COLUMNS = ("source", "area_code", "child_key")

# An open episode reaches "for ever": the latest DATE, as in SQL's coalesce(cover_end, '9999-12-31').
OPEN_END = int((np.datetime64("9999-12-31", "D") - np.datetime64("1970-01-01", "D")).astype(np.int64))


# Episode columns the timeline carries as they are (01_timeline.sql casts the dates).
CARRIED = (
    "source",
    "area_code",
    "child_key",
    "sex",
    "birth_month",
    "episode_end",
    "episode_end_type",
    "new_episode_type",
    "exit_destination",
    "icare_code",
    "legal_basis",
)
CARE_ENTRY = "care_entry"  # the harmonised new-episode type of an entry to care

# Carried columns with a value of their own on most rows; the others (a few codes each) are carried as
# dictionary arrays: DuckDB scans, joins and groups them as integers over a small dictionary (the
# spells' statements, stock and transitions: about 0.2 CPU-s less at 1M for 0.07 s of encoding).
DISTINCT_PER_ROW = frozenset({"child_key", "birth_month", "episode_end"})


def timeline_steps(
    connection: duckdb.DuckDBPyConnection, episodes: pa.Table, values: Mapping[str, object]
) -> tuple[pa.Table, pa.Table, pa.Table, pa.Table]:
    """The ``CARRIED`` columns of every episode with a timeline, beside its place in the child's
    timeline; each care spell's and placement spell's own values (``_CareSpells``,
    ``_PlacementSpells``); and each care spell's steps for the pathways (``_PlacementSpells.paths``,
    which reads the classification's ``code_ids`` from ``connection``). ``episodes`` is the table
    registered as ``episodes_in`` (row i has ``episode_row`` i).

    The steps run in each child's order; their results are put back in the episodes' order, so the
    other columns are not moved (taking text rows in another order is slow), and text results and
    carried codes are dictionary arrays over the few distinct values. To keep the working memory
    small, positions, ids and days are 32-bit, every intermediate is dropped once used, and the
    output columns are made one at a time.
    """
    rows = _SortedRows(connection, values, episodes)
    out = _Output(episodes, rows.order)
    start, first = rows.start, first_of_group(rows.child)
    out.add("child_id", rows.child)
    out.add("episode_no", positions(len(first)) - group_starts(first) + 1)
    next_start, has_next = next_starts(start, first)
    next_is_entry = np.zeros(len(first), dtype=bool)
    next_is_entry[:-1] = rows.is_entry[1:]
    cover_end, cover_missing, unknown_gap = cover_ends(
        rows.end, rows.end_missing, rows.ends_continuing, next_start, has_next, rows.gap, next_is_entry
    )
    del next_is_entry, rows.is_entry
    out.add_dates("placement_unknown_from", rows.end, ~unknown_gap)
    # a placement spell ending in such a gap ends with the episode's end, where its placement is known
    placement_end_at = np.where(unknown_gap, rows.end, next_start)
    del rows.end, rows.end_missing, rows.gap, unknown_gap
    reach = np.where(cover_missing, OPEN_END, cover_end)
    earlier_reach, furthest_earlier = earlier_reaches(reach, first)
    starts_care_spell = starts_care_spells(
        start, first, earlier_reach, rows.ends_continuing, furthest_earlier
    )
    del earlier_reach, furthest_earlier
    overlaps_next = has_next & (next_start < reach)
    care = _CareSpells(starts_care_spell, first, reach, cover_missing, overlaps_next)
    out.add_dates("episode_start", start)
    out.add_dates("cover_end", cover_end, cover_missing)
    del cover_end, cover_missing, reach
    out.add("overlaps_next", overlaps_next)
    del overlaps_next
    out.add_dates("next_start", next_start, ~has_next)
    out.add("is_temporary", rows.is_temporary)
    out.add("starts_care_spell", starts_care_spell)
    care_spell_no = numbered(starts_care_spell, first)
    out.add("care_spell_no", care_spell_no)

    codes, sectors = _Texts(episodes["icare_code"]), _Texts(episodes["provider_sector"])
    code_id = codes.ids[rows.order]
    normal_row = normal_placement_rows(rows.is_temporary, starts_care_spell)
    normal_code_id = np.where(normal_row >= 0, code_id[normal_row], -1)
    after_temporary = previous_in_group(rows.is_temporary, first)
    starts_placement_spell = starts_placement_spells(
        starts_care_spell, rows.is_temporary, rows.move_type, after_temporary, code_id, normal_code_id
    )
    del after_temporary, first
    out.add("starts_placement_spell", starts_placement_spell)
    placement_spell_no = numbered(starts_placement_spell, starts_care_spell)
    out.add("placement_spell_no", placement_spell_no)
    care.count_placement_spells(starts_placement_spell)
    placement = _PlacementSpells(starts_placement_spell, starts_care_spell, rows.is_temporary)
    placement.find_ends(placement_end_at, has_next, placement_spell_no, care)
    del placement_end_at, starts_placement_spell, starts_care_spell, next_start, has_next
    temporary_resolved = rows.is_temporary & bool(values["resolve_temporary"]) & (normal_code_id >= 0)
    out.add("temporary_resolved", temporary_resolved)
    out.add_texts("normal_code", codes, normal_code_id)
    # The category and provider sector counted: the normal placement's for a resolved temporary move.
    stat_code_id = np.where(temporary_resolved, normal_code_id, code_id)
    out.add_texts("stat_code", codes, stat_code_id)
    del code_id, normal_code_id
    sector_id = sectors.ids[rows.order]
    stat_sector_id = np.where(temporary_resolved, sector_id[normal_row], sector_id)
    out.add_texts("stat_provider_sector", sectors, stat_sector_id)
    care_spells = care.table(episodes, rows, start, care_spell_no, codes, stat_code_id)
    placement_spells = placement.table(
        episodes,
        rows,
        start,
        (care_spell_no, placement_spell_no),
        (codes, stat_code_id),
        (sectors, stat_sector_id),
    )
    code_id = _classification_ids(connection, codes)
    paths = placement.paths(
        care, rows, start, care_spell_no, np.where(stat_code_id >= 0, code_id[stat_code_id], -1)
    )
    return out.table(), care_spells, placement_spells, paths


class _CareSpells:
    """Each care spell's own values, one row per spell in the children's order, for
    ``02_care_spells.sql``: a care spell's episodes are consecutive rows (from the one that starts
    it), so what SQL found by grouping the timeline (a hash aggregate of nine aggregates, three of
    them over text: most of that statement's 1.8 CPU-s at 5M rows) is a reduction over each run of
    rows, and the previous spell of a child is the row before. statistics.md "Care spells".
    """

    def __init__(
        self,
        starts_care_spell: np.ndarray,
        first: np.ndarray,
        reach: np.ndarray,
        cover_missing: np.ndarray,
        overlaps_next: np.ndarray,
    ) -> None:
        self.first_rows = np.flatnonzero(starts_care_spell)  # the episode that starts each spell
        self.first_of_child = first[self.first_rows]
        self.episodes = np.diff(np.append(self.first_rows, len(reach))).astype(np.int32)
        # the spell ends when its furthest-reaching episode ends, never while one is open
        self.open = np.logical_or.reduceat(cover_missing, self.first_rows)
        furthest = np.maximum.reduceat(reach, self.first_rows)
        self.end = furthest
        # the furthest-reaching episode (the later-starting one on a tie): its end values count
        spell = np.cumsum(starts_care_spell, dtype=np.int32) - 1
        reaches_furthest = reach == furthest[spell]
        del spell
        self.last_rows = np.maximum.reduceat(
            np.where(reaches_furthest, positions(len(reach)), -1), self.first_rows
        )
        self.overlaps = np.add.reduceat(overlaps_next, self.first_rows, dtype=np.int32)
        self.placements = np.zeros(0, dtype=np.int32)

    def count_placement_spells(self, starts_placement_spell: np.ndarray) -> None:
        """Placement spells in each care spell (they are numbered 1, 2, ... within it)."""
        self.placements = np.add.reduceat(starts_placement_spell, self.first_rows, dtype=np.int32)

    def table(
        self,
        episodes: pa.Table,
        rows: _SortedRows,
        start: np.ndarray,
        care_spell_no: np.ndarray,
        codes: _Texts,
        stat_code_id: np.ndarray,
    ) -> pa.Table:
        """The spells' columns: the first episode's (``rows``' positions ``first_rows``) and the
        furthest-reaching one's (``last_rows``) values, ends, counts and the previous spell's end."""
        first_episode = pa.array(rows.order[self.first_rows])
        last_episode = pa.array(rows.order[self.last_rows])
        # a child's previous care spell is the row before, unless this is the child's first
        previous_open = np.ones(len(self.first_rows), dtype=bool)
        previous_open[1:] = self.open[:-1]
        previous_end = np.zeros(len(self.first_rows), dtype=self.end.dtype)
        previous_end[1:] = self.end[:-1]
        return pa.table(
            {
                "child_id": pa.array(rows.child[self.first_rows]),
                "care_spell_no": pa.array(care_spell_no[self.first_rows]),
                "sex": episodes["sex"].take(first_episode),
                "birth_month": episodes["birth_month"].take(first_episode),
                "spell_start": _dates(start[self.first_rows]),
                "spell_end": _dates(self.end, self.open),
                "first_new_episode_type": episodes["new_episode_type"].take(first_episode),
                "icare_code_start": codes.text(stat_code_id[self.first_rows]),
                "last_end_type": episodes["episode_end_type"].take(last_episode),
                "last_exit_destination": episodes["exit_destination"].take(last_episode),
                "icare_code_end": codes.text(stat_code_id[self.last_rows]),
                "episodes": pa.array(self.episodes),
                "placement_spells": pa.array(self.placements),
                "overlaps_resolved": pa.array(self.overlaps),
                "previous_spell_end": _dates(previous_end, previous_open | self.first_of_child),
            }
        )


class _PlacementSpells:
    """Each placement spell's own values, one row per spell in the children's order, for
    ``03_placement_spells.sql``: a placement spell's episodes are consecutive rows of its care spell
    (from the one that starts it), so what SQL found by grouping the timeline and joining the care
    spells (most of that statement's 2.1 CPU-s at 5M rows) is a reduction over each run of rows.
    statistics.md "Placement spells, moves and temporary moves".
    """

    def __init__(
        self, starts_placement_spell: np.ndarray, starts_care_spell: np.ndarray, is_temporary: np.ndarray
    ) -> None:
        self.first_rows = np.flatnonzero(starts_placement_spell)  # the episode that starts each spell
        self.last_rows = np.append(self.first_rows, len(starts_placement_spell))[1:] - 1
        self.episodes = (self.last_rows - self.first_rows + 1).astype(np.int32)
        self.temporary = np.add.reduceat(is_temporary, self.first_rows, dtype=np.int32)
        # the care spell of each (care spells are numbered 0, 1, ... over all children here)
        self.care_spell = (np.cumsum(starts_care_spell, dtype=np.int32) - 1)[self.first_rows]
        self.end = np.zeros(0, dtype=np.int32)
        self.open = np.zeros(0, dtype=bool)

    def find_ends(
        self, next_start: np.ndarray, has_next: np.ndarray, placement_spell_no: np.ndarray, care: _CareSpells
    ) -> None:
        """A placement spell ends where the episode after its last one starts (which starts the next
        placement spell of the care spell; ``next_start``, or the last one's end when a gap of unknown
        placement follows it), the care spell's last one when its care spell ends."""
        last_of_care = placement_spell_no[self.first_rows] == care.placements[self.care_spell]
        self.end = np.where(last_of_care, care.end[self.care_spell], next_start[self.last_rows])
        self.open = np.where(last_of_care, care.open[self.care_spell], ~has_next[self.last_rows])

    def paths(
        self,
        care: _CareSpells,
        rows: _SortedRows,
        start: np.ndarray,
        care_spell_no: np.ndarray,
        code_id: np.ndarray,
    ) -> pa.Table:
        """Each care spell's steps for the pathways (``15_pathway_steps.sql``): its placement spells'
        starts and categories (``code_id`` of each row: the classification's code ids, -1 for
        another text or none) in order, as a list; a placement spell whose category is not a
        classification code is left out, and so is a care spell left without steps. In SQL the
        placement spells were joined with the code ids and grouped into sorted lists per care
        spell: about 0.33 of the statement's 0.58 s at 1M rows (wall)."""
        code = code_id[self.first_rows]
        known = code >= 0
        steps_of_spell = np.bincount(self.care_spell[known], minlength=len(care.first_rows))
        with_steps = steps_of_spell > 0
        offsets = np.zeros(int(with_steps.sum()) + 1, dtype=np.int32)
        np.cumsum(steps_of_spell[with_steps], out=offsets[1:])
        steps = pa.StructArray.from_arrays(
            [_dates(start[self.first_rows[known]]), pa.array(code[known])], names=["start", "code"]
        )
        first = care.first_rows[with_steps]
        return pa.table(
            {
                "child_id": pa.array(rows.child[first]),
                "care_spell_no": pa.array(care_spell_no[first]),
                "steps": pa.ListArray.from_arrays(pa.array(offsets), steps),
            }
        )

    def table(
        self,
        episodes: pa.Table,
        rows: _SortedRows,
        start: np.ndarray,
        numbers: tuple[np.ndarray, np.ndarray],
        codes: tuple[_Texts, np.ndarray],
        sectors: tuple[_Texts, np.ndarray],
    ) -> pa.Table:
        """The spells' columns: the first episode's (``first_rows``) values with the care spell and
        placement spell numbers (``numbers``), the last episode's category (``codes``: the texts and
        each row's id), the first's provider sector (``sectors``, alike), ends and counts."""
        first_episode = pa.array(rows.order[self.first_rows])
        (care_spell_no, placement_spell_no), (code_texts, code_id) = numbers, codes
        return pa.table(
            {
                "child_id": pa.array(rows.child[self.first_rows]),
                "care_spell_no": pa.array(care_spell_no[self.first_rows]),
                "placement_spell_no": pa.array(placement_spell_no[self.first_rows]),
                "sex": episodes["sex"].take(first_episode),
                "birth_month": episodes["birth_month"].take(first_episode),
                "placement_start": _dates(start[self.first_rows]),
                "placement_end": _dates(self.end, self.open),
                "icare_code_start": code_texts.text(code_id[self.first_rows]),
                "icare_code_end": code_texts.text(code_id[self.last_rows]),
                "provider_sector": sectors[0].text(sectors[1][self.first_rows]),
                "episodes": pa.array(self.episodes),
                "temporary_episodes": pa.array(self.temporary),
            }
        )


def _classification_ids(connection: duckdb.DuckDBPyConnection, codes: _Texts) -> np.ndarray:
    """The ``code_id`` (``00_code_ids.sql``) of each of ``codes``' distinct texts, -1 for a text
    that is not a classification code."""
    code_ids = connection.sql("SELECT code, code_id FROM code_ids").to_arrow_table()
    found = pc.index_in(codes.distinct.cast(code_ids["code"].type), value_set=code_ids["code"])
    return pc.fill_null(pc.take(code_ids["code_id"], found), -1).to_numpy().astype(np.int32)


def _dates(days: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """Days since 1970-01-01 as DATE, empty where ``missing``."""
    return pa.array(days.astype(np.int32, copy=False), pa.int32(), mask=missing).cast(pa.date32())


def number_children(episodes: pa.Table) -> tuple[pa.Table, pa.Table]:
    """``episodes`` with ``child_id``: one integer per child (``CHILD_COLUMNS``), 1, 2, ... in the
    order of SQL's ``ORDER BY source, area_code, child_key`` (text compared byte by byte, an empty
    area last), empty without a child key; and the children's ``CHILD_COLUMNS``, row i for child
    i + 1 (the spells take them by child_id instead of carrying three texts through DuckDB).

    Found on the columns' dictionary codes: each distinct text is ranked once, the three ranks of a
    row are packed into one integer, and the distinct packed values, sorted, are the children
    (in SQL, a DISTINCT over the texts and a window sorting them: about 1.1 CPU-s at 5M rows, and
    the timeline's sort then joined the children back on the three texts).
    """
    packed = np.zeros(episodes.num_rows, dtype=np.int64)
    span = 1
    for name in CHILD_COLUMNS:
        texts = _Texts(episodes[name])
        ranks = np.append(_ranks(texts.distinct), np.int64(len(texts.distinct)))  # empty: last
        span *= len(texts.distinct) + 1
        if span >= 2**62:
            raise ValueError(f"too many distinct {', '.join(CHILD_COLUMNS)} to number the children")
        packed *= len(texts.distinct) + 1
        packed += ranks[texts.ids]  # an empty value's id -1 picks the last rank
    keyed = texts.ids >= 0  # the last column is the child key
    rows = np.flatnonzero(keyed)
    _children, first, number = np.unique(packed[rows], return_index=True, return_inverse=True)
    child_id = np.zeros(episodes.num_rows, dtype=np.int32)
    child_id[rows] = number + 1
    children = episodes.select(list(CHILD_COLUMNS)).take(rows[first])
    return episodes.append_column("child_id", pa.array(child_id, mask=~keyed)), children


def _ranks(distinct: pa.Array) -> np.ndarray:
    """The rank of each distinct text in byte order (0 for the smallest; equal texts, equal ranks)."""
    if len(distinct) == 0:
        return np.zeros(0, dtype=np.int64)
    return pc.rank(distinct, sort_keys="ascending", tiebreaker="dense").to_numpy().astype(np.int64) - 1


class _SortedRows:
    """The narrow rows the steps read, in each child's order (child_id, then start, an empty start
    last; records of a child starting the same day stay in the episodes' order), as numpy arrays:
    episodes of a source without rules (the registered table ``source_rules``), or without a child
    key (no child_id), have no timeline. The flags are found once per distinct text of their column
    and spread by its codes, and the rows sorted in numpy (the episodes usually come in this order
    already, which NumPy's stable sort takes in one pass); in SQL, a join and a sort of every row
    and its conversion to Arrow cost about 0.5-1.0 CPU-s at 5M rows."""

    def __init__(
        self, connection: duckdb.DuckDBPyConnection, values: Mapping[str, object], episodes: pa.Table
    ) -> None:
        if episodes.num_rows >= np.iinfo(np.int32).max:
            raise ValueError(f"{episodes.num_rows:,} episodes: the timeline numbers rows in 32 bits")
        rules = connection.view("source_rules").to_arrow_table()
        sources = _Texts(episodes["source"])
        rule = pc.index_in(sources.distinct.cast(rules["source"].type), value_set=rules["source"])
        gaps = np.append(pc.fill_null(pc.take(rules["care_spell_gap_days"], rule), 0).to_numpy(), 0)
        has_rules = np.append(rule.is_valid().to_numpy(zero_copy_only=False), False)[sources.ids]
        keyed = episodes["child_id"].is_valid().to_numpy(zero_copy_only=False)
        child = pc.fill_null(episodes["child_id"], 0).to_numpy().astype(np.int32)
        start_dates = episodes["episode_start"].cast(pa.date32())
        start, start_missing = _days(start_dates), _nulls(start_dates)
        end_dates = episodes["episode_end"].cast(pa.date32())
        end, end_missing = _days(end_dates), _nulls(end_dates)
        del start_dates, end_dates
        kept = np.flatnonzero(keyed & has_rules)
        self.order = kept[
            np.argsort(order_key(child, start, start_missing, end, end_missing)[kept], kind="stable")
        ]
        self.order = self.order.astype(np.int32)  # position -> row
        del kept, keyed, start_missing
        self.child = child[self.order]
        self.start = start[self.order]
        self.end = end[self.order]
        self.end_missing = end_missing[self.order]
        del end, end_missing
        self.ends_continuing = _matches(episodes["episode_end_type"], pa.array(["continues"]))[self.order]
        self.is_entry = _matches(episodes["new_episode_type"], pa.array([CARE_ENTRY]))[self.order]
        temporary = pa.array([values["temporary_purpose"]], pa.string())
        self.is_temporary = _matches(episodes["purpose"], temporary)[self.order]
        move_types = connection.view("move_types").to_arrow_table()["new_episode_type"]
        self.move_type = _matches(episodes["new_episode_type"], move_types)[self.order]
        self.gap = gaps.astype(np.int32)[sources.ids][self.order]


def _matches(column: pa.ChunkedArray, values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Whether each row's text is one of ``values`` (False where empty), found once per distinct text."""
    texts = _Texts(column)
    found = pc.is_in(texts.distinct.cast(pa.string()), value_set=values.cast(pa.string()))
    return np.append(found.to_numpy(zero_copy_only=False), False)[texts.ids]


class _Output:
    """The timeline's columns in the episodes' order, each converted to Arrow as soon as it is made
    from values in the child's order (``order``: position -> episode row). Rows without a timeline
    get 0 and are dropped at the end."""

    def __init__(self, episodes: pa.Table, order: np.ndarray) -> None:
        self.rows = episodes.num_rows
        self.order = order
        # The episodes usually come in each child's order already, every row with a timeline: then
        # nothing is put back (a copy of each column, about 0.25 s at 5M rows).
        self.in_order = len(order) == self.rows and bool((order == positions(self.rows)).all())
        self.columns: dict[str, pa.Array | pa.ChunkedArray] = {
            name: episodes[name] if name in DISTINCT_PER_ROW else _coded(episodes[name]) for name in CARRIED
        }

    def back(self, column: np.ndarray) -> np.ndarray:
        """Values in the child's order, put in the episodes' order (rows without a timeline: 0)."""
        if self.in_order:
            return column
        out = np.zeros(self.rows, dtype=column.dtype)
        out[self.order] = column
        return out

    def add(self, name: str, column: np.ndarray) -> None:
        self.columns[name] = pa.array(self.back(column))

    def add_dates(self, name: str, days: np.ndarray, missing: np.ndarray | None = None) -> None:
        """Days since 1970-01-01 as DATE, empty where ``missing``."""
        self.columns[name] = _dates(self.back(days), None if missing is None else self.back(missing))

    def add_texts(self, name: str, texts: _Texts, ids: np.ndarray) -> None:
        self.columns[name] = texts.text(self.back(ids))

    def table(self) -> pa.Table:
        """The columns as a table, with only the rows that have a timeline."""
        table = pa.table(self.columns)
        self.columns = {}
        if len(self.order) == self.rows:  # every row has a timeline (each appears once in order)
            return table
        kept = np.zeros(self.rows, dtype=bool)
        kept[self.order] = True
        return table.filter(kept)


def _coded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text column as a dictionary array (unchanged if it is one already)."""
    return column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)


def _days(column: pa.ChunkedArray) -> np.ndarray:
    """Days since 1970-01-01, 32-bit (0 where empty)."""
    return pc.fill_null(column.cast(pa.int32()), 0).to_numpy()


def _nulls(column: pa.ChunkedArray) -> np.ndarray:
    return column.is_null().to_numpy()


def _bools(column: pa.ChunkedArray) -> np.ndarray:
    return pc.fill_null(column, False).to_numpy()


class _Texts:
    """A text column as an integer per row (-1 for empty) and its distinct values: "is not distinct
    from" becomes an integer compare, and results are looked up from the distinct values."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        encoded = pc.dictionary_encode(column.combine_chunks())
        self.ids = pc.fill_null(encoded.indices, -1).to_numpy().astype(np.int32, copy=False)
        self.distinct = encoded.dictionary

    def text(self, ids: np.ndarray) -> pa.DictionaryArray:
        """The values as a dictionary array over the distinct values (DuckDB reads it as text): an
        integer per row instead of a copy of each text."""
        return pa.DictionaryArray.from_arrays(pa.array(ids, mask=ids < 0), self.distinct)
