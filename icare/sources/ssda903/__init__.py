"""England's SSDA903 children looked after return."""

from icare.sources.ssda903.source import Ssda903Source

__all__ = ["Ssda903Source"]
