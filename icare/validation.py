"""Run a Pandera schema lazily and split a table into valid rows and quarantine records."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa

from icare import quarantine
from icare.quarantine import Origin


def validate_table(
    frame: pd.DataFrame, schema: pa.DataFrameSchema, origin: Origin
) -> tuple[pd.Series, pd.DataFrame]:
    """Validate every row against every rule (lazy), never stopping at the first failure.

    Returns a boolean mask of valid rows (aligned with ``frame``) and the quarantine records of the
    others. The frame is not changed: no value is coerced, blanked or guessed.
    """
    try:
        schema.validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as errors:
        records = quarantine.from_schema_errors(errors, frame, origin)
        untied = errors.failure_cases["index"].isna()
        if untied.any():  # a failure Pandera could not tie to a row would otherwise vanish
            raise RuntimeError(
                f"{origin.describe()}: schema {schema.name} failed without row numbers: "
                f"{errors.failure_cases[untied].to_dict('records')}"
            ) from errors
        valid = ~frame.index.isin(records["row_number"].astype("int64"))
        return pd.Series(valid, index=frame.index), records
    return pd.Series(True, index=frame.index), quarantine.empty()
