"""The scans of a body before it is parsed (app.core.hygiene). ``json_depth``, the bound on nesting:
for any JSON document it is the depth of the value the document holds, whatever its strings
contain (brackets, quotes and backslashes escaped, any character), and it never fails on text that
is not JSON. The control characters, raw or escaped, found exactly where the patterns find them."""

import json
import re
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.hygiene import CONTROL_BYTES, body_problem, has_control_escape, json_depth

# Strings heavy in what could fool a scanner: brackets, quotes, backslashes, line breaks.
# (Lone surrogates aside: a body is UTF-8, which cannot hold them.)
tricky_text = st.text(
    alphabet=st.sampled_from('[]{}"\\\n\tabc\u1ea1 ') | st.characters(codec="utf-8"), max_size=12
)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | tricky_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4),
    max_leaves=30,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(item) for item in value.values()), default=0)
    return 0


@settings(max_examples=300, derandomize=True)
@given(values, st.booleans())
def test_the_depth_of_any_document_is_that_of_its_value(value: Any, ascii_only: bool) -> None:
    document = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert json_depth(document) == depth(value)


@settings(max_examples=300, derandomize=True)
@given(st.binary(max_size=200))
def test_any_bytes_get_a_depth(body: bytes) -> None:
    assert json_depth(body) >= 0


def test_brackets_inside_strings_do_not_count() -> None:
    assert json_depth(b'{"a": "[[[[{{{{", "b": ["\\"]]]", [1]]}') == 3
    assert json_depth(b'["\\\\", [["\\\\\\"["]]]') == 3


@settings(max_examples=300, derandomize=True)
@given(st.integers(min_value=0, max_value=200), tricky_text)
def test_deep_documents_are_measured_exactly_past_the_levels_counted_by_passes(
    levels: int, text: str
) -> None:
    # Beyond a few levels json_depth counts bracket by bracket: the same depth either way.
    value: Any = text
    for level in range(levels):
        value = [value, {"k": text}] if level % 2 else {"k": value, "t": [text]}
    assert json_depth(json.dumps(value).encode()) == depth(value)


# The pattern has_control_escape replaced, as the yardstick: an escape of a control character
# (\u00XX, or the short \b and \f) whose backslash is not itself escaped (an even run of
# backslashes before it).
CONTROL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\(?:u00(?:0[0-8bBcCeEfF]|1[0-9a-fA-F]|7[fF])|[bf])")
escape_parts = st.sampled_from(
    [b"\\", b"\\\\", b"u", b"u00", b"0", b"1", b"7", b"f", b"F", b"e", b"b", b"9", b'"', b" "]
)


@settings(max_examples=1000, derandomize=True)
@given(st.lists(escape_parts, max_size=16).map(b"".join))
def test_a_control_escape_is_found_exactly_where_its_backslash_is_not_escaped(body: bytes) -> None:
    assert has_control_escape(body) == (CONTROL_ESCAPE.search(body) is not None)


@settings(max_examples=300, derandomize=True)
@given(st.binary(max_size=64))
def test_control_bytes_are_found_in_a_body_as_the_pattern_finds_them(body: bytes) -> None:
    problem = body_problem(body, b"text/csv")
    raw = problem is not None and problem.message == "The body contains control characters"
    assert raw == (CONTROL_BYTES.search(body) is not None)


@pytest.mark.parametrize(
    "body",
    [b'\\"' * 500_000, b'"' + b'\\"' * 500_000, b'["\\\\"]' * 200_000, b"[" * 1_000_000, b"\\" * 1_000_000],
    ids=["escaped quotes", "an unclosed string of them", "escaped backslashes", "brackets", "backslashes"],
)
def test_hostile_bodies_are_scanned_in_one_pass(body: bytes) -> None:
    # A string pattern that backtracks took time growing with the square of the body: 19 s for
    # 80 KB of escaped quotes, hours for the largest body taken. These take milliseconds; the
    # bound is there only to fail rather than hang.
    answers: list[tuple[int, bool]] = []
    scan = threading.Thread(
        target=lambda: answers.append((json_depth(body), has_control_escape(body))), daemon=True
    )
    scan.start()
    scan.join(timeout=60)
    assert answers, "the scan did not end"
