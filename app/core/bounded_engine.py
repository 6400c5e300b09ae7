"""PostgreSQL engines whose every wait on the server ends within one bound: the primary's and the
standbys' (app.core.replicas) are built by ``postgres_engine``."""

import time
from contextvars import ContextVar
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool, ConnectionPoolEntry, PoolProxiedConnection

from app.core.primary import fence_primaries, hosts_of


def postgres_engine(
    url: str,
    *,
    pool_size: int,
    pool_timeout: float,
    connect_timeout: float,
    command_timeout: float | None,
    checkout_timeout: float | None = None,
    server_settings: dict[str, str] | None = None,
    echo: bool = False,
) -> AsyncEngine:
    """A pooled engine on which a request never waits longer than ``command_timeout`` for an answer
    (None: each step keeps only its own timeout, for the CLI's long commands).

    ``checkout_timeout`` cuts short the part of that wait spent getting a connection: a standby not
    reached within its check's timeout is given up, and the primary's own wait is still the whole
    bound.
    """
    connect_args: dict[str, Any] = {"timeout": connect_timeout, "command_timeout": command_timeout}
    if server_settings is not None:
        connect_args["server_settings"] = server_settings
    bounded: dict[str, Any] = {}
    if command_timeout is not None:
        checkout = command_timeout if checkout_timeout is None else min(checkout_timeout, command_timeout)
        connect_args["connection_class"] = BoundedConnection
        # The wait for a pooled connection is part of the first statement's wait.
        pool_timeout = min(pool_timeout, checkout)
        bounded["poolclass"] = _bounded_pool(command_timeout, checkout)
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        # A dead connection is found and replaced at checkout, so the service recovers by itself
        # after a database restart; the timeouts turn an outage into quick 503s instead of hangs.
        pool_pre_ping=True,
        pool_timeout=pool_timeout,
        connect_args=connect_args,
        **bounded,
    )
    if command_timeout is not None:
        _bound_waits(engine.sync_engine, command_timeout, connect_timeout)
    _discard_unusable(engine.sync_engine)
    if len(hosts_of(url)) > 1:
        # After the bounds: each server's connect is given what is left of the wait.
        fence_primaries(engine.sync_engine)
    return engine


# A request never waits longer than TTHC_DATABASE_COMMAND_TIMEOUT for PostgreSQL to answer. Each
# step has a timeout of its own (the pool's, asyncpg's connect and command timeouts, SQLAlchemy's
# 2 s graceful close of a failed connection), and added up they were twice the bound: the wait
# for a pooled connection then the statement, or a pre-ping then the close of its connection. So
# the steps of one wait share a deadline, a ``_Wait``: a checkout (pool, connect, pre-ping) and the
# statement that asked for it; one statement (BEGIN, prepare, fetch) or COPY; a COMMIT; and with
# each, the ROLLBACK and the close of a connection that failed in it. An answer ends the wait, so
# time spent between statements (Python work) never counts. A standby's checkout may be held to a
# shorter part of the wait: a request that gives up on it has the primary's whole wait still ahead.


class _Wait:
    __slots__ = ("checkout", "checkout_deadline", "deadline")

    def __init__(self, seconds: float, *, checkout: float | None = None) -> None:
        """``checkout``: begun by a checkout, which may take at most that long (of ``seconds``)."""
        now = time.monotonic()
        self.deadline = now + seconds
        self.checkout = checkout is not None
        """Still in the checkout: the statement that asked for the connection continues the wait."""
        self.checkout_deadline = self.deadline if checkout is None else now + checkout

    def remaining(self) -> float:
        return (self.checkout_deadline if self.checkout else self.deadline) - time.monotonic()


# Per task: SQLAlchemy runs its synchronous side in greenlets that share the task's context.
_waiting: ContextVar[_Wait | None] = ContextVar("database_wait", default=None)


def _begin_wait(seconds: float) -> None:
    wait = _waiting.get()
    if wait is not None and wait.checkout:
        wait.checkout = False
    else:
        _waiting.set(_Wait(seconds))


def answered(*_args: Any) -> None:
    """The server answered: the current wait is over."""
    _waiting.set(None)


# asyncpg reads a command's timeout from the connection's ``_config`` on every wait (commands,
# pre-ping, BEGIN, COMMIT, ROLLBACK, COPY): the one place all of them can be given the deadline.
_CONFIG_SLOT: Any = asyncpg.Connection._config


class BoundedConnection(asyncpg.Connection):  # type: ignore[misc]  # asyncpg ships no types
    """asyncpg's connection, whose waits end with the current ``_Wait``."""

    @property
    def _config(self) -> Any:
        config = _CONFIG_SLOT.__get__(self, type(self))
        wait = _waiting.get()
        if wait is None:
            return config
        # Never 0 or less: asyncpg reads that as "no timeout" in places.
        return config._replace(command_timeout=max(wait.remaining(), 0.001))

    @_config.setter
    def _config(self, value: Any) -> None:
        _CONFIG_SLOT.__set__(self, value)

    def begin_wait(self) -> None:
        """A wait for a command sent past SQLAlchemy (COPY); ``answered`` ends it."""
        _begin_wait(_CONFIG_SLOT.__get__(self, type(self)).command_timeout)

    async def close(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109 (asyncpg's signature)
        # SQLAlchemy closes a failed connection gracefully, waiting up to 2 s for a server that
        # may be the reason it failed: within the deadline, or not at all.
        wait = _waiting.get()
        if wait is not None and timeout is not None:
            timeout = min(timeout, wait.remaining())
            if timeout <= 0:
                self.terminate()
                return
        await super().close(timeout=timeout)


def _bounded_pool(seconds: float, checkout: float) -> type[AsyncAdaptedQueuePool]:
    class BoundedPool(AsyncAdaptedQueuePool):
        """Starts the wait when a connection is asked for: pool wait, connect and pre-ping are in it."""

        def connect(self) -> PoolProxiedConnection:
            _waiting.set(_Wait(seconds, checkout=checkout))
            try:
                return super().connect()
            except BaseException:
                _waiting.set(None)
                raise

    return BoundedPool


# SQLSTATE 25006: a write on a connection to a server that has since become a standby (demoted by a
# switchover while the connection stayed open).
_READ_ONLY_TRANSACTION = "25006"


def _discard_unusable(engine: Engine) -> None:
    """Connections that can no longer serve writes end, with their pool's others (a 503, and the
    next checkout connects afresh): those to a server demoted to a standby, and those asyncpg left
    in a state it cannot leave, when the server ended the connection between two statements (a
    primary's death: "terminating connection due to unexpected postmaster exit")."""

    def failed(context: ExceptionContext) -> None:
        original = context.original_exception
        if getattr(original, "sqlstate", None) == _READ_ONLY_TRANSACTION or isinstance(
            original.__cause__, asyncpg.InternalClientError
        ):
            context.is_disconnect = True

    event.listen(engine, "handle_error", failed)


def _bound_waits(engine: Engine, seconds: float, connect_timeout: float) -> None:
    def statement(*_args: Any) -> None:
        _begin_wait(seconds)

    def failed(context: ExceptionContext) -> None:
        # A connection that failed is closed within what is left of the wait; one that only
        # refused a statement (a constraint, a conflict) answered, and carries on.
        if not context.is_disconnect:
            _waiting.set(None)

    def committing(*_args: Any) -> None:
        _waiting.set(_Wait(seconds))

    def rolling_back(*_args: Any) -> None:
        # Right after a failure that got no answer, the rollback is part of the same wait.
        if _waiting.get() is None:
            _waiting.set(_Wait(seconds))

    def connecting(
        _dialect: Dialect, _record: ConnectionPoolEntry, _args: Any, cparams: dict[str, Any]
    ) -> None:
        wait = _waiting.get()
        if wait is not None:
            cparams["timeout"] = max(min(connect_timeout, wait.remaining()), 0.001)

    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "after_cursor_execute", answered)
    event.listen(engine, "handle_error", failed)
    event.listen(engine, "commit", committing)
    event.listen(engine, "rollback", rolling_back)
    event.listen(engine, "do_connect", connecting)
    event.listen(engine, "checkin", answered)
