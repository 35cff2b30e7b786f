"""GET /metrics and GET /healthz: queue depths read from the database, counters of what the dispatcher did, who may
read the metrics, and what a process of each --role serves."""
from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from conftest import BACKEND
from helpers import make_actor
from herald_process import HeraldProcess, herald_processes, start_herald
from nicegui import app
from nicegui.testing import User
from prometheus_client.parser import text_string_to_metric_families

from domain import auth, enqueue, metrics, routes
from domain.auth import SYSTEM, Actor
from domain.channels import Channel
from domain.cluster import postgres_dsn
from domain.config import reload_settings
from domain.enqueue import Destination, SendRequest
from domain.models import Message, ProviderRoute, Role, SenderName, SenderStatus
from domain.statuses import MessageStatus
from scheduler.dispatcher import Dispatcher
from scheduler.routes import RouteTable

postgres_only = pytest.mark.skipif(BACKEND != 'postgres', reason='several processes share a PostgreSQL database')
SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Your code is 1234'}
VIBER = {'channel': 'viber', 'from': 'MyShop', 'text': 'Your code is 1234'}
EMAIL = {'channel': 'email', 'fromEmail': 'shop@example.com', 'subject': 'Code', 'text': 'Your code is 1234'}
INSTANT = {'report_delay_ms': 0, 'delivery_rate': 1.0, 'seed': 1}
OUTSIDER = '203.0.113.7'  # TEST-NET-3: not loopback, not in the default HERALD_METRICS_ALLOW

Samples = dict[tuple[str, frozenset], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def client(host: str = '127.0.0.1', token: str | None = None) -> httpx.AsyncClient:
    headers = {'Authorization': f'Bearer {token}'} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app, client=(host, 40000)), base_url='http://herald.test',
                             headers=headers)


async def scrape(host: str = '127.0.0.1', token: str | None = None) -> httpx.Response:
    async with client(host, token) as http:
        return await http.get('/metrics')


async def eventually(check, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError('did not happen in time')
        await asyncio.sleep(0.1)


async def sender_names() -> Actor:
    for channel in (Channel.SMS, Channel.VIBER):
        await SenderName.get_or_create(name='MyShop', channel=channel, status=SenderStatus.APPROVED)
    return await make_actor(Role.OPERATOR)


async def test_metrics_show_the_queue_and_what_the_engine_sent(user: User) -> None:
    operator = await sender_names()
    await eventually(lambda: ProviderRoute.exists(name='simulator-sms'))  # the engine seeds it as it starts
    route = await ProviderRoute.get(name='simulator-sms')
    await routes.update_route(SYSTEM, route.id, routes.RouteData(
        name=route.name, channel=route.channel, provider=route.provider, is_default=True, settings=INSTANT))
    await enqueue.enqueue(operator, SendRequest(steps=[SMS], destinations=[
        Destination(phone=f'+7912345670{i}') for i in range(3)]))
    await enqueue.enqueue(operator, SendRequest(steps=[SMS], send_at=datetime.now(timezone.utc) + timedelta(hours=1),
                                                destinations=[Destination(phone=f'+7912345671{i}') for i in range(2)]))

    samples: Samples = {}

    async def delivered_and_counted() -> bool:
        nonlocal samples
        response = await scrape()
        assert response.status_code == 200, response.text
        assert response.headers['content-type'].startswith('text/plain; version=')
        samples = parse(response.text)
        return (value(samples, 'herald_delivery_reports_total', provider='simulator', status='delivered') == 3
                and value(samples, 'herald_messages', status='queued') == 2
                and value(samples, 'herald_messages', status='sent') == 0)
    await eventually(delivered_and_counted)

    assert value(samples, 'herald_messages_sent_total', channel='sms', provider='simulator') == 3
    assert value(samples, 'herald_dispatch_latency_seconds_count', channel='sms') == 3
    assert value(samples, 'herald_provider_call_seconds_count', channel='sms', provider='simulator') >= 1
    assert not [key for key in samples if key[0] == 'herald_send_errors_total']
    for status in ('created', 'delayed', 'paused', 'pending'):
        assert value(samples, 'herald_messages', status=status) == 0
    assert {value(samples, 'herald_queue_oldest_seconds', channel=c.value) for c in Channel} == {0}, 'none is due'
    assert value(samples, 'herald_database_up') == 1
    assert value(samples, 'herald_process_info', role='all', pid=str(os.getpid())) == 1
    assert value(samples, 'herald_singleton_jobs', job='recover_in_doubt') == 1
    assert value(samples, 'herald_callbacks', state='pending') == 0


async def test_queue_gauges_count_each_unfinished_status_and_the_dispatcher_counts_its_results(
        db, monkeypatch: pytest.MonkeyPatch) -> None:
    process = metrics.install('worker', dict)
    operator = await sender_names()
    await enqueue.enqueue(operator, SendRequest(steps=[SMS], destinations=[
        Destination(phone=f'+7912345670{i}') for i in range(7)]))
    await enqueue.enqueue(operator, SendRequest(steps=[VIBER], destinations=[Destination(phone='+79123456780')]))
    await enqueue.enqueue(operator, SendRequest(steps=[EMAIL], destinations=[Destination(email='a@example.com')]))
    sms = [message.id for message in await Message.filter(channel=Channel.SMS).order_by('recipient')]
    for message_id, status in zip(sms, [MessageStatus.CREATED, MessageStatus.DELAYED, MessageStatus.PAUSED,
                                        MessageStatus.SENT, MessageStatus.PENDING, MessageStatus.DELIVERED]):
        await Message.filter(id=message_id).update(status=status)
    waiting = sms[-1]
    await Message.filter(id=waiting).update(due_at=datetime.now(timezone.utc) - timedelta(seconds=90))

    samples = parse((await process.exposition()).decode())
    for status in ('created', 'delayed', 'paused', 'sent', 'pending'):
        assert value(samples, 'herald_messages', status=status) == 1, status
    assert value(samples, 'herald_messages', status='queued') == 3  # one SMS, the Viber message and the email
    assert value(samples, 'herald_queue_oldest_seconds', channel='sms') >= 90
    assert value(samples, 'herald_queue_oldest_seconds', channel='telegram') == 0

    monkeypatch.setattr(metrics, 'SNAPSHOT_SECONDS', 3600)
    await Message.filter(id=waiting).update(status=MessageStatus.CANCELED)
    samples = parse((await process.exposition()).decode())
    assert value(samples, 'herald_messages', status='queued') == 3, 'a scrape within the cache time reads no database'
    await Message.filter(id=waiting).update(status=MessageStatus.QUEUED)

    monkeypatch.setattr(metrics, 'SNAPSHOT_SECONDS', 0)
    for channel, settings in (('sms', INSTANT), ('viber', {**INSTANT, 'fail_channels': 'viber'}),
                              ('email', {**INSTANT, 'transient_failure_rate': 1.0})):
        await ProviderRoute.create(name=f'sim-{channel}', channel=Channel(channel), provider='simulator',
                                   settings=settings, rate_per_second=10_000, is_default=True)
    table = RouteTable()
    await table.load()
    try:
        assert await Dispatcher(table).dispatch_once() == 3
    finally:
        await table.close()
    samples = parse((await process.exposition()).decode())
    assert value(samples, 'herald_messages', status='queued') == 1, 'the email waits for its retry'
    assert value(samples, 'herald_queue_oldest_seconds', channel='sms') == 0
    assert value(samples, 'herald_messages_sent_total', channel='sms', provider='simulator') == 1
    assert value(samples, 'herald_send_errors_total', channel='viber', provider='simulator', kind='refused') == 1
    assert value(samples, 'herald_send_errors_total', channel='email', provider='simulator', kind='retried') == 1
    assert value(samples, 'herald_dispatch_latency_seconds_count', channel='sms') == 1
    assert value(samples, 'herald_dispatch_latency_seconds_bucket', channel='sms', le='60.0') == 0, 'due 90 s ago'
    assert value(samples, 'herald_dispatch_latency_seconds_sum', channel='sms') >= 90
    assert value(samples, 'herald_provider_call_seconds_count', channel='viber', provider='simulator') == 1
    assert value(samples, 'herald_process_info', role='worker', pid=str(os.getpid())) == 1


async def test_who_may_read_the_metrics(user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (await scrape()).status_code == 200, 'loopback is in the default HERALD_METRICS_ALLOW'
    refused = await scrape(OUTSIDER)
    assert refused.status_code == 403
    assert 'HERALD_METRICS_ALLOW' in refused.json()['error']['message']
    _, metrics_key = await auth.create_api_key('prometheus', scopes=['metrics:read'])
    _, sending_key = await auth.create_api_key('shop', scopes=['messages:send'])
    allowed = await scrape(OUTSIDER, metrics_key)
    assert allowed.status_code == 200 and 'herald_process_info' in allowed.text
    refused = await scrape(OUTSIDER, sending_key)
    assert refused.status_code == 403 and 'lacks the scope "metrics:read"' in refused.json()['error']['message']
    assert (await scrape(OUTSIDER, 'hk_not-a-key')).status_code == 403

    monkeypatch.setenv('HERALD_METRICS_ALLOW', '203.0.113.0/24, 2001:db8::/32')
    reload_settings()
    assert (await scrape(OUTSIDER)).status_code == 200
    assert (await scrape('2001:db8::5')).status_code == 200
    assert (await scrape('127.0.0.1')).status_code == 403, 'loopback is no longer listed'
    assert (await scrape('127.0.0.1', metrics_key)).status_code == 200


async def test_healthz_says_role_and_jobs(user: User) -> None:
    body = {}

    async def started() -> bool:  # the engine takes its jobs as it starts
        nonlocal body
        async with client(OUTSIDER) as http:  # public: no key, from anywhere
            response = await http.get('/healthz')
        assert response.status_code == 200
        body = response.json()
        return 'recover_in_doubt' in body['jobs']
    await eventually(started)
    assert body['status'] == 'ok' and body['database'] == 'ok' and body['role'] == 'all'
    assert body['pid'] == os.getpid()


def test_a_worker_serves_healthz_and_metrics_but_no_pages(tmp_path: Path) -> None:
    herald = start_herald(os.environ['HERALD_DATABASE_URL'], tmp_path / 'worker', role='worker')
    try:
        herald.wait_ready()
        health = herald.healthz()
        assert health['role'] == 'worker' and 'recover_in_doubt' in health['jobs']
        samples = _scrape(herald)
        assert value(samples, 'herald_process_info', role='worker', pid=str(health['pid'])) == 1
        assert value(samples, 'herald_singleton_jobs', job='recover_in_doubt') == 1
        assert value(samples, 'herald_messages', status='queued') == 0
        for path in ('/', '/login', '/api/v1/messages'):
            assert httpx.get(herald.url + path, timeout=10).status_code == 404, path
    finally:
        herald.stop()


@postgres_only
async def test_web_processes_do_not_dispatch_and_a_worker_does(db, tmp_path: Path) -> None:
    await sender_names()
    await auth.create_user('admin@example.com', 'correct horse battery', Role.ADMIN)
    _, key = await auth.create_api_key('shop')
    with herald_processes(os.environ['HERALD_DATABASE_URL'], tmp_path, roles=('web', 'web')) as webs:
        for web in webs:
            assert web.healthz()['jobs'] == [] and web.healthz()['role'] == 'web'
            assert httpx.get(web.url + '/login', timeout=10).status_code == 200
        answer = httpx.post(webs[0].url + '/api/v1/messages', headers={'Authorization': f'Bearer {key}'}, timeout=30,
                            json={'messages': [{'channels': {'sms': {'text': 'Hi', 'from': 'MyShop'}},
                                                'destinations': [{'phone': '79001234567'}]}]})
        assert answer.status_code == 200, answer.text
        [item] = answer.json()
        await asyncio.sleep(3)  # a dispatcher would have taken it by now
        assert (await Message.get(id=item['id'])).status is MessageStatus.QUEUED
        samples = _scrape(webs[1])
        assert value(samples, 'herald_messages', status='queued') == 1
        assert value(samples, 'herald_queue_oldest_seconds', channel='sms') > 0
        assert not [key for key in samples if key[0] == 'herald_singleton_jobs']

        worker = start_herald(os.environ['HERALD_DATABASE_URL'], tmp_path / 'worker', role='worker')
        try:
            worker.wait_ready()

            async def sent() -> bool:
                return (await Message.get(id=item['id'])).status is not MessageStatus.QUEUED
            await eventually(sent, 60)

            async def counted() -> bool:  # the counter follows the commit of the status
                return value(_scrape(worker), 'herald_messages_sent_total', channel='sms', provider='simulator') == 1
            await eventually(counted)
        finally:
            worker.stop()


@postgres_only
async def test_healthz_answers_503_while_the_database_refuses_connections(tmp_path: Path) -> None:
    database_url = os.environ['HERALD_DATABASE_URL']
    herald = start_herald(database_url, tmp_path / 'worker', role='worker')
    dsn = urlsplit(postgres_dsn(database_url))
    name = dsn.path.lstrip('/')
    admin = await asyncpg.connect(urlunsplit(dsn._replace(path='/postgres')))
    try:
        herald.wait_ready()
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', name)
        response = httpx.get(f'{herald.url}/healthz', timeout=30)
        assert response.status_code == 503
        assert response.json()['status'] == 'failing' and response.json()['database'].startswith('unreachable')
        assert value(_scrape(herald), 'herald_database_up') == 0

        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

        async def healthy() -> bool:
            return herald.healthz() is not None
        await eventually(healthy)
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()
        herald.stop()


def _scrape(herald: HeraldProcess) -> Samples:
    response = httpx.get(f'{herald.url}/metrics', timeout=30)
    assert response.status_code == 200, response.text
    return parse(response.text)
