"""The true figures of a set of clean SSDA903 returns, computed independently of icare's statistics.

This is the yardstick of the damaged-returns tests (issue 14): icare run on a damaged copy of a corpus
must publish the figures computed here from the clean copy. It is plain pandas written from the
definitions in docs/statistics.md, and deliberately shares no code with ``icare.statistics`` or the
reader, so that a mistake in one is not repeated in the other. It reads only what the clean generator
writes (``<root>/<year>/<area>/episodes.csv``, dd/mm/YYYY dates, exact codes).

Definition choices (each the one docs/statistics.md states, so that on clean returns these figures
equal icare's own ``stock``, ``entries`` and ``exits`` tables summed over every other column):

* **Combining returns.** An episode is identified by area, CHILD and DECOM; the row of the latest
  collection year that holds it wins (a later return restates an episode still open at an earlier year
  end, with its end once known).
* **Periods.** One per collection year Y present in the returns of an area: 1 April Y-1 to 31 March Y.
  The stock is counted on 31 March Y.
* **Stock on d.** Distinct children with an episode where ``DECOM <= d`` and (DEC blank or ``DEC > d``):
  a child whose care ended on d is an exit, not in the stock. Every category is included, the
  boundary ones too (P1 placed with parents, R5, S1, V3/V4 short breaks, temporary moves): national
  "looked after" totals include them.
* **Category in the stock (level 1).** The episode covering d that started last; a temporary move
  (PLACE T0-T4) is attributed to the normal placement, the last non-temporary episode of the same care
  spell before it (its own category when there is none). Level 1 is ``AC.F`` or ``AC.X``: from
  ``sources/ssda903/concordance/placement.csv`` by PLACE, except the concordance's rules that move a
  row to the boundary whatever PLACE says (LS V3/V4 short breaks; K1 with LS J1/J2; R5).
* **Care spells.** A child's episodes in DECOM order; an episode continues the previous care spell when
  the previous one ended with REC X1 on this DECOM (England's gap is 0 days), or when an earlier episode
  of the spell is still running on this DECOM (an overlap). Otherwise it starts a new spell, whatever
  its RNE. The spell ends at the latest end of its episodes, and is open while any is.
* **Entries / exits of a period.** Spells whose start / end lies in the period, counted as spells
  (``entries.spells``, ``exits.spells``), not children. Spells that started before the first period
  are no entries of any period.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

REPOSITORY = Path(__file__).resolve().parents[1]
PLACEMENT_CONCORDANCE = REPOSITORY / "sources" / "ssda903" / "concordance" / "placement.csv"
TEMPORARY_PLACES = {"T0", "T1", "T2", "T3", "T4"}
DATE_FORMAT = "%d/%m/%Y"


def read_clean_episodes(root: Path) -> pd.DataFrame:
    """Every episode row of ``<root>/<year>/<area>/episodes.csv``, with ``year`` and ``area``."""
    frames = []
    for path in sorted(Path(root).glob("[0-9][0-9][0-9][0-9]/*/episodes.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame["year"] = int(path.parent.parent.name)
        frame["area"] = path.parent.name
        frames.append(frame)
    if not frames:
        raise FileNotFoundError(f"no <year>/<area>/episodes.csv below {root}")
    episodes = pd.concat(frames, ignore_index=True)
    episodes["start"] = pd.to_datetime(episodes["DECOM"], format=DATE_FORMAT)
    episodes["end"] = pd.to_datetime(episodes["DEC"].replace("", None), format=DATE_FORMAT)
    return episodes


def latest_episodes(episodes: pd.DataFrame) -> pd.DataFrame:
    """One row per area, child and start: the one from the latest return; with care spells numbered."""
    latest = (
        episodes.sort_values(["area", "CHILD", "DECOM", "year"])
        .drop_duplicates(["area", "CHILD", "start"], keep="last")
        .sort_values(["area", "CHILD", "start"])
        .reset_index(drop=True)
    )
    same_child = (latest["area"] == latest["area"].shift()) & (latest["CHILD"] == latest["CHILD"].shift())
    # The latest end so far of the child's earlier episodes (NaT = still running = beyond any date).
    far = pd.Timestamp("2262-01-01")
    end_or_far = latest["end"].fillna(far)
    child_id = (~same_child).cumsum()
    running_end = end_or_far.groupby(child_id).cummax().groupby(child_id).shift()
    continues = (latest["REC"].shift() == "X1") & (latest["end"].shift() == latest["start"])
    overlaps = running_end > latest["start"]
    latest["spell"] = (~(same_child & (continues | overlaps))).cumsum()
    latest["level1"] = _level1(latest)
    return latest


def _level1(episodes: pd.DataFrame) -> pd.Series:
    concordance = pd.read_csv(PLACEMENT_CONCORDANCE, dtype=str, keep_default_na=False)
    by_place = concordance.drop_duplicates("PLACE").set_index("PLACE")["icare_code"].str[:4]
    level1 = episodes["PLACE"].map(by_place)
    boundary = (
        episodes["LS"].isin(["V3", "V4"])
        | ((episodes["PLACE"] == "K1") & episodes["LS"].isin(["J1", "J2"]))
        | (episodes["PLACE"] == "R5")
    )
    return level1.mask(boundary, "AC.X")


def periods(episodes: pd.DataFrame) -> pd.DataFrame:
    """The collection years of each area (one period each)."""
    years = episodes[["area", "year"]].drop_duplicates().sort_values(["area", "year"])
    years["period_start"] = pd.to_datetime(years["year"].sub(1).astype(str) + "-04-01")
    years["period_end"] = pd.to_datetime(years["year"].astype(str) + "-03-31")
    return years.reset_index(drop=True)


def stock(root: Path, *, by_level1: bool = False) -> pd.DataFrame:
    """Children in care on each 31 March: columns area, reference_date, [level1,] children."""
    raw = read_clean_episodes(root)
    latest = latest_episodes(raw)
    latest["normal"] = _normal_placement_level1(latest)
    rows = []
    for period in periods(raw).itertuples():
        day = period.period_end
        covering = latest[
            (latest["area"] == period.area)
            & (latest["start"] <= day)
            & (latest["end"].isna() | (latest["end"] > day))
        ]
        # One row per child: the episode covering the day that started last.
        on_day = covering.sort_values("start").drop_duplicates("CHILD", keep="last")
        if by_level1:
            for level1, children in on_day["normal"].value_counts().items():
                rows.append((period.area, day, level1, int(children)))
        else:
            rows.append((period.area, day, len(on_day)))
    columns = ["area", "reference_date", *(["level1"] if by_level1 else []), "children"]
    return pd.DataFrame(rows, columns=columns).sort_values(columns[:-1]).reset_index(drop=True)


def _normal_placement_level1(latest: pd.DataFrame) -> pd.Series:
    """Level-1 category with a temporary move attributed to the last non-temporary episode of its spell."""
    temporary = latest["PLACE"].isin(TEMPORARY_PLACES)
    normal = latest["level1"].where(~temporary)
    carried = normal.groupby(latest["spell"]).ffill()
    return carried.fillna(latest["level1"])


def flows(root: Path) -> pd.DataFrame:
    """Care-spell entries and exits per period: columns area, year, entries, exits."""
    raw = read_clean_episodes(root)
    latest = latest_episodes(raw)
    spells = latest.groupby("spell").agg(
        area=("area", "first"),
        start=("start", "min"),
        open=("end", lambda ends: bool(ends.isna().any())),
        end=("end", "max"),
    )
    spells.loc[spells["open"], "end"] = pd.NaT
    rows = []
    for period in periods(raw).itertuples():
        mine = spells[spells["area"] == period.area]
        in_period = {
            edge: int(np.count_nonzero(mine[edge].between(period.period_start, period.period_end)))
            for edge in ("start", "end")
        }
        rows.append((period.area, period.year, in_period["start"], in_period["end"]))
    return pd.DataFrame(rows, columns=["area", "year", "entries", "exits"])
