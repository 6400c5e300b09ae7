"""An event as every way in reads it: ``EventIn``, a light typed structure decoded by msgspec under
the rules ``DossierEventIn`` declares, with the model's own validation judging all the rest.

``DossierEventIn`` (app.dossiers.schemas) is the event's one declaration: its fields, their
constraints and validators, as the OpenAPI schema documents them. Validating the model costs about
10 µs an event on a 2-core machine, most of it in building the model; the same item converted by
msgspec into a structure compiled here from the model's declarations costs about 2 µs:

- a string's length bounds and pattern (its final ``$`` read as the very end of the text: Python's
  ``$`` also matches before a final newline, which the model's regular expressions do not);
- a string that is Unicode text (no lone surrogate);
- an enumeration's members, a boolean, an integer's bounds — msgspec's strict types (no ``"true"``
  for a boolean, no ``1.0`` for an integer);
- an instant in the one strict RFC 3339 form (``2023-08-01T09:15:00+07:00``: ASCII digits, a ``T``,
  fractions of up to six digits, ``Z`` or an offset in hours and minutes), read by
  ``datetime.fromisoformat``;
- then the model's own after-validators, in their order (control characters; the instants' range;
  the instant in UTC).

Whatever that path refuses, for any reason (an instant in another form the model takes, ``1`` for a
boolean, a wrong value), is validated by the model: its acceptance and its errors are the answer,
and the structure is made from the validated model. So an event is accepted exactly when the model
accepts it, with the same values (tests/dossiers/test_decoding.py compares both paths on random and
hostile items); a field whose declaration uses anything else fails at import, not silently.
"""

import hashlib
import re
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec
from annotated_types import Ge, Le
from pydantic import AfterValidator, AwareDatetime, BaseModel, StringConstraints, TypeAdapter
from pydantic.fields import FieldInfo

from app.core.errors import FieldError
from app.core.timezone import FUTURE_TOLERANCE, utcnow
from app.dossiers.lifecycle import EventType
from app.dossiers.models import OnlineLevel
from app.dossiers.schemas import RECEPTION_FIELDS, DossierEventIn
from app.dossiers.service import lookup_hash
from app.procedures.models import Channel

EVENT_INPUT = TypeAdapter(DossierEventIn)


class EventIn(msgspec.Struct, omit_defaults=True):
    """A valid event as the model declares it (``DossierEventIn``, same fields in the same order):
    instants in UTC, the PIN as sent."""

    event_id: str
    dossier_code: str
    type: EventType
    occurred_at: datetime
    procedure_code: str | None = None
    unit_code: str | None = None
    channel: Channel | None = None
    online_level: OnlineLevel | None = None
    due_at: datetime | None = None
    lookup_secret: str | None = None
    new_return_at: datetime | None = None
    paid_online: bool | None = None
    fee_payable: bool | None = None
    digitized: bool | None = None
    e_result: bool | None = None
    revision: int | None = None
    cancelled: bool | None = None


def decode_event(raw: Any) -> EventIn:
    """``raw`` (a JSON value) as a valid event; raises pydantic's ``ValidationError`` with the
    model's errors when the model refuses it."""
    try:
        return _decoded(raw)
    except _REFUSALS:
        model = EVENT_INPUT.validate_python(raw)
        return EventIn(**{name: getattr(model, name) for name in EventIn.__struct_fields__})


_REFUSALS = (msgspec.ValidationError, ValueError, AssertionError)
"""What the fast path refuses an item with: msgspec's verdict, and what a validator raises to refuse
(as the model turns them into its errors). Anything else is raised, as the model would raise it."""


def _decoded(raw: Any) -> EventIn:
    event = msgspec.convert(raw, _SHAPE)
    for name, checks in _CHECKS:
        value = getattr(event, name)
        if value is not None:
            for check in checks:
                value = check(value)
            setattr(event, name, value)
    return event


# --- the structure compiled from the model's declarations ------------------------------------

_CLOCK = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_INSTANT = rf"\A[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T{_CLOCK}:[0-5][0-9](?:\.[0-9]{{1,6}})?(?:Z|[+-]{_CLOCK})\Z"
"""The one form of an instant taken without the model: others (a space for the ``T``, a lowercase
``z``, seven digits of a second, a 60th minute of an offset, which ``fromisoformat`` would take)
go to the model, which may take them. An impossible day (February 30th) fails ``fromisoformat``
and goes to the model too."""

_Check = Callable[[Any], Any]


def _unicode(text: str) -> str:
    """The model refuses a string with a lone surrogate (which a JSON escape can carry); msgspec
    does not: encoding it fails here too."""
    if not text.isascii():
        text.encode()
    return text


def _flattened(metadata: list[Any]) -> list[Any]:
    """The rules of a declaration: a nested ``Field``'s own rules in its place; its description
    and examples are documentation."""
    rules: list[Any] = []
    for item in metadata:
        rules.extend(_flattened(item.metadata) if isinstance(item, FieldInfo) else [item])
    return rules


def _unwrapped(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any], bool]:
    """The declared type without ``| None`` and ``Annotated``: (type, its rules, optional)."""
    optional = False
    if get_origin(annotation) in (Union, UnionType):
        members = get_args(annotation)
        if len(members) != 2 or NoneType not in members:
            raise TypeError(f"Not decoded without the model: {annotation!r}")
        optional = True
        annotation = next(member for member in members if member is not NoneType)
    if get_origin(annotation) is Annotated:
        annotation, *inner = get_args(annotation)
        metadata = [*inner, *metadata]
    return annotation, _flattened(metadata), optional


def _python_pattern(pattern: str) -> str:
    r"""The model's pattern (Rust's syntax, searched for) as Python's ``re`` reads it: its final
    ``$`` as ``\Z`` (Python's ``$`` also matches before a final newline; Rust's, without flags, only
    at the end). A ``$`` anywhere else, or inline flags, are refused rather than guessed at."""
    anchored = re.search(r"(?<!\\)(?:\\\\)*\$\Z", pattern) is not None
    body = pattern[:-1] if anchored else pattern
    if "$" in body or re.search(r"\(\?[a-zA-Z-]", pattern):
        raise TypeError(f"Not decoded without the model: pattern {pattern!r}")
    return body + r"\Z" if anchored else body


def _string(rules: list[Any]) -> tuple[Any, list[_Check]]:
    meta: dict[str, Any] = {}
    checks: list[_Check] = [_unicode]
    for rule in rules:
        if isinstance(rule, StringConstraints):
            transforms = (rule.strip_whitespace, rule.to_upper, rule.to_lower, rule.strict, rule.ascii_only)
            if any(value is not None for value in transforms):
                raise TypeError(f"Not decoded without the model: {rule!r}")
            if rule.min_length is not None:
                meta["min_length"] = rule.min_length
            if rule.max_length is not None:
                meta["max_length"] = rule.max_length
            if rule.pattern is not None:
                pattern = rule.pattern if isinstance(rule.pattern, str) else rule.pattern.pattern
                meta["pattern"] = _python_pattern(pattern)
        elif isinstance(rule, AfterValidator):
            checks.append(rule.func)  # type: ignore[arg-type]
        else:
            raise TypeError(f"Not decoded without the model: {rule!r}")
    return (Annotated[str, msgspec.Meta(**meta)] if meta else str), checks


def _integer(rules: list[Any]) -> tuple[Any, list[_Check]]:
    meta: dict[str, Any] = {}
    for rule in rules:
        if isinstance(rule, Ge):
            meta["ge"] = rule.ge
        elif isinstance(rule, Le):
            meta["le"] = rule.le
        else:
            raise TypeError(f"Not decoded without the model: {rule!r}")
    return (Annotated[int, msgspec.Meta(**meta)] if meta else int), []


def _after_validators(rules: list[Any]) -> list[_Check]:
    if not all(isinstance(rule, AfterValidator) for rule in rules):
        raise TypeError(f"Not decoded without the model: {rules!r}")
    return [rule.func for rule in rules]


def _light(annotation: Any, metadata: list[Any]) -> tuple[Any, list[_Check]]:
    """The msgspec type of a field of the model, and the checks its decoded value goes through."""
    kind, rules, optional = _unwrapped(annotation, metadata)
    light: Any
    if kind is str:
        light, checks = _string(rules)
    elif kind is int:
        light, checks = _integer(rules)
    elif kind is AwareDatetime:
        light, checks = (
            Annotated[str, msgspec.Meta(pattern=_INSTANT)],
            [datetime.fromisoformat, *_after_validators(rules)],
        )
    elif kind is bool or (isinstance(kind, type) and issubclass(kind, Enum)):
        light, checks = kind, _after_validators(rules)
    else:
        raise TypeError(f"Not decoded without the model: {annotation!r}")
    return (light | None if optional else light), checks


_CONFIGURED = {"extra": "forbid"}
"""The model's configuration the fast path follows (unknown fields refused); any other setting that
validates or serializes (``strict``, ``str_strip_whitespace``, ``regex_engine``…) it does not."""
_DOCUMENTATION = {"json_schema_extra", "title"}


def _refuse_what_the_fields_do_not_say(model: type[BaseModel]) -> None:
    """The fast path reads the fields' declarations only: a model that validates or serializes by
    other means (its configuration, decorated validators or serializers, aliases, default
    factories, excluded fields) fails at import instead of being decoded otherwise."""
    config = {key: value for key, value in model.model_config.items() if key not in _DOCUMENTATION}
    decorators = model.__pydantic_decorators__
    by_decorators = (
        decorators.validators,
        decorators.field_validators,
        decorators.root_validators,
        decorators.model_validators,
        decorators.field_serializers,
        decorators.model_serializers,
        decorators.computed_fields,
    )
    by_fields = [
        name
        for name, info in model.model_fields.items()
        if info.alias
        or info.validation_alias
        or info.serialization_alias
        or info.default_factory is not None
        or info.exclude
    ]
    if config != _CONFIGURED or any(by_decorators) or by_fields:
        raise TypeError(f"Not decoded without the model: {model.__name__} validates beyond its fields")


def _compiled() -> tuple[type[EventIn], tuple[tuple[str, tuple[_Check, ...]], ...]]:
    """The structure the fast path converts an item into, and each field's checks. It is
    ``EventIn`` as JSON carries it (an instant as text): its checks put each field's final value in
    its place (the instant as a ``datetime`` in UTC), so the converted item is the event, not copied."""
    _refuse_what_the_fields_do_not_say(DossierEventIn)
    fields: list[Any] = []
    checks: list[tuple[str, tuple[_Check, ...]]] = []
    for name, info in DossierEventIn.model_fields.items():
        light, mine = _light(info.annotation, info.metadata)
        fields.append((name, light) if info.is_required() else (name, light, info.default))
        if mine:
            checks.append((name, tuple(mine)))
    shape = msgspec.defstruct(
        "EventShape", fields, bases=(EventIn,), module=__name__, forbid_unknown_fields=True
    )
    assert issubclass(shape, EventIn)
    return shape, tuple(checks)


_SHAPE, _CHECKS = _compiled()
EventShape = _SHAPE
"""Bound by its name, so that a decoded event pickles (as a load's part would send it)."""


# --- what every way in does with a decoded event -----------------------------------------------


def event_problems(event: EventIn, now: datetime | None = None) -> list[FieldError]:
    """Rules across fields, which the field types cannot express."""
    now = now or utcnow()
    problems: list[FieldError] = []

    def problem(field: str, message: str, kind: str) -> None:
        problems.append(FieldError(field=field, message=message, type=kind))

    if event.occurred_at > now + FUTURE_TOLERANCE:
        problem("occurred_at", "occurred_at lies more than 5 minutes in the future", "in_future")
    if event.type in (EventType.received, EventType.refused):
        for field in ("procedure_code", "unit_code") + (
            ("channel",) if event.type is EventType.received else ()
        ):
            if getattr(event, field) is None:
                problem(field, f"A {event.type.value} event needs {field}", "missing")
        if event.channel is Channel.online and event.online_level is None:
            problem("online_level", "An online dossier needs online_level (partial or full)", "missing")
        if event.online_level is not None and event.channel is not Channel.online:
            problem("online_level", "online_level goes only with channel online", "unexpected")
        if event.due_at is not None and event.due_at <= event.occurred_at:
            problem("due_at", "due_at must be after the reception", "before_reception")
    else:
        for field in RECEPTION_FIELDS:
            if getattr(event, field) is not None:
                problem(field, f"{field} belongs to the received event only", "unexpected")
    if event.type is EventType.apology_issued:
        if event.new_return_at is None:
            problem("new_return_at", "An apology carries the new return date", "missing")
    elif event.new_return_at is not None:
        problem("new_return_at", "new_return_at belongs to apology_issued only", "unexpected")
    if event.cancelled is not None and (event.revision or 1) < 2:
        problem("revision", "A cancellation carries a revision higher than the event it withdraws", "missing")
    return problems


_ENCODE = msgspec.json.Encoder().encode


def canonical(event: EventIn, secret_key: str) -> tuple[str, str]:
    """The event as stored and compared on resends (JSON text, SHA-256): instants in UTC, PIN
    hashed, the fields in the model's order, absent ones left out. Its bytes never change
    (tests/dossiers/test_canonical_form.py): every event stored before would look corrected."""
    if event.lookup_secret is None:
        payload = _ENCODE(event)
    else:
        secret = lookup_hash(secret_key, event.dossier_code, event.lookup_secret)
        payload = b'%s,"lookup_secret":"hmac-sha256:%s"}' % (
            _ENCODE(msgspec.structs.replace(event, lookup_secret=None))[:-1],
            secret.encode(),
        )
    return payload.decode(), hashlib.sha256(payload).hexdigest()
