"""Keyed pseudonymisation of child identifiers.

A child key is HMAC-SHA256(key, source | area | national id), truncated to 128 bits and written as
hex. Without the key the national id cannot be recovered or confirmed by hashing guesses; with the
same key, the same child gets the same key in every run, so releases can be linked. Only distinct
ids are hashed, each from copies of the key's inner and outer SHA-256 states (the RFC 2104 padded
keys hashed once): that is the standard HMAC (a test checks it against Python's hmac), without
``hmac.new`` hashing the padded key again for every value.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.types import union_categoricals

from icare.vectorised import categorical, decoded, text_categories

KEY_ENVIRONMENT_VARIABLE = "ICARE_PSEUDONYM_KEY"
# Public on purpose: it is used only for the bundled synthetic sample, never for real returns.
DEVELOPMENT_KEY = "icare-development-key-for-the-bundled-synthetic-sample-only"
KEY_BYTES_MINIMUM = 16
_SEPARATOR = "\x1f"
_TEXT = pa.large_string()
_BLOCK_BYTES = 64  # SHA-256 block size: HMAC pads the key to it


class MissingKeyError(RuntimeError):
    """Real data without a pseudonymisation key: the run must not start."""


@dataclass(frozen=True)
class Pseudonymiser:
    key: bytes
    development: bool = False

    @classmethod
    def from_environment(cls, *, sample_only: bool) -> Pseudonymiser:
        """The key from ``ICARE_PSEUDONYM_KEY``; the public development key only for the bundled sample."""
        value = os.environ.get(KEY_ENVIRONMENT_VARIABLE, "")
        if value:
            if not value.strip():
                # Most likely a variable set from an empty secret file or a template: a key of spaces
                # would be the same guessable key everywhere.
                raise MissingKeyError(
                    f"{KEY_ENVIRONMENT_VARIABLE} holds only white space: set it to a long random "
                    "secret (for example: python -c 'import secrets; print(secrets.token_hex(32))')"
                )
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
        """Reference implementation with Python's hmac (used by tests and for single values)."""
        return hmac.new(self.key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def child_keys(self, source: str, area: pd.Series, child: pd.Series) -> pd.Series:
        """Pseudonymous child key per row; identical ids in different areas are different children."""
        return self._hash_rows(_composite(source, area, child), child.index)

    def key_tables(
        self, source: str, tables: Sequence[tuple[pd.Series, pd.Series]], *, encoded: bool = False
    ) -> list[tuple[pd.Series, np.ndarray]]:
        """Child keys and dense integer child ids for several tables of one source at once.

        Each distinct child is hashed once; the integer id (shared across the tables) lets later
        steps sort and join on numbers instead of text. Ids follow the order of the keys, so
        sorting by id is sorting by ``child_key``. With ``encoded`` the keys come as a categorical
        over the sorted distinct keys (its codes are the ids), so gathering them moves integers.
        """
        composites = [_composite(source, area, child) for area, child in tables]
        # One hash pass over every row: distinct composites (first-seen order) and each row's position.
        dictionary = pc.dictionary_encode(
            pa.chunked_array(composites, type=_TEXT).combine_chunks(), null_encoding="encode"
        )
        hashed = self.hash_array(dictionary.dictionary)
        order, row_ids = _ids_in_key_order(hashed, dictionary.indices)
        hashed = hashed.take(order)
        dtype = text_categories(hashed) if encoded else None
        return [
            (
                categorical(ids, dtype, child.index)
                if encoded
                else hashed.take(ids).to_pandas().set_axis(child.index),
                ids,
            )
            for (_, child), ids in zip(tables, _per_table(row_ids, composites), strict=True)
        ]

    def values(self, values: pd.Series) -> pd.Series:
        """Hash each distinct value once and map the result back onto the rows (nulls stay null)."""
        return self._hash_rows(pa.array(values, type=_TEXT, from_pandas=True), values.index)

    def values_of(self, columns: Sequence[pd.Series]) -> list[pd.Series]:
        """``values`` of several columns in one pass: each distinct value of them all hashed once."""
        if not columns:
            return []
        arrays = [pa.array(column, type=_TEXT, from_pandas=True) for column in columns]
        chunks = [chunk for array in arrays for chunk in _chunks(array)]
        encoded = pc.dictionary_encode(pa.chunked_array(chunks, type=_TEXT).combine_chunks())
        digests = self.hash_array(encoded.dictionary)
        starts = np.cumsum([0, *(len(array) for array in arrays)])
        return [  # one array per column (not slices of a shared one, which would be stored whole)
            pc.take(digests, encoded.indices.slice(start, len(column))).to_pandas().set_axis(column.index)
            for column, start in zip(columns, starts, strict=False)
        ]

    def hash_array(self, values: pa.Array) -> pa.Array:
        """HMAC-SHA256 (hex, first 32 characters) of each value, nulls kept.

        Only the two SHA-256 states of the padded key are copied per value, in a loop that hashes
        263,000 child ids in 0.21 s of CPU where SQL in DuckDB (which hashed hex text twice) took
        0.33 s, and the hex keys are written into one Arrow buffer rather than made one by one.
        """
        values = pa.array(values, type=_TEXT)
        present = values.drop_null() if values.null_count else values
        digests = _hmac_digests(self.key, present.cast(pa.large_binary()).to_pylist())
        hexed = _hex_keys(digests, len(present))
        if not values.null_count:
            return hexed
        positions = np.cumsum(values.is_valid().to_numpy(zero_copy_only=False)) - 1
        return hexed.take(pa.array(positions, mask=values.is_null().to_numpy(zero_copy_only=False)))

    def pair_keys(self, source: str, area: pa.Array, child: pa.Array) -> pa.Array:
        """The child key of each (area, child id) pair given, as Arrow text: for pairs that are
        already distinct (nothing is de-duplicated or sorted here); a missing area is empty."""
        return self.hash_array(_composite(source, area, child))

    def _hash_rows(self, values: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        encoded = pc.dictionary_encode(values)
        return pc.take(self.hash_array(encoded.dictionary), encoded.indices).to_pandas().set_axis(index)


class KeyedIds:
    """Stands in for a ``Pseudonymiser`` once the child ids of a table are already child keys.

    ``Source.seal`` replaces each national child id by its child key as soon as a table is read, so
    that nothing stored between stages identifies a child. Later steps still need the child key
    (unchanged) and the dense integer id, which follows the order of the keys exactly as
    ``Pseudonymiser.key_tables`` numbers them: same keys, same ids, same tables.
    """

    def child_keys(self, source: str, area: pd.Series, child: pd.Series) -> pd.Series:
        return pa.array(decoded(child), type=_TEXT, from_pandas=True).to_pandas().set_axis(child.index)

    def key_tables(
        self, source: str, tables: Sequence[tuple[pd.Series, pd.Series]], *, encoded: bool = False
    ) -> list[tuple[pd.Series, np.ndarray]]:
        children = [child for _, child in tables]
        if encoded and children and all(isinstance(child.dtype, pd.CategoricalDtype) for child in children):
            keyed = _encoded_key_tables(children)
            if keyed is not None:
                return keyed
        arrays = [pa.array(decoded(child), type=_TEXT, from_pandas=True) for child in children]
        chunks = [chunk for array in arrays for chunk in _chunks(array)]
        distinct, indices = _distinct_keys(pa.chunked_array(chunks, type=_TEXT).combine_chunks())
        order, row_ids = _ids_in_key_order(distinct, indices)
        if encoded:
            dtype = text_categories(distinct.take(order))  # one dtype for the tables' keys
            return [
                (categorical(ids, dtype, child.index), ids)
                for child, ids in zip(children, _per_table(row_ids, arrays), strict=True)
            ]
        return [
            (array.to_pandas().set_axis(child.index), ids)
            for child, array, ids in zip(children, arrays, _per_table(row_ids, arrays), strict=True)
        ]


def key_categories(keys: pa.Array, used: np.ndarray) -> tuple[pd.CategoricalDtype, np.ndarray]:
    """A categorical dtype over the distinct ``keys`` marked ``used``, in key order, and each key's
    code in it (-1 when not used or missing).

    ``Source.seal`` holds the valid rows' child keys so: the codes are then the dense child ids that
    ``KeyedIds.key_tables`` gives, which it takes without finding the distinct keys again.
    """
    present = np.flatnonzero(used & keys.is_valid().to_numpy(zero_copy_only=False))
    in_use = keys.take(pa.array(present))
    order = _key_order(in_use) if len(in_use) else np.zeros(0, dtype="int64")
    codes = np.full(len(keys), -1, dtype="int32" if len(keys) < 2**31 else "int64")  # as pandas holds codes
    codes[present[order]] = np.arange(len(order))
    return text_categories(in_use.take(pa.array(order))), codes


def _encoded_key_tables(children: Sequence[pd.Series]) -> list[tuple[pd.Series, np.ndarray]] | None:
    """``KeyedIds.key_tables(encoded=True)`` for keys held as categoricals (as ``Source.seal`` holds
    them), None when a key is missing.

    The categories are already distinct, so only the codes are counted: at 5,000,000 episode rows
    finding the distinct keys of the 8.2 million rows of text took 1.5 s of CPU. When the tables
    use every category and the categories are in key order (the sealed extraction of one run), the
    keys are handed back as they are and their codes are the ids (no second hash pass over the keys).
    """
    dtype = children[0].dtype
    shared = all(child.dtype is dtype for child in children)
    if shared:
        codes = [child.cat.codes.to_numpy() for child in children]
    else:  # e.g. parts sealed one year at a time: one dtype over the union of their keys
        union = union_categoricals([child.array for child in children])
        dtype, codes = union.dtype, _per_table(union.codes, children)
    every_code = np.concatenate([np.zeros(0, dtype="int64"), *codes])
    if (every_code < 0).any():
        return None
    used = np.bincount(every_code, minlength=len(dtype.categories)).astype(bool)
    keys = pa.array(pd.Series(dtype.categories), type=_TEXT, from_pandas=True)
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if used.all():
        distinct, indices = keys, every_code
    else:
        distinct, indices = keys.take(pa.array(np.flatnonzero(used))), (np.cumsum(used) - 1)[every_code]
    if shared and used.all() and _strictly_increasing(keys):
        return [
            (child, table_codes.astype("int64")) for child, table_codes in zip(children, codes, strict=True)
        ]
    order, row_ids = _ids_in_key_order(distinct, indices)
    dtype = text_categories(distinct.take(pa.array(order)))
    return [
        (categorical(ids, dtype, child.index), ids)
        for child, ids in zip(children, _per_table(row_ids, children), strict=True)
    ]


def _strictly_increasing(keys: pa.Array) -> bool:
    """True when each key sorts after the one before (Arrow compares text bytewise, as it sorts)."""
    if len(keys) < 2:
        return True
    return bool(pc.all(pc.less(keys.slice(0, len(keys) - 1), keys.slice(1))).as_py())


def _chunks(array: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    """The arrays a column is made of (a text column read from CSV is usually several chunks)."""
    return array.chunks if isinstance(array, pa.ChunkedArray) else [array]


def _hmac_digests(key: bytes, values: list[bytes]) -> bytes:
    """HMAC-SHA256 of each value (RFC 2104), the 32-byte digests joined in order.

    The padded inner and outer keys are hashed once and their states copied for each value, which
    is what ``hmac.new`` does for one value after hashing them again.
    """
    block = key if len(key) <= _BLOCK_BYTES else hashlib.sha256(key).digest()
    block = block.ljust(_BLOCK_BYTES, b"\0")
    copy_inner = hashlib.sha256(bytes(b ^ 0x36 for b in block)).copy
    copy_outer = hashlib.sha256(bytes(b ^ 0x5C for b in block)).copy
    digests = []
    for value in values:
        inner = copy_inner()
        inner.update(value)
        outer = copy_outer()
        outer.update(inner.digest())
        digests.append(outer.digest())
    return b"".join(digests)


def _hex_keys(digests: bytes, count: int) -> pa.Array:
    """The first 16 bytes of each 32-byte digest as 32 lowercase hex digits, one Arrow text array."""
    hexed = np.frombuffer(binascii.hexlify(digests), dtype=np.uint8).reshape(count, 64)[:, :32]
    offsets = np.arange(count + 1, dtype=np.int64) * 32
    return pa.LargeStringArray.from_buffers(
        count, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(hexed))
    )


def _ids_in_key_order(keys: pa.Array, indices: pa.Array | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids numbered in the order of the distinct ``keys``, so ids sort as the keys do.

    Returns the sort order of ``keys`` and each row's id (``indices`` point rows at ``keys``).
    """
    order = _key_order(keys)
    rank = np.empty(len(order), dtype="int64")
    rank[order] = np.arange(len(order))
    if isinstance(indices, pa.Array):
        indices = indices.to_numpy(zero_copy_only=False)
    return order, rank[indices]


def _key_order(keys: pa.Array) -> np.ndarray:
    """``pc.sort_indices(keys)``: child keys (32 hex digits) sort as their two 64-bit numbers.

    The first 16 digits decide unless two keys share them, so the last 16 are read only then
    (1.3 million keys: 0.13 s of CPU to read the first, as long again for both).
    """
    high = _hex_word(keys, 0)
    if high is None:
        return pc.sort_indices(keys).to_numpy()
    order = np.argsort(high, kind="stable")
    ordered = high[order]
    if (ordered[1:] == ordered[:-1]).any():  # keys sharing their first 16 digits: all 32 decide
        low = _hex_word(keys, 1)
        if low is None:
            return pc.sort_indices(keys).to_numpy()
        order = np.lexsort((low, high))
    return order


def _distinct_keys(keys: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The distinct keys and each row's position among them (as ``pc.dictionary_encode`` gives).

    Keys of 32 bytes (child keys) are read as four 64-bit words, mixed into one number that pandas
    hashes faster than Arrow hashes text (measured: 0.30 s instead of 0.45 s for 4 million keys);
    every row's four words are then checked against its group's, so a mixing collision can only
    send the keys to Arrow, never merge two children.
    """
    words = _key_words(keys)
    if words is not None:
        mixed = words[:, 0] * _MIX
        mixed ^= words[:, 1]
        mixed *= _MIX
        mixed ^= words[:, 2]
        codes, uniques = pd.factorize(mixed)
        sample = np.empty(len(uniques), dtype="int64")
        sample[codes] = np.arange(len(codes))  # one row of each group
        groups = words[sample]
        if all(np.array_equal(groups[:, word][codes], words[:, word]) for word in range(words.shape[1])):
            return keys.take(pa.array(sample)), codes
    dictionary = pc.dictionary_encode(keys)
    return dictionary.dictionary, dictionary.indices.to_numpy(zero_copy_only=False)


_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it mixes bits without losing any


_KEY_BYTES = 32  # a child key: 32 hex digits


def _key_bytes(keys: pa.Array) -> tuple[int, int] | None:
    """Where the keys' bytes lie in the text buffer (start, end) when every key is present and exactly
    ``_KEY_BYTES`` long (then key i is bytes start + 32 i to start + 32 (i + 1)), else None."""
    if keys.null_count or not len(keys) or keys.type != _TEXT:
        return None
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64)[keys.offset : keys.offset + len(keys) + 1]
    if not bool((np.diff(offsets) == _KEY_BYTES).all()):
        return None
    return int(offsets[0]), int(offsets[-1])


def _key_words(keys: pa.Array) -> np.ndarray | None:
    """Keys of exactly 32 bytes as an (n, 4) array of 64-bit words (no copy), else None."""
    span = _key_bytes(keys)
    if span is None or span[0] % 8:
        return None
    start, end = span
    words = np.frombuffer(keys.buffers()[2], dtype=np.uint64, count=(end - start) // 8, offset=start)
    return words.reshape(-1, _KEY_BYTES // 8)


_HEX_DIGITS = np.full(256, 255, dtype=np.uint8)
_HEX_DIGITS[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


def _hex_word(keys: pa.Array, word: int) -> np.ndarray | None:
    """Digits ``16 word`` to ``16 word + 15`` of each key as a 64-bit number, when every key is 32
    characters and those digits are lowercase hex (as child keys are), else None. The numbers order
    as those digits do, and equal numbers are equal digits."""
    span = _key_bytes(keys)
    if span is None:
        return None
    text = np.frombuffer(keys.buffers()[2], dtype=np.uint8)[span[0] : span[1]].reshape(-1, _KEY_BYTES)
    digits = _HEX_DIGITS[text[:, 16 * word : 16 * (word + 1)]]
    if bool((digits > 15).any()):
        return None
    pairs = digits.reshape(-1, 8, 2)
    return np.ascontiguousarray((pairs[:, :, 0] << 4) | pairs[:, :, 1]).view(">u8").astype(np.uint64)[:, 0]


def _per_table(row_ids: np.ndarray, tables: Sequence[pa.Array | pd.Series]) -> list[np.ndarray]:
    """``row_ids`` of the concatenated tables, split back into one array per table."""
    ends = np.cumsum([len(t) for t in tables], dtype="int64")
    return [row_ids[end - len(t) : end] for t, end in zip(tables, ends, strict=True)]


def _composite(source: str, area: pd.Series, child: pd.Series) -> pa.Array:
    """source | area | child id, the text that is hashed (an unknown area is empty)."""
    composite = pc.binary_join_element_wise(
        pa.scalar(source, _TEXT),
        pc.fill_null(pa.array(area, type=_TEXT, from_pandas=True), pa.scalar("", _TEXT)),
        pa.array(child, type=_TEXT, from_pandas=True),
        pa.scalar(_SEPARATOR, _TEXT),
    )
    return composite.combine_chunks() if isinstance(composite, pa.ChunkedArray) else composite
