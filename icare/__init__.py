"""icare: harmonise national records of children in alternative care onto ICare categories."""

__version__ = "0.1.0"
