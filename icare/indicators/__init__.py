"""Indicators computed from the released (disclosure-controlled) tables (docs/indicators.md)."""
