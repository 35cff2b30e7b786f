"""Status changes of messages, in batches: one guarded UPDATE per target status (a late or duplicate report cannot
move a message back), the timeline events, the cascade to the next channel, client callbacks and domain events."""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from . import events, sql
from .channels import Channel
from .providers import DeliveryReport
from .statuses import MessageStatus, sources

_S = MessageStatus
HANDED_OVER = frozenset({_S.UNDELIVERED, _S.ERROR, _S.EXPIRED})
DELIVERED = frozenset({_S.DELIVERED, _S.READ})
_TIMESTAMPS = {_S.SENT: 'sent_at', _S.PENDING: 'sent_at', _S.DELIVERED: 'delivered_at', _S.READ: 'delivered_at'}


@dataclass(frozen=True)
class StatusChange:
    message_id: str
    status: MessageStatus
    description: str = ''


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def change_status(changes: Iterable[StatusChange], at: datetime | None = None) -> list[dict[str, Any]]:
    """Apply what the status machine allows; returns the rows that moved (id, notification_id, step_index, channel,
    status). Everything else (a duplicate, a late report, a message already ended) changes nothing."""
    at = at or _now()
    groups: dict[tuple[MessageStatus, str], list[str]] = defaultdict(list)
    for change in changes:
        groups[(change.status, change.description or change.status.description)].append(str(change.message_id))
    moved: list[dict[str, Any]] = []
    for (status, description), ids in groups.items():
        for chunk in sql.chunks(ids):
            moved += await _move(chunk, status, description, at)
    if moved:
        await _after_moves(moved, at)
    return moved


async def _move(ids: list[str], status: MessageStatus, description: str, at: datetime) -> list[dict[str, Any]]:
    allowed = sorted(s.value for s in sources(status))
    stamps = ', '.join(f'"{column}" = ?' for column in _stamp_columns(status))
    rows = await sql.execute(
        f'UPDATE messages SET status = ?, status_description = ?, updated_at = ?{", " + stamps if stamps else ""}, '
        f'lease_until = NULL, claimed_by = NULL WHERE id IN {sql.in_list(len(ids))} '
        f'AND status IN {sql.in_list(len(allowed))} '
        'RETURNING id, notification_id, step_index, channel, validity_minutes',
        [status, description[:500], at, *([at] * len(_stamp_columns(status))), *ids, *allowed])
    for row in rows:
        row['status'] = status
        row['description'] = description
    return rows


def _stamp_columns(status: MessageStatus) -> list[str]:
    columns = [_TIMESTAMPS[status]] if status in _TIMESTAMPS else []
    if status.is_terminal:
        columns.append('ended_at')
    return columns


async def _after_moves(moved: list[dict[str, Any]], at: datetime) -> None:
    await sql.insert_many('message_events', ('message_id', 'at', 'status', 'description', 'details'),
                          [(row['id'], at, row['status'], row['description'], {}) for row in moved])
    await _set_expiry([row for row in moved if row['status'] is _S.SENT and row['validity_minutes']], at)
    await _queue_callbacks(moved, at)
    await _cascade(moved, at)
    events.publish([events.MessageChanged(str(row['id']), str(row['notification_id']), Channel(row['channel']),
                                          row['status'], at) for row in moved])


async def _set_expiry(sent: list[dict[str, Any]], at: datetime) -> None:
    await sql.execute_many('UPDATE messages SET expires_at = ? WHERE id = ?',
                           [(at + timedelta(minutes=row['validity_minutes']), row['id']) for row in sent])


async def _cascade(moved: list[dict[str, Any]], at: datetime) -> None:
    """A step that ended without delivery hands over to the next one; a delivery makes the remaining steps needless,
    except `required` ones, which are sent whatever happened before them."""
    ended = {str(row['notification_id']): row for row in moved if row['status'] in HANDED_OVER | DELIVERED}
    if not ended:
        return
    waiting: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for chunk in sql.chunks(list(ended)):
        for row in await sql.execute(
                'SELECT id, notification_id, step_index, required FROM messages WHERE status = ? '
                f'AND notification_id IN {sql.in_list(len(chunk))} ORDER BY step_index', [_S.CREATED, *chunk]):
            waiting[str(row['notification_id'])].append(row)
    next_steps: list[StatusChange] = []
    handed_over: list[str] = []
    for notification_id, row in ended.items():
        later = [step for step in waiting.get(notification_id, []) if step['step_index'] > row['step_index']]
        if row['status'] in DELIVERED:
            next_steps += [StatusChange(str(step['id']), _S.QUEUED if step['required'] else _S.SKIPPED,
                                        'Required step' if step['required'] else 'Not needed: delivered earlier')
                           for step in later]
        elif later:
            handed_over.append(str(row['id']))
            next_steps.append(StatusChange(str(later[0]['id']), _S.QUEUED, f'Fallback after {row["channel"]}'))
    for chunk in sql.chunks(handed_over):
        await sql.execute(f'UPDATE messages SET handed_over = ? WHERE id IN {sql.in_list(len(chunk))}', [True, *chunk])
    queued = [change.message_id for change in next_steps if change.status is _S.QUEUED]
    for chunk in sql.chunks(queued):
        await sql.execute(f'UPDATE messages SET due_at = ? WHERE id IN {sql.in_list(len(chunk))}', [at, *chunk])
    if next_steps:
        await change_status(next_steps, at)


async def _queue_callbacks(moved: list[dict[str, Any]], at: datetime) -> None:
    """The client's callbackUrl hears of every change, through an outbox a worker delivers from."""
    notifications = list({str(row['notification_id']) for row in moved})
    targets: dict[str, dict[str, Any]] = {}
    for chunk in sql.chunks(notifications):
        for row in await sql.execute(
                'SELECT id, callback_url, callback_data FROM notifications WHERE callback_url IS NOT NULL '
                f'AND id IN {sql.in_list(len(chunk))}', chunk):
            targets[str(row['id'])] = row
    rows = []
    for change in moved:
        target = targets.get(str(change['notification_id']))
        if target:
            body = {'id': str(change['id']), 'newStatus': change['status'].value, 'statusCode': change['status'].code,
                    'statusDescription': change['description'], 'channel': change['channel'],
                    'callbackData': target['callback_data'], 'changedAt': at.isoformat()}
            rows.append((change['id'], target['callback_url'], json.dumps(body, ensure_ascii=False), 0, at, False, '', at))
    await sql.insert_many('callback_deliveries', ('message_id', 'url', 'body', 'attempts', 'next_attempt_at', 'failed',
                                                  'last_error', 'created_at'), rows)


async def apply_reports(provider: str, reports: list[DeliveryReport]
                        ) -> tuple[list[dict[str, Any]], list[DeliveryReport]]:
    """Delivery reports of one provider, matched by its message ids: the rows that moved, and the reports that
    matched no message (yet: a fast provider can report before its answer to the send is recorded)."""
    by_provider_id = {report.provider_message_id: report for report in reports}
    known: dict[str, str] = {}
    for chunk in sql.chunks(list(by_provider_id)):
        for row in await sql.execute(
                'SELECT id, provider_message_id FROM messages WHERE provider = ? '
                f'AND provider_message_id IN {sql.in_list(len(chunk))}', [provider, *chunk]):
            known[row['provider_message_id']] = str(row['id'])
    networks = [(by_provider_id[pid].network, message_id) for pid, message_id in known.items()
                if by_provider_id[pid].network]
    await sql.execute_many('UPDATE messages SET network = ? WHERE id = ?', networks)
    moved = await change_status(StatusChange(message_id, by_provider_id[pid].status, by_provider_id[pid].description)
                                for pid, message_id in known.items())
    return moved, [report for pid, report in by_provider_id.items() if pid not in known]
