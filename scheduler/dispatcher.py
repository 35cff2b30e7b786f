"""The dispatcher: claims due messages in batches, one loop per channel, and hands them to their providers.

A claimed batch carries a lease (long enough for the route's rate limit), so no other claim takes it. Each slice the
route sends is recorded as handed over (`send_started_at`) right before its provider call and settled right after
it. So after a crash a message never handed over is claimed again when its lease ends, and one whose outcome was
never recorded is flagged `in_doubt` and ended, never sent twice (see `recover_in_doubt`). While a batch is with
its provider the next one is claimed, up to `batches_in_flight` per channel, so the database and the providers work
at the same time."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tortoise.transactions import in_transaction

from domain import metrics, sql, windows
from domain.background import Background
from domain.channels import Channel
from domain.delivery import StatusChange, change_status
from domain.failover import RouteState
from domain.models import TaskStatus
from domain.providers import OutgoingMessage, SendResult
from domain.statuses import MessageStatus

from .routes import Route, RouteTable

log = logging.getLogger(__name__)
_S = MessageStatus
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = (5, 30, 120, 600)
SECONDS_PER_BATCH = 5  # a rate-limited route gets batches it can send in about this long


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _json(value: Any) -> Any:
    """A JSON column as a raw query returns it: text on SQLite (and for JSONB through asyncpg), mostly empty."""
    if value == '{}':
        return {}
    return json.loads(value) if isinstance(value, str) else value


@dataclass
class Claimed:
    row: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.row['id'])

    def outgoing(self) -> OutgoingMessage:
        row = self.row
        return OutgoingMessage(
            id=self.id, channel=Channel(row['channel']), recipient=row['recipient'], text=row['text'],
            sender=row['sender'], subject=row['subject'], html=row['html'], parts=row['parts'],
            params=_json(row['params']))


@dataclass(eq=False)  # a batch is itself: kept in a set while in flight
class Batch:
    """Claimed messages that go to one route."""
    route: Route
    messages: list[Claimed]
    reserved: bool = False  # the route had room for them at once: already recorded as handed over


@dataclass
class Claim:
    """What one claim of a channel took: `claimed` messages, sent in `batches` (the rest were settled at once).
    `route` is the one the channel sends through now."""
    route: Route | None
    claimed: int = 0
    batches: list[Batch] = field(default_factory=list)


class Dispatcher:
    def __init__(self, routes: RouteTable, batch_size: int = 1000, lease_seconds: float = 60,
                 batches_in_flight: int = 3) -> None:
        self.routes = routes
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.batches_in_flight = batches_in_flight
        self.worker_id = f'{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}'
        self._background = Background()
        self._wake = {channel: asyncio.Event() for channel in Channel}
        self._in_flight: set[Batch] = set()

    def start(self) -> None:
        self._background = Background()
        for channel in Channel:
            self._background.start(self._serve(channel), name=f'herald-dispatch-{channel.value}')
        self._background.start(self._renew_leases(), name='herald-dispatch-leases')

    async def _renew_leases(self) -> None:
        """Keep the leases of the batches in hand from running out while their provider is slow: a lease that ran
        out would let another process claim a message again, or flag one being sent as in doubt. A process that
        dies stops renewing, and its messages come free a lease later. Rows another statement of this process
        holds are skipped (waiting for them deadlocked with the hand-over and the settlement, which lock the same
        rows in another order): those are getting a fresh lease or none, and any other gets the next round."""
        while not self._background.closing:
            await self._background.pause(self.lease.total_seconds() / 3)
            ids = [message.id for batch in self._in_flight for message in batch.messages]
            if not ids:
                continue
            lease_until = _now() + self.lease
            try:
                await sql.execute(  # rows locked now are being handed over or settled: never wait for them
                    "UPDATE messages SET lease_until = ? WHERE id IN (SELECT id FROM messages WHERE "
                    f"id {sql.any_of('uuid')} AND claimed_by = ? AND lease_until < ? AND {sql.unindexed('status')} = ?"
                    f"{sql.skip_locked('messages')})",
                    [lease_until, sql.Many(ids), self.worker_id, lease_until, _S.QUEUED])
            except Exception:  # noqa: BLE001 - try again at the next round; leases are long enough for a few
                log.exception('Renewing the leases of %d messages failed', len(ids))

    async def stop(self) -> None:
        """Stop claiming; batches already with a provider are settled first (so they are not left in doubt)."""
        await self._background.close()

    def wake(self) -> None:
        """New messages are waiting: no need to wait for the next poll."""
        for event in self._wake.values():
            event.set()

    async def dispatch_once(self) -> int:
        """Claim one batch of every channel and settle them; returns how many messages were claimed."""
        claims = [await self._claim(channel) for channel in Channel]
        await asyncio.gather(*(self._deliver(batch) for claim in claims for batch in claim.batches if batch.messages))
        return sum(claim.claimed for claim in claims)

    async def _serve(self, channel: Channel) -> None:
        in_flight: set[asyncio.Task] = set()
        while not self._background.closing:
            while len(in_flight) >= self.batches_in_flight:
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            try:
                claim = await self._claim(channel)
            except Exception:  # noqa: BLE001 - keep dispatching: nothing of a failed claim was committed
                log.exception('Claiming %s messages failed', channel.label)
                claim = Claim(None)
            for batch in claim.batches:
                if batch.messages:
                    task = self._background.start(self._deliver(batch), name=f'herald-deliver-{channel.value}')
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
            if claim.claimed < self._limit(claim.route):
                self._wake[channel].clear()
                await self._background.pause(0.5, self._wake[channel])

    def _limit(self, route: Route | None) -> int:
        if route is None:
            return self.batch_size
        return max(1, min(self.batch_size, int(route.bucket.rate * SECONDS_PER_BATCH)))

    async def _claim(self, channel: Channel) -> Claim:
        """Take due messages of a channel: paused tasks' ones end PAUSED, those outside their window DELAYED, the
        rest are marked handed over to the channel's route (or the route a message is pinned to), all in one
        transaction."""
        route = self.routes.for_channel(channel)
        now = _now()
        async with in_transaction():
            rows = await sql.execute(
                'SELECT m.id, m.task_id, m.channel, m.recipient, m.sender, m.subject, m.text, m.html, m.params, '
                'm.parts, m.attempt, m.pinned_route_id, m.due_at, n.allowed_time_ranges, n.time_zone FROM messages m '
                'JOIN notifications n ON n.id = m.notification_id '
                f"WHERE m.status = '{_S.QUEUED.value}' AND m.channel = ? AND m.due_at <= ? "  # the partial index's terms
                'AND m.send_started_at IS NULL AND (m.lease_until IS NULL OR m.lease_until < ?) '
                f"ORDER BY m.due_at LIMIT ?{sql.skip_locked('m')}", [channel, now, now, self._limit(route)])
            if not rows:
                return Claim(route)
            changes, to_send = await self._plan([Claimed(row) for row in rows], route, now)
            batches = [Batch(target, messages) for target, messages in to_send.items()]
            try:
                for batch in batches:
                    batch.reserved = await batch.route.reserve(len(batch.messages))
                    await self._lease(batch.route, batch.messages, batch.reserved, now)
                await change_status(changes, now)
            except BaseException:
                for batch in batches:
                    if batch.reserved:
                        batch.route.slots.release()
                raise
        return Claim(route, len(rows), batches)

    async def _lease(self, route: Route, messages: list[Claimed], handed_over: bool, now: datetime) -> None:
        """Reserve the messages for this dispatcher until they are sent; when the route has room for them right
        now, they are recorded as handed over at once (saving `_hand_over`'s write)."""
        if handed_over:
            await self._record(messages, now + self.lease, route, now)
        else:
            await self._record(messages, now + self.lease + timedelta(seconds=len(messages) / route.bucket.rate))

    async def _record(self, messages: list[Claimed] | list[OutgoingMessage], lease_until: datetime,
                      route: Route | None = None, handed_over_at: datetime | None = None,
                      still_ours: bool = False) -> set[str]:
        """Lease the messages to this dispatcher; with a route, also record them as handed over to it. With
        `still_ours`, only those still leased to this dispatcher and not yet handed over are; returns their ids."""
        handed_over = ', send_started_at = ?, provider = ?, route_id = ?, attempt = attempt + 1' if route else ''
        ids = [message.id for message in messages]
        fence = ' AND claimed_by = ? AND send_started_at IS NULL RETURNING id' if still_ours else ''
        rows = await sql.execute(
            f"UPDATE messages SET lease_until = ?, claimed_by = ?{handed_over} WHERE id {sql.any_of('uuid')}{fence}",
            [lease_until, self.worker_id, *((handed_over_at, route.provider_name, route.id) if route else ()),
             sql.Many(ids), *((self.worker_id,) if still_ours else ())])
        return {str(row['id']) for row in rows} if still_ours else set(ids)

    async def _plan(self, claimed: list[Claimed], route: Route | None, now: datetime
                    ) -> tuple[list[StatusChange], dict[Route, list[Claimed]]]:
        """What becomes of each claimed message: status changes, and the messages to send by route."""
        paused = await self._paused_tasks({str(c.row['task_id']) for c in claimed if c.row['task_id']})
        openings: dict[tuple[Any, str], datetime | None] = {}
        changes: list[StatusChange] = []
        delays: list[tuple[datetime, str]] = []
        to_send: dict[Route, list[Claimed]] = {}
        for message in claimed:
            row = message.row
            if row['task_id'] and str(row['task_id']) in paused:
                changes.append(StatusChange(message.id, _S.PAUSED))
                continue
            key = (row['allowed_time_ranges'], row['time_zone'] or 'UTC')
            if key not in openings:
                openings[key] = _opening(_json(key[0]), key[1], now)
            target = self.routes.by_id(row['pinned_route_id']) if row['pinned_route_id'] else route
            if openings[key] is not None:
                delays.append((openings[key], message.id))
            elif target is None:
                changes.append(StatusChange(message.id, _S.ERROR, _no_route(row)))
            else:
                to_send.setdefault(target, []).append(message)
        await sql.execute_many('UPDATE messages SET due_at = ? WHERE id = ?', delays)
        return changes + [StatusChange(message_id, _S.DELAYED) for _, message_id in delays], to_send

    async def _paused_tasks(self, task_ids: set[str]) -> set[str]:
        if not task_ids:
            return set()
        rows = await sql.execute(f"SELECT id FROM tasks WHERE status = ? AND id {sql.any_of('uuid')}",
                                 [TaskStatus.PAUSED, sql.Many(task_ids)])
        return {str(row['id']) for row in rows}

    async def _deliver(self, batch: Batch) -> None:
        messages = {message.id: message for message in batch.messages}

        async def settle(results: list[SendResult]) -> None:
            await self._settle(results, messages, batch.route)
        outgoing = [message.outgoing() for message in batch.messages]
        self._in_flight.add(batch)
        try:
            if batch.reserved:
                await batch.route.send_reserved(outgoing, settle)
            else:
                await batch.route.send(outgoing, self._hand_over, settle)
        except Exception:  # noqa: BLE001 - the batch's leases run out: unsent messages are claimed again
            log.exception('Sending a batch of %d messages failed', len(batch.messages))
        finally:
            self._in_flight.discard(batch)

    async def _hand_over(self, route: Route, messages: list[OutgoingMessage]) -> list[OutgoingMessage]:
        """Record the messages as handed over and return those to send: from here until settled, their outcome is
        unknown if the process dies. Only messages still leased to this dispatcher go; one whose lease ran out
        while it waited for the rate limit (the process stalled longer than a lease) may be another's now."""
        now = _now()
        ours = await self._record(messages, now + self.lease, route, now, still_ours=True)
        if len(ours) < len(messages):
            log.warning('%d messages were no longer leased to this process at their hand-over: not sent',
                        len(messages) - len(ours))
        return [message for message in messages if message.id in ours]

    async def _settle(self, results: list[SendResult], messages: dict[str, Claimed], route: Route) -> None:
        """Record the results; messages failed for the provider's sake are retried with backoff, or at once when
        the route's backup carries its traffic now."""
        now = _now()
        failing_over = route.health.state is RouteState.FAILING and self.routes.backup_of(route) is not None
        changes: list[StatusChange] = []
        retries: list[tuple[datetime, str, str]] = []
        for result in results:
            attempt = messages[result.message_id].row['attempt'] + 1
            if result.accepted:
                changes.append(StatusChange(result.message_id, result.status,
                                            provider_message_id=result.provider_message_id))
            elif result.transient and not result.in_doubt and attempt < MAX_ATTEMPTS:
                delay = 0 if failing_over else BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1]
                retries.append((now + timedelta(seconds=delay), result.error[:500], result.message_id))
            else:
                changes.append(StatusChange(result.message_id, _S.ERROR, result.error or 'The provider refused it',
                                            provider_message_id=result.provider_message_id))
        in_doubt = [result.message_id for result in results if result.in_doubt]
        async with in_transaction():
            if in_doubt:
                await sql.execute(f"UPDATE messages SET in_doubt = ? WHERE id {sql.any_of('uuid')}",
                                  [True, sql.Many(in_doubt)])
            await sql.execute_many(
                'UPDATE messages SET due_at = ?, status_description = ?, send_started_at = NULL, lease_until = NULL, '
                'claimed_by = NULL WHERE id = ?', retries)
            await change_status(changes, now)
        metrics.settled(route.channel, route.provider_name, results, {message_id for *_, message_id in retries},
                        lambda message_id: messages[message_id].row['due_at'])


def _no_route(row: dict[str, Any]) -> str:
    if row['pinned_route_id']:
        return 'The route this message must go through is not enabled'
    return f'No provider route serves {row["channel"]}'


def _opening(ranges: list[list[str]] | None, zone: str, now: datetime) -> datetime | None:
    """When a sending window opens, or None when it is open now (or there is none)."""
    if not ranges:
        return None
    window = windows.window(ranges)
    return None if window.is_open(now, zone) else window.next_opening(now, zone)


async def recover_in_doubt(older_than: timedelta = timedelta(0)) -> int:
    """Messages handed to a provider whose outcome was never recorded (the process died mid-call): they may or may
    not have gone out, so they end ERROR flagged `in_doubt` for an operator, never re-sent blindly."""
    cutoff = _now() - older_than
    rows = await sql.execute(
        f"SELECT id FROM messages WHERE lease_until < ? AND {sql.unindexed('status')} = ? "
        'AND send_started_at IS NOT NULL',
        [cutoff, _S.QUEUED])
    ids = [str(row['id']) for row in rows]
    if not ids:
        return 0
    async with in_transaction():
        await sql.execute(f"UPDATE messages SET in_doubt = ? WHERE id {sql.any_of('uuid')}", [True, sql.Many(ids)])
        await change_status([StatusChange(i, _S.ERROR, 'Outcome unknown: the sender stopped during the hand-over. '
                                                   'Check with the provider before sending again.') for i in ids])
    return len(ids)


async def release_delayed() -> int:
    """DELAYED messages whose window has opened go back to the queue."""
    rows = await sql.execute(f"SELECT id FROM messages WHERE status = '{_S.DELAYED.value}' AND due_at <= ?", [_now()])
    return len(await change_status([StatusChange(str(row['id']), _S.QUEUED) for row in rows]))


async def expire_overdue() -> int:
    """Sent messages without a delivery report within their validity period end EXPIRED (the cascade goes on)."""
    rows = await sql.execute(f"SELECT id FROM messages WHERE expires_at <= ? AND {sql.unindexed('status')} IN (?, ?)",
                             [_now(), _S.SENT, _S.PENDING])
    return len(await change_status([StatusChange(str(row['id']), _S.EXPIRED) for row in rows]))
