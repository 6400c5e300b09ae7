"""``json_depth``, the bound on nesting checked before a body is parsed: for any JSON document it is
the depth of the value the document holds, whatever its strings contain (brackets, quotes and
backslashes escaped, any character), and it never fails on text that is not JSON."""

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.hygiene import json_depth

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
