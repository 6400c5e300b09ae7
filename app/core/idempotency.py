"""`Idempotency-Key` on POST: a retried creation answers what the first attempt answered.

A client that did not get the answer to a POST (a timeout, a dropped connection) sends it again
with the same `Idempotency-Key`: the same body gets the first answer again, without creating a
second record; another body under the same key is a 422. Keys belong to the API key that sent
them, and only an API key still valid gets an answer kept for it: a request without one (or with
a revoked one) passes as if it had no `Idempotency-Key`, and nothing of it is kept.

The first request with a key claims it with a row of its own (in a short transaction, before the
request runs), so concurrent duplicates, in any worker, wait for its answer instead of creating a
second record. A request never holds more than one database connection at a time: the claim, the
request and the keeping of its answer each take one in turn. Successful answers are kept for
24 hours; errors are not kept, since they changed nothing and a retry may succeed. An answer that
carries an API key (creating a client or a key) is never stored: a retry is told so (409).
"""

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    column,
    delete,
    literal,
    select,
    table,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.asgi import HTTPMiddleware
from app.core.base import Base, UTCDateTime
from app.core.db import take_write_lock
from app.core.errors import FieldError, problem_response
from app.core.security import KEY_PREFIX, hash_key
from app.core.timezone import utcnow

logger = logging.getLogger("tthc.idempotency")

HEADER = b"idempotency-key"
KEPT_FOR = timedelta(hours=24)
# A claim still unanswered after this long was left by a worker that died mid-request (a request
# that ends, however it ends, settles its claim): a retry may then take it over.
CLAIM_LEASE = timedelta(minutes=2)
# How long a duplicate waits for the first request with its key before it is told to retry (409).
WAIT_SECONDS = 30.0
_ACCEPTABLE = re.compile(r"^[\x21-\x7e]{1,255}$")
# An API key in an answer: the prefix and more random characters than a key's hint shows.
_KEY_SHAPED = re.compile(re.escape(KEY_PREFIX).encode() + rb"[A-Za-z0-9_-]{16,}")

# `status` of a row that holds no answer (below every HTTP status).
IN_PROGRESS = 0  # claimed by a request still being answered
WITHHELD = 1  # answered with a secret (an API key), which is shown only once and never stored

# The API keys of app.clients, named here as app.core.audit names their clients: authentication
# lives above core, yet an answer may only be replayed to a key that is still valid.
_API_KEYS = table("api_keys", column("key_hash"), column("revoked_at"))


class IdempotentAnswer(Base):
    """The first successful answer to a POST sent with an Idempotency-Key, by sender and key (or
    the claim of the request still answering it)."""

    __tablename__ = "idempotent_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # The answer's ``Location`` (a 201's), replayed with it.
    location: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("sender", "key", name="uq_idempotent_answers_sender_key"),)


class _Busy:
    """Another request with the key is still being answered."""


class _Unauthenticated:
    """The request's API key is unknown or revoked: the route answers it (401)."""


_BUSY = _Busy()
_UNAUTHENTICATED = _Unauthenticated()
_Claim = int | IdempotentAnswer | _Busy | _Unauthenticated


class IdempotencyMiddleware(HTTPMiddleware):
    """A POST with an ``Idempotency-Key`` and a valid API key is answered once: a retry gets the
    stored answer."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.turns = _Turns()

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        key_bytes = headers.get(HEADER)
        authorization = headers.get(b"authorization")
        secret = _bearer_secret(authorization)
        # Anonymous callers get nothing kept for them (neither here nor in the database): the
        # header is ignored, the route answers as it would without it.
        if scope["method"] != "POST" or key_bytes is None or secret is None or authorization is None:
            await self.app(scope, receive, send)
            return
        key = key_bytes.decode("latin-1")
        if not _ACCEPTABLE.match(key):
            problem = FieldError(
                field="header.Idempotency-Key", message="1 to 255 visible ASCII characters", type="invalid"
            )
            await problem_response(None, 422, detail=problem.message, errors=[problem])(scope, receive, send)
            return
        body = await _read_body(receive)
        # The sender is the API key (hashed), so two clients never share an answer.
        sender = hashlib.sha256(authorization).hexdigest()
        request_hash = hashlib.sha256(scope["path"].encode() + b"\x00" + body).hexdigest()
        sessionmaker: async_sessionmaker[AsyncSession] = scope["app"].state.sessionmaker
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        async with self.turns.turn(f"{sender}:{key}", deadline) as ours:
            claim = await _claim(sessionmaker, secret, sender, key, request_hash, deadline) if ours else _BUSY
            if isinstance(claim, _Unauthenticated):
                await self.app(scope, _replay(body), send)
            elif isinstance(claim, _Busy):
                await problem_response(
                    None,
                    409,
                    detail="A request with this Idempotency-Key is still being answered; retry it later",
                    slug="idempotency-key-in-use",
                    headers={"Retry-After": "1"},
                )(scope, receive, send)
            elif isinstance(claim, IdempotentAnswer):
                await _answer_again(claim, request_hash, scope, receive, send)
            else:
                await self._run_claimed(sessionmaker, claim, scope, body, send)

    async def _run_claimed(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        claim: int,
        scope: Scope,
        body: bytes,
        send: Send,
    ) -> None:
        try:
            answered = await self._run(scope, body, send)
        except BaseException:
            await _unstoppable(_settle(sessionmaker, claim, None))
            raise
        await _unstoppable(_settle(sessionmaker, claim, answered))

    async def _run(self, scope: Scope, body: bytes, send: Send) -> "_Answered":
        """Pass the request on, sending its answer as it comes and keeping a copy."""
        answered = _Answered(status=500, content_type="", body=b"", location=None)
        chunks = []

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                answered.status = message["status"]
                answered.content_type = headers.get(b"content-type", b"").decode("latin-1")
                location = headers.get(b"location")
                answered.location = None if location is None else location.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, _replay(body), keep)
        answered.body = b"".join(chunks)
        return answered


@dataclass
class _Answered:
    """What the route answered, as it is kept for a retry."""

    status: int
    content_type: str
    body: bytes
    location: str | None


class _Turn:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.holders = 0


class _Turns:
    """Requests with one sender and key take turns within this process (so they do not poll the
    database for each other). A name is known only while a request holds or awaits its turn: an
    idle process keeps nothing."""

    def __init__(self) -> None:
        self.names: dict[str, _Turn] = {}

    @asynccontextmanager
    async def turn(self, name: str, deadline: float) -> AsyncIterator[bool]:
        """Whether the turn came by ``deadline`` (the loop's clock); held until the block ends."""
        turn = self.names.get(name)
        if turn is None:
            turn = self.names[name] = _Turn()
        turn.holders += 1
        acquired = False
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    await turn.lock.acquire()
                acquired = True
            except TimeoutError:
                pass
            yield acquired
        finally:
            if acquired:
                turn.lock.release()
            turn.holders -= 1
            if turn.holders == 0:
                del self.names[name]


async def _claim(
    sessionmaker: async_sessionmaker[AsyncSession],
    secret: str,
    sender: str,
    key: str,
    request_hash: str,
    deadline: float,
) -> _Claim:
    """The id of the claim this request now holds on ``key``, the answer kept for it, or why
    neither (another request is still answering it, or the API key is not valid)."""
    loop = asyncio.get_running_loop()
    pause = 0.05
    while True:
        async with sessionmaker() as session:
            claim = await _try_claim(session, secret, sender, key, request_hash)
        if not isinstance(claim, _Busy):
            return claim
        # Held by a request of another worker: wait without holding a connection.
        if loop.time() + pause > deadline:
            return claim
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


async def _try_claim(session: AsyncSession, secret: str, sender: str, key: str, request_hash: str) -> _Claim:
    # SQLite: the write lock first, else a concurrent claim makes this transaction's snapshot stale.
    await take_write_lock(session)
    if not await _key_is_active(session, secret):
        return _UNAUTHENTICATED
    found = await session.scalar(
        select(IdempotentAnswer).where(IdempotentAnswer.sender == sender, IdempotentAnswer.key == key)
    )
    now = utcnow()
    if found is not None:
        if found.status == IN_PROGRESS and found.created_at > now - CLAIM_LEASE:
            return _BUSY
        if found.status != IN_PROGRESS and found.created_at > now - KEPT_FOR:
            return found
        # An answer older than a day frees its key, as does a claim its worker left behind.
        await session.execute(delete(IdempotentAnswer).where(IdempotentAnswer.id == found.id))
    claim = IdempotentAnswer(
        sender=sender,
        key=key,
        request_hash=request_hash,
        status=IN_PROGRESS,
        content_type="",
        body=b"",
        created_at=now,
    )
    session.add(claim)
    try:
        await session.flush()
    except IntegrityError:  # another worker claimed the key first: its claim is to be awaited
        await session.rollback()
        return _BUSY
    await session.commit()
    return claim.id


async def _key_is_active(session: AsyncSession, secret: str) -> bool:
    found = await session.scalar(
        select(literal(1))
        .select_from(_API_KEYS)
        .where(_API_KEYS.c.key_hash == hash_key(secret), _API_KEYS.c.revoked_at.is_(None))
    )
    return found is not None


async def _settle(
    sessionmaker: async_sessionmaker[AsyncSession], claim: int, answered: _Answered | None
) -> None:
    """Keep the successful answer in the claim's row, or free the key (an error, a failure)."""
    still_ours = (IdempotentAnswer.id == claim, IdempotentAnswer.status == IN_PROGRESS)
    try:
        async with sessionmaker() as session:
            if answered is not None and 200 <= answered.status < 300:
                if _KEY_SHAPED.search(answered.body):
                    # Stored, the key would outlive its own revocation and sit in clear in the
                    # database; the row still says the request was done.
                    answered = _Answered(status=WITHHELD, content_type="", body=b"", location=None)
                await session.execute(
                    update(IdempotentAnswer)
                    .where(*still_ours)
                    .values(
                        status=answered.status,
                        content_type=answered.content_type[:100],
                        body=answered.body,
                        location=answered.location,
                        created_at=utcnow(),
                    )
                )
            else:
                await session.execute(delete(IdempotentAnswer).where(*still_ours))
            await session.commit()
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        # The answer is sent already; a retry waits for the claim's lease, then runs again.
        logger.warning("could not settle idempotency claim %s: %s: %s", claim, type(exc).__name__, exc)


async def _unstoppable(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` to its end even if this request is cancelled meanwhile (it then goes on alone)."""
    await asyncio.shield(asyncio.ensure_future(work))


async def _answer_again(
    kept: IdempotentAnswer, request_hash: str, scope: Scope, receive: Receive, send: Send
) -> None:
    if kept.request_hash != request_hash:
        problem = FieldError(
            field="header.Idempotency-Key",
            message="This Idempotency-Key was used for another request",
            type="idempotency_key_reused",
        )
        await problem_response(None, 422, detail=problem.message, errors=[problem])(scope, receive, send)
        return
    if kept.status == WITHHELD:
        await problem_response(
            None,
            409,
            detail="This request was carried out already; its answer held an API key, which is shown "
            "only once and is not replayed",
            slug="idempotent-answer-withheld",
        )(scope, receive, send)
        return
    await _answer(send, kept)


def _bearer_secret(authorization: bytes | None) -> str | None:
    """The API key of an ``Authorization: Bearer`` header (read as the routes' HTTPBearer does)."""
    if authorization is None:
        return None
    scheme, _, secret = authorization.decode("latin-1").partition(" ")
    secret = secret.strip()
    return secret if scheme.lower() == "bearer" and secret else None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # nothing more arrives: the body was whole
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _answer(send: Send, kept: IdempotentAnswer) -> None:
    headers = [(b"content-type", kept.content_type.encode("latin-1")), (b"idempotent-replayed", b"true")]
    if kept.location is not None:
        headers.append((b"location", kept.location.encode("latin-1")))
    await send({"type": "http.response.start", "status": kept.status, "headers": headers})
    await send({"type": "http.response.body", "body": kept.body})
