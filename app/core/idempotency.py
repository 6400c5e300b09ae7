"""`Idempotency-Key` on POST: a retried creation answers what the first attempt answered.

A client that did not get the answer to a POST (a timeout, a dropped connection) sends it again
with the same `Idempotency-Key`: the same body gets the first answer again, without creating a
second record; another body under the same key is a 422. Requests with the same key are
serialised (PostgreSQL: an advisory lock held on a connection of its own; SQLite: one process, an
in-process lock), so concurrent duplicates create one record. Successful answers are kept for
24 hours; errors are not kept, since they changed nothing and a retry may succeed.
"""

import asyncio
import hashlib
import re
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import Integer, LargeBinary, String, UniqueConstraint, delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.asgi import HTTPMiddleware
from app.core.base import Base, UTCDateTime
from app.core.errors import FieldError, problem_response
from app.core.timezone import utcnow

HEADER = b"idempotency-key"
KEPT_FOR = timedelta(hours=24)
_ACCEPTABLE = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotentAnswer(Base):
    """The first successful answer to a POST sent with an Idempotency-Key, by sender and key."""

    __tablename__ = "idempotent_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sender: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("sender", "key", name="uq_idempotent_answers_sender_key"),)


class IdempotencyMiddleware(HTTPMiddleware):
    """A POST with an ``Idempotency-Key`` is answered once: a retry gets the stored answer."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self._local_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        key_bytes = headers.get(HEADER)
        if scope["method"] != "POST" or key_bytes is None:
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
        sender = hashlib.sha256(headers.get(b"authorization", b"anonymous")).hexdigest()
        request_hash = hashlib.sha256(scope["path"].encode() + b"\x00" + body).hexdigest()
        sessionmaker: async_sessionmaker[AsyncSession] = scope["app"].state.sessionmaker
        async with self._serialised(sessionmaker, f"{sender}:{key}"):
            async with sessionmaker() as session:
                kept = await session.scalar(
                    select(IdempotentAnswer).where(
                        IdempotentAnswer.sender == sender,
                        IdempotentAnswer.key == key,
                        IdempotentAnswer.created_at > utcnow() - KEPT_FOR,
                    )
                )
            if kept is not None:
                if kept.request_hash != request_hash:
                    problem = FieldError(
                        field="header.Idempotency-Key",
                        message="This Idempotency-Key was used for another request",
                        type="idempotency_key_reused",
                    )
                    await problem_response(None, 422, detail=problem.message, errors=[problem])(
                        scope, receive, send
                    )
                    return
                await _answer(send, kept.status, kept.content_type, kept.body)
                return
            status, content_type, answer = await self._run(scope, body, send)
            if 200 <= status < 300:
                await self._keep(sessionmaker, sender, key, request_hash, status, content_type, answer)

    def _serialised(self, sessionmaker: async_sessionmaker[AsyncSession], name: str) -> "_Serialised":
        return _Serialised(sessionmaker, name, self._local_locks[name])

    async def _run(self, scope: Scope, body: bytes, send: Send) -> tuple[int, str, bytes]:
        """Pass the request on, sending its answer as it comes and keeping a copy."""
        status, content_type, chunks = 500, "", []

        async def keep(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                content_type = dict(message.get("headers", [])).get(b"content-type", b"").decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, _replay(body), keep)
        return status, content_type, b"".join(chunks)

    async def _keep(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        sender: str,
        key: str,
        request_hash: str,
        status: int,
        content_type: str,
        body: bytes,
    ) -> None:
        async with sessionmaker() as session, session.begin():
            # An answer older than a day frees its key.
            await session.execute(
                delete(IdempotentAnswer).where(
                    IdempotentAnswer.sender == sender,
                    IdempotentAnswer.key == key,
                )
            )
            session.add(
                IdempotentAnswer(
                    sender=sender,
                    key=key,
                    request_hash=request_hash,
                    status=status,
                    content_type=content_type[:100],
                    body=body,
                )
            )
            try:
                await session.flush()
            except IntegrityError:  # another worker kept its answer first; it stands
                await session.rollback()


class _Serialised:
    """Requests with one sender and key, one at a time: across workers on PostgreSQL (an advisory
    lock on a connection of its own), within this process on SQLite (which has one)."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], name: str, local: asyncio.Lock
    ) -> None:
        self.sessionmaker = sessionmaker
        self.name = name
        self.local = local
        self.session: AsyncSession | None = None

    async def __aenter__(self) -> None:
        await self.local.acquire()
        try:
            session = self.sessionmaker()
            if session.get_bind().dialect.name == "postgresql":
                await session.execute(
                    text("SELECT pg_advisory_lock(hashtextextended(:name, 11))"), {"name": self.name}
                )
                self.session = session
            else:
                await session.close()
        except BaseException:
            self.local.release()
            raise

    async def __aexit__(self, *_exc: object) -> None:
        try:
            if self.session is not None:
                await self.session.execute(
                    text("SELECT pg_advisory_unlock(hashtextextended(:name, 11))"), {"name": self.name}
                )
                await self.session.close()
        finally:
            self.local.release()


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


async def _answer(send: Send, status: int, content_type: str, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type.encode("latin-1")), (b"idempotent-replayed", b"true")],
        }
    )
    await send({"type": "http.response.body", "body": body})
