"""Failover between a channel's routes: the rules of domain/failover.py, backup routes in the routes service, and
the dispatcher moving traffic to the backup and back."""
from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from helpers import make_actor
from loopback import LoopbackServer, herald
from starlette.requests import Request

from domain import enqueue, failover, routes
from domain.auth import SYSTEM
from domain.channels import Channel
from domain.enqueue import Destination, SendRequest
from domain.errors import ValidationError
from domain.failover import RouteHealth, RouteState
from domain.models import AuditEvent, Message, ProviderRoute, Role, SenderName, SenderStatus
from domain.routes import RouteData
from domain.statuses import MessageStatus

SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Your code is 1234'}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_route_trips_on_provider_failures_not_on_refused_messages() -> None:
    health = RouteHealth(clock=Clock())
    health.record(sent=10, failed=0, seconds=0.1)
    assert health.state is RouteState.HEALTHY and health.current_share() == 1
    health.record(sent=4, failed=4, seconds=0.1, error='HTTP 500')
    assert health.state is RouteState.HEALTHY, 'fewer than half of the recent messages failed'
    health.record(sent=6, failed=6, seconds=0.1, error='HTTP 500')
    assert health.state is RouteState.FAILING and health.current_share() == 0
    assert health.error == 'HTTP 500'


def test_slow_calls_count_as_failures() -> None:
    health = RouteHealth(clock=Clock())
    health.record(sent=10, failed=0, seconds=failover.SLOW_CALL_SECONDS + 1)
    assert health.state is RouteState.FAILING
    assert health.error.startswith('Calls took')


def test_a_tripped_route_is_probed_after_its_cooldown_and_drifts_back() -> None:
    clock = Clock()
    health = RouteHealth(clock=clock)
    health.record(sent=10, failed=10, seconds=0.1, error='down')
    clock.now += failover.COOLDOWN_SECONDS - 1
    assert health.current_share() == 0
    clock.now += 1
    assert health.current_share() == failover.PROBE_SHARE
    assert health.state is RouteState.RECOVERING
    shares = []
    while health.share < 1:
        clock.now += failover.STEP_SECONDS
        health.record(sent=5, failed=0, seconds=0.1)
        shares.append(health.current_share())
    assert shares == sorted(shares) and shares[-1] == 1 and len(shares) == 4
    assert health.state is RouteState.HEALTHY and health.error == ''


def test_its_share_grows_only_when_it_sent_without_failing() -> None:
    clock = Clock()
    health = RouteHealth(clock=clock)
    health.record(sent=10, failed=10, seconds=0.1)
    clock.now += failover.COOLDOWN_SECONDS
    assert health.current_share() == failover.PROBE_SHARE
    clock.now += 10 * failover.STEP_SECONDS
    assert health.current_share() == failover.PROBE_SHARE, 'no call reached it: nothing is known'
    health.record(sent=1, failed=0, seconds=0.1)
    assert health.current_share() == 2 * failover.PROBE_SHARE


def test_a_failed_probe_trips_it_again_for_twice_as_long() -> None:
    clock = Clock()
    health = RouteHealth(clock=clock)
    health.record(sent=10, failed=10, seconds=0.1)
    clock.now += failover.COOLDOWN_SECONDS
    assert health.current_share() == failover.PROBE_SHARE
    health.record(sent=1, failed=1, seconds=0.1)
    assert health.state is RouteState.FAILING and health.cooldown == 2 * failover.COOLDOWN_SECONDS
    clock.now += 2 * failover.COOLDOWN_SECONDS - 1
    assert health.current_share() == 0


def test_failures_of_calls_begun_before_it_tripped_do_not_lengthen_the_cooldown() -> None:
    health = RouteHealth(clock=Clock())
    health.record(sent=10, failed=10, seconds=0.1)
    health.record(sent=10, failed=10, seconds=0.1)
    assert health.cooldown == failover.COOLDOWN_SECONDS


async def sms_route(name: str, **fields) -> ProviderRoute:
    return await routes.create_route(SYSTEM, RouteData(name=name, channel='sms', provider='simulator', **fields))


async def test_a_backup_must_be_another_route_of_the_same_channel_without_a_loop(db) -> None:
    main = await sms_route('main')
    spare = await sms_route('spare', backup='main')
    assert spare.backup_id == main.id
    await routes.create_route(SYSTEM, RouteData(name='mail', channel='email', provider='simulator'))
    for backup, message in (('nowhere', 'There is no route named "nowhere".'),
                            ('main', 'A route cannot be its own backup.'),
                            ('mail', '"mail" sends Email, not SMS.'),
                            ('spare', '"spare" already falls back on this route, directly or not.')):
        with pytest.raises(ValidationError) as error:
            await routes.update_route(SYSTEM, main.id, RouteData(name='main', channel='sms', provider='simulator',
                                                                 backup=backup))
        assert error.value.errors == {'backup': message}
    assert (await ProviderRoute.get(id=main.id)).backup_id is None


async def test_the_backup_is_kept_when_a_form_leaves_it_unchanged_and_audited_by_name(db) -> None:
    await sms_route('spare')
    main = await sms_route('main', backup='spare')
    await routes.update_route(SYSTEM, main.id, RouteData(name='main', channel='sms', provider='simulator',
                                                         concurrency=5))
    assert (await ProviderRoute.get(id=main.id)).backup_id is not None
    await routes.update_route(SYSTEM, main.id, RouteData(name='main', channel='sms', provider='simulator', backup=''))
    assert (await ProviderRoute.get(id=main.id)).backup_id is None
    event = await AuditEvent.filter(entity_id=str(main.id)).order_by('-id').first()
    assert event.changes['backup'] == ['spare', None]


class SmsApi:
    """An SMS API on loopback (the generic HTTP/JSON provider's shape): takes a message, answers its id, then posts
    a delivery report to the message's callback address. While `failing` it answers 503 and takes nothing."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failing = False
        self.taken: list[str] = []  # Herald's message ids, once per message taken
        self.refused = 0
        self.reports: set[asyncio.Task] = set()
        self.app = FastAPI()
        self.app.post('/sms')(self.send)

    async def send(self, request: Request) -> JSONResponse:
        if self.failing:
            self.refused += 1
            return JSONResponse({'error': 'service unavailable'}, 503)
        body = await request.json()
        self.taken.append(body['ref'])
        provider_id = f'{self.name}-{len(self.taken)}'
        task = asyncio.create_task(self.report(body['callback'], provider_id))
        self.reports.add(task)
        task.add_done_callback(self.reports.discard)
        return JSONResponse({'id': provider_id})

    async def report(self, callback: str, provider_id: str) -> None:
        async with httpx.AsyncClient() as client:
            answer = await client.post(callback, json={'id': provider_id, 'status': 'delivered'},
                                       headers={'X-Webhook-Secret': WEBHOOK_SECRET})
            answer.raise_for_status()


WEBHOOK_SECRET = 'failover-test-secret'


def json_route(name: str, api: LoopbackServer) -> dict:
    return {'name': name, 'channel': 'sms', 'provider': 'http-json', 'concurrency': 4, 'settings': {
        'url': f'{api.url}/sms',
        'body_template': '{"to": {{recipient}}, "text": {{text}}, "ref": {{id}}, "callback": {{webhook_url}}}',
        'id_path': 'id', 'report_id_path': 'id', 'report_status_path': 'status', 'status_map': 'delivered = DELIVERED',
        'webhook_auth': 'secret_header', 'webhook_header': 'X-Webhook-Secret', 'webhook_secret': WEBHOOK_SECRET}}


@pytest.fixture
def quick_failover(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seconds instead of minutes, every probe batch to the primary, and this test's routes' health only."""
    monkeypatch.setattr(failover, 'COOLDOWN_SECONDS', 0.5)
    monkeypatch.setattr(failover, 'STEP_SECONDS', 0.1)
    monkeypatch.setattr(failover, 'PROBE_SHARE', 0.5)
    monkeypatch.setattr(failover, '_health', {})


async def test_the_backup_carries_the_traffic_while_the_primary_fails_and_it_returns_after(
        db, monkeypatch: pytest.MonkeyPatch, quick_failover: None) -> None:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    operator = await make_actor(Role.OPERATOR)
    primary, backup = SmsApi('primary'), SmsApi('backup')
    async with LoopbackServer(primary.app) as primary_server, LoopbackServer(backup.app) as backup_server, \
            herald(monkeypatch, json_route('primary', primary_server), json_route('backup', backup_server)) as h:
        backup_id = await ProviderRoute.get(name='backup').values_list('id', flat=True)
        await ProviderRoute.filter(name='primary').update(backup_id=backup_id)
        await h.routes.load()

        async def send(count: int) -> None:
            phones = [f'+7912{next(numbers):07d}' for _ in range(count)]
            await enqueue.enqueue(operator, SendRequest(steps=[SMS], destinations=[Destination(phone=p) for p in phones]))
            total = await Message.all().count()
            await h.settle(lambda: delivered(total))

        numbers = itertools.count()
        await send(20)
        assert (len(primary.taken), len(backup.taken)) == (20, 0)

        primary.failing = True  # mid-run: the primary starts answering errors
        await send(40)
        assert primary.refused >= failover.TRIP_FAILURES
        assert len(backup.taken) == 40, 'the backup carried all of them'
        assert failover.health('primary').state is not RouteState.HEALTHY

        primary.failing = False  # it recovers: probes reach it, then it takes its traffic back
        await asyncio.sleep(failover.COOLDOWN_SECONDS)
        for _ in range(100):
            await send(2)
            if failover.health('primary').state is RouteState.HEALTHY:
                break
        assert failover.health('primary').state is RouteState.HEALTHY
        before = len(primary.taken)
        await send(20)
        assert len(primary.taken) == before + 20, 'traffic is back on the primary'

        taken = primary.taken + backup.taken
        messages = await Message.all()
        assert len(taken) == len(set(taken)) == len(messages), 'every message was taken once: none lost, none twice'
        assert {m.status for m in messages} == {MessageStatus.DELIVERED}
        routes_by_id = dict(await ProviderRoute.all().values_list('id', 'name'))
        assert {str(m.id): routes_by_id[m.route_id] for m in messages} == {
            **{ref: 'primary' for ref in primary.taken}, **{ref: 'backup' for ref in backup.taken}}


async def delivered(total: int) -> bool:
    return await Message.filter(status=MessageStatus.DELIVERED).count() == total
