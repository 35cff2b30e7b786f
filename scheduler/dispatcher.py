"""The dispatcher: claims due messages in batches and hands them to their providers.

A claimed message carries a lease; `send_started_at` is written before the provider call and the outcome after it.
So after a crash a message never handed over is claimed again when its lease ends, and one whose outcome is
unknown is flagged `in_doubt` and ended, never sent twice (see `recover_in_doubt`)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tortoise.transactions import in_transaction

from domain import sql, windows
from domain.channels import Channel
from domain.delivery import StatusChange, change_status
from domain.models import TaskStatus
from domain.providers import OutgoingMessage, SendResult
from domain.statuses import MessageStatus

from .routes import Route, RouteTable

log = logging.getLogger(__name__)
_S = MessageStatus
MAX_ATTEMPTS = 5
BACKOFF_SECONDS = (5, 30, 120, 600)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Claimed:
    row: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.row['id'])

    @property
    def channel(self) -> Channel:
        return Channel(self.row['channel'])

    def outgoing(self) -> OutgoingMessage:
        params = self.row['params']
        return OutgoingMessage(
            id=self.id, channel=self.channel, recipient=self.row['recipient'], text=self.row['text'],
            sender=self.row['sender'], subject=self.row['subject'], html=self.row['html'], parts=self.row['parts'],
            params=json.loads(params) if isinstance(params, str) else params)


class Dispatcher:
    def __init__(self, routes: RouteTable, batch_size: int = 500, lease_seconds: int = 120) -> None:
        self.routes = routes
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.worker_id = f'{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}'
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name='herald-dispatcher')

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        """New messages are waiting: no need to wait for the next poll."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                handled = await self.dispatch_once()
            except Exception:  # noqa: BLE001 - keep dispatching; the failed batch's leases expire and it is retried
                log.exception('Dispatching a batch failed')
                handled = 0
            if handled < self.batch_size:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=0.5)
                except TimeoutError:
                    pass

    async def dispatch_once(self) -> int:
        """Claim one batch and settle it; returns how many messages were claimed."""
        claimed = await self._claim()
        if not claimed:
            return 0
        now = _now()
        paused = await self._paused_tasks({str(c.row['task_id']) for c in claimed if c.row['task_id']})
        changes: list[StatusChange] = []
        delays: list[tuple[datetime, str]] = []
        by_route: dict[str, list[Claimed]] = defaultdict(list)
        for message in claimed:
            if message.row['task_id'] and str(message.row['task_id']) in paused:
                changes.append(StatusChange(message.id, _S.PAUSED))
                continue
            opening = self._opening(message, now)
            if opening is not None:
                delays.append((opening, message.id))
                continue
            route = self.routes.for_channel(message.channel)
            if route is None:
                changes.append(StatusChange(message.id, _S.ERROR, f'No provider route serves {message.channel.label}'))
                continue
            by_route[route.name].append(message)
        await sql.execute_many('UPDATE messages SET due_at = ? WHERE id = ?', delays)
        changes += [StatusChange(message_id, _S.DELAYED) for _, message_id in delays]
        await change_status(changes, now)
        await asyncio.gather(*(self._send(self.routes.routes[name], messages) for name, messages in by_route.items()))
        return len(claimed)

    def _opening(self, message: Claimed, now: datetime) -> datetime | None:
        """When the message's window opens, or None when it is open now."""
        ranges = message.row['allowed_time_ranges']
        ranges = json.loads(ranges) if isinstance(ranges, str) else ranges
        if not ranges:
            return None
        window = windows.window(ranges)
        zone = message.row['time_zone'] or 'UTC'
        return None if window.is_open(now, zone) else window.next_opening(now, zone)

    async def _claim(self) -> list[Claimed]:
        now = _now()
        lock = ' FOR UPDATE OF m SKIP LOCKED' if sql.is_postgres() else ''
        async with in_transaction():
            rows = await sql.execute(
                'SELECT m.id, m.task_id, m.channel, m.recipient, m.sender, m.subject, m.text, m.html, m.params, '
                'm.parts, m.attempt, n.allowed_time_ranges, n.time_zone FROM messages m '
                'JOIN notifications n ON n.id = m.notification_id '
                'WHERE m.status = ? AND m.due_at <= ? AND (m.lease_until IS NULL OR m.lease_until < ?) '
                f'AND m.send_started_at IS NULL ORDER BY m.due_at LIMIT ?{lock}',
                [_S.QUEUED, now, now, self.batch_size])
            if rows:
                ids = [str(row['id']) for row in rows]
                await sql.execute(f'UPDATE messages SET lease_until = ?, claimed_by = ? WHERE id IN {sql.in_list(len(ids))}',
                                  [now + self.lease, self.worker_id, *ids])
        return [Claimed(row) for row in rows]

    async def _paused_tasks(self, task_ids: set[str]) -> set[str]:
        if not task_ids:
            return set()
        rows = await sql.execute(f'SELECT id FROM tasks WHERE status = ? AND id IN {sql.in_list(len(task_ids))}',
                                 [TaskStatus.PAUSED, *task_ids])
        return {str(row['id']) for row in rows}

    async def _send(self, route: Route, messages: list[Claimed]) -> None:
        ids = [m.id for m in messages]
        started = _now()
        for chunk in sql.chunks(ids):
            await sql.execute(f'UPDATE messages SET send_started_at = ?, attempt = attempt + 1, provider = ? '
                              f'WHERE id IN {sql.in_list(len(chunk))}', [started, route.provider_name, *chunk])
        results = await route.send([m.outgoing() for m in messages])
        await self._settle(results, {m.id: m for m in messages})

    async def _settle(self, results: list[SendResult], messages: dict[str, Claimed]) -> None:
        now = _now()
        accepted = [r for r in results if r.accepted]
        await sql.execute_many('UPDATE messages SET provider_message_id = ? WHERE id = ?',
                               [(r.provider_message_id, r.message_id) for r in results if r.provider_message_id])
        await sql.execute_many('UPDATE messages SET in_doubt = ? WHERE id = ?',
                               [(True, r.message_id) for r in results if r.in_doubt])
        changes = [StatusChange(r.message_id, r.status) for r in accepted]
        retries = []
        for result in results:
            if result.accepted:
                continue
            attempt = messages[result.message_id].row['attempt'] + 1
            if result.transient and attempt < MAX_ATTEMPTS:
                delay = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1]
                retries.append((now + timedelta(seconds=delay), result.error[:500], result.message_id))
            else:
                changes.append(StatusChange(result.message_id, _S.ERROR, result.error or 'The provider refused it'))
        await sql.execute_many(
            'UPDATE messages SET due_at = ?, status_description = ?, send_started_at = NULL, lease_until = NULL, '
            'claimed_by = NULL WHERE id = ?', retries)
        await change_status(changes, now)


async def recover_in_doubt(older_than: timedelta = timedelta(0)) -> int:
    """Messages handed to a provider whose outcome was never recorded (the process died mid-call): they may or may
    not have gone out, so they end ERROR flagged `in_doubt` for an operator, never re-sent blindly."""
    cutoff = _now() - older_than
    rows = await sql.execute(
        'SELECT id FROM messages WHERE status = ? AND send_started_at IS NOT NULL AND lease_until < ?',
        [_S.QUEUED, cutoff])
    ids = [str(row['id']) for row in rows]
    for chunk in sql.chunks(ids):
        await sql.execute(f'UPDATE messages SET in_doubt = ? WHERE id IN {sql.in_list(len(chunk))}', [True, *chunk])
    await change_status([StatusChange(i, _S.ERROR, 'Outcome unknown: the sender stopped during the hand-over. '
                                               'Check with the provider before sending again.') for i in ids])
    return len(ids)


async def release_delayed() -> int:
    """DELAYED messages whose window has opened go back to the queue."""
    rows = await sql.execute('SELECT id FROM messages WHERE status = ? AND due_at <= ?', [_S.DELAYED, _now()])
    return len(await change_status([StatusChange(str(row['id']), _S.QUEUED) for row in rows]))


async def expire_overdue() -> int:
    """Sent messages without a delivery report within their validity period end EXPIRED (the cascade goes on)."""
    rows = await sql.execute('SELECT id FROM messages WHERE status IN (?, ?) AND expires_at <= ?',
                             [_S.SENT, _S.PENDING, _now()])
    return len(await change_status([StatusChange(str(row['id']), _S.EXPIRED) for row in rows]))
