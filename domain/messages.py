"""Messages over the API: sending a batch of requests under one bulk id, the filtered and paged message list, and
canceling scheduled messages by id, bulk, group or flow.

The list selects a page of message ids from `messages` alone (each filter has an index: the primary key, the
(bulk_id, recipient, channel) key, the (task_id, status) index, and the notifications' group and flow indexes), then
reads those few rows with their notification and template."""
from __future__ import annotations

import dataclasses
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from tortoise.expressions import F

from . import phones, sending, sql, task_import, tasks, templates
from .auth import Actor, Permission
from .background import Background
from .channels import Channel
from .config import settings
from .delivery import StatusChange, change_status
from .enqueue import CreatedMessage, RejectedDestination, SendRequest, enqueue
from .errors import NotFound, ValidationError
from .history import COUNT_CAP, Sort, _order
from .models import BulkUpload, BulkUploadStatus, Task, TaskKind, TaskStatus, Template
from .statuses import PRE_SEND, MessageStatus
from .task_import import FileCheck

MAX_IDS = 1000  # per id filter
CANCEL_CHUNK = 2000
_FINISHED_TASK = (TaskStatus.COMPLETED, TaskStatus.CANCELED, TaskStatus.FAILED)
log = logging.getLogger('herald')


# --- sending -----------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What became of one request of a batch: its created messages and refused destinations, or (when `validate`)
    the problems found, or the errors that refused the whole request (field → message)."""
    index: int
    request: SendRequest
    validate: bool = False
    created: list[CreatedMessage] = field(default_factory=list)
    rejected: list[RejectedDestination] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


async def send_batch(actor: Actor, requests: list[tuple[SendRequest, bool]], bulk_id: str | None = None,
                     task_id: str | None = None) -> tuple[str, list[Outcome]]:
    """Enqueue each (request, validate only) under one bulk id (given or new); with `task_id` the messages join
    that task (held PAUSED until it runs). Requests are all checked first: when every one is refused, nothing is
    created and ValidationError names each field as `<index>.<field>`."""
    actor.require(Permission.SEND)
    bulk_id = bulk_id or str(uuid.uuid4())
    task = await _open_task(actor, task_id) if task_id else None
    outcomes = [Outcome(index, _for_task(dataclasses.replace(request, bulk_id=bulk_id), task), validate)
                for index, (request, validate) in enumerate(requests)]
    for outcome in outcomes:
        outcome.errors = await _request_errors(outcome.request)
    if outcomes and all(outcome.errors for outcome in outcomes):
        raise ValidationError({f'{o.index}.{name}': message for o in outcomes for name, message in o.errors.items()})
    for outcome in outcomes:
        if not outcome.errors:
            await _send(actor, outcome)
    if task is not None:
        added = sum(len({m.destination_index for m in outcome.created}) for outcome in outcomes)
        await Task.filter(id=task.id).update(total_count=F('total_count') + added)
    return bulk_id, outcomes


async def _open_task(actor: Actor, task_id: str) -> Task:
    view = await tasks.get_task(actor, task_id)
    if view.status in _FINISHED_TASK:
        raise ValidationError({'taskId': f'The task is {view.status_label.lower()}: it takes no more messages.'})
    return await Task.get(id=view.id)


def _for_task(request: SendRequest, task: Task | None) -> SendRequest:
    """A task's messages wait PAUSED until it runs, within its time limiter unless the request has its own."""
    if task is None:
        return request
    ranges = request.allowed_time_ranges
    return dataclasses.replace(request, task_id=task.id, hold=task.status is not TaskStatus.RUNNING,
                               allowed_time_ranges=task.allowed_time_ranges if ranges is None else ranges,
                               time_zone=task.time_zone if ranges is None else request.time_zone)


async def _request_errors(request: SendRequest) -> dict[str, str]:
    """Why the request as a whole cannot be sent (its time ranges, template or channels), keyed by the API's field
    names; empty when it can."""
    errors: dict[str, str] = {}
    if request.allowed_time_ranges:
        request.allowed_time_ranges = [list(r) for r in templates.clean_ranges(
            [(start, end) for start, end in request.allowed_time_ranges], errors)]
        if errors:
            return {key.replace('time_ranges', 'allowedTimeRanges'): message for key, message in errors.items()}
    steps = request.steps
    if request.template_id is not None:
        template = templates.parse_id(request.template_id)
        found = await Template.get_or_none(id=template) if template else None
        if found is None:
            return {'templateId': f'There is no template {request.template_id}.'}
        steps = steps or found.steps
    if not steps:
        return {'channels': 'Choose a template or give the channels to send through.'}
    try:
        await templates.clean_steps(steps)
    except ValidationError as error:
        return {_step_field(key, steps): message for key, message in error.errors.items()}
    return {}


def _step_field(key: str, steps: list[dict[str, Any]]) -> str:
    """'steps.0.from' → 'channels.sms.from'."""
    parts = key.split('.')
    if len(parts) >= 2 and parts[0] == 'steps' and parts[1].isdigit() and int(parts[1]) < len(steps):
        return '.'.join(['channels', str(steps[int(parts[1])].get('channel')), *parts[2:]])
    return 'channels' if parts[0] == 'steps' else key


async def _send(actor: Actor, outcome: Outcome) -> None:
    if outcome.validate:
        estimate = await sending.estimate(actor, outcome.request)
        outcome.rejected = [RejectedDestination(p.index, p.reason, p.field) for p in estimate.problems]
        return
    result = await enqueue(actor, outcome.request)
    outcome.created = result.messages
    outcome.rejected = [_with_field(rejected, outcome.request) for rejected in result.rejected]


def _with_field(rejected: RejectedDestination, request: SendRequest) -> RejectedDestination:
    """A refused contact names its field ('Phone: too short'), as the validation's problems do."""
    if rejected.field:
        return rejected
    destination, region = request.destinations[rejected.index], settings().default_region
    if not isinstance(phones.normalize_contacts([(destination.phone, destination.email)], region)[0], str):
        return rejected
    problem = sending._contact_problem(rejected.index, destination, rejected.reason, region)
    return RejectedDestination(rejected.index, problem.reason, problem.field)


# --- listing -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MessageFilter:
    """The list's filters; every id list holds at most MAX_IDS values. `created_to` is exclusive."""
    status: MessageStatus | None = None
    channel: Channel | None = None
    ids: tuple[str, ...] = ()
    bulk_ids: tuple[str, ...] = ()
    group_ids: tuple[str, ...] = ()
    flow_ids: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None

    @property
    def selective(self) -> bool:
        """Whether an id filter selects few messages (then the created/status/channel indexes are no help)."""
        return bool(self.ids or self.bulk_ids or self.group_ids or self.flow_ids or self.task_ids)


def split_ids(value: str | None, name: str) -> tuple[str, ...]:
    """'a, b,c' → ('a', 'b', 'c'); ValidationError beyond MAX_IDS."""
    ids = tuple(dict.fromkeys(part.strip() for part in (value or '').split(',') if part.strip()))
    if len(ids) > MAX_IDS:
        raise ValidationError({name: f'Give at most {MAX_IDS} ids.'})
    return ids


def _where(filters: MessageFilter, sort: Sort) -> tuple[str, list[Any]]:
    """The WHERE clause over messages `m`. SQLite's planner has no statistics: columns whose index would be the
    wrong start are written so it leaves them alone (see history.where)."""
    clause = sql.Where('m', steer=filters.selective or sort is not Sort.CREATED)
    add, column = clause.add, clause.column
    if filters.created_from:
        add(f'{column("created_at")} >= ?', filters.created_from.astimezone(timezone.utc))
    if filters.created_to:
        add(f'{column("created_at")} < ?', filters.created_to.astimezone(timezone.utc))
    if filters.status:
        add(f'{column("status")} = ?', filters.status.value)
    if filters.channel:
        add(f'{column("channel")} = ?', filters.channel.value)
    ids = [value for value in filters.ids if templates.parse_id(value)]
    if filters.ids:
        add(f"m.id {sql.any_of('uuid')}", sql.Many(str(templates.parse_id(value)) for value in ids))
    if filters.bulk_ids:
        add(f"m.bulk_id {sql.any_of()}", sql.Many(filters.bulk_ids))
    task_ids = [str(templates.parse_id(value)) for value in filters.task_ids if templates.parse_id(value)]
    if filters.task_ids:
        add(f"m.task_id {sql.any_of('uuid')}", sql.Many(task_ids))
    for name, values in (('group_id', filters.group_ids), ('flow_id', filters.flow_ids)):
        if values:
            add(f"m.notification_id IN (SELECT id FROM notifications WHERE {name} {sql.any_of()})", sql.Many(values))
    return clause.clause()


SORTS = {'createdAt': Sort.CREATED, 'sentAt': Sort.SENT, 'deliveredAt': Sort.DELIVERED}


def parse_sort(value: str | None) -> tuple[Sort, bool]:
    """'-createdAt' → (Sort.CREATED, descending); the default is the newest first."""
    value = (value or '-createdAt').strip()
    name = value.lstrip('-+')
    if name not in SORTS:
        raise ValidationError({'sort': f'Sort by one of {", ".join(SORTS)}, with "-" for descending.'})
    return SORTS[name], value.startswith('-')


async def list_messages(actor: Actor, filters: MessageFilter, offset: int = 0, limit: int = 20,
                        sort: Sort = Sort.CREATED, descending: bool = True) -> tuple[int, list[dict[str, Any]]]:
    """(count, one page) of messages in the API's shape; the count stops at history.COUNT_CAP + 1 (more match)."""
    actor.require(Permission.VIEW)
    clause, params = _where(filters, Sort.CREATED if filters.selective else sort)
    counted = await sql.execute(f'SELECT count(*) AS n FROM (SELECT 1 FROM messages m WHERE {clause} LIMIT ?) AS c',
                                [*params, COUNT_CAP + 1])
    clause, params = _where(filters, sort)
    order = 'DESC' if descending else 'ASC'
    nulls = ' NULLS LAST' if sql.is_postgres() and descending else ''
    page = await sql.execute(f'SELECT m.id FROM messages m WHERE {clause} ORDER BY {_order(sort, order, nulls)} '
                             'LIMIT ? OFFSET ?', [*params, limit, offset])
    return counted[0]['n'], await _items([str(row['id']) for row in page])


_ITEM_COLUMNS = (
    'm.id', 'm.bulk_id', 'm.task_id', 'm.channel', 'm.sender', 'm.subject', 'm.text', 'm.html', 'm.params',
    'm.parts', 'm.status', 'm.status_description', 'm.network', 'm.required', 'm.validity_minutes', 'm.created_at',
    'm.sent_at', 'm.delivered_at', 'm.ended_at', 'm.short_link_clicks', 'm.email_opens', 'm.email_clicks',
    'n.group_id', 'n.flow_id', 'n.template_id', 'n.phone', 'n.email', 'n.client_id', 'n.external_id',
    'n.messenger_user_id', 'n.variables', 'n.send_at', 't.name AS template_name',
)


async def _items(ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    rows = await sql.execute(
        f'SELECT {", ".join(_ITEM_COLUMNS)} FROM messages m JOIN notifications n ON n.id = m.notification_id '
        f"LEFT JOIN templates t ON t.id = n.template_id WHERE m.id {sql.any_of('uuid')}", [sql.Many(ids)])
    by_id = {str(row['id']): row for row in rows}
    return [_item(by_id[message_id]) for message_id in ids if message_id in by_id]


def _item(row: dict[str, Any]) -> dict[str, Any]:
    status = MessageStatus(row['status'])
    return {
        'id': str(row['id']), 'bulkId': row['bulk_id'], 'groupId': row['group_id'], 'flowId': row['flow_id'],
        'taskId': str(row['task_id']) if row['task_id'] else None,
        'status': status.value, 'statusCode': status.code, 'statusDescription': row['status_description'],
        'partCount': row['parts'], 'network': row['network'] or None, 'channel': row['channel'],
        'templateId': str(row['template_id']) if row['template_id'] else None, 'templateName': row['template_name'],
        'destination': {'phone': row['phone'], 'email': row['email'], 'clientId': row['client_id'],
                        'externalId': row['external_id'], 'messengerUserId': row['messenger_user_id']},
        'message': _message_fields(row),
        'templateVariables': _json(row['variables']),
        'tracks': {'shortLinkClicks': row['short_link_clicks'], 'emailOpens': row['email_opens'],
                   'emailClicks': row['email_clicks']},
        'createdAt': sql.utc_text(row['created_at']), 'sentAt': sql.utc_text(row['sent_at']),
        'deliveredAt': sql.utc_text(row['delivered_at']), 'sendAt': sql.utc_text(row['send_at']),
        'expiredAt': sql.utc_text(row['ended_at']) if status is MessageStatus.EXPIRED else None,
    }


def _message_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The channel's fields as POST messages names them."""
    email = row['channel'] == Channel.EMAIL.value
    fields: dict[str, Any] = {'fromEmail' if email else 'from': row['sender'] or None, 'text': row['text']}
    if email:
        fields.update(subject=row['subject'], html=row['html'] or None)
    fields.update(_json(row['params']))
    fields.update(validityPeriod=row['validity_minutes'], required=bool(row['required']))
    return fields


def _json(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str) else value
    return loaded if isinstance(loaded, dict) else {}


# --- canceling ---------------------------------------------------------------------------------------------------

async def cancel_messages(actor: Actor, filters: MessageFilter) -> int:
    """Cancel the selected messages not yet handed to a provider (and the later steps of their cascades, which
    would otherwise wait for them), a chunk per status change; returns how many were canceled."""
    actor.require(Permission.SEND)
    if not (filters.ids or filters.bulk_ids or filters.group_ids or filters.flow_ids):
        raise ValidationError({'id': 'Say which messages to cancel: id, bulkId, groupId or flowId.'})
    clause, params = _where(filters, Sort.CREATED)
    reason = f'Canceled by {actor.label}'
    canceled = 0
    while True:
        rows = await sql.execute(
            f'SELECT m.id, m.notification_id, m.step_index FROM messages m WHERE {clause} '
            f"AND {sql.unindexed('m.status')} IN {sql.in_list(len(PRE_SEND))} AND m.send_started_at IS NULL "
            'AND (m.lease_until IS NULL OR m.lease_until < ?) LIMIT ?',
            [*params, *sorted(s.value for s in PRE_SEND), datetime.now(timezone.utc), CANCEL_CHUNK])
        ids = [str(row['id']) for row in rows] + await _waiting_after(rows) if rows else []
        moved = await change_status([StatusChange(message_id, MessageStatus.CANCELED, reason) for message_id in ids])
        canceled += len(moved)
        if len(rows) < CANCEL_CHUNK or not moved:
            return canceled


async def _waiting_after(rows: list[dict[str, Any]]) -> list[str]:
    """The CREATED steps that wait for these messages (later steps of the same notifications)."""
    first = {}
    for row in rows:
        key = str(row['notification_id'])
        first[key] = min(first.get(key, row['step_index']), row['step_index'])
    waiting = await sql.execute(
        f"SELECT id, notification_id, step_index FROM messages WHERE notification_id {sql.any_of('uuid')} "
        f"AND {sql.unindexed('status')} = ?", [sql.Many(list(first)), MessageStatus.CREATED.value])
    return [str(row['id']) for row in waiting if row['step_index'] > first[str(row['notification_id'])]]


Choice = TypeVar('Choice', bound=Enum)


def parse_channel(value: str | None) -> Channel | None:
    return _choice(Channel, value.lower() if value else None, 'channel')


def parse_status(value: str | None) -> MessageStatus | None:
    return _choice(MessageStatus, value.upper() if value else None, 'status')


def _choice(kind: type[Choice], value: str | None, field: str) -> Choice | None:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ValidationError({field: f'Unknown {field} “{value}”.'}) from None


# --- bulk uploads ------------------------------------------------------------------------------------------------

MAX_PROBLEMS = 100  # listed in an upload's result; the task keeps the file of every invalid row
_uploads = Background()


def owner_of(actor: Actor) -> str:
    """Whose request it is: its API key, else its user ('' for neither)."""
    if actor.api_key_id is not None:
        return f'key:{actor.api_key_id}'
    return f'user:{actor.user_id}' if actor.user_id is not None else ''


async def upload_file(actor: Actor, path: Path, filename: str, kind: TaskKind, template_id: str | None = None,
                      wait: bool = True) -> BulkUpload:
    """Make an uploaded Excel file of messages into a started task named after the file, now (`wait`) or in the
    background; the upload records the outcome. A file that cannot be read fails and creates nothing. The file at
    `path` is removed once it is read."""
    try:
        actor.require(Permission.SEND)
        if kind not in (TaskKind.FULL, TaskKind.UNIVERSAL):
            raise ValidationError({'format': 'Upload a file in the "Full list of params" or "Universal" format.'})
        upload = await BulkUpload.create(filename=filename[:255], bulk_id='', owner=owner_of(actor))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    work = _process(actor, upload, path, kind, template_id)
    if wait:
        await work
    else:
        _uploads.start(work, name=f'herald-bulk-upload-{upload.id}')
    return upload


async def _process(actor: Actor, upload: BulkUpload, path: Path, kind: TaskKind, template_id: str | None) -> None:
    check: FileCheck | None = None
    try:
        check = await task_import.check_file(actor, kind, path, upload.filename, template_id)
        upload.total_rows, upload.accepted_rows, upload.rejected_rows = check.rows, check.valid, len(check.problems)
        upload.problems = [{'row': p.row, 'column': p.column, 'reason': p.reason}
                           for p in check.problems[:MAX_PROBLEMS]]
        task = await tasks.create_task(actor, check, upload.filename[:tasks.MAX_NAME_LENGTH] or 'API upload', [], 'UTC')
        check = None
        upload.task_id = task.id
        await tasks.start_task(actor, task.id)
        rows = await sql.execute('SELECT bulk_id FROM messages WHERE task_id = ? LIMIT 1', [task.id])
        upload.bulk_id = rows[0]['bulk_id'] if rows else ''
        upload.status = BulkUploadStatus.COMPLETED
    except (ValidationError, NotFound) as error:
        upload.status, upload.error = BulkUploadStatus.FAILED, _first_message(error)[:500]
    except Exception:
        log.exception('bulk upload %s failed', upload.id)
        upload.status, upload.error = BulkUploadStatus.FAILED, 'The file could not be processed.'
    finally:
        if check is not None:
            check.discard()
        path.unlink(missing_ok=True)
        upload.completed_at = datetime.now(timezone.utc)
        await upload.save()


def _first_message(error: Exception) -> str:
    if isinstance(error, ValidationError) and error.errors:
        return next(iter(error.errors.values()))
    return str(error)


async def get_upload(actor: Actor, upload_id: str) -> BulkUpload:
    """An upload's result, for the one who uploaded it only (to anyone else it does not exist)."""
    actor.require(Permission.VIEW)
    parsed = templates.parse_id(upload_id)
    upload = await BulkUpload.get_or_none(id=parsed, owner=owner_of(actor)) if parsed else None
    if upload is None:
        raise NotFound(f'There is no upload {upload_id}.')
    return upload


async def close_uploads() -> None:
    """Let uploads still being processed finish (on shutdown)."""
    await _uploads.close()

