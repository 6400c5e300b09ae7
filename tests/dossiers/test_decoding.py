"""``decode_event``, the event as every way in reads it: accepted exactly when the model
(``DossierEventIn``) accepts it, with the model's values, refused with the model's errors; its
canonical form the bytes the model's serializer gives. Most items take the fast path (msgspec):
the tests also show which do, so the comparison is not of the model with itself."""

import hashlib
import json
import pickle
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
import pydantic_core
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ConfigDict, Field, StringConstraints, ValidationError, field_validator

from app.dossiers.history import HistoryEvent
from app.dossiers.ingestion import decoding
from app.dossiers.ingestion.decoding import EVENT_INPUT, EventIn, canonical, decode_event
from app.dossiers.lifecycle import FLAGS
from app.dossiers.schemas import DossierEventIn
from app.dossiers.service import lookup_hash
from tests.dossiers import test_canonical_form

KEY = "test-key"


def model_canonical(model: DossierEventIn) -> tuple[str, str]:
    """The canonical form as the model's serializer made it before ``EventIn`` (the stored hashes)."""
    payload = DossierEventIn.__pydantic_serializer__.to_json(
        model, exclude_none=True, exclude={"lookup_secret"}
    )
    if model.lookup_secret is not None:
        secret = lookup_hash(KEY, model.dossier_code, model.lookup_secret)
        payload = b'%s,"lookup_secret":"hmac-sha256:%s"}' % (payload[:-1], secret.encode())
    return payload.decode(), hashlib.sha256(payload).hexdigest()


def described(refusal: ValidationError) -> list[dict[str, Any]]:
    """The errors, their context's exceptions by their text (an exception equals only itself)."""
    return [
        {**error, "ctx": {name: str(value) for name, value in error.get("ctx", {}).items()}}
        for error in refusal.errors()
    ]


def as_it_arrived(event: EventIn, position: int, client_id: int) -> HistoryEvent:
    """The history event the decoded event says, field by field (the PIN as its keyed hash)."""
    return HistoryEvent(
        position=position,
        client_id=client_id,
        type=event.type,
        occurred_at=event.occurred_at,
        new_return_at=event.new_return_at,
        flags={name: getattr(event, name) for name in FLAGS},
        procedure_code=event.procedure_code,
        unit_code=event.unit_code,
        channel=event.channel.value if event.channel else None,
        online_level=event.online_level.value if event.online_level else None,
        due_at=event.due_at,
        lookup_secret_hash=lookup_hash(KEY, event.dossier_code, event.lookup_secret)
        if event.lookup_secret
        else None,
    )


def assert_as_the_model(raw: Any) -> None:
    try:
        model = EVENT_INPUT.validate_python(raw)
    except ValidationError as refused:
        with pytest.raises(ValidationError) as raised:
            decode_event(raw)
        assert described(raised.value) == described(refused)
        return
    event = decode_event(raw)
    assert isinstance(event, EventIn)
    for name in EventIn.__struct_fields__:
        mine, theirs = getattr(event, name), getattr(model, name)
        assert (type(mine), mine) == (type(theirs), theirs), name
        if isinstance(mine, datetime):
            assert mine.tzinfo is UTC and theirs.tzinfo is UTC, name
    assert canonical(event, KEY) == model_canonical(model)
    # What the history reads back of the stored payload is what the event said.
    payload = canonical(event, KEY)[0]
    arrived = as_it_arrived(event, 7, 3)
    assert HistoryEvent.from_canonical(7, 3, payload) == arrived
    assert HistoryEvent.from_payload(7, 3, json.loads(payload)) == arrived


def fast(raw: Any) -> bool:
    """Whether the fast path takes ``raw`` (without the model)."""
    try:
        decoding._decoded(raw)
    except Exception:
        return False
    return True


RECEIVED = {**test_canonical_form.RECEIVED, "due_at": "2023-08-11T17:00:00.5+07:00", "digitized": False}

# Per field, values the two paths might read differently: other forms of an instant, a final
# newline after a pattern, non-ASCII digits, control characters, lax booleans and integers,
# bounds, wrong types.
INSTANTS = [
    "2023-08-01T09:15:00+07:00",
    "2023-08-01T09:15:00Z",
    "2023-08-01T09:15:00.123456-03:30",
    "2023-08-01T09:15:00.1234567+07:00",
    "2023-08-01T09:15:00-00:00",
    "2023-08-01 09:15:00+07:00",
    "2023-08-01t09:15:00z",
    "2023-08-01T09:15+07:00",
    "2023-08-01T09:15:00+0700",
    "2023-08-01T09:15:00+07",
    "2023-08-01T09:15:00",
    "2023-02-29T09:15:00+07:00",
    "2023-08-01T24:00:00+07:00",
    "2023-08-01T23:59:60+07:00",
    "2023-08-01T09:15:00+24:00",
    "2023-08-01T09:15:00+07:60",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00+07:00",
    "9999-12-31T23:00:00-07:00",
    "1899-12-31T23:00:00-02:00",
    "1900-01-01T06:59:59+07:00",
    "2200-12-31T23:59:59-07:00",
    "2201-01-01T00:00:00+00:00",
    "٢٠٢٣-08-01T09:15:00+07:00",
    "2023-08-01T09:15:00+07:00\n",
    "1690856100",
    1690856100,
    "",
    None,
]
CODES = ["H56-1", "H56-1\n", "H56/1", "h5.6_1", "-H56", "Ｈ56", "H56 1", "", "1" * 64, "1" * 65, 5, None]
TEXTS = [
    "x",
    "e-1",
    "",
    "a\x00b",
    "a\nb",
    "sự kiện 😀",
    '"\\/',
    "\u2028",
    "\x7f",
    "\ud800",
    "x" * 101,
    7,
    None,
]
PINS = ["482913", "123", "1234", "12\x0034", "x" * 64, "x" * 65, "\ud800\ud800\ud800\ud800", 482913, None]
BOOLEANS: list[Any] = [True, False, None, 1, 0, "true", "false", "yes", "1", 1.0, [], "null"]
REVISIONS = [None, 1, 2, 0, -1, 2**31 - 1, 2**31, 2**70, True, 2.0, 2.5, "2", "x"]
ENUMS: dict[str, list[Any]] = {
    "type": ["received", "refused", "resolved", "apology_issued", "Received", "received ", "", 1, None],
    "channel": ["online", "direct", "post", "ONLINE", "", None, 1],
    "online_level": ["partial", "full", "basic", "", None],
}
FIELDS: dict[str, list[Any]] = {
    "event_id": TEXTS,
    "dossier_code": CODES,
    "occurred_at": INSTANTS,
    "due_at": INSTANTS,
    "new_return_at": INSTANTS,
    "procedure_code": ["1.000894", "1.000894\n", "1.000894.000.00.00.H56", "", None, 1],
    "unit_code": ["11680", "11680\n", "1" * 33, "", None],
    "lookup_secret": PINS,
    "revision": REVISIONS,
    **{flag: BOOLEANS for flag in ("paid_online", "fee_payable", "digitized", "e_result", "cancelled")},
    **ENUMS,
}
ABSENT = object()


@st.composite
def items(draw: st.DrawFn) -> Any:
    raw: dict[str, Any] = dict(RECEIVED) if draw(st.booleans()) else {}
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=6, unique=True)):
        value = draw(st.sampled_from([*FIELDS[name], ABSENT]))
        if value is ABSENT:
            raw.pop(name, None)
        else:
            raw[name] = value
    if draw(st.integers(0, 9)) == 0:
        raw[draw(st.sampled_from(["extra", "Event_id", "lookup_secret_hash"]))] = "x"
    shuffled = draw(st.permutations(list(raw.items())))
    return draw(st.sampled_from([dict(shuffled), list(shuffled), "event", None]))


@settings(max_examples=1500, deadline=None)
@given(items())
def test_an_item_is_decoded_exactly_as_the_model_validates_it(raw: Any) -> None:
    assert_as_the_model(raw)


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_each_hostile_value_of_each_field_is_decoded_as_the_model_validates_it(name: str) -> None:
    for value in FIELDS[name]:
        assert_as_the_model({**RECEIVED, name: value})


def test_the_usual_items_take_the_fast_path_and_the_doubtful_ones_the_model() -> None:
    resolved = {
        "event_id": "e-2",
        "dossier_code": "H56-1",
        "type": "resolved",
        "occurred_at": "2023-08-02T15:00:00Z",
    }
    assert fast(RECEIVED)
    assert fast(resolved)
    assert fast({**resolved, "revision": 2, "cancelled": True})
    # Forms the model may take or refuse, which only the model judges.
    assert not fast({**resolved, "occurred_at": "2023-08-02 15:00:00Z"})
    assert not fast({**resolved, "dossier_code": "H56-1\n"})
    assert not fast({**resolved, "cancelled": "true"})
    assert not fast({**resolved, "event_id": "e\x00"})
    assert not fast({**resolved, "occurred_at": "2201-01-01T00:00:00Z"})


def test_a_decoded_event_pickles_as_itself() -> None:
    event = decode_event(RECEIVED)
    assert type(event) is not EventIn  # the fast path's structure, with its instants in place
    assert pickle.loads(pickle.dumps(event)) == event


def test_a_newline_after_a_code_is_refused_as_the_model_refuses_it() -> None:
    with pytest.raises(ValidationError) as raised:
        decode_event({**RECEIVED, "unit_code": "11680\n"})
    assert [error["loc"] for error in raised.value.errors()] == [("unit_code",)]


def test_the_light_structure_has_the_models_fields_in_its_order() -> None:
    assert EventIn.__struct_fields__ == tuple(DossierEventIn.model_fields)


@pytest.mark.parametrize(
    "declaration",
    [
        float,
        list[str],
        str | int,
        Annotated[str, StringConstraints(to_upper=True)],
        Annotated[str, StringConstraints(strip_whitespace=True)],
        Annotated[int, "a rule not known here"],
    ],
)
def test_a_declaration_the_fast_path_cannot_follow_fails_at_import(declaration: Any) -> None:
    with pytest.raises(TypeError, match="Not decoded without the model"):
        decoding._light(declaration, [])


@pytest.mark.parametrize(
    ("pattern", "python"),
    [("^a$", r"^a\Z"), ("^a", "^a"), ("(?:a)$", r"(?:a)\Z"), (r"^a\\$", r"^a\\\Z")],
)
def test_a_pattern_ends_where_the_models_ends(pattern: str, python: str) -> None:
    assert decoding._python_pattern(pattern) == python


@pytest.mark.parametrize("pattern", [r"^a\$", "^a$|^b$", "(?m)^a$", "(?i)^a"])
def test_a_pattern_the_fast_path_might_read_otherwise_fails_at_import(pattern: str) -> None:
    with pytest.raises(TypeError, match="Not decoded without the model"):
        decoding._python_pattern(pattern)


class Stripped(DossierEventIn):
    model_config = ConfigDict(str_strip_whitespace=True)


class Checked(DossierEventIn):
    @field_validator("event_id")
    @classmethod
    def lowered(cls, value: str) -> str:
        return value.lower()


class Aliased(DossierEventIn):
    cancelled: bool | None = Field(default=None, alias="withdrawn")


@pytest.mark.parametrize("model", [Stripped, Checked, Aliased])
def test_a_model_that_validates_beyond_its_fields_fails_at_import(model: type[DossierEventIn]) -> None:
    decoding._refuse_what_the_fields_do_not_say(DossierEventIn)
    with pytest.raises(TypeError, match="validates beyond its fields"):
        decoding._refuse_what_the_fields_do_not_say(model)


def test_every_character_is_written_as_the_models_serializer_writes_it() -> None:
    # Stored hashes depend on both encoders writing text alike: every code point (surrogates
    # aside, which no valid event holds), in pieces.
    code_points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(code_points), 4096):
        text = "".join(map(chr, code_points[start : start + 4096]))
        assert msgspec.json.encode(text) == pydantic_core.to_json(text), hex(code_points[start])
