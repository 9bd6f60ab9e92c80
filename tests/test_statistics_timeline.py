"""The timeline's per-child steps in numpy (icare/statistics/timeline.py).

Hand-computed cases for each step, and a check that the whole timeline equals the chain of SQL windows
it replaced (kept below as the reference) on many random children.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from icare.statistics import child_steps as cs
from icare.statistics import timeline as tl
from icare.statistics.compute import SQL_DIR, TIMELINE_SQL, _codes, _episodes_arrow
from tests.statistics_builders import CLASSIFICATION, SETTINGS, compute, ep

T, F = True, False
OPEN = tl.OPEN_END


def steps(child, start, end, end_type, gap=0, entries=()):
    """The care spell steps of rows sorted by child and start (end None: open; ``entries``: the rows
    that are new care entries)."""
    child = np.array(child)
    start = np.array(start)
    end_missing = np.array([e is None for e in end])
    end = np.array([0 if e is None else e for e in end])
    ends_continuing = np.array([t == "continues" for t in end_type])
    gap = np.full(len(child), gap)
    first = cs.first_of_group(child)
    next_start, has_next = cs.next_starts(start, first)
    next_is_entry = np.array([i + 1 in entries for i in range(len(child))])
    cover_end, cover_missing, unknown = cs.cover_ends(
        end, end_missing, ends_continuing, next_start, has_next, gap, next_is_entry
    )
    reach = np.where(cover_missing, OPEN, cover_end)
    earlier_reach, furthest = cs.earlier_reaches(reach, first)
    starts = cs.starts_care_spells(start, first, earlier_reach, ends_continuing, furthest)
    return {
        "cover_end": [None if m else int(c) for c, m in zip(cover_end, cover_missing, strict=True)],
        "placement_unknown": unknown.tolist(),
        "overlaps_next": (has_next & (next_start < reach)).tolist(),
        "earlier_reach": [None if f else int(r) for r, f in zip(earlier_reach, first, strict=True)],
        "furthest_earlier": furthest.tolist(),
        "starts_care_spell": starts.tolist(),
        "care_spell_no": cs.numbered(starts, first).tolist(),
    }


def test_same_day_chain_reentry_and_overlap():
    # continues into the next the same day; an exit and a new episode the same day is a re-entry; an
    # open episode starting before the previous one ended overlaps it
    got = steps([1, 1, 1, 1], [0, 10, 20, 25], [10, 20, 30, None], ["continues", "exit", "exit", "open"])
    assert got == {
        "cover_end": [10, 20, 30, None],
        "placement_unknown": [F, F, F, F],
        "overlaps_next": [F, F, T, F],
        "earlier_reach": [None, 10, 20, 30],
        "furthest_earlier": [-1, 0, 1, 2],
        "starts_care_spell": [T, F, T, F],
        "care_spell_no": [1, 1, 2, 2],
    }


def test_tie_on_reach_goes_to_the_later_starting_episode():
    # rows 0 and 1 both reach day 200: row 1 (later start) continues into row 2, so no new spell
    got = steps([7, 7, 7], [100, 120, 200], [200, 200, 210], ["exit", "continues", "exit"])
    assert got["cover_end"] == [200, 200, 210]
    assert got["overlaps_next"] == [T, F, F]
    assert got["furthest_earlier"] == [-1, 0, 1]
    assert got["starts_care_spell"] == [T, F, F]


def test_nested_episode_does_not_shorten_the_spell():
    # row 1 is nested in row 0 and says continues, but nothing starts on its end and the next (row 2)
    # is a new entry: the furthest-reaching earlier episode (row 0) ended with an exit on day 400, so
    # row 2 starts a new spell
    got = steps([3, 3, 3], [300, 310, 400], [400, 320, None], ["exit", "continues", "open"], entries={2})
    assert got["cover_end"] == [400, 320, None]
    assert got["placement_unknown"] == [F, F, F]
    assert got["earlier_reach"] == [None, 400, 400]
    assert got["furthest_earlier"] == [-1, 0, 0]
    assert got["starts_care_spell"] == [T, F, T]
    assert got["care_spell_no"] == [1, 1, 2]


def test_gap_tolerated_by_the_source_bridges_a_continuing_episode():
    got = steps(
        [3, 3, 3], [300, 310, 400], [400, 320, None], ["exit", "continues", "open"], gap=80, entries={2}
    )
    assert got["cover_end"] == [400, 400, None]  # 320 + 80 = 400: the gap is covered
    assert got["placement_unknown"] == [F, F, F]  # within the tolerated gap: the placement runs on
    assert got["furthest_earlier"] == [-1, 0, 1]  # tie at 400: the later-starting row 1 continues
    assert got["starts_care_spell"] == [T, F, F]


def test_continues_into_a_later_episode_that_is_not_an_entry_keeps_the_spell_open():
    # row 0 says continues on day 20 but the next row starts on day 50 (the rows between are missing
    # or quarantined): in care from 20 to 50 with the placement not known, one care spell. Row 2
    # continues on day 80 but the next (row 3, day 90) is a new entry: an exit, then a new spell. Row 3
    # continues on day 95 with nothing after it: the spell ends there.
    got = steps(
        [8, 8, 8, 8],
        [0, 50, 60, 90],
        [20, 60, 80, 95],
        ["continues", "continues", "continues", "continues"],
        entries={0, 3},
    )
    assert got["cover_end"] == [50, 60, 80, 95]
    assert got["placement_unknown"] == [T, F, F, F]
    assert got["overlaps_next"] == [F, F, F, F]
    assert got["starts_care_spell"] == [T, F, F, T]
    assert got["care_spell_no"] == [1, 1, 1, 2]


def test_open_episode_runs_for_ever_and_children_are_apart():
    got = steps(
        [4, 4, 5, 6, 6],
        [500, 600, 0, 10, 20],
        [None, 610, 30, 15, 25],
        ["open", "exit", "exit", "exit", "exit"],
    )
    assert got["cover_end"] == [None, 610, 30, 15, 25]
    assert got["overlaps_next"] == [T, F, F, F, F]
    assert got["earlier_reach"] == [None, OPEN, None, None, 15]
    assert got["starts_care_spell"] == [T, F, T, T, T]  # another child's episodes never chain
    assert got["care_spell_no"] == [1, 1, 1, 1, 2]


def test_temporary_moves_and_the_normal_placement():
    # codes: 0 = A, 1 = B, 2 = C, 9 = the temporary category
    care_start = np.array([T, F, F, F, F, F, T, F])
    temporary = np.array([F, T, F, T, F, F, T, F])
    move_type = np.array([T, T, T, T, T, F, T, T])
    code = np.array([0, 9, 0, 9, 1, 2, 9, 0])
    normal = cs.normal_placement_rows(temporary, care_start)
    # the last non-temporary episode before, in the same care spell (row 6 starts a new one)
    assert normal.tolist() == [-1, 0, 0, 2, 2, 4, -1, -1]
    normal_code = np.where(normal >= 0, code[np.maximum(normal, 0)], -1)
    after_temporary = cs.previous_in_group(temporary, np.array([T, F, F, F, F, F, F, F]))  # one child
    assert after_temporary.tolist() == [F, F, T, F, T, F, F, T]
    starts = cs.starts_placement_spells(care_start, temporary, move_type, after_temporary, code, normal_code)
    # row 2 returns to A after a temporary move: same placement; row 4 moves to B; row 5 is not a move
    # type; row 7 follows a temporary move but its care spell has no normal placement: a move
    assert starts.tolist() == [T, F, F, F, T, F, T, T]
    assert cs.numbered(starts, care_start).tolist() == [1, 1, 1, 1, 2, 2, 1, 2]


def test_empty_episode_code_matches_an_empty_normal_code():
    # "is not distinct from": an empty code returning after a temporary move from an empty-coded
    # placement is the same placement
    care_start = np.array([T, F, F])
    temporary = np.array([F, T, F])
    code = np.array([-1, 9, -1])
    normal = cs.normal_placement_rows(temporary, care_start)
    normal_code = np.where(normal >= 0, code[np.maximum(normal, 0)], -1)
    starts = cs.starts_placement_spells(
        care_start, temporary, np.array([T, T, T]), np.array([F, F, T]), code, normal_code
    )
    assert starts.tolist() == [T, F, F]


# The chain of SQL windows the numpy steps replaced (01_timeline.sql at commit 695dc21): the reference.
REFERENCE_SQL = """
CREATE TABLE reference AS
WITH ordered AS (
    SELECT
        e.episode_row, ids.child_id,
        e.episode_start::DATE AS episode_start, e.episode_end::DATE AS episode_end, e.episode_end_type,
        e.icare_code, e.provider_sector, r.care_spell_gap_days,
        coalesce(e.purpose = $temporary_purpose, false) AS is_temporary,
        e.new_episode_type IN (SELECT new_episode_type FROM move_types) AS move_type,
        lead(e.episode_start::DATE) OVER child AS next_start,
        lead(e.new_episode_type) OVER child AS next_new_episode_type,
        row_number() OVER child AS episode_no
    FROM episodes_in AS e
    JOIN child_ids AS ids
        ON ids.source = e.source AND ids.area_code IS NOT DISTINCT FROM e.area_code
        AND ids.child_key = e.child_key
    JOIN source_rules AS r ON r.source = e.source
    WINDOW child AS (PARTITION BY ids.child_id ORDER BY e.episode_start)
),
covered AS (
    -- The child is in care on every day d with episode_start <= d < cover_end (no end: open). An
    -- episode that "continues" into the next one within the source's tolerated gap covers the gap;
    -- so does one whose next starts later and is not a new entry, the placement then not known.
    SELECT
        *,
        CASE
            WHEN episode_end_type = 'continues'
                AND (next_start BETWEEN episode_end AND episode_end + care_spell_gap_days::INTEGER
                    OR placement_unknown_from IS NOT NULL)
            THEN next_start
            ELSE episode_end
        END AS cover_end
    FROM (
        SELECT
            *,
            CASE
                WHEN episode_end_type = 'continues'
                    AND next_start > episode_end + care_spell_gap_days::INTEGER
                    AND next_new_episode_type IS DISTINCT FROM 'care_entry'
                THEN episode_end
            END AS placement_unknown_from
        FROM ordered
    )
),
reach AS (
    -- How far the child's earlier episodes reach, and how the one reaching furthest ended.
    SELECT
        *,
        max(coalesce(cover_end, DATE '9999-12-31')) OVER earlier AS earlier_reach,
        arg_max(episode_end_type, [coalesce(cover_end, DATE '9999-12-31'), episode_start]) OVER earlier
            AS earlier_reach_end_type,
        coalesce(lag(is_temporary) OVER child, false) AS after_temporary
    FROM covered
    WINDOW
        child AS (PARTITION BY child_id ORDER BY episode_start),
        earlier AS (
            PARTITION BY child_id ORDER BY episode_start
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        )
),
spells AS (
    SELECT
        *,
        -- a new care spell unless an earlier episode still runs, or continues into this one
        earlier_reach IS NULL
            OR episode_start > earlier_reach
            OR (episode_start = earlier_reach AND earlier_reach_end_type IS DISTINCT FROM 'continues')
            AS starts_care_spell,
        next_start IS NOT NULL AND next_start < coalesce(cover_end, DATE '9999-12-31') AS overlaps_next
    FROM reach
),
numbered AS (
    SELECT
        *,
        sum(starts_care_spell::INTEGER) OVER (
            PARTITION BY child_id ORDER BY episode_start
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS care_spell_no
    FROM spells
),
normal AS (
    -- The normal placement: the last non-temporary episode of the same care spell before this one.
    SELECT
        *,
        -- one struct, so an empty provider sector of the normal placement is kept, not skipped
        last_value(
            CASE WHEN NOT is_temporary THEN {'code': icare_code, 'sector': provider_sector} END IGNORE NULLS
        ) OVER before_this AS normal_placement
    FROM numbered
    WINDOW before_this AS (
        PARTITION BY child_id, care_spell_no ORDER BY episode_start
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
    )
),
placements AS (
    SELECT
        *,
        normal_placement.code AS normal_code,
        normal_placement.sector AS normal_provider_sector,
        starts_care_spell
            OR (NOT is_temporary AND move_type
                AND NOT (after_temporary AND icare_code IS NOT DISTINCT FROM normal_code))
            AS starts_placement_spell,
        is_temporary AND $resolve_temporary AND normal_code IS NOT NULL AS temporary_resolved
    FROM normal
),
core AS (
    SELECT
        episode_row, child_id, episode_no, episode_start, cover_end, placement_unknown_from, next_start,
        overlaps_next,
        is_temporary, temporary_resolved, normal_code,
        CASE WHEN temporary_resolved THEN normal_code ELSE icare_code END AS stat_code,
        CASE WHEN temporary_resolved THEN normal_provider_sector ELSE provider_sector END
            AS stat_provider_sector,
        starts_care_spell, care_spell_no, starts_placement_spell,
        sum(starts_placement_spell::INTEGER) OVER (
            PARTITION BY child_id, care_spell_no ORDER BY episode_start
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS placement_spell_no
    FROM placements
)
SELECT
    c.child_id, e.source, e.area_code, e.sex, e.birth_month::DATE AS birth_month, c.episode_no,
    c.episode_start, e.episode_end::DATE AS episode_end, c.cover_end, c.placement_unknown_from, c.next_start,
    c.overlaps_next,
    e.episode_end_type, e.new_episode_type, e.exit_destination,
    e.icare_code, c.is_temporary, c.temporary_resolved, c.normal_code, c.stat_code, c.stat_provider_sector,
    e.legal_basis, c.starts_care_spell, c.care_spell_no, c.starts_placement_spell, c.placement_spell_no
FROM core AS c
JOIN episodes_in AS e USING (episode_row)
"""


# The grouping of the timeline that _CareSpells replaced (02_care_spells.sql at commit 1e241ab).
CARE_SPELLS_REFERENCE_SQL = """
CREATE TABLE care_spells_reference AS
WITH first_episodes AS (
    -- a care spell's first episode is the one that starts it (timeline.starts_care_spell): read
    -- directly, cheaper than first(x ORDER BY episode_start) over the spell's episodes
    SELECT
        child_id, care_spell_no, sex, birth_month,
        episode_start AS spell_start, new_episode_type AS first_new_episode_type,
        stat_code AS icare_code_start
    FROM child_timeline($first_child, $last_child)
    WHERE starts_care_spell
),
reaching AS (
    -- reach_order sorts a child's episodes by how far they reach (open: for ever), then by start: the
    -- two DATEs (32-bit day numbers) packed in one BIGINT, compared faster than a list
    SELECT
        *,
        (coalesce(cover_end, DATE '9999-12-31') - DATE '1970-01-01') * 4294967296
            + (episode_start - DATE '1970-01-01') + 2147483648 AS reach_order
    FROM child_timeline($first_child, $last_child)
),
grouped AS (
    SELECT f.*, r.* EXCLUDE (child_id, care_spell_no)
    FROM first_episodes AS f
    JOIN (
        SELECT
            child_id, care_spell_no,
            -- the spell ends when its furthest-reaching episode ends (never while one is open)
            CASE WHEN bool_or(cover_end IS NULL) THEN NULL ELSE max(cover_end) END AS spell_end,
            -- the furthest-reaching episode's values, empty or not (arg_max would skip an empty
            -- destination and take another episode's)
            arg_max_null(episode_end_type, reach_order) AS last_end_type,
            arg_max_null(exit_destination, reach_order) AS last_exit_destination,
            arg_max_null(stat_code, reach_order) AS icare_code_end,
            count(*) AS episodes,
            max(placement_spell_no) AS placement_spells,
            count(*) FILTER (WHERE overlaps_next) AS overlaps_resolved
        FROM reaching
        GROUP BY child_id, care_spell_no
    ) AS r USING (child_id, care_spell_no)
)
-- the child's source, area and key are taken by child_id after the read-out (compute.py, _spells)
SELECT
    g.child_id, g.care_spell_no, g.sex, g.birth_month,
    g.spell_start, g.spell_end,
    CASE WHEN g.spell_end IS NULL THEN 'open' ELSE 'exit' END AS end_type,
    CASE
        WHEN g.spell_end IS NULL THEN NULL
        WHEN g.last_end_type = 'exit' THEN coalesce(g.last_exit_destination, 'not_known')
        ELSE 'not_known'  -- the last episode said "continues" but no episode follows
    END AS exit_destination,
    g.icare_code_start, g.icare_code_end, g.episodes, g.placement_spells,
    g.placement_spells - 1 AS moves,
    g.spell_end - g.spell_start AS duration_days,
    g.first_new_episode_type = 'care_entry' AS starts_with_entry,
    previous.spell_end AS previous_spell_end,
    coalesce(g.spell_start <= previous.spell_end + to_months($re_entry_months::INTEGER), false) AS re_entry,
    g.overlaps_resolved
FROM grouped AS g
-- a child's care spells are numbered 1, 2, ...: the previous one is number - 1 (a join on that is
-- cheaper than a window, which sorts)
LEFT JOIN grouped AS previous
    ON previous.child_id = g.child_id AND previous.care_spell_no = g.care_spell_no - 1
"""


# The grouping of the timeline that _PlacementSpells replaced (03_placement_spells.sql at 519efed).
PLACEMENT_SPELLS_REFERENCE_SQL = """
CREATE TABLE placement_spells_reference AS
WITH first_episodes AS (
    -- a placement spell's first episode is the one that starts it (timeline.starts_placement_spell):
    -- read directly, cheaper than first(x ORDER BY episode_start) over the spell's episodes
    SELECT
        child_id, care_spell_no, placement_spell_no, sex, birth_month,
        episode_start AS placement_start, stat_code AS icare_code_start,
        stat_provider_sector AS provider_sector
    FROM child_timeline($first_child, $last_child)
    WHERE starts_placement_spell
),
grouped AS (
    SELECT f.*, c.icare_code_end, c.following_start, c.episodes, c.temporary_episodes
    FROM first_episodes AS f
    JOIN (
        SELECT
            child_id, care_spell_no, placement_spell_no,
            -- the last episode's values (a child's episodes are numbered in start order): arg_max_null
            -- keeps one value per spell, where an ordered aggregate buffers every row
            arg_max_null(stat_code, episode_no) AS icare_code_end,
            -- the start of the child's episode after this spell's last one (its end when the
            -- placement after it is not known)
            arg_max_null(coalesce(placement_unknown_from, next_start), episode_no) AS following_start,
            count(*) AS episodes,
            count(*) FILTER (WHERE is_temporary) AS temporary_episodes
        FROM child_timeline($first_child, $last_child)
        GROUP BY child_id, care_spell_no, placement_spell_no
    ) AS c USING (child_id, care_spell_no, placement_spell_no)
),
ended AS (
    -- a care spell's episodes are in consecutive placement spells: the episode after the last one of
    -- a placement spell starts the next placement spell, unless this is the care spell's last
    SELECT
        g.*,
        CASE WHEN g.placement_spell_no < s.placement_spells THEN g.following_start ELSE s.spell_end END
            AS placement_end
    FROM grouped AS g
    JOIN care_spells AS s
        ON s.child_id = g.child_id AND s.care_spell_no = g.care_spell_no
)
-- the child's source, area and key are taken by child_id after the read-out (compute.py, _spells)
SELECT
    child_id, care_spell_no, placement_spell_no, sex, birth_month,
    placement_start, placement_end, icare_code_start, icare_code_end, provider_sector,
    episodes, temporary_episodes, placement_end - placement_start AS duration_days
FROM ended
"""


def _timeline(rows: list[dict[str, object]], resolve: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The timeline from the numpy steps and from the reference SQL, in the same row order."""
    frame = pd.DataFrame(rows)
    for column in ("birth_month", "episode_start", "episode_end"):
        frame[column] = pd.to_datetime(frame[column])
    episodes, children = tl.number_children(_episodes_arrow(frame))
    values = {"temporary_purpose": SETTINGS.temporary_move_purpose, "resolve_temporary": resolve}
    connection = duckdb.connect()
    connection.register("episodes_in", episodes)
    connection.register("source_rules", pa.table({"source": ["ssda903"], "care_spell_gap_days": [0]}))
    connection.register(
        "move_types", pa.table({"new_episode_type": pa.array(SETTINGS.placement_move_types, pa.string())})
    )
    # the children as the reference numbered them (00_child_ids.sql at commit 695dc21)
    connection.execute(
        "CREATE TABLE child_ids AS SELECT source, area_code, child_key, "
        "row_number() OVER (ORDER BY source, area_code, child_key) AS child_id "
        "FROM (SELECT DISTINCT source, area_code, child_key FROM episodes_in)"
    )
    connection.register("codes", _codes(CLASSIFICATION))
    connection.execute((SQL_DIR / "00_code_ids.sql").read_text())
    steps, care_spells, placement_spells, paths = tl.timeline_steps(connection, episodes, values)
    connection.register("timeline_steps", steps)
    connection.execute((SQL_DIR / TIMELINE_SQL).read_text())
    connection.execute(REFERENCE_SQL, values)
    _check_spells(connection, care_spells, placement_spells)
    _check_paths(connection, paths)
    ordered = "ORDER BY child_id, episode_start"
    # the child key the timeline carries (the reference did not) is its child's
    mismatched = connection.execute(
        "SELECT count(*) FROM timeline AS t JOIN child_ids AS i USING (child_id) "
        "WHERE t.child_key <> i.child_key OR t.source <> i.source OR t.area_code IS DISTINCT FROM i.area_code"
    ).fetchall()
    assert mismatched == [(0,)]
    # the children number_children gives are those numbered so, in child_id order
    numbered = connection.sql(
        "SELECT source, area_code, child_key FROM child_ids ORDER BY child_id"
    ).to_arrow_table()
    keyed = numbered.filter(pc.is_valid(numbered["child_key"]))
    assert children.to_pylist() == keyed.to_pylist()
    got = connection.sql(f"SELECT * EXCLUDE (child_key) FROM timeline {ordered}").df()
    want = connection.sql(f"SELECT * FROM reference {ordered}").df()
    # NULL and false are alike where the timeline is read (a filter and a sum)
    want["starts_placement_spell"] = want["starts_placement_spell"].fillna(False).astype(bool)
    return got, want


def test_children_are_numbered_in_the_order_of_their_texts_empty_areas_last():
    episodes = pa.table(
        {
            "source": ["s", "s", "s", "s", "s", "r", "s"],
            "area_code": ["2", None, "10", "2", "2", "2", "2"],
            "child_key": ["b", "a", "a", "B", "b", "z", None],
        }
    )
    numbered, children = tl.number_children(episodes)
    # byte order: "10" < "2" and "B" < "b"; an empty area after every area; no key, no child
    assert numbered["child_id"].to_pylist() == [4, 5, 2, 3, 4, 1, None]
    assert children.to_pylist() == [
        {"source": "r", "area_code": "2", "child_key": "z"},
        {"source": "s", "area_code": "10", "child_key": "a"},
        {"source": "s", "area_code": "2", "child_key": "B"},
        {"source": "s", "area_code": "2", "child_key": "b"},
        {"source": "s", "area_code": None, "child_key": "a"},
    ]


def _check_spells(
    connection: duckdb.DuckDBPyConnection, care_spells: pa.Table, placement_spells: pa.Table
) -> None:
    """The care and placement spells made from _CareSpells and _PlacementSpells equal those made by
    grouping the timeline."""
    connection.execute((SQL_DIR / "01_timeline_by_child.sql").read_text())
    connection.register("care_spell_steps", care_spells)
    connection.register("placement_spell_steps", placement_spells)
    children = {"first_child": 1, "last_child": 10**9}
    re_entry = {"re_entry_months": SETTINGS.re_entry_months}
    connection.execute(CARE_SPELLS_REFERENCE_SQL, re_entry | children)
    connection.execute((SQL_DIR / "02_care_spells.sql").read_text(), re_entry)
    connection.execute(PLACEMENT_SPELLS_REFERENCE_SQL, children)
    connection.execute((SQL_DIR / "03_placement_spells.sql").read_text())
    for table, numbers in (
        ("care_spells", "care_spell_no"),
        ("placement_spells", "care_spell_no, placement_spell_no"),
    ):
        ordered = f"ORDER BY child_id, {numbers}"
        want = connection.sql(f"SELECT * FROM {table}_reference {ordered}").df()
        got = connection.sql(f"SELECT * FROM {table} {ordered}").df()
        assert len(got) > 0
        pd.testing.assert_frame_equal(got, want, check_dtype=False)


# Each care spell's steps as 15_pathway_steps.sql grouped them at commit 488caba.
PATHS_REFERENCE_SQL = """
SELECT
    ps.child_id, ps.care_spell_no,
    list_transform(
        list_sort(list({'n': ps.placement_spell_no, 'start': ps.placement_start, 'code': c.code_id})),
        lambda x: {'start': x.start, 'code': x.code}
    ) AS steps
FROM placement_spells AS ps
JOIN code_ids AS c ON c.code = ps.icare_code_start
GROUP BY ALL
ORDER BY ALL
"""


def _check_paths(connection: duckdb.DuckDBPyConnection, paths: pa.Table) -> None:
    """The care spells' steps made by _PlacementSpells.paths equal those made by grouping the
    placement spells (made by _check_spells)."""
    connection.register("care_spell_paths", paths)
    want = connection.sql(PATHS_REFERENCE_SQL).fetchall()
    got = connection.sql("SELECT * FROM care_spell_paths ORDER BY ALL").fetchall()
    assert len(got) > 0
    assert got == want


def _random_child(rnd: random.Random, child: str) -> list[dict[str, object]]:
    """A child's episodes with same-day chains, gaps, overlaps, nesting, open ends and temporary moves."""
    day = date(2020, 1, 1) + timedelta(days=rnd.randrange(30))
    rows = []
    for _ in range(rnd.randrange(1, 8)):
        length = rnd.choice([0, 1, 5, 40, 200])
        end = day + timedelta(days=length)
        end_type = rnd.choice(["continues", "continues", "exit", "open"])
        rows.append(
            ep(
                child,
                day.strftime("%d/%m/%Y"),
                None if end_type == "open" else end.strftime("%d/%m/%Y"),
                end_type=end_type,
                code=rnd.choice(["AC.F12", "AC.R11", "AC.X6"]),
                new=rnd.choice(["care_entry", "placement_change", "legal_status_change", "unknown"]),
                purpose=rnd.choice(["general_care", "general_care", "temporary_move"]),
                provider=rnd.choice(["public_own_authority", "private", None]),
            )
        )
        # next start: the same day as this end, a little before (overlap) or after (gap)
        day = max(day + timedelta(days=1), end + timedelta(days=rnd.choice([0, 0, 0, -3, 2, 30])))
    return rows


@pytest.mark.parametrize("resolve", [True, False])
def test_numpy_steps_equal_the_sql_windows_they_replaced(resolve: bool):
    rnd = random.Random(20240331)
    rows = [row for n in range(400) for row in _random_child(rnd, f"c{n}")]
    rnd.shuffle(rows)
    rows.append(ep("no-key", "01/01/2021") | {"child_key": None})  # no child key: no timeline
    got, want = _timeline(rows, resolve)
    assert len(got) == len(rows) - 1
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_one_episode_and_empty_provider_sectors():
    got, want = _timeline([ep("a", "01/01/2021", provider=None, purpose="temporary_move")])
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert got["stat_provider_sector"].isna().all()


def test_no_episodes_give_empty_spells():
    tables = compute([])
    assert len(tables["care_spells"]) == len(tables["placement_spells"]) == 0
    assert set(tables["flow_check"]["balance"]) == {"balanced"}
