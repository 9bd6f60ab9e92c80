"""Care spells, placement spells and the published statistics (docs/statistics.md)."""

from icare.statistics.compute import STATISTICS_TABLES, compute_statistics
from icare.statistics.periods import reporting_periods
from icare.statistics.settings import (
    StatisticsSettings,
    StatisticsSettingsError,
    check_settings,
    load_statistics_settings,
    rate_age_bands,
)

__all__ = [
    "STATISTICS_TABLES",
    "StatisticsSettings",
    "StatisticsSettingsError",
    "check_settings",
    "compute_statistics",
    "load_statistics_settings",
    "rate_age_bands",
    "reporting_periods",
]
