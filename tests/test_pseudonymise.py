"""Keyed pseudonymisation: standard HMAC, stable, aligned with the rows, and refused without a key."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from icare.pseudonymise import (
    KEY_ENVIRONMENT_VARIABLE,
    KeyedIds,
    MissingKeyError,
    Pseudonymiser,
    _distinct_keys,
    _hex_keys,
    _ids_in_key_order,
    key_categories,
)

KEY = b"a-test-key-that-is-long-enough"


def test_hmac_equals_python_hmac_for_short_long_and_unicode_values():
    values = ["ssda903\x1f201\x1f007", "", "é" * 40, "x" * 500]
    for key in (KEY, b"k" * 100):  # a key longer than the SHA-256 block is hashed first
        hashed = Pseudonymiser(key).values(pd.Series(values)).tolist()
        expected = [hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:32] for v in values]
        assert hashed == expected


def test_child_keys_keep_row_alignment_and_separate_areas():
    p = Pseudonymiser(KEY)
    area = pd.Series(["201", "202", None, "201"], index=[10, 11, 12, 13])
    child = pd.Series(["007", "007", "007", "7"], index=[10, 11, 12, 13])
    keys = p.child_keys("ssda903", area, child)
    assert keys.index.tolist() == [10, 11, 12, 13]
    assert keys[10] == p.hash_one("ssda903\x1f201\x1f007")
    assert keys[12] == p.hash_one("ssda903\x1f\x1f007")
    assert len(set(keys)) == 4  # leading zeros and areas make different children


def test_key_tables_share_ids_and_keys_across_tables():
    p = Pseudonymiser(KEY)
    header = (pd.Series(["201", "201"]), pd.Series(["1", "2"]))
    episodes = (
        pd.Series(["201", "201", "201"], index=[5, 6, 7]),
        pd.Series(["2", "2", "1"], index=[5, 6, 7]),
    )
    (h_keys, h_ids), (e_keys, e_ids) = p.key_tables("ssda903", [header, episodes])
    assert e_keys.index.tolist() == [5, 6, 7]
    assert e_keys.tolist() == [h_keys[1], h_keys[1], h_keys[0]]
    assert e_ids.tolist() == [h_ids[1], h_ids[1], h_ids[0]]


def test_values_keep_nulls():
    assert Pseudonymiser(KEY).values(pd.Series(["a", None])).isna().tolist() == [False, True]


def test_hash_array_keeps_each_value_in_its_place_around_nulls():
    p = Pseudonymiser(KEY)
    hashed = p.hash_array(pa.array([None, "b", None, "a", "b"], type=pa.large_string())).to_pylist()
    assert hashed == [None, p.hash_one("b"), None, p.hash_one("a"), p.hash_one("b")]
    assert p.hash_array(pa.array([], type=pa.large_string())).to_pylist() == []


def test_hex_keys_are_the_first_16_bytes_of_each_digest_in_hex():
    digests = bytes(range(32)) + bytes([255] * 32)
    assert _hex_keys(digests, 2).to_pylist() == ["000102030405060708090a0b0c0d0e0f", "f" * 32]


def test_pair_keys_hash_each_pair_given_with_a_missing_area_as_empty():
    p = Pseudonymiser(KEY)
    area = pa.array(["201", None, "201"], type=pa.large_string())
    child = pa.array(["7", "7", None], type=pa.large_string())
    assert p.pair_keys("ssda903", area, child).to_pylist() == [
        p.hash_one("ssda903\x1f201\x1f7"),
        p.hash_one("ssda903\x1f\x1f7"),
        None,  # no child id: no key
    ]


def test_real_data_without_a_key_stops_with_advice(monkeypatch):
    monkeypatch.delenv(KEY_ENVIRONMENT_VARIABLE, raising=False)
    with pytest.raises(MissingKeyError, match=KEY_ENVIRONMENT_VARIABLE):
        Pseudonymiser.from_environment(sample_only=False)
    assert Pseudonymiser.from_environment(sample_only=True).development


def test_short_key_is_refused(monkeypatch):
    monkeypatch.setenv(KEY_ENVIRONMENT_VARIABLE, "short")
    with pytest.raises(MissingKeyError, match="shorter than 16 bytes"):
        Pseudonymiser.from_environment(sample_only=False)


def test_fingerprint_identifies_the_key_without_revealing_it():
    a, b = Pseudonymiser(KEY), Pseudonymiser(KEY + b"!")
    assert a.fingerprint != b.fingerprint
    assert KEY.decode() not in a.fingerprint


def test_child_ids_follow_the_order_of_the_child_keys():
    p = Pseudonymiser(KEY)
    ((keys, ids),) = p.key_tables("ssda903", [(pd.Series(["201"] * 5), pd.Series(["5", "1", "4", "2", "3"]))])
    assert sorted(zip(ids, keys, strict=True)) == sorted(
        zip(ids, keys, strict=True), key=lambda pair: pair[1]
    )


@pytest.mark.parametrize(
    "keys",
    [
        [f"{n:032x}" for n in (5, 3, 2**100, 3, 2**127 + 1, 2**64, 0)],  # child keys, repeated
        ["0" * 16 + "b" * 16, "0" * 16 + "a" * 16, "0" * 16 + "b" * 16],  # same first 16 digits
        ["ABCDEF" + "0" * 26, "abcdef" + "0" * 26, "0" * 32],  # upper case: Arrow decides
        ["1" * 16 + "Z" * 16, "0" * 16 + "Y" * 16],  # the first 16 digits decide, the rest unread
        ["0" * 16 + "Z" * 16, "0" * 16 + "Y" * 16],  # they do not, and the rest is not hex: Arrow
        ["201|1", "201|10", "202|1", "201|1"],  # not child keys
    ],
)
def test_distinct_keys_and_their_order_are_arrows(keys):
    array = pa.array(keys, type=pa.large_string())
    distinct, indices = _distinct_keys(array)
    assert distinct.take(pa.array(indices)).to_pylist() == keys
    assert sorted(set(distinct.to_pylist())) == sorted(set(keys)) and len(distinct) == len(set(keys))
    order, ids = _ids_in_key_order(distinct, indices)
    assert distinct.take(pa.array(order)).to_pylist() == sorted(set(keys), key=lambda k: k.encode())
    assert list(ids) == [sorted(set(keys), key=lambda k: k.encode()).index(k) for k in keys]


def test_keys_that_mix_to_one_number_are_still_told_apart(monkeypatch):
    import icare.pseudonymise as pseudonymise

    monkeypatch.setattr(pseudonymise, "_MIX", np.uint64(0))  # every key mixes to its third word
    keys = ["a" * 16 + "c" * 16, "b" * 16 + "c" * 16, "a" * 16 + "c" * 16]
    distinct, indices = _distinct_keys(pa.array(keys, type=pa.large_string()))
    assert distinct.take(pa.array(indices)).to_pylist() == keys and len(distinct) == 2


def test_values_of_several_columns_equal_values_of_each():
    p = Pseudonymiser(KEY)
    columns = [pd.Series(["2010-01-02", None, "2011-03-04"], index=[7, 8, 9]), pd.Series([], dtype="str")]
    columns.append(pd.Series(["2011-03-04", "2012-05-06"]))
    for combined, alone in zip(p.values_of(columns), (p.values(c) for c in columns), strict=True):
        pd.testing.assert_series_equal(combined, alone)


@pytest.mark.parametrize(
    "areas, children",
    [
        (["201", "202", None, "", "201"], ["7", "7", "7", "7", "8"]),  # a missing area is ""
        (["201", "201", "202"], ["7", None, None]),  # no child id: no key
        (["2\x1f01", "2"], ["7", "01\x1f7"]),  # separators inside: each row's text decides
        ([], []),
    ],
)
def test_key_tables_give_each_row_its_child_key(areas, children):
    p = Pseudonymiser(KEY)
    area, child = pd.Series(areas, dtype="str"), pd.Series(children, dtype="str")
    half = len(areas) // 2
    tables = [(area.iloc[:half], child.iloc[:half]), (area.iloc[half:], child.iloc[half:])]
    keyed = p.key_tables("ssda903", tables)
    keys = pd.concat([k for k, _ in keyed]) if areas else pd.Series([], dtype="str")
    expected = p.child_keys("ssda903", area, child)
    assert keys.tolist() == expected.tolist()
    ids = np.concatenate([i for _, i in keyed])
    ranks = {k: r for r, k in enumerate(sorted(set(keys.dropna()), key=str.encode))}
    assert [ranks.get(k, len(ranks)) if isinstance(k, str) else len(ranks) for k in keys] == list(ids)


def test_key_categories_list_the_used_keys_in_key_order():
    keys = pa.array(["c" * 32, "a" * 32, None, "b" * 32, "0" * 32], type=pa.large_string())
    dtype, codes = key_categories(keys, np.array([True, True, True, False, True]))
    assert list(dtype.categories) == ["0" * 32, "a" * 32, "c" * 32]  # unused and missing keys left out
    assert codes.tolist() == [2, 1, -1, -1, 0]


def _sealed(keys: list[str], categories: list[str]) -> pd.Series:
    return pd.Series(pd.Categorical(keys, categories=categories))


def _sharing(dtype: pd.CategoricalDtype, *codes: list[int]) -> list[pd.Series]:
    return [pd.Series(pd.Categorical.from_codes(c, dtype=dtype)) for c in codes]


_KEYS = ["a" * 32, "b" * 32, "c" * 32]


@pytest.mark.parametrize(
    "encoded",
    [
        # One dtype over every key, in key order (as sealing holds them): its codes are the ids.
        _sharing(pd.CategoricalDtype(_KEYS), [0, 1], [2]),
        # One dtype, categories out of order and one unused.
        _sharing(pd.CategoricalDtype(["d" * 32, "c" * 32, "a" * 32]), [1, 2, 1], [2]),
        # Each table its own categories (sealed a year at a time), and text that is not a hex key.
        [_sealed(["b" * 32, "zz"], ["zz", "b" * 32]), _sealed(["a" * 32, "zz"], ["a" * 32, "zz"])],
    ],
)
def test_keyed_ids_of_encoded_keys_equal_those_of_the_same_keys_as_text(encoded):
    area = pd.Series(["201"] * 3)
    as_text = [(area, child.astype("str")) for child in encoded]
    expected = KeyedIds().key_tables("ssda903", as_text, encoded=True)
    keyed = KeyedIds().key_tables("ssda903", [(area, child) for child in encoded], encoded=True)
    for (keys, ids), (expected_keys, expected_ids) in zip(keyed, expected, strict=True):
        assert ids.tolist() == expected_ids.tolist()
        assert keys.cat.codes.tolist() == expected_keys.cat.codes.tolist()
        assert list(keys.cat.categories) == list(expected_keys.cat.categories)
    if encoded[0].cat.categories.equals(pd.Index(_KEYS)):  # used as they are: no new dtype
        assert all(keys.dtype is encoded[0].dtype for keys, _ in keyed)
