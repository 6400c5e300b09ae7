"""The pre-pass of a bulk file reads each line's code and event id the load's way (``_object_of``),
by a faster decoder wherever that one takes the line."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.hygiene import MAX_JSON_DEPTH
from app.dossiers.bulk import _code_and_event_id, _code_and_event_id_of_object, _named_quickly, _TooLong

_HOSTILE = [
    b"",
    b"\n",
    b"   \r\n",
    b'{"dossier_code": "A", "event_id": "e1"}\n',
    b'{"dossier_code": "A", "dossier_code": "B", "event_id": "e1", "event_id": 7}\n',
    b'\xef\xbb\xbf{"dossier_code": "A", "event_id": "e1"}\n',
    b'{"dossier_code": "\\ud800", "event_id": "e1"}\n',
    b'{"dossier_code": "\\ud83d\\ude00", "event_id": "\\u0000"}\n',
    b'{"dossier_code": "A\xff", "event_id": "e1"}\n',
    b'{"dossier_code": "A", "event_id": "e1", "x": NaN, "y": Infinity}\n',
    b'{"dossier_code": "A", "event_id": "e1", "x": 1e999, "y": 123456789012345678901234567890}\n',
    b'{"dossier_code": "A\tB", "event_id": "e1"}\n',
    b'{"dossier_code": "A", "event_id": "e1",}\n',
    b'{"dossier_code": "A", "event_id": "e1"} {}\n',
    b'{"dossier_code": "A", "event_id": "e1"}\x00\n',
    b'["dossier_code", "A"]\n',
    b'"A"\n',
    b"null\n",
    b'{"dossier_code": ["A"], "event_id": {"id": "e1"}}\n',
    b'{"dossier_code": null, "event_id": true}\n',
    b'{"Dossier_Code": "A", "event_id ": "e1"}\n',
    b'{"dossier_code": "A", "nested": ' + b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1) + b"}\n",
    b'{"dossier_code": "A", "nested": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
    b'{"dossier_code": "A", "text": "' + b"[" * 100 + b'"}\n',
    b'{"dossier_code": "A", "event_id": "e1"',
    b'{"dossier_code": "A", "event_id": "e1"}\r\n',
    '{"dossier_code": "Hồ sơ", "event_id": "sự kiện"}\n'.encode(),
    '{"dossier_code": "A", "event_id": "e1"}\n'.encode("utf-16"),
    _TooLong(),
    b'{"dossier_code": "A", "event_id": "e1", "note": "\xff"}\n',
    b'{"dossier_code": "A", "event_id": "e1", "\xff": 1}\n',
    b'{"dossier_code": "A", "event_id": "e1", "note": "\xed\xa0\x80"}\n',
    b'{"dossier_code": "A", "event_id": "e1", "note": "\\q"}\n',
    b'{"dossier\\u005fcode": "A", "event\\u005Fid": "e1"}\n',
    b'  \t{"dossier_code": "A", "event_id": "e1"}  \n',
]

# Lines the quick reading must answer itself, so that the comparison is not of the load's reading
# with itself.
_PLAIN = [
    b'{"dossier_code": "A", "event_id": "e1"}\n',
    b'{"dossier_code": "A", "dossier_code": "B", "event_id": "e1", "event_id": 7}\n',
    b'{"dossier_code": "\\ud83d\\ude00", "event_id": "\\u0000"}\n',
    b'{"dossier_code": "A", "event_id": "e1", "x": 1e999, "y": 123456789012345678901234567890}\n',
    b'{"dossier_code": ["A"], "event_id": {"id": "e1"}}\n',
    b'{"dossier\\u005fcode": "A", "event\\u005Fid": "e1"}\n',
    b'  \t{"dossier_code": "A", "event_id": "e1"}  \n',
    '{"dossier_code": "Hồ sơ", "event_id": "sự kiện"}\n'.encode(),
]


def test_hostile_lines_are_named_as_the_load_reads_them() -> None:
    for line in _HOSTILE + _PLAIN:
        quick = _named_quickly(line)
        assert quick is None or quick == _code_and_event_id_of_object(line), line[:80]
        assert _code_and_event_id(line) == _code_and_event_id_of_object(line), line[:80]
    for line in _PLAIN:
        assert _named_quickly(line) is not None, line[:80]
    # Not UTF-8 outside the two members: msgspec would name the line, which the load refuses.
    assert _named_quickly(b'{"dossier_code": "A", "note": "\xff"}') is None


_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    members=st.lists(
        st.tuples(st.sampled_from(["dossier_code", "event_id", "other", "Dossier_code"]), _values), max_size=6
    ),
    ascii_only=st.booleans(),
)
def test_random_objects_are_named_as_the_load_reads_them(
    members: list[tuple[str, object]], ascii_only: bool
) -> None:
    """Members in any order, repeated (the last one counts), of any kind of value."""
    line = (
        "{"
        + ", ".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=ascii_only)}" for k, v in members)
        + "}\n"
    )
    encoded = line.encode("utf-8", "surrogatepass")
    quick = _named_quickly(encoded)
    assert quick is not None, encoded  # strict JSON, UTF-8, shallow: the quick reading answers
    assert quick == _code_and_event_id(encoded) == _code_and_event_id_of_object(encoded)
