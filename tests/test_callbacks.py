"""Client callbacks against a real HTTP server on loopback: signed bodies, retries with backoff, giving up, never
slowing dispatch, and no double POSTs with two senders."""
from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from aiohttp import web
from helpers import make_actor

from domain import enqueue
from domain.auth import Actor
from domain.callbacks import sign, verify
from domain.channels import Channel
from domain.config import load_settings, settings
from domain.enqueue import Destination, SendRequest
from domain.models import CallbackDelivery, Message, MessageEvent, ProviderRoute, Role, SenderName, SenderStatus
from domain.statuses import MessageStatus
from scheduler.callbacks import HELD_BACK, CallbackSender
from scheduler.dispatcher import Dispatcher
from scheduler.routes import RouteTable

SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Your code is 1234'}
INSTANT = {'report_delay_ms': 0, 'delivery_rate': 1.0, 'seed': 1}
Respond = Callable[[web.Request, int], Awaitable[web.Response]]


async def ok(_request: web.Request, _try: int) -> web.Response:
    return web.Response(text='ok')


class CallbackServer:
    """Records every POST (headers and raw body); `respond(request, try_number)` answers, per delivery id."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.answered = 0
        self.respond: Respond = ok
        self._tries: Counter[str] = Counter()
        self.url = ''

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append((dict(request.headers), body))
        delivery = request.headers.get('X-Herald-Delivery', '')
        self._tries[delivery] += 1
        response = await self.respond(request, self._tries[delivery])
        self.answered += 1
        return response

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@pytest.fixture
async def server() -> AsyncIterator[CallbackServer]:
    callback_server = CallbackServer()
    app = web.Application()
    app.router.add_post('/hook', callback_server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    site = web.SockSite(runner, sock)
    await site.start()
    callback_server.url = f'http://127.0.0.1:{sock.getsockname()[1]}/hook'
    yield callback_server
    await runner.cleanup()


@pytest.fixture
async def operator(db) -> Actor:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    await ProviderRoute.create(name='sim-sms', channel=Channel.SMS, provider='simulator', settings=INSTANT,
                               rate_per_second=10_000, is_default=True)
    return await make_actor(Role.OPERATOR)


@pytest.fixture
async def dispatcher(operator: Actor) -> AsyncIterator[Dispatcher]:
    routes = RouteTable()
    await routes.load()
    yield Dispatcher(routes)
    await routes.close()


@pytest.fixture
async def senders() -> AsyncIterator[Callable[..., CallbackSender]]:
    """Makes callback senders (fast polls, instant retries unless told) and stops them after the test."""
    made: list[CallbackSender] = []

    def make(**options) -> CallbackSender:
        made.append(CallbackSender(**{'backoff': (0, 0), 'poll_seconds': 0.05, **options}))
        return made[-1]
    yield make
    for sender in made:
        await sender.stop()


async def send(operator: Actor, url: str, count: int = 1, data: str = '{"order": 42}') -> None:
    await enqueue.enqueue(operator, SendRequest(steps=[SMS], callback_url=url, callback_data=data, destinations=[
        Destination(phone=f'+791234{i:05d}') for i in range(count)]))


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, 'timed out'
        await asyncio.sleep(0.02)


async def all_delivered() -> bool:
    return not await Message.exclude(status=MessageStatus.DELIVERED).exists()


async def dispatch_all(dispatcher: Dispatcher) -> None:
    """Dispatch until every message is delivered and its callbacks are in the outbox (the simulator reports in the
    background, and a change's outbox rows are written just after the change)."""
    async def done() -> bool:
        await dispatcher.dispatch_once()
        called_back = await CallbackDelivery.filter(body__contains='"newStatus": "DELIVERED"').count()
        return await all_delivered() and called_back == await Message.all().count()
    await until(done)


async def pending() -> int:
    return await CallbackDelivery.filter(delivered_at=None, failed=False).count()


def test_signatures_verify_only_the_exact_body_and_secret() -> None:
    body = '{"id": "1", "newStatus": "SENT", "callbackData": "é"}'.encode()
    signature = sign(body, 's3cret')
    assert signature.startswith('sha256=') and len(signature) == 7 + 64
    assert verify(body, 's3cret', signature)
    assert not verify(body + b' ', 's3cret', signature)
    assert not verify(body, 'other', signature)
    assert not verify(body, 's3cret', 'sha256=' + 'ä' * 64)


def test_callback_secret_is_generated_once_or_taken_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv('HERALD_DATA_DIR', str(tmp_path))
    monkeypatch.delenv('HERALD_CALLBACK_SECRET', raising=False)
    first = load_settings().callback_secret
    assert len(first) >= 32 and first != load_settings().secret
    assert load_settings().callback_secret == first
    assert (tmp_path / 'callback.key').stat().st_mode & 0o077 == 0
    monkeypatch.setenv('HERALD_CALLBACK_SECRET', 'from the environment')
    assert load_settings().callback_secret == 'from the environment'


async def outbox() -> list[CallbackDelivery]:
    return await CallbackDelivery.all().order_by('id')



async def deliver_until_done(sender: CallbackSender) -> None:
    """Deliver, retries included (no backoff), until nothing is due."""
    for _ in range(10):
        if not await sender.deliver_once():
            return

async def test_status_changes_are_posted_signed_in_order(operator: Actor, dispatcher: Dispatcher,
                                                         server: CallbackServer, senders) -> None:
    await send(operator, server.url, data='{"order": 42, "name": "Zoë"}')
    await dispatch_all(dispatcher)
    rows = await outbox()
    sender = senders()
    assert await sender.deliver_once() == len(rows)
    message = await Message.get()
    timeline = [event.status.value for event in await MessageEvent.filter(message_id=message.id).order_by('id')]
    posted = [body['newStatus'] for body in server.bodies()]
    assert posted == [json.loads(row.body)['newStatus'] for row in rows]  # SENT may be overtaken by its report
    assert posted[-1] == 'DELIVERED' and set(posted) <= set(timeline)
    for (headers, raw), body in zip(server.received, server.bodies(), strict=True):
        assert verify(raw, settings().callback_secret, headers['X-Herald-Signature'])
        assert headers['Content-Type'] == 'application/json' and headers['User-Agent'] == 'Herald'
        assert body['id'] == str(message.id) and body['callbackData'] == '{"order": 42, "name": "Zoë"}'
        assert body['statusCode'] == MessageStatus(body['newStatus']).code and body['channel'] == 'sms'
        assert body['bulkId'] == message.bulk_id and 'externalId' in body and 'groupId' in body
        assert body['statusDescription'] and body['changedAt']
    assert [headers['X-Herald-Delivery'] for headers, _ in server.received] == [str(row.id) for row in rows]
    assert all(row.delivered_at and row.attempts == 1 and not row.failed for row in await outbox())
    assert await sender.deliver_once() == 0


async def test_a_failing_receiver_gets_it_on_the_third_try(operator: Actor, dispatcher: Dispatcher,
                                                           server: CallbackServer, senders) -> None:
    async def fail_twice(_request: web.Request, attempt: int) -> web.Response:
        return web.Response(status=500) if attempt <= 2 else web.Response(text='ok')
    server.respond = fail_twice
    await send(operator, server.url)
    await dispatch_all(dispatcher)
    await deliver_until_done(senders(backoff=(0, 0)))
    rows = await outbox()
    assert rows and all(row.delivered_at and row.attempts == 3 and not row.failed for row in rows)
    assert {row.last_error for row in rows} == {'HTTP 500 Internal Server Error'}
    assert len(server.received) == 3 * len(rows)


async def test_later_callbacks_of_a_notification_wait_for_an_earlier_failed_one(
        operator: Actor, dispatcher: Dispatcher, server: CallbackServer, senders) -> None:
    async def first_fails_once(request: web.Request, attempt: int) -> web.Response:
        first = json.loads(await request.read())['newStatus'] == 'first'
        return web.Response(status=503) if first and attempt == 1 else web.Response(text='ok')
    server.respond = first_fails_once
    await send(operator, server.url)
    await dispatch_all(dispatcher)
    await CallbackDelivery.all().delete()
    message = await Message.get()
    now = datetime.now(timezone.utc)
    for status in ('first', 'second'):
        await CallbackDelivery.create(message=message, url=server.url, body=json.dumps({'newStatus': status}),
                                      next_attempt_at=now)
    sender = senders()
    assert await sender.deliver_once() == 2
    first, second = await outbox()
    assert (first.attempts, first.last_error) == (1, 'HTTP 503 Service Unavailable')
    assert (second.attempts, second.last_error, second.next_attempt_at) == (0, HELD_BACK, first.next_attempt_at)
    assert await sender.deliver_once() == 2
    assert [body['newStatus'] for body in server.bodies()] == ['first', 'first', 'second']
    assert all(row.delivered_at for row in await outbox())


async def test_retries_wait_for_the_backoff(operator: Actor, dispatcher: Dispatcher, senders) -> None:
    await send(operator, f'http://127.0.0.1:{free_port()}/hook')
    await dispatch_all(dispatcher)
    sender = senders(backoff=(60,))
    assert await sender.deliver_once() >= 1
    assert await sender.deliver_once() == 0
    row = (await outbox())[0]
    assert row.attempts == 1 and 55 < (row.next_attempt_at - datetime.now(timezone.utc)).total_seconds() <= 60


async def test_a_dead_url_ends_failed_after_the_last_attempt(operator: Actor, dispatcher: Dispatcher,
                                                             senders) -> None:
    await send(operator, f'http://127.0.0.1:{free_port()}/hook')
    await dispatch_all(dispatcher)
    await deliver_until_done(senders(backoff=(0, 0)))
    rows = await outbox()
    assert rows and all(row.failed and row.attempts == 3 and not row.delivered_at for row in rows)
    assert all(row.last_error.startswith('ConnectError') for row in rows)


async def test_a_slow_receiver_does_not_slow_dispatch(operator: Actor, dispatcher: Dispatcher,
                                                      server: CallbackServer, senders) -> None:
    async def slow(_request: web.Request, _try: int) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text='ok')
    server.respond = slow
    sender = senders(timeout=10)
    sender.start()
    dispatcher.start()
    started = time.monotonic()
    try:
        await send(operator, server.url, count=20)
        await until(all_delivered, seconds=4)
        assert time.monotonic() - started < 4

        async def posted() -> bool:
            return bool(server.received)
        await until(posted)
        assert server.answered == 0  # the messages went out while their callbacks hang
    finally:
        await dispatcher.stop()
    assert await CallbackDelivery.all().count() >= 20


async def test_two_senders_never_post_the_same_row_twice(operator: Actor, dispatcher: Dispatcher,
                                                         server: CallbackServer, senders) -> None:
    async def a_little_slow(_request: web.Request, _try: int) -> web.Response:
        await asyncio.sleep(0.01)
        return web.Response(text='ok')
    server.respond = a_little_slow
    await send(operator, server.url, count=60)
    await dispatch_all(dispatcher)
    rows = await CallbackDelivery.all().count()
    assert rows >= 60

    async def drain(sender: CallbackSender) -> int:
        claimed = 0
        while await pending():
            claimed += await sender.deliver_once()
            await asyncio.sleep(0.01)
        return claimed
    both = asyncio.gather(drain(senders(batch_size=7)), drain(senders(batch_size=7)))
    first, second = await asyncio.wait_for(both, 30)
    assert first and second and first + second == rows
    deliveries = Counter(headers['X-Herald-Delivery'] for headers, _ in server.received)
    assert len(deliveries) == rows and set(deliveries.values()) == {1}
