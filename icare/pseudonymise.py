"""Keyed pseudonymisation of child identifiers.

A child key is HMAC-SHA256(key, source | area | national id), truncated to 128 bits and written as
hex. Without the key the national id cannot be recovered or confirmed by hashing guesses; with the
same key, the same child gets the same key in every run, so releases can be linked. Only distinct
ids are hashed, so the cost follows the number of children, not of rows.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

KEY_ENVIRONMENT_VARIABLE = "ICARE_PSEUDONYM_KEY"
# Public on purpose: it is used only for the bundled synthetic sample, never for real returns.
DEVELOPMENT_KEY = "icare-development-key-for-the-bundled-synthetic-sample-only"
KEY_BYTES_MINIMUM = 16
_SEPARATOR = "\x1f"
_TEXT = pa.large_string()


class MissingKeyError(RuntimeError):
    """Real data without a pseudonymisation key: the run must not start."""


@dataclass(frozen=True)
class Pseudonymiser:
    key: bytes
    development: bool = False
    # value -> hash, so that a child seen in several tables and returns is hashed once per run.
    _cache: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_environment(cls, *, sample_only: bool) -> Pseudonymiser:
        """The key from ``ICARE_PSEUDONYM_KEY``; the public development key only for the bundled sample."""
        value = os.environ.get(KEY_ENVIRONMENT_VARIABLE, "")
        if value:
            if len(value.encode()) < KEY_BYTES_MINIMUM:
                raise MissingKeyError(
                    f"{KEY_ENVIRONMENT_VARIABLE} is shorter than {KEY_BYTES_MINIMUM} bytes: "
                    "use a long random secret (for example: python -c 'import secrets; "
                    "print(secrets.token_hex(32))')"
                )
            return cls(value.encode())
        if sample_only:
            return cls(DEVELOPMENT_KEY.encode(), development=True)
        raise MissingKeyError(
            f"Set {KEY_ENVIRONMENT_VARIABLE} to a secret key before running on your own data: child "
            "identifiers are pseudonymised with it and the public development key is for the "
            "bundled synthetic sample only. Keep the key safe and use the same key every year so "
            "that children can be linked across releases."
        )

    @property
    def fingerprint(self) -> str:
        """Identifies the key in run metadata without revealing it."""
        return hmac.new(self.key, b"icare key fingerprint", hashlib.sha256).hexdigest()[:12]

    def hash_one(self, value: str) -> str:
        return _hex(hmac.new(self.key, digestmod=hashlib.sha256), value)

    def child_keys(self, source: str, area: pd.Series, child: pd.Series) -> pd.Series:
        """Pseudonymous child key per row; identical ids in different areas are different children."""
        return self._hash_array(_composite(source, area, child), child.index)

    def key_tables(
        self, source: str, tables: Sequence[tuple[pd.Series, pd.Series]]
    ) -> list[tuple[pd.Series, np.ndarray]]:
        """Child keys and dense integer child ids for several tables of one source at once.

        Each distinct child is hashed once; the integer id (shared across the tables) lets later
        steps sort and join on numbers instead of text.
        """
        composites = [_composite(source, area, child) for area, child in tables]
        uniques = pc.unique(pa.chunked_array(composites, type=_TEXT).combine_chunks())
        base = hmac.new(self.key, digestmod=hashlib.sha256)
        hashed = pa.array([self._cached(base, value) for value in uniques.to_pylist()], type=_TEXT)
        keyed = []
        for (_, child), composite in zip(tables, composites, strict=True):
            ids = pc.index_in(composite, value_set=uniques)
            keys = pc.take(hashed, ids).to_pandas().set_axis(child.index)
            keyed.append((keys, ids.to_numpy(zero_copy_only=False).astype("int64")))
        return keyed

    def _cached(self, base: hmac.HMAC, value: str) -> str:
        digest = self._cache.get(value)
        if digest is None:
            digest = self._cache[value] = _hex(base, value)
        return digest

    def values(self, values: pd.Series) -> pd.Series:
        """Hash each distinct value once and map the result back onto the rows (nulls stay null)."""
        return self._hash_array(
            pa.array(values.astype("str"), type=pa.large_string(), from_pandas=True), values.index
        )

    def _hash_array(self, values: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        encoded = pc.dictionary_encode(values)
        base = hmac.new(self.key, digestmod=hashlib.sha256)
        hashed = pa.array([self._cached(base, v) for v in encoded.dictionary.to_pylist()], type=_TEXT)
        return pc.take(hashed, encoded.indices).to_pandas().set_axis(index)


def _hex(base: hmac.HMAC, value: str) -> str:
    """HMAC of one value, reusing the keyed state (copying it is cheaper than re-keying)."""
    mac = base.copy()
    mac.update(value.encode("utf-8"))
    return mac.hexdigest()[:32]


def _composite(source: str, area: pd.Series, child: pd.Series) -> pa.Array:
    """source | area | child id, the text that is hashed (an unknown area is empty)."""
    composite = pc.binary_join_element_wise(
        pa.scalar(source, _TEXT),
        pc.fill_null(pa.array(area, type=_TEXT, from_pandas=True), pa.scalar("", _TEXT)),
        pa.array(child, type=_TEXT, from_pandas=True),
        pa.scalar(_SEPARATOR, _TEXT),
    )
    return composite.combine_chunks() if isinstance(composite, pa.ChunkedArray) else composite
