"""Status changes of messages, in batches: one guarded UPDATE per target status (a late or duplicate report cannot
move a message back), the timeline events, the cascade to the next channel, client callbacks and domain events."""
from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from tortoise.transactions import in_transaction

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
    provider_message_id: str | None = None  # recorded with the change (a send's answer)
    network: str = ''  # the recipient's network, when a report names it


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def change_status(changes: Iterable[StatusChange], at: datetime | None = None) -> list[dict[str, Any]]:
    """Apply what the status machine allows, in one transaction; returns the rows that moved (id, notification_id,
    step_index, channel, status, description). Everything else (a duplicate, a late report, a message already ended)
    changes nothing. Listeners hear of the moves once they are committed."""
    at = at or _now()
    async with in_transaction():
        moved = await _apply(changes, at)
    events.publish([events.MessageChanged(str(row['id']), str(row['notification_id']), Channel(row['channel']),
                                          row['status'], at) for row in moved])
    return moved


async def _apply(changes: Iterable[StatusChange], at: datetime) -> list[dict[str, Any]]:
    groups: dict[MessageStatus, dict[str, StatusChange]] = defaultdict(dict)
    for change in changes:
        groups[change.status][str(change.message_id)] = change
    moved: list[dict[str, Any]] = []
    for status, by_id in groups.items():
        moved += await _move(status, list(by_id.values()), at)
    if moved:
        moved += await _after_moves(moved, at)
    return moved


async def _move(status: MessageStatus, changes: list[StatusChange], at: datetime) -> list[dict[str, Any]]:
    """One guarded UPDATE for all the changes to `status`: only messages in a status allowed to move there move."""
    allowed = sorted(s.value for s in sources(status))
    stamps = ''.join(f', "{column}" = ?' for column in _stamp_columns(status))
    rows = await sql.execute(
        f'UPDATE messages SET status = ?, status_description = v.c1, updated_at = ?{stamps}{_expiry_reset(status)}, '
        'provider_message_id = COALESCE(v.c2, messages.provider_message_id), '
        "network = COALESCE(NULLIF(v.c3, ''), messages.network), lease_until = NULL, claimed_by = NULL "
        f"FROM {sql.table_of('uuid', 'text', 'text', 'text')} AS v "
        f"WHERE messages.id = v.c0 AND {sql.unindexed('messages.status')} IN {sql.in_list(len(allowed))} "
        'RETURNING messages.id, messages.notification_id, messages.step_index, messages.channel, '
        'messages.validity_minutes, messages.status_description',
        [status, at, *([at] * len(_stamp_columns(status))),
         *sql.table_values([c.message_id for c in changes],
                           [(c.description or status.description)[:500] for c in changes],
                           [c.provider_message_id for c in changes], [c.network for c in changes]),
         *allowed])
    for row in rows:
        row['status'] = status
        row['description'] = row.pop('status_description')
    return rows


def _stamp_columns(status: MessageStatus) -> list[str]:
    columns = [_TIMESTAMPS[status]] if status in _TIMESTAMPS else []
    if status.is_terminal:
        columns.append('ended_at')
    return columns


def _expiry_reset(status: MessageStatus) -> str:
    """A message that left SENT/PENDING can no longer expire: its expiry is cleared, keeping the index small."""
    return '' if status in (_S.SENT, _S.PENDING) else ', expires_at = NULL'


async def _after_moves(moved: list[dict[str, Any]], at: datetime) -> list[dict[str, Any]]:
    """The timeline, expiry and callbacks of the moved rows; returns the further moves of their cascades."""
    await sql.execute(
        "INSERT INTO message_events (message_id, status, description, at, details) SELECT c0, c1, c2, c3, '{}' "
        f"FROM {sql.table_of('uuid', 'text', 'text', 'timestamptz')} AS v",
        sql.table_values([row['id'] for row in moved], [row['status'].value for row in moved],
                         [row['description'] for row in moved], [at] * len(moved)))
    await _set_expiry([row for row in moved if row['status'] is _S.SENT and row['validity_minutes']], at)
    await _queue_callbacks(moved, at)
    return await _cascade(moved, at)


async def _set_expiry(sent: list[dict[str, Any]], at: datetime) -> None:
    await sql.execute_many('UPDATE messages SET expires_at = ? WHERE id = ?',
                           [(at + timedelta(minutes=row['validity_minutes']), row['id']) for row in sent])


async def _cascade(moved: list[dict[str, Any]], at: datetime) -> list[dict[str, Any]]:
    """A step that ended without delivery hands over to the next one; a delivery makes the remaining steps needless,
    except `required` ones, which are sent whatever happened before them."""
    ended = {str(row['notification_id']): row for row in moved if row['status'] in HANDED_OVER | DELIVERED}
    if not ended:
        return []
    waiting: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in await sql.execute(
            'SELECT id, notification_id, step_index, required FROM messages '
            f"WHERE notification_id {sql.any_of('uuid')} AND {sql.unindexed('status')} = ? ORDER BY step_index",
            [sql.Many(ended), _S.CREATED]):
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
    if handed_over:
        await sql.execute(f"UPDATE messages SET handed_over = ? WHERE id {sql.any_of('uuid')}",
                          [True, sql.Many(handed_over)])
    queued = [change.message_id for change in next_steps if change.status is _S.QUEUED]
    if queued:
        await sql.execute(f"UPDATE messages SET due_at = ? WHERE id {sql.any_of('uuid')}", [at, sql.Many(queued)])
    return await _apply(next_steps, at) if next_steps else []


async def _queue_callbacks(moved: list[dict[str, Any]], at: datetime) -> None:
    """The client's callbackUrl hears of every change, through an outbox a worker delivers from."""
    notifications = list({str(row['notification_id']) for row in moved})
    targets = {str(row['id']): row for row in await sql.execute(
        'SELECT id, bulk_id, group_id, external_id, callback_url, callback_data FROM notifications '
        f"WHERE id {sql.any_of('uuid')} AND callback_url IS NOT NULL", [sql.Many(notifications)])}
    rows = []
    for change in moved:
        target = targets.get(str(change['notification_id']))
        if target:
            body = {'id': str(change['id']), 'bulkId': target['bulk_id'], 'groupId': target['group_id'],
                    'externalId': target['external_id'], 'newStatus': change['status'].value,
                    'statusCode': change['status'].code, 'statusDescription': change['description'],
                    'channel': change['channel'], 'callbackData': target['callback_data'], 'changedAt': at.isoformat()}
            rows.append((change['id'], target['callback_url'], json.dumps(body, ensure_ascii=False), 0, at, False, '', at))
    await sql.insert_many('callback_deliveries', ('message_id', 'url', 'body', 'attempts', 'next_attempt_at', 'failed',
                                                  'last_error', 'created_at'), rows)


async def apply_reports(provider: str, reports: list[DeliveryReport]
                        ) -> tuple[list[dict[str, Any]], list[DeliveryReport]]:
    """Delivery reports of one provider, matched by its message ids: the rows that moved, and the reports that
    matched no message (yet: a fast provider can report before its answer to the send is recorded)."""
    by_provider_id = {report.provider_message_id: report for report in reports}
    known = {row['provider_message_id']: str(row['id']) for row in await sql.execute(
        f"SELECT id, provider_message_id FROM messages WHERE provider_message_id {sql.any_of('text')} "
        f"AND {sql.unindexed('provider')} = ?", [sql.Many(by_provider_id), provider])}
    moved = await change_status(StatusChange(message_id, by_provider_id[pid].status, by_provider_id[pid].description,
                                             network=by_provider_id[pid].network or '')
                                for pid, message_id in known.items())
    return moved, [report for pid, report in by_provider_id.items() if pid not in known]
