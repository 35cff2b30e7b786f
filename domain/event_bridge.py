"""Live pages across processes: the domain events of every Herald process on one PostgreSQL database reach the
listeners of every other one (pages, the engine's route table, the tasks page), through LISTEN/NOTIFY.

Events published here are buffered and sent every `FLUSH_SECONDS` (sooner once `LARGE` are waiting), packed into
NOTIFY payloads of at most `MAX_PAYLOAD` bytes: thousands of status changes a second make tens of NOTIFYs, not
thousands. A payload is compact JSON, about 180 status changes in 8 kB:

    {"o": origin, "n": number,
     "m": [[channel, status, at (ISO 8601), base64 of the 16-byte message and notification UUIDs, one pair after
            the other, [ids that are not UUIDs, in pairs]?], …],
     "t": [task id, …], "r": [[route name, …], …]}

Each process has its own origin and skips its own payloads (its listeners heard them when they were published).
Remote events go to `events.deliver`, which never forwards them again. A lost connection is made again with a
growing pause; meanwhile events wait in the buffer (the oldest are dropped beyond `MAX_BUFFERED`: pages read the
database anyway), and publishing never waits. On SQLite there is one process, and no bridge."""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

import asyncpg

from . import events
from .channels import Channel
from .cluster import postgres_dsn
from .events import Event, MessageChanged, RoutesChanged, TaskChanged
from .statuses import MessageStatus

log = logging.getLogger(__name__)

CHANNEL = 'herald_events'
FLUSH_SECONDS = 0.1
LARGE = 2000  # buffered events that are sent at once
FLUSH_MOST = 5000  # events packed in one go (about 30 ms; the event loop runs other work between)
MAX_PAYLOAD = 7900  # bytes; PostgreSQL refuses payloads of 8000 bytes and more
MAX_BUFFERED = 200_000
ROUTE_NAMES_PER_EVENT = 8
KEEPALIVE_SECONDS = 15.0
TIMEOUT_SECONDS = 10.0
BACKOFF_SECONDS = (0.5, 30.0)
STOP_SECONDS = 5.0

Buffered = MessageChanged | RoutesChanged | TaskChanged


class ConnectionLost(Exception):
    pass


CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionLost)


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(',', ':'))


_UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')


def _uuid_text(hex_digits: str, at: int) -> str:
    return (f'{hex_digits[at:at + 8]}-{hex_digits[at + 8:at + 12]}-{hex_digits[at + 12:at + 16]}-'
            f'{hex_digits[at + 16:at + 20]}-{hex_digits[at + 20:at + 32]}')


def _base64_length(size: int) -> int:
    return (size + 2) // 3 * 4


class _Group:
    """The message changes of one payload with one channel, status and time."""

    def __init__(self, key: list[str]) -> None:
        self.key = key
        self.ids = bytearray()  # 16 bytes a UUID: message, notification, message, …
        self.raw: list[str] = []  # pairs of ids that are not UUIDs in canonical form

    def pair_cost(self) -> int:
        """How much longer the base64 of `ids` grows with one more pair."""
        return _base64_length(len(self.ids) + 32) - _base64_length(len(self.ids))

    def as_json(self) -> list:
        return [*self.key, base64.b64encode(self.ids).decode(), *([self.raw] if self.raw else [])]


class _Packer:
    """Packs events into payloads, each under MAX_PAYLOAD bytes (sizes are counted as upper bounds)."""

    def __init__(self, origin: str, numbers: Iterator[int]) -> None:
        self.origin = origin
        self.numbers = numbers
        self.empty = len(_dumps({'o': origin, 'n': 10 ** 20, 'm': [], 't': [], 'r': []}))
        self.keys: dict[tuple, tuple[list[str], int]] = {}
        self.payloads: list[str] = []
        self._begin()

    def _begin(self) -> None:
        self.groups: dict[tuple, _Group] = {}
        self.tasks: list[str] = []
        self.routes: list[list[str]] = []
        self.size = self.empty

    def finish(self) -> list[str]:
        if self.size > self.empty:
            payload = {'o': self.origin, 'n': next(self.numbers), 'm': [g.as_json() for g in self.groups.values()],
                       't': self.tasks, 'r': self.routes}
            self.payloads.append(_dumps({key: value for key, value in payload.items() if value != []}))
            self._begin()
        return self.payloads

    def _room(self, cost: int) -> bool:
        """Start a new payload if this one has no room for `cost` more bytes; False when no payload has."""
        if self.empty + cost > MAX_PAYLOAD:
            log.warning('An event too large for a NOTIFY (%d bytes) is not sent to the other processes', cost)
            return False
        if self.size + cost > MAX_PAYLOAD:
            self.finish()
        self.size += cost
        return True

    def add(self, event: Buffered) -> None:
        if isinstance(event, MessageChanged):
            self._add_change(event)
        elif isinstance(event, TaskChanged):
            if self._room(len(_dumps(event.task_id)) + 1):
                self.tasks.append(event.task_id)
        else:
            names = list(event.names)
            if self._room(len(_dumps(names)) + 1):
                self.routes.append(names)

    def _add_change(self, change: MessageChanged) -> None:
        identity = change.channel, change.status, change.at
        if identity not in self.keys:
            key = [change.channel.value, change.status.value, change.at.isoformat()]
            self.keys[identity] = key, len(_dumps(key)) + len(',"",[]') + 1
        key, group_cost = self.keys[identity]
        ids = change.message_id, change.notification_id
        canonical = all(_UUID.fullmatch(value) for value in ids)
        raw_cost = 0 if canonical else sum(len(_dumps(value)) + 1 for value in ids)
        group = self.groups.get(identity)
        if group is not None:
            cost = group.pair_cost() if canonical else raw_cost
            if self.size + cost <= MAX_PAYLOAD:
                self.size += cost
                self._add_ids(group, ids, canonical)
                return
        if self._room(group_cost + (_base64_length(32) if canonical else raw_cost)):
            self.groups[identity] = group = _Group(key)
            self._add_ids(group, ids, canonical)

    @staticmethod
    def _add_ids(group: _Group, ids: tuple[str, str], canonical: bool) -> None:
        if canonical:
            group.ids += bytes.fromhex((ids[0] + ids[1]).replace('-', ''))
        else:
            group.raw += ids


def encode(origin: str, buffered: Iterable[Buffered], numbers: Iterator[int]) -> list[str]:
    """The NOTIFY payloads that carry these events (the order of events within a payload is not kept)."""
    packer = _Packer(origin, numbers)
    for event in buffered:
        packer.add(event)
    return packer.finish()


def decode(payload: str) -> tuple[str, list[Event]]:
    """The origin of a payload and its events: one batch of message changes, then task and route changes."""
    data = json.loads(payload)
    changes = []
    for channel, status, at, ids, *raw in data.get('m', ()):
        channel, status, at = Channel(channel), MessageStatus(status), datetime.fromisoformat(at)
        digits = base64.b64decode(ids).hex()
        changes += [MessageChanged(_uuid_text(digits, start), _uuid_text(digits, start + 32), channel, status, at)
                    for start in range(0, len(digits), 64)]
        pairs = raw[0] if raw else []
        changes += [MessageChanged(pairs[index], pairs[index + 1], channel, status, at)
                    for index in range(0, len(pairs), 2)]
    decoded: list[Event] = [changes] if changes else []
    decoded += [TaskChanged(task_id) for task_id in data.get('t', ())]
    decoded += [RoutesChanged(tuple(names)) for names in data.get('r', ())]
    return data['o'], decoded


def _route_events(event: RoutesChanged) -> list[RoutesChanged]:
    """A change of many routes (a configuration applied) as several events, each small enough for a payload."""
    names = event.names
    return [RoutesChanged(names[start:start + ROUTE_NAMES_PER_EVENT])
            for start in range(0, len(names), ROUTE_NAMES_PER_EVENT)] or [event]


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


class EventBridge:
    """Sends the events given to `forward` to the other processes on the database, and hands theirs to `deliver`."""

    def __init__(self, dsn: str, origin: str | None = None, deliver: Callable[[Event], None] = events.deliver,
                 channel: str = CHANNEL) -> None:
        self.dsn = dsn
        self.origin = origin or uuid.uuid4().hex[:12]
        self.channel = channel
        self._deliver = deliver
        self._own_prefix = _dumps({'o': self.origin})[:-1] + ','
        self._buffer: deque[Buffered] = deque()
        self._numbers = itertools.count()
        self._pending = asyncio.Event()
        self._large = asyncio.Event()
        self._closing = asyncio.Event()
        self.listening = asyncio.Event()
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task | None = None
        self.connections = 0
        self.sent = 0  # payloads sent
        self.heard_own = 0  # own payloads heard back (and skipped)
        self.received = 0  # payloads of other processes delivered here
        self.dropped = 0  # events dropped while the buffer was full, since the last log line about them

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of the bridge's connection (None while it has none)."""
        connection = self._connection
        return connection.get_server_pid() if connection is not None and not connection.is_closed() else None

    def forward(self, event: Event) -> None:
        """Queue an event for the other processes (`events.forward_to`): never waits."""
        if isinstance(event, list):
            self._buffer.extend(event)
        elif isinstance(event, RoutesChanged):
            self._buffer.extend(_route_events(event))
        else:
            self._buffer.append(event)
        if len(self._buffer) > MAX_BUFFERED:
            self._drop_oldest(len(self._buffer) - MAX_BUFFERED)
        self._pending.set()
        if len(self._buffer) >= LARGE:
            self._large.set()

    def _drop_oldest(self, count: int) -> None:
        if not self.dropped:
            log.warning('%d events wait for the connection to the other Herald processes: dropping the oldest '
                        '(their pages show those changes on their next read of the database)', MAX_BUFFERED)
        for _ in range(count):
            self._buffer.popleft()
        self.dropped += count

    async def start(self) -> None:
        """Connect and listen (waiting a few seconds at most: it goes on trying in the background)."""
        self._task = asyncio.create_task(self._run(), name='herald-event-bridge')
        await _wait(self.listening, TIMEOUT_SECONDS)

    async def stop(self) -> None:
        """Send what is buffered (for a few seconds at most), then close the connection."""
        self._closing.set()
        self._pending.set()
        self._large.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=STOP_SECONDS)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._disconnect()
        if self._buffer:
            log.warning('%d events were not sent to the other Herald processes before shutdown', len(self._buffer))

    async def _run(self) -> None:
        pause = BACKOFF_SECONDS[0]
        while not self._closing.is_set():
            try:
                await self._connect()
                pause = BACKOFF_SECONDS[0]
                await self._serve()
            except Exception as error:  # noqa: BLE001 - whatever failed, events must flow again
                log.warning('The connection that carries events between Herald processes failed (%s); trying again '
                            'in %.1f s', error or type(error).__name__, pause,
                            exc_info=not isinstance(error, CONNECTION_ERRORS))
                await self._disconnect()
                await _wait(self._closing, pause)
                pause = min(pause * 2, BACKOFF_SECONDS[1])

    async def _connect(self) -> None:
        if self._connection is not None:
            return
        connection = await asyncpg.connect(self.dsn, timeout=TIMEOUT_SECONDS,
                                           server_settings={'application_name': 'herald-events'})
        self._connection = connection
        connection.add_termination_listener(self._lost)
        await connection.add_listener(self.channel, self._heard)
        self.connections += 1
        self.listening.set()
        if self.connections > 1:
            log.info('Events flow between Herald processes again')
            self._deliver(RoutesChanged(()))  # routes changed elsewhere meanwhile: reload them

    async def _disconnect(self) -> None:
        self.listening.clear()
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await connection.close(timeout=TIMEOUT_SECONDS)
            except CONNECTION_ERRORS:
                connection.terminate()

    def _lost(self, connection: asyncpg.Connection) -> None:
        """The connection ended (the server went away, or its backend was ended): wake `_serve` to connect again."""
        if connection is not self._connection:
            return
        self.listening.clear()
        self._pending.set()
        self._large.set()

    async def _serve(self) -> None:
        """Send the buffered events every FLUSH_SECONDS (at once when LARGE); check an idle connection now and then."""
        while True:
            if not self._buffer and not await _wait(self._pending, KEEPALIVE_SECONDS):
                await self._live().fetchval('SELECT 1', timeout=TIMEOUT_SECONDS)
                continue
            await _wait(self._large, FLUSH_SECONDS)
            self._pending.clear()
            self._large.clear()
            self._live()
            await self._flush()
            if self._closing.is_set():
                return

    def _live(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            raise ConnectionLost('the connection was closed')
        return self._connection

    async def _flush(self) -> None:
        while self._buffer:
            connection = self._live()
            taken = [self._buffer.popleft() for _ in range(min(len(self._buffer), FLUSH_MOST))]
            payloads = encode(self.origin, taken, self._numbers)
            try:
                await connection.executemany('SELECT pg_notify($1, $2)', [(self.channel, p) for p in payloads],
                                             timeout=TIMEOUT_SECONDS)
            except asyncpg.DataError as error:  # refused as such (sending it again would fail again): drop it
                log.warning('PostgreSQL refused %d events for the other Herald processes: %s', len(taken), error)
                continue
            except BaseException:
                self._buffer.extendleft(reversed(taken))
                self._pending.set()
                raise
            self.sent += len(payloads)
        if self.dropped:
            log.warning('%d events were dropped while the other Herald processes could not be reached', self.dropped)
            self.dropped = 0

    def _heard(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith(self._own_prefix):
            self.heard_own += 1
            return
        try:
            _origin, decoded = decode(payload)
        except (ValueError, LookupError, TypeError) as error:
            log.warning('Skipped an unreadable event payload from another Herald process: %s', error)
            return
        self.received += 1
        for event in decoded:
            try:
                self._deliver(event)
            except Exception:  # noqa: BLE001 - the next events still go to this process's listeners
                log.exception('Delivering an event from another Herald process failed')


_bridge: EventBridge | None = None


async def start(database_url: str) -> EventBridge | None:
    """Bridge this process's events to the other processes on a PostgreSQL database; nothing on SQLite."""
    global _bridge  # noqa: PLW0603
    dsn = postgres_dsn(database_url)
    if dsn is None:
        return None
    _bridge = EventBridge(dsn)
    await _bridge.start()
    events.forward_to(_bridge.forward)
    return _bridge


async def stop() -> None:
    """Stop forwarding, send what is buffered and close the connection."""
    global _bridge  # noqa: PLW0603
    bridge, _bridge = _bridge, None
    if bridge is not None:
        events.forward_to(None)
        await bridge.stop()
