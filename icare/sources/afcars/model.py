"""The synthetic children behind the AFCARS generator: removal episodes and their child-years.

Each child's care is simulated as removal episodes (removal date, discharge date, reason) before any
file is written; the annual NDACAN rows and the true counts are both cut from this model, so a reader
can be checked against counts that never went through a file. Dates are integer days since
1970-01-01. Everything is vectorised over episodes or child-years (no loop over children).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPEN = np.iinfo(np.int32).max  # discharge of an episode still open after the last fiscal year
REMOVAL_FLAGS = (
    "PHYABUSE", "SEXABUSE", "NEGLECT", "AAPARENT", "DAPARENT", "AACHILD", "DACHILD", "CHILDIS",
    "CHBEHPRB", "PRTSDIED", "PRTSJAIL", "NOCOPE", "ABANDMNT", "RELINQSH", "HOUSING",
)  # fmt: skip
REMOVAL_FLAG_P = (0.13, 0.04, 0.62, 0.05, 0.36, 0.01, 0.02, 0.02, 0.10, 0.01, 0.07, 0.14, 0.01, 0.005, 0.10)
DISABILITY_FLAGS = ("MR", "VISHEAR", "PHYDIS", "EMOTDIST", "OTHERMED")
DISABILITY_FLAG_P = (0.3, 0.1, 0.2, 0.5, 0.3)
SETTINGS = np.array([1, 2, 3, 4, 5, 6, 7, 8])
# Setting probabilities by age at the end of the year: under 12, 12-15, 16 and over.
SETTING_P = np.array(
    [
        [0.07, 0.36, 0.45, 0.02, 0.03, 0.00, 0.00, 0.07],
        [0.02, 0.27, 0.32, 0.12, 0.17, 0.00, 0.03, 0.07],
        [0.01, 0.22, 0.28, 0.13, 0.18, 0.10, 0.04, 0.04],
    ]
)
REASONS = np.array([1, 2, 3, 5, 6, 7, 8])  # emancipation (4) comes only from the age rule
REASON_P = np.array(
    [
        [0.512, 0.08, 0.27, 0.11, 0.02, 0.005, 0.003],  # under 12
        [0.603, 0.12, 0.05, 0.12, 0.05, 0.055, 0.002],  # 12 and over
    ]
)
REENTRY_REASONS = (1, 2, 5, 7)


def day(year: int, month: int, dom: int) -> int:
    return int(np.datetime64(f"{year:04d}-{month:02d}-{dom:02d}", "D").astype(np.int64))


def fy_start(fy: np.ndarray | int) -> np.ndarray:
    """1 October before fiscal year ``fy`` (named by the year in which it ends)."""
    months = (np.asarray(fy, dtype=np.int64) - 1 - 1970) * 12 + 9
    return months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def fiscal_year(days: np.ndarray) -> np.ndarray:
    months = np.asarray(days, dtype=np.int64).astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return 1970 + (months + 3) // 12  # October (month index 9) moves to the next year


def add_years(days: np.ndarray, years: int) -> np.ndarray:
    """The same calendar day ``years`` later (29 February -> 1 March)."""
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    first = d.astype("datetime64[M]")
    return ((first + 12 * years).astype("datetime64[D]") + (d - first.astype("datetime64[D]"))).astype(
        np.int64
    )


def age_at(at: np.ndarray, dob: np.ndarray) -> np.ndarray:
    """Completed years at ``at`` (the birthday counts)."""

    def parts(days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
        m = d.astype("datetime64[M]")
        month_of_year = m.astype(np.int64) % 12
        return 1970 + m.astype(np.int64) // 12, month_of_year * 100 + (d - m.astype("datetime64[D]")).astype(
            np.int64
        )

    y1, md1 = parts(at)
    y0, md0 = parts(dob)
    return y1 - y0 - (md1 < md0)


@dataclass(frozen=True)
class ModelSettings:
    fiscal_years: tuple[int, ...]
    states: tuple[str, ...]
    stock_per_state: int  # children in care on 30 September before the first fiscal year
    entries_per_state_year: int  # mean removals per state and year
    seed: int
    mean_years_in_care: float = 1.5
    reentry_share: float = 0.15
    extended_care_share: float = 0.3  # of youths still in care at 18: stay until discharge or 21


@dataclass
class Episodes:
    """One entry per removal episode, sorted by child then removal; columns are numpy arrays."""

    child: np.ndarray
    state: np.ndarray  # index into ModelSettings.states
    removal: np.ndarray
    discharge: np.ndarray  # OPEN when still in care after the last fiscal year
    reason: np.ndarray  # DISREASN, 0 when open
    total_removals: np.ndarray
    first_removal: np.ndarray
    previous_discharge: np.ndarray  # -1 when the first removal
    manner: np.ndarray
    removal_flags: np.ndarray  # (n, 15) uint8
    prior_placements: np.ndarray


@dataclass
class Children:
    dob: np.ndarray
    sex: np.ndarray
    disability: np.ndarray  # CLINDIS
    disability_flags: np.ndarray  # (n, 5) uint8
    county: np.ndarray  # 0, 1: the state's two large counties; 2: small counties (00008)
    record: np.ndarray  # RECNUMBR as an integer, unique within the state


def _choice(rng: np.random.Generator, values: np.ndarray, p: np.ndarray, group: np.ndarray) -> np.ndarray:
    """A draw from ``values`` per row, with the probabilities of the row's ``group`` (rows of ``p``)."""
    cum = np.cumsum(p, axis=1)
    cum = cum / cum[:, -1:]
    u = rng.random(len(group))
    return values[np.minimum((u[:, None] > cum[group]).sum(axis=1), len(values) - 1)]


def _ages(rng: np.random.Generator, n: int) -> np.ndarray:
    """Age in days at removal: under 1 about 18%, then spread over 1-17."""
    years = np.where(rng.random(n) < 0.18, 0, rng.integers(1, 18, n))
    return years * 365 + rng.integers(0, 365, n)


def simulate(settings: ModelSettings) -> tuple[Episodes, Children]:
    rng = np.random.default_rng(settings.seed)
    first, last = settings.fiscal_years[0], settings.fiscal_years[-1]
    window_start, window_end = int(fy_start(first)), int(fy_start(last + 1)) - 1
    n_states = len(settings.states)
    mean_days = settings.mean_years_in_care * 365.25

    # Children in care before the first year (time already in care is exponential, as in a steady state).
    stock = settings.stock_per_state * n_states
    age0 = _ages(rng, stock)
    dob0 = window_start - 1 - age0
    removal0 = window_start - 1 - np.minimum(rng.exponential(mean_days, stock).astype(np.int64), age0)
    # New removals in each year.
    counts = rng.poisson(settings.entries_per_state_year, (len(settings.fiscal_years), n_states))
    fy_new = np.repeat(np.repeat(np.array(settings.fiscal_years), n_states), counts.ravel())
    state_new = np.repeat(np.tile(np.arange(n_states), len(settings.fiscal_years)), counts.ravel())
    start = fy_start(fy_new)
    removal1 = start + (rng.random(len(fy_new)) * (fy_start(fy_new + 1) - start)).astype(np.int64)
    dob1 = removal1 - _ages(rng, len(fy_new))

    n_children = stock + len(fy_new)
    dob = np.concatenate([dob0, dob1])
    children = Children(
        dob=dob,
        sex=np.where(rng.random(n_children) < 0.002, 9, np.where(rng.random(n_children) < 0.515, 1, 2)),
        disability=_choice(
            rng, np.array([1, 2, 3]), np.array([[0.2, 0.65, 0.15]]), np.zeros(n_children, int)
        ),
        disability_flags=np.zeros((n_children, 5), np.uint8),
        county=_choice(rng, np.array([0, 1, 2]), np.array([[0.45, 0.35, 0.2]]), np.zeros(n_children, int)),
        record=np.zeros(n_children, np.int64),
    )
    disabled = children.disability == 1
    flags = rng.random((n_children, 5)) < np.array(DISABILITY_FLAG_P)
    flags[:, 3] |= ~flags.any(axis=1)
    children.disability_flags[disabled] = flags[disabled]
    child_state = np.concatenate([np.repeat(np.arange(n_states), settings.stock_per_state), state_new])
    # Record numbers: a bijection of the running number, unique within the state, that looks random.
    children.record[:] = (np.arange(n_children, dtype=np.int64) * 7_919_003 + 1_000_003) % 10_000_000_000

    # Earlier removals before the window (TOTALREM > 1).
    earlier = _choice(rng, np.array([0, 1, 2]), np.array([[0.78, 0.16, 0.06]]), np.zeros(n_children, int))
    removal = np.concatenate([removal0, removal1])
    # The earlier removal ended before the window (the model has no row for it), after birth.
    previous = np.minimum(removal - rng.integers(30, 400, n_children), window_start - 2)
    earlier = np.where(previous > dob + 30, earlier, 0)
    previous = np.where(earlier > 0, previous, -1)
    first_removal = np.where(
        earlier > 0, np.maximum(previous - rng.integers(60, 1500, n_children), dob), removal
    )
    in_care_before = np.arange(n_children) < stock
    parts = [
        _episode_batch(
            rng, settings, np.arange(n_children), child_state, dob,
            removal=removal, total=1 + earlier, first_removal=first_removal, previous=previous,
            clock_from=np.where(in_care_before, window_start, removal), window_end=window_end,
        )
    ]  # fmt: skip
    # Re-entries: a later removal of the same child, always in a later fiscal year than the discharge.
    while True:
        prev = parts[-1]
        back_in = (
            (prev.discharge <= window_end)
            & np.isin(prev.reason, REENTRY_REASONS)
            & (rng.random(len(prev.child)) < settings.reentry_share)
        )
        gap = rng.exponential(300, len(prev.child)).astype(np.int64) + 1
        again = np.maximum(
            prev.discharge + gap, fy_start(fiscal_year(np.minimum(prev.discharge, window_end)) + 1)
        )
        back_in &= (again <= window_end) & (age_at(again, dob[prev.child]) < 18)
        if not back_in.any():
            break
        parts.append(
            _episode_batch(
                rng, settings, prev.child[back_in], child_state, dob,
                removal=again[back_in], total=prev.total_removals[back_in] + 1,
                first_removal=prev.first_removal[back_in], previous=prev.discharge[back_in],
                clock_from=again[back_in], window_end=window_end,
            )
        )  # fmt: skip
    episodes = Episodes(
        **{f: np.concatenate([getattr(p, f) for p in parts]) for f in Episodes.__dataclass_fields__}
    )
    order = np.lexsort((episodes.removal, episodes.child))
    return Episodes(**{f: getattr(episodes, f)[order] for f in Episodes.__dataclass_fields__}), children


def _episode_batch(
    rng, settings, child, child_state, dob, *, removal, total, first_removal, previous, clock_from, window_end
) -> Episodes:
    """Episodes starting on ``removal`` (durations counted from ``clock_from``), with their exits."""
    n = len(child)
    dob = dob[child]
    planned = clock_from + rng.exponential(settings.mean_years_in_care * 365.25, n).astype(np.int64)
    eighteen, twenty_one = add_years(dob, 18), add_years(dob, 21)
    extended = rng.random(n) < settings.extended_care_share
    limit = np.where(extended, twenty_one, eighteen)
    aged_out = planned >= limit
    discharge = np.maximum(np.where(aged_out, limit, planned), removal)
    older = (age_at(discharge, dob) >= 12).astype(int)
    reason = np.where(aged_out, 4, _choice(rng, REASONS, REASON_P, older))
    still_open = discharge > window_end
    flags = (rng.random((n, len(REMOVAL_FLAGS))) < np.array(REMOVAL_FLAG_P)).astype(np.uint8)
    flags[:, 2] |= (flags.sum(axis=1) == 0).astype(np.uint8)
    return Episodes(
        child=child,
        state=child_state[child],
        removal=removal,
        discharge=np.where(still_open, OPEN, discharge),
        reason=np.where(still_open, 0, reason),
        total_removals=total,
        first_removal=first_removal,
        previous_discharge=previous,
        manner=_choice(rng, np.array([1, 2, 3]), np.array([[0.08, 0.88, 0.04]]), np.zeros(n, int)),
        removal_flags=flags,
        prior_placements=np.where(clock_from > removal, rng.integers(0, 3, n), 0),
    )


@dataclass
class ChildYears:
    """One entry per (episode, fiscal year) the episode touches: a row of that year's NDACAN file."""

    episode: np.ndarray
    fy: np.ndarray
    setting: np.ndarray  # CURPLSET at 30 September, or at discharge
    setting_start: np.ndarray  # CURSETDT
    placements: np.ndarray  # NUMPLEP
    placed_out: np.ndarray  # PLACEOUT


def child_years(settings: ModelSettings, episodes: Episodes, children: Children) -> ChildYears:
    """Cut episodes into fiscal years and give each year the setting the child was in at its end."""
    rng = np.random.default_rng([settings.seed, 1])
    first, last = settings.fiscal_years[0], settings.fiscal_years[-1]
    fy_from = np.maximum(fiscal_year(episodes.removal), first)
    fy_to = np.minimum(fiscal_year(np.minimum(episodes.discharge, int(fy_start(last + 1)) - 1)), last)
    span = fy_to - fy_from + 1
    episode = np.repeat(np.arange(len(span)), span)
    starts = np.cumsum(span) - span
    offset = np.arange(len(episode)) - np.repeat(starts, span)
    fy = fy_from[episode] + offset
    n = len(episode)
    is_first = offset == 0
    is_last = offset == span[episode] - 1
    removal, discharge = episodes.removal[episode], episodes.discharge[episode]
    lo = np.maximum(removal, fy_start(fy))
    hi = np.minimum(discharge, fy_start(fy + 1) - 1)

    # A new setting at the first row of an episode and in about 30% of later years; another placement
    # of the same kind in about 15% of years.
    changed = is_first | (rng.random(n) < 0.3)
    extra = rng.random(n) < 0.15
    age = age_at(hi, children.dob[episodes.child[episode]])
    group = np.digitize(age, [12, 16])
    drawn = _choice(rng, SETTINGS, SETTING_P, group)
    setting = drawn[np.maximum.accumulate(np.where(changed, np.arange(n), 0))]
    # The last setting of an exit fits its reason: adoption from a pre-adoptive home, reunification
    # often after a trial home visit, runaway exits from runaway status, emancipation from SIL.
    reason = episodes.reason[episode]
    u = rng.random(n)
    final = np.select(
        [
            is_last & (reason == 3) & (u < 0.85),
            is_last & (reason == 1) & (u < 0.4),
            is_last & (reason == 7) & (u < 0.7),
            is_last & (reason == 4) & (u < 0.3),
        ],
        [1, 8, 7, 6],
        default=setting,
    )
    changed |= final != setting
    setting = final
    new_place = changed | extra
    # The current placement started at the removal, or on a day of the year when the child moved
    # (children in care before the window: any day since their removal).
    since = np.where(is_first, removal, lo)
    start_date = since + (rng.random(n) * (hi - since + 1)).astype(np.int64)
    start_date = np.where(is_first & ~extra & (removal >= fy_start(first)), removal, start_date)
    carried = np.maximum.accumulate(np.where(new_place, np.arange(n), 0))
    counts = new_place.astype(np.int64) + (changed & extra)
    total = np.cumsum(counts)
    placements = total - np.repeat(total[starts] - counts[starts], span) + episodes.prior_placements[episode]
    placed_out = _choice(rng, np.array([1, 2, 3]), np.array([[0.03, 0.96, 0.01]]), np.zeros(n, int))
    return ChildYears(
        episode=episode,
        fy=fy,
        setting=setting,
        setting_start=start_date[carried],
        placements=placements,
        placed_out=placed_out[carried],
    )
