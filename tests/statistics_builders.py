"""Small harmonised episode sets for statistics tests, and a runner for ``compute_statistics``."""

from __future__ import annotations

from datetime import date

import pandas as pd

from icare.classification import load_classification
from icare.statistics import compute_statistics, load_statistics_settings
from icare.statistics.compute import EPISODE_COLUMNS

CLASSIFICATION = load_classification()
SETTINGS = load_statistics_settings()
SOURCE = "ssda903"


def d(text: str) -> date:
    """A date written as in England's returns, dd/mm/yyyy."""
    day, month, year = (int(part) for part in text.split("/"))
    return date(year, month, day)


def ep(
    child: str,
    start: str,
    end: str | None = None,
    *,
    code: str = "AC.F12",
    new: str = "placement_change",
    end_type: str | None = None,
    destination: str | None = None,
    born: str = "01/06/2012",
    sex: str = "F",
    purpose: str = "general_care",
    provider: str = "public_own_authority",
    area: str | None = "201",
) -> dict[str, object]:
    """One harmonised episode; an end without ``end_type`` is an exit (destination reunification)."""
    if end_type is None:
        end_type = "open" if end is None else "exit"
    if end_type == "exit" and destination is None:
        destination = "reunification"
    return {
        "source": SOURCE,
        "area_code": area,
        "child_key": child,
        "sex": sex,
        "birth_month": d(born).replace(day=1),
        "episode_start": d(start),
        "episode_end": d(end) if end else None,
        "episode_end_type": end_type,
        "new_episode_type": new,
        "exit_destination": destination,
        "icare_code": code,
        "provider_sector": provider,
        "legal_basis": "judicial_order",
        "purpose": purpose,
    }


def periods(*years: int, area: str | None = "201") -> pd.DataFrame:
    """England statistical years named by the year they end in (2024 = 1 April 2023 - 31 March 2024)."""
    return pd.DataFrame(
        [
            {
                "source": SOURCE,
                "area_code": area,
                "period_start": date(y - 1, 4, 1),
                "period_end": date(y, 3, 31),
            }
            for y in years
        ]
    )


def compute(
    rows: list[dict[str, object]], years=(2023, 2024), settings=None, **options
) -> dict[str, pd.DataFrame]:
    """Every statistics table for ``rows`` as pandas frames (settings changed by ``options``)."""
    frame = pd.DataFrame(rows, columns=list(EPISODE_COLUMNS))
    for column in ("birth_month", "episode_start", "episode_end"):
        frame[column] = pd.to_datetime(frame[column])
    settings = settings or SETTINGS
    settings = settings.with_options(**options) if options else settings
    tables = compute_statistics(frame, periods(*years), CLASSIFICATION, settings, {SOURCE: 0})
    return {name: table.to_pandas() for name, table in tables.items()}


def rows_of(frame: pd.DataFrame, *columns: str) -> list[tuple]:
    """The chosen columns of every row, as sorted tuples (dates as ``date``), for exact comparisons."""
    values = frame[list(columns)].astype(object).where(frame[list(columns)].notna(), None)
    return sorted(tuple(row) for row in values.itertuples(index=False))
