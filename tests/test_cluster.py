"""Several Herald processes: a SQLite database serves one; on PostgreSQL each sweep runs in one process at a time
and moves when that one dies; leases of messages in hand outlive a slow provider."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest
from conftest import BACKEND
from helpers import make_actor
from herald_process import herald_processes, start_herald

from domain import auth, enqueue
from domain.cluster import Singletons, postgres_dsn
from domain.enqueue import Destination, SendRequest
from domain.models import Message, ProviderRoute, Role, SenderName, SenderStatus
from domain.statuses import MessageStatus
from scheduler.dispatcher import Dispatcher, recover_in_doubt
from scheduler.engine import SWEEPS
from scheduler.routes import RouteTable

postgres_only = pytest.mark.skipif(BACKEND != 'postgres', reason='several processes share a PostgreSQL database')
FREQUENT_SWEEPS = {job.__name__ for job, seconds in SWEEPS if seconds < 60}


def test_the_jobs_and_events_connections_take_the_database_url_without_its_pool_options() -> None:
    assert postgres_dsn('postgres://herald:pw@db:5432/herald?maxsize=20&sslmode=require') == \
        'postgresql://herald:pw@db:5432/herald?sslmode=require'
    assert postgres_dsn('asyncpg://herald@db/herald') == 'postgresql://herald@db/herald'
    assert postgres_dsn('sqlite:///data/herald.sqlite3') is None


def test_a_second_process_on_one_sqlite_database_refuses_to_start(tmp_path: Path) -> None:
    url = f'sqlite://{tmp_path / "shared.sqlite3"}'
    with herald_processes(url, tmp_path, roles=('all',)):
        second = start_herald(url, tmp_path / 'second')
        assert second.process.wait(60) == 2
        log = second.log.read_text()
        assert 'Another Herald process is already serving the SQLite database' in log
        assert 'PostgreSQL' in log and 'Traceback' not in log


def test_an_unknown_role_is_refused_with_the_roles_there_are(tmp_path: Path) -> None:
    herald = start_herald(os.environ['HERALD_DATABASE_URL'], tmp_path, environment={'HERALD_ROLE': 'frontend'})
    assert herald.process.wait(60) != 0
    log = herald.log.read_text()
    assert 'Unknown role "frontend": use one of all, web, worker' in log and 'Traceback' not in log


@postgres_only
async def test_a_job_is_held_by_one_process_until_it_lets_go(db) -> None:
    first, second = Singletons(os.environ['HERALD_DATABASE_URL']), Singletons(os.environ['HERALD_DATABASE_URL'])
    try:
        assert await first.holds('release_delayed')
        assert await first.holds('release_delayed')
        assert not await second.holds('release_delayed')
        assert await second.holds('expire_overdue') and not await first.holds('expire_overdue')
        assert await first.dispatchers() == 2
        await first.close()
        assert await second.holds('release_delayed')
        assert await second.dispatchers() == 1
    finally:
        await first.close()
        await second.close()


@postgres_only
def test_each_sweep_runs_in_one_process_and_moves_when_its_holder_dies(tmp_path: Path) -> None:
    with herald_processes(os.environ['HERALD_DATABASE_URL'], tmp_path, roles=('all', 'all', 'worker')) as heralds:
        holders = _wait_for(lambda: _holders(heralds), lambda found: FREQUENT_SWEEPS <= set(found))
        for job, processes in holders.items():
            assert len(processes) == 1, f'{job} runs in {len(processes)} processes at once'
        victim = holders['release_delayed'][0]
        victim.kill()
        survivors = [herald for herald in heralds if herald is not victim]
        holders = _wait_for(lambda: _holders(survivors), lambda found: FREQUENT_SWEEPS <= set(found))
        for job, processes in holders.items():
            assert len(processes) == 1, f'{job} runs in {len(processes)} processes at once'


def _holders(heralds: list) -> dict[str, list]:
    found: dict[str, list] = {}
    for herald in heralds:
        for job in (herald.healthz() or {}).get('jobs', []):
            found.setdefault(job, []).append(herald)
    return found


def _wait_for(read, done, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


async def test_a_slow_provider_keeps_its_messages_leased_so_they_are_not_taken_for_lost(db) -> None:
    await SenderName.create(name='MyShop', channel='sms', status=SenderStatus.APPROVED)
    operator = await make_actor(Role.OPERATOR)
    await ProviderRoute.create(name='slow-sms', channel='sms', provider='simulator', rate_per_second=1000,
                               is_default=True, settings={'latency_ms': 3500, 'delivery_rate': 1.0,
                                                          'send_reports': False})
    routes = RouteTable()
    await routes.load()
    dispatcher = Dispatcher(routes, lease_seconds=1)
    await enqueue.enqueue(operator, SendRequest(steps=[{'channel': 'sms', 'from': 'MyShop', 'text': 'Code 1'}],
                                                destinations=[Destination(phone='+79123456789')]))
    dispatcher.start()
    try:
        for _ in range(100):
            await recover_in_doubt()  # the sweep, running while the provider takes 3.5 s with a 1 s lease
            message = await Message.get()
            if message.status is not MessageStatus.QUEUED:
                break
            await asyncio.sleep(0.1)
    finally:
        await dispatcher.stop()
        await routes.close()
    assert message.status is MessageStatus.SENT and not message.in_doubt


async def test_processes_dispatching_together_keep_to_a_routes_rate_limit(db) -> None:
    await ProviderRoute.create(name='sms-main', channel='sms', provider='simulator', rate_per_second=90,
                               is_default=True, settings={})
    routes = RouteTable()
    await routes.load()
    routes.share_rates(3)
    assert routes.routes['sms-main'].bucket.rate == 30
    await ProviderRoute.filter(name='sms-main').update(rate_per_second=60)
    await routes.load()
    assert routes.routes['sms-main'].bucket.rate == 20
    routes.share_rates(1)
    assert routes.routes['sms-main'].bucket.rate == 60
    await routes.close()


@postgres_only
async def test_processes_without_secrets_in_their_environment_share_the_databases(db, tmp_path: Path) -> None:
    await auth.create_user('op@example.com', 'correct horse battery', Role.OPERATOR)
    unset = {'HERALD_SECRET': '', 'HERALD_CALLBACK_SECRET': ''}
    with herald_processes(os.environ['HERALD_DATABASE_URL'], tmp_path, roles=('web', 'web'),
                          environment=unset) as (first, second):
        async with httpx.AsyncClient(timeout=30) as client:
            login = await client.post(f'{first.url}/api/v1/auth/login',
                                      json={'email': 'op@example.com', 'password': 'correct horse battery'})
            token = login.json()['authToken']
            answer = await client.get(f'{second.url}/api/v1/messages', headers={'Authorization': f'Bearer {token}'})
    assert answer.status_code == 200
    assert (tmp_path / 'herald-0' / 'secret.key').read_text() != (tmp_path / 'herald-1' / 'secret.key').read_text()


async def test_a_message_whose_lease_another_process_took_is_not_handed_over(db) -> None:
    await SenderName.create(name='MyShop', channel='sms', status=SenderStatus.APPROVED)
    await ProviderRoute.create(name='sms-1-per-s', channel='sms', provider='simulator', rate_per_second=1,
                               is_default=True, settings={'delivery_rate': 1.0, 'send_reports': False})
    routes = RouteTable()
    await routes.load()
    await enqueue.enqueue(await make_actor(Role.OPERATOR), SendRequest(
        steps=[{'channel': 'sms', 'from': 'MyShop', 'text': 'Code 1'}],
        destinations=[Destination(phone=f'+7912345678{i}') for i in range(3)]))
    dispatching = asyncio.create_task(Dispatcher(routes).dispatch_once())
    claimed_not_sent = Message.filter(claimed_by__not_isnull=True, send_started_at__isnull=True)
    while not await claimed_not_sent.exists():  # the claim leased all three: one goes at once, two wait 1 s and 2 s
        await asyncio.sleep(0.01)
    waiting = await claimed_not_sent.order_by('-id').first()
    taken = await claimed_not_sent.filter(id=waiting.id).update(claimed_by='another-process')
    assert taken == 1  # as if its lease ran out and another process claimed it
    await dispatching
    await routes.close()
    assert await Message.filter(status=MessageStatus.SENT).count() == 2
    waiting = await Message.get(id=waiting.id)
    assert waiting.status is MessageStatus.QUEUED and waiting.send_started_at is None
