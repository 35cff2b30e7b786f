"""Real HTTP servers on 127.0.0.1 for provider tests: a provider's API (a Starlette app written to its documentation)
served by uvicorn, and a Herald engine whose webhook routes are served the same way, so the provider's server can
post its delivery reports to Herald's public webhook URL."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from starlette.requests import Request

from api import webhooks
from domain.channels import Channel
from domain.config import reload_settings
from domain.models import ProviderRoute
from scheduler.dispatcher import Dispatcher
from scheduler.routes import RouteTable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Recorded:
    """One request a loopback server received, as it came over the wire."""
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @classmethod
    async def of(cls, request: Request) -> Recorded:
        return cls(request.method, request.url.path, dict(request.query_params),
                   {key.lower(): value for key, value in request.headers.items()}, await request.body())


class LoopbackServer:
    """Serves an ASGI app on 127.0.0.1 with uvicorn in the running event loop: `async with LoopbackServer(app) as s`,
    then `s.url`. Pass `port` to serve on one chosen before (a URL that had to be known first)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        config = uvicorn.Config(app, host='127.0.0.1', port=self.port, log_level='warning', lifespan='off',
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> LoopbackServer:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task  # raises why it could not start
                raise RuntimeError('the loopback server stopped at start')
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        await self._task


@dataclass
class Herald:
    """A Herald engine (routes and dispatcher) on the test's database, its webhooks served at `url`."""
    routes: RouteTable
    dispatcher: Dispatcher
    url: str
    names: list[str] = field(default_factory=list)

    async def settle(self, done: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
        """Dispatch until `done()` holds (delivery reports arrive in the background)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await self.dispatcher.dispatch_once()
            if await done():
                return
            await asyncio.sleep(0.05)
        raise AssertionError('the engine did not settle')


@asynccontextmanager
async def herald(monkeypatch: pytest.MonkeyPatch, *routes: dict[str, Any]) -> AsyncIterator[Herald]:
    """Creates the given routes (ProviderRoute fields: name, channel, provider, settings, …; the first of each
    channel is its default) and runs an engine on them, with HERALD_PUBLIC_URL pointing at its webhook server.
    Needs the `db` fixture."""
    port = free_port()
    monkeypatch.setenv('HERALD_PUBLIC_URL', f'http://127.0.0.1:{port}')
    reload_settings()
    defaults: set[Channel] = set()
    for route in routes:
        channel = Channel(route['channel'])
        await ProviderRoute.create(**{'is_default': channel not in defaults, 'rate_per_second': 10_000,
                                      **route, 'channel': channel})
        defaults.add(channel)
    table = RouteTable()
    await table.load()
    app = FastAPI()
    app.include_router(webhooks.router(table))
    try:
        async with LoopbackServer(app, port) as server:
            yield Herald(table, Dispatcher(table), server.url, [route['name'] for route in routes])
    finally:
        await table.close()
