"""Disclosure control of the released aggregate statistics (docs/disclosure.md)."""

from icare.disclosure.control import SUMMARY, release_tables
from icare.disclosure.rules import DisclosureRules, DisclosureRulesError, load_disclosure_rules

__all__ = ["SUMMARY", "DisclosureRules", "DisclosureRulesError", "load_disclosure_rules", "release_tables"]
