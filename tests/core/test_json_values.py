"""``json_values.loads``, the hot paths' JSON reader: for any text, the value ``json.loads`` gives
(of the same types, keys in the same order, the last of duplicate keys), or the same error."""

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.json_values import loads

# Strings with what a parser may treat differently: escapes, control characters, non-ASCII, and
# surrogates (lone ones included, as json.loads reads them from "\ud800").
strings = st.text(
    alphabet=st.sampled_from('"\\/\b\f\n\r\t\x00\x1f\x7f a\u00e9\u1ea1\U0001f600\ud800\udc00'), max_size=8
)
numbers = (
    st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.integers(min_value=-(2**64), max_value=-(2**63) + 2)
    | st.floats(allow_nan=True, allow_infinity=True)
)
values = st.recursive(
    st.none() | st.booleans() | numbers | strings,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(strings, children, max_size=4),
    max_leaves=25,
)


def same(left: Any, right: Any) -> bool:
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        return (math.isnan(left) and math.isnan(right)) or (
            left == right and math.copysign(1, left) == math.copysign(1, right)
        )
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(same(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def assert_as_json_loads(data: str | bytes) -> None:
    try:
        expected = json.loads(data)
    except (ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)) as raised:
            loads(data)
        assert str(raised.value) == str(exc)
        return
    assert same(loads(data), expected)


@settings(max_examples=400, deadline=None)
@given(values, st.booleans())
def test_a_document_reads_as_json_loads_reads_it(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert_as_json_loads(text)
    # Lone surrogates cannot be encoded to UTF-8 as they are: json.loads reads them "surrogatepass".
    assert_as_json_loads(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=400, deadline=None)
@given(values, st.integers(min_value=0, max_value=200), st.binary(min_size=1, max_size=3))
def test_a_damaged_document_reads_or_fails_as_with_json_loads(value: Any, at: int, damage: bytes) -> None:
    data = json.dumps(value).encode()
    at = at % (len(data) + 1)
    assert_as_json_loads(data[:at] + damage + data[at:])
    assert_as_json_loads(data[:at] + data[at + 1 :])


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": 1, "a": 2}',
        b'{"a": 1, "b": 2, "a": 3}',
        b'{"a": -0, "b": -0.0, "c": 1e400, "d": -1e400, "e": 5e-325, "f": NaN, "g": -Infinity}',
        b'{"a": 123456789012345678901234567890, "b": -9223372036854775809}',
        b'{"a": "\\ud800", "b": "\\udc00\\ud800", "c": "\\ud83d\\ude00"}',
        b'{"a": "\xed\xa0\x80"}',
        b'\xef\xbb\xbf{"a": 1}',
        '{"a": "\u1ea1"}'.encode("utf-16"),
        b'{"a": "x\x01y"}',
        b'{"a": 1,}',
        b'{"a": 01}',
        b"[" * 100_000 + b"]" * 100_000,
        b"",
        b"   ",
    ],
)
def test_a_hostile_document_reads_or_fails_as_with_json_loads(data: bytes) -> None:
    assert_as_json_loads(data)
