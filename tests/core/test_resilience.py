"""A database outage gives quick 503 problems, and the service recovers by itself afterwards."""

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.main import create_app


class TcpProxy:
    """Forwards a local port to PostgreSQL; stopping it drops every connection, as a crash would.

    In ``hang`` mode it accepts connections and never answers, as a partitioned network would;
    ``freeze`` keeps the open connections but stops carrying anything over them.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.hang = False
        self.frozen = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, *, hang: bool = False) -> None:
        self.hang = hang
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.hang:
            return
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers.add(upstream_writer)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    if self.frozen:
                        continue
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@pytest.fixture
async def proxied(database_url: str) -> AsyncIterator[tuple[TcpProxy, AsyncClient]]:
    target = make_url(database_url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    await proxy.start()
    # Timeouts well under the 2 s promised, so that the bound holds on a loaded machine.
    settings = Settings(
        database_url=target.set(port=proxy.port).render_as_string(False),
        database_connect_timeout=0.5,
        database_pool_timeout=0.5,
        database_command_timeout=0.5,
    )
    application = create_app(settings)
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://testserver") as http,
    ):
        yield proxy, http
    await proxy.stop()


PATHS = ("/readyz", "/api/v1/units", "/api/v1/stats/dossiers?period=2023-Q3", "/api/v1/procedures?q=ho")


async def all_unavailable(http: AsyncClient) -> None:
    for path in PATHS:
        started = time.monotonic()
        response = await http.get(path)
        elapsed = time.monotonic() - started
        assert response.status_code == 503, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert elapsed < 2, (path, elapsed)
    write = await http.post("/api/v1/units", json={}, headers={"Authorization": "Bearer tthc_x"})
    assert write.status_code == 503 and write.headers["retry-after"] == "5"


@pytest.mark.only_backend("postgresql")
async def test_an_outage_is_503_and_the_service_recovers(proxied: tuple[TcpProxy, AsyncClient]) -> None:
    proxy, http = proxied
    for path in PATHS:
        assert (await http.get(path)).status_code == 200, path

    await proxy.stop()  # the database goes away: connections drop, new ones are refused
    await all_unavailable(http)

    await proxy.start(hang=True)  # it answers nothing at all
    await all_unavailable(http)
    await proxy.stop()

    await proxy.start()  # it stops answering on connections already open
    for path in PATHS:
        assert (await http.get(path)).status_code == 200, path
    proxy.frozen = True
    await all_unavailable(http)
    proxy.frozen = False
    await proxy.stop()

    await proxy.start()  # it is back: no restart of the service needed
    for path in PATHS:
        assert (await http.get(path)).status_code == 200, path
