"""Rates per 100,000 children beside the released ``children`` of stock, entries and exits.

The definition of the internal ``rates`` table (docs/statistics.md "Rates"; 20_rates.sql): children
/ population of the same source, area, population year (year of the period's last day plus
``population_year_offset``), sex and age band inside 0-17. The released rows add the margins:
``under 18`` is the internal ``total`` of ages, ``sex = total`` sums the sexes the population gives,
and ``area_code = total`` sums the areas of the source, only when every area reporting in that
period has a figure. A rate is withheld exactly when its count is (``rate_status`` is the status of
``children``).
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from icare.disclosure.control import CODES, FREE
from schemas.outputs import TOTAL, UNDER_18, to_arrow

_QUERY = """
WITH child_ages AS (
    SELECT unnest($child_ages) AS age, unnest($child_age_bands) AS age_band
),
by_band AS (
    -- every population cell in its band (bands inside 0-17) and in `under 18` (all ages 0-17)
    SELECT p.source, p.area_code, p.year, p.sex, a.age_band, p.population
    FROM population AS p JOIN child_ages AS a ON a.age = p.age
    UNION ALL
    SELECT source, area_code, year, sex, $under_18, population FROM population
),
by_sex AS (
    SELECT source, area_code, year, sex, age_band, sum(population)::BIGINT AS population
    FROM by_band GROUP BY ALL
    UNION ALL
    SELECT source, area_code, year, $total, age_band, sum(population)::BIGINT
    FROM by_band GROUP BY ALL
),
areas AS (
    SELECT source, area_code, period_end FROM flow_check GROUP BY ALL
),
national AS (
    -- summed over the areas reporting in the period, when every one of them has a figure
    SELECT a.source, a.period_end, b.year, b.sex, b.age_band,
        sum(b.population)::BIGINT AS population, count(*) AS areas_with
    FROM areas AS a
    JOIN by_sex AS b ON b.source = a.source AND b.area_code IS NOT DISTINCT FROM a.area_code
    GROUP BY ALL
),
reporting AS (
    SELECT source, period_end, count(*) AS areas FROM areas GROUP BY ALL
)
SELECT r.row_no, coalesce(b.population, n.population) AS population
FROM released AS r
LEFT JOIN by_sex AS b
    ON r.area_code <> $total AND b.source = r.source AND b.area_code IS NOT DISTINCT FROM r.area_code
    AND b.year = r.year AND b.sex = r.sex AND b.age_band = r.age_band
LEFT JOIN (
    SELECT n.* FROM national AS n JOIN reporting AS k USING (source, period_end)
    WHERE n.areas_with = k.areas
) AS n
    ON r.area_code = $total AND n.source = r.source AND n.period_end = r.period_end
    AND n.year = r.year AND n.sex = r.sex AND n.age_band = r.age_band
ORDER BY r.row_no
"""


def _population(table: pa.Table | pd.DataFrame | None) -> pa.Table:
    empty = pa.table(
        {
            "source": pa.array([], pa.string()),
            "area_code": pa.array([], pa.string()),
            "year": pa.array([], pa.int64()),
            "sex": pa.array([], pa.string()),
            "age": pa.array([], pa.int64()),
            "population": pa.array([], pa.int64()),
        }
    )
    if table is None:
        return empty
    table = table if isinstance(table, pa.Table) else to_arrow(table, "population")
    return table.select(empty.column_names).cast(empty.schema)


def release_rates(
    table: str, data: pa.Table, children_status: np.ndarray, tables: Mapping[str, object], settings
) -> pa.Table:
    """``population``, ``rate_per_100000``, ``rate_status`` and ``rate_missing_reason`` per row of
    the released ``table`` (``data``: its rows with the unsuppressed ``children``)."""
    date = "reference_date" if table == "stock" else "period_end"
    child_bands = {}
    offset = 0
    if settings is not None:
        offset = settings.population_year_offset
        for band in settings.age_bands:
            if band.last_age is not None and band.last_age <= 17:
                child_bands.update(dict.fromkeys(range(band.first_age, band.last_age + 1), band.band))
    period_end = pd.to_datetime(data.column(date).to_pandas())
    released = pa.table(
        {
            "row_no": pa.array(np.arange(data.num_rows), pa.int64()),
            "source": data.column("source"),
            "area_code": data.column("area_code"),
            "period_end": data.column(date),
            "year": pa.array((period_end.dt.year + offset).to_numpy(dtype=np.int64), pa.int64()),
            "sex": data.column("sex"),
            "age_band": data.column("age_band"),
        }
    )
    flow = tables.get("flow_check")
    flow = (
        pa.table(
            {"source": [], "area_code": [], "period_end": []},
            schema=pa.schema(
                [("source", pa.string()), ("area_code", pa.string()), ("period_end", pa.date32())]
            ),
        )
        if flow is None
        else (flow if isinstance(flow, pa.Table) else to_arrow(flow, "flow_check"))
    )
    parameters = {
        "child_ages": list(child_bands),
        "child_age_bands": list(child_bands.values()),
        "under_18": UNDER_18,
        "total": TOTAL,
    }
    with duckdb.connect() as connection:
        connection.register("released", released)
        connection.register("population", _population(tables.get("population")))
        connection.register("flow_check", flow.select(["source", "area_code", "period_end"]))
        population = connection.sql(_QUERY, params=parameters).to_arrow_table().column("population")
    population = population.to_numpy(zero_copy_only=False)
    known = ~pd.isna(population)
    population = np.where(known, population, 0).astype(np.int64)
    children = data.column("children").to_numpy(zero_copy_only=False).astype(np.float64)
    sex = data.column("sex").to_pandas()
    band = data.column("age_band").to_numpy(zero_copy_only=False)
    in_ages = np.isin(band, [*set(child_bands.values()), UNDER_18])
    withheld = children_status != FREE
    reason = np.select(
        [sex.isna().to_numpy(), ~in_ages, ~known, population == 0, withheld],
        ["sex_not_recorded", "age_outside_0_17", "no_population", "zero_population", "withheld"],
        "",
    )
    given = reason == ""
    rate = np.divide(100000.0 * children, population, out=np.zeros(len(children)), where=population > 0)
    return pa.table(
        {
            "population": pa.array(population, pa.int64(), mask=~(known & in_ages)),
            "rate_per_100000": pa.array(rate, pa.float64(), mask=~given),
            "rate_status": pa.array(CODES[children_status], pa.string()),
            "rate_missing_reason": pa.array(reason, pa.string(), mask=given),
        }
    )
