"""Domain events between Herald processes through PostgreSQL LISTEN/NOTIFY (domain/event_bridge.py): two bridges in
this process stand for two processes on the test's database. Process A's bridge is the one main.py starts (hooked
into domain.events); process B's delivers what it hears to its own list (and route table)."""
from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest
from conftest import BACKEND
from helpers import make_actor

from domain import event_bridge, events, routes, sql
from domain.channels import Channel
from domain.cluster import postgres_dsn
from domain.event_bridge import EventBridge
from domain.events import Event, MessageChanged, RoutesChanged, TaskChanged
from domain.models import Role
from domain.statuses import MessageStatus
from scheduler.routes import RouteTable

postgres_only = pytest.mark.skipif(BACKEND != 'postgres', reason='LISTEN/NOTIFY joins processes on PostgreSQL')
NOW = datetime(2026, 11, 28, 9, 15, 30, 123456, tzinfo=timezone.utc)


def dsn() -> str:
    return postgres_dsn(os.environ['HERALD_DATABASE_URL'])


def changes(count: int, at: datetime = NOW) -> list[MessageChanged]:
    statuses = itertools.cycle((MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.UNDELIVERED))
    return [MessageChanged(sql.new_id(), sql.new_id(), Channel.SMS, next(statuses), at + timedelta(seconds=i % 2))
            for i in range(count)]


async def until(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Wait for `condition` (the machine is shared and noisy: generous, and never a timing assertion)."""
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    assert condition(), f'waited {seconds} s for {what}'


@dataclass
class ProcessB:
    """What another process's listeners hear: its bridge, the batches of message changes and its other events."""
    bridge: EventBridge | None = None
    batches: list[list[MessageChanged]] = field(default_factory=list)
    others: list[Event] = field(default_factory=list)
    route_table: RouteTable | None = None

    def deliver(self, event: Event) -> None:
        if isinstance(event, list):
            self.batches.append(event)
        else:
            self.others.append(event)
            if isinstance(event, RoutesChanged) and self.route_table is not None:
                self.route_table.on_routes_changed(event)

    @property
    def changes(self) -> list[MessageChanged]:
        return [change for batch in self.batches for change in batch]

    async def hears_marker(self, marker: str) -> None:
        """Publish a task change in process A and wait until B hears it: what A sent before has arrived too."""
        events.publish_task(TaskChanged(marker))
        await until(lambda: TaskChanged(marker) in self.others, f'process B to hear {marker}')


@pytest.fixture
async def bridge_a() -> AsyncIterator[EventBridge]:
    bridge = await event_bridge.start(os.environ['HERALD_DATABASE_URL'])
    assert bridge is not None and bridge.listening.is_set()
    yield bridge
    await event_bridge.stop()


@pytest.fixture
async def process_b() -> AsyncIterator[ProcessB]:
    process = ProcessB()
    process.bridge = EventBridge(dsn(), origin='process-b', deliver=process.deliver)
    await process.bridge.start()
    assert process.bridge.listening.is_set()
    yield process
    await process.bridge.stop()


@pytest.fixture
async def notifications() -> AsyncIterator[list[str]]:
    """The payloads on the bridge's channel, heard by a plain LISTEN connection."""
    payloads: list[str] = []
    connection = await asyncpg.connect(dsn())
    await connection.add_listener(event_bridge.CHANNEL, lambda *args: payloads.append(args[3]))
    yield payloads
    await connection.close()


def test_payloads_carry_every_field_in_less_than_8000_bytes() -> None:
    odd = [MessageChanged('not-a-uuid', sql.new_id().upper(), Channel.EMAIL, MessageStatus.QUEUED,
                          NOW.replace(tzinfo=None)),
           MessageChanged(sql.new_id(), sql.new_id(), Channel.VIBER, MessageStatus.READ, NOW.astimezone())]
    sent = changes(3000) + odd
    names = tuple(f'route-{number}-' + 'ж' * 90 for number in range(20))
    payloads = event_bridge.encode('a1', sent + [TaskChanged('task-1')] + event_bridge._route_events(
        RoutesChanged(names)), itertools.count())
    assert all(len(payload.encode()) < 8000 for payload in payloads)
    assert len(payloads) < 3000 / 100
    decoded = [event for payload in payloads for event in event_bridge.decode(payload)[1]]
    heard = [change for event in decoded if isinstance(event, list) for change in event]
    assert sorted(heard, key=lambda change: change.message_id) == sorted(sent, key=lambda change: change.message_id)
    assert [event for event in decoded if isinstance(event, TaskChanged)] == [TaskChanged('task-1')]
    assert tuple(name for event in decoded if isinstance(event, RoutesChanged) for name in event.names) == names


async def test_on_sqlite_there_is_no_bridge() -> None:
    assert await event_bridge.start('sqlite:///tmp/herald.sqlite3') is None
    assert events._forwarder is None
    await event_bridge.stop()


@postgres_only
async def test_a_batch_reaches_the_other_process_once_with_its_fields_and_not_this_one_twice(
        bridge_a: EventBridge, process_b: ProcessB) -> None:
    here: list[list[MessageChanged]] = []
    unsubscribe = events.subscribe(here.append)
    try:
        batch = changes(500)
        events.publish(batch)
        await process_b.hears_marker('after the batch')
        await until(lambda: bridge_a.heard_own == bridge_a.sent, 'process A to hear its own payloads back')
    finally:
        unsubscribe()
    assert sorted(process_b.changes, key=lambda c: c.message_id) == sorted(batch, key=lambda c: c.message_id)
    assert here == [batch]  # directly, once: its own payloads came back and were skipped
    assert bridge_a.heard_own >= 2 and bridge_a.received == 0
    assert process_b.bridge.heard_own == 0 and process_b.bridge.received == bridge_a.sent


@postgres_only
async def test_thousands_of_changes_travel_in_few_notifications(
        bridge_a: EventBridge, process_b: ProcessB, notifications: list[str]) -> None:
    sent = changes(5000)
    for change in sent:  # one publish per change, as 5,000 separate status changes would
        events.publish([change])
    await process_b.hears_marker('after 5,000 changes')
    assert len(process_b.changes) == 5000
    assert {c.message_id for c in process_b.changes} == {c.message_id for c in sent}
    assert 5000 / 200 < len(notifications) <= 5000 / 100
    assert all(len(payload.encode()) < 8000 for payload in notifications)


@postgres_only
async def test_a_route_change_in_one_process_reloads_the_routes_of_another(
        db, bridge_a: EventBridge, process_b: ProcessB) -> None:
    process_b.route_table = table = RouteTable()
    await table.load()
    try:
        admin = await make_actor(Role.ADMIN)
        await routes.put_route(admin, routes.RouteData('sms-elsewhere', Channel.SMS, 'simulator'))
        await until(lambda: 'sms-elsewhere' in table.routes, 'process B to load the new route')
        assert RoutesChanged(('sms-elsewhere',)) in process_b.others
    finally:
        await table.close()


async def terminate(backend_pid: int) -> None:
    connection = await asyncpg.connect(dsn())
    try:
        assert await connection.fetchval('SELECT pg_terminate_backend($1)', backend_pid)
    finally:
        await connection.close()


@postgres_only
async def test_both_ends_connect_again_after_losing_their_connection(
        bridge_a: EventBridge, process_b: ProcessB) -> None:
    await terminate(process_b.bridge.backend_pid)
    await until(lambda: process_b.bridge.connections == 2 and process_b.bridge.listening.is_set(),
                'process B to listen again')
    assert RoutesChanged(()) in process_b.others  # routes may have changed meanwhile: its engine reloads them
    first = changes(10)
    events.publish(first)
    await until(lambda: len(process_b.changes) == 10, 'the changes sent after B came back')

    await terminate(bridge_a.backend_pid)
    second = changes(10)
    events.publish(second)  # waits in A's buffer until A is connected again
    await until(lambda: len(process_b.changes) == 20, 'the changes A sent while it connected again')
    assert bridge_a.connections == 2
    assert {c.message_id for c in process_b.changes} == {c.message_id for c in first + second}
