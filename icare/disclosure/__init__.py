"""Disclosure control of the released aggregate statistics (docs/disclosure.md)."""

from icare.disclosure.rules import DisclosureRules, DisclosureRulesError, load_disclosure_rules
from icare.disclosure.tables import SUMMARY, release_tables

__all__ = ["SUMMARY", "DisclosureRules", "DisclosureRulesError", "load_disclosure_rules", "release_tables"]
