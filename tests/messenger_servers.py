"""What the Telegram, WhatsApp and Viber provider tests share: a fake provider API that records each request and
answers from a script, and the engine's view of the messages it sends."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from helpers import make_actor
from loopback import Recorded
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from domain import enqueue
from domain.auth import Actor
from domain.channels import Channel
from domain.enqueue import Destination, SendRequest
from domain.models import Message, MessageEvent, Role, SenderName, SenderStatus
from domain.statuses import MessageStatus
from scheduler import dispatcher

Answer = tuple[int, Any]  # HTTP status and a JSON body (a str body is sent as plain text)


class FakeApi:
    """One POST endpoint of a provider's API: records requests; answers with `script`ed answers first, then with
    `success(recorded)`."""

    def __init__(self, path: str, success: Callable[[Recorded], Any]) -> None:
        self.requests: list[Recorded] = []
        self.script: list[Answer] = []
        self._success = success
        self.app = FastAPI()
        self.app.add_api_route(path, self._receive, methods=['POST'])

    async def _receive(self, request: Request) -> Response:
        recorded = await Recorded.of(request)
        self.requests.append(recorded)
        status, body = self.script.pop(0) if self.script else (200, self._success(recorded))
        if isinstance(body, str):
            return Response(body, status_code=status, media_type='text/plain')
        return JSONResponse(body, status_code=status)


async def operator() -> Actor:
    """An operator who may send, with MyShop approved as a Viber sender."""
    await SenderName.create(name='MyShop', channel=Channel.VIBER, status=SenderStatus.APPROVED)
    return await make_actor(Role.OPERATOR)


async def send(actor: Actor, step: dict[str, Any], destination: Destination) -> str:
    """Enqueues one message the way users do; its id."""
    result = await enqueue.enqueue(actor, SendRequest(steps=[step], destinations=[destination]))
    assert not result.rejected, result.rejected
    return result.messages[0].id


def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transient failures are retried at the next dispatch rather than seconds later."""
    monkeypatch.setattr(dispatcher, 'BACKOFF_SECONDS', (0, 0, 0, 0))


def status_is(message_id: str, status: MessageStatus) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await Message.get(id=message_id)).status is status
    return check


async def timeline(message_id: str) -> list[MessageStatus]:
    return [e.status for e in await MessageEvent.filter(message_id=message_id).order_by('id')]


async def post_report(url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """The provider's server calling Herald's webhook address."""
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=body, headers={'Content-Type': 'application/json', **(headers or {})})
