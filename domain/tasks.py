"""Tasks for notifications: bulk sends from Excel files, their lifecycle and their exact counters.

A task's messages wait PAUSED until it starts (Created); starting or resuming queues them (During), pausing
takes back the ones not yet handed to a provider (Paused; the dispatcher also holds back any it claims of a
paused task), and a task whose messages have all ended is Completed. Canceling cancels every message not yet
sent. Counters are counted from the messages themselves (one grouped query over the task's index), so they are
exact; a finished task keeps them in its row."""
from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from enum import Enum
from zoneinfo import ZoneInfo

from tortoise.transactions import in_transaction

from . import audit, events, sql, task_files, templates
from .auth import Actor, Permission
from .delivery import StatusChange, change_status
from .errors import NotFound, ValidationError
from .models import Task, TaskKind, TaskStatus, Template
from .statuses import PRE_SEND, MessageStatus
from .task_import import FileCheck, Schedule, clean_schedule, outbox_copier

ENTITY = 'task'
MAX_NAME_LENGTH = 200
CHUNK = 2000  # messages per status change while starting, pausing, resuming, canceling or deleting
DELETE_CHUNK = 10_000  # SQLite scans its search index once per chunk of deleted messages
_S = MessageStatus
_IN_PROGRESS = (_S.SENT, _S.PENDING)
_DELIVERED = (_S.DELIVERED, _S.READ)
_FAILED = (_S.UNDELIVERED, _S.ERROR, _S.EXPIRED)
_OPEN = tuple(status for status in MessageStatus if not status.is_terminal)


class Category(str, Enum):
    """The filter chips of the tasks page."""
    DURING = 'during'
    CREATED = 'created'
    PAUSED = 'paused'
    COMPLETED = 'completed'

    @property
    def statuses(self) -> tuple[TaskStatus, ...]:
        return _CATEGORY_STATUSES[self]


_CATEGORY_STATUSES = {
    Category.DURING: (TaskStatus.RUNNING,),
    Category.CREATED: (TaskStatus.CREATED,),
    Category.PAUSED: (TaskStatus.PAUSED,),
    Category.COMPLETED: (TaskStatus.COMPLETED, TaskStatus.CANCELED, TaskStatus.FAILED),
}
STATUS_LABELS = {
    TaskStatus.CREATED: 'Created', TaskStatus.RUNNING: 'During', TaskStatus.PAUSED: 'Paused',
    TaskStatus.COMPLETED: 'Completed', TaskStatus.CANCELED: 'Canceled', TaskStatus.FAILED: 'Failed',
}
_FINISHED = (TaskStatus.COMPLETED, TaskStatus.CANCELED, TaskStatus.FAILED)


@dataclass(frozen=True)
class Counts:
    total: int = 0
    processed: int = 0  # ended, whatever the outcome
    in_progress: int = 0  # with a provider, waiting for the delivery report
    delivered: int = 0
    failed: int = 0

    @property
    def progress(self) -> float:
        return self.processed / self.total if self.total else 0.0

    @classmethod
    def of(cls, by_status: dict[MessageStatus, int]) -> Counts:
        def count(statuses: Iterable[MessageStatus]) -> int:
            return sum(by_status.get(status, 0) for status in statuses)
        return cls(total=sum(by_status.values()), processed=count(s for s in MessageStatus if s.is_terminal),
                   in_progress=count(_IN_PROGRESS), delivered=count(_DELIVERED), failed=count(_FAILED))


@dataclass(frozen=True)
class TaskView:
    id: str
    name: str
    kind: TaskKind
    status: TaskStatus
    template_id: str | None
    template_name: str
    source_filename: str
    allowed_time_ranges: list[list[str]]
    time_zone: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    counts: Counts

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def kind_label(self) -> str:
        return task_files.LABELS[self.kind]

    @property
    def can_start(self) -> bool:
        return self.status is TaskStatus.CREATED

    @property
    def can_pause(self) -> bool:
        return self.status is TaskStatus.RUNNING

    @property
    def can_resume(self) -> bool:
        return self.status is TaskStatus.PAUSED

    @property
    def can_cancel(self) -> bool:
        return self.status in (TaskStatus.CREATED, TaskStatus.RUNNING, TaskStatus.PAUSED)

    @property
    def can_edit(self) -> bool:
        return self.can_cancel


@dataclass(frozen=True)
class TaskFilter:
    name: str = ''
    created_on: date | None = None  # a day in `zone`
    category: Category | None = None
    zone: str = 'UTC'
    created_from: datetime | None = None  # the API's from/to: created at or after, and before
    created_to: datetime | None = None


# --- reading -----------------------------------------------------------------------------------------------------

async def list_tasks(actor: Actor, filters: TaskFilter = TaskFilter(), offset: int = 0, limit: int = 20
                     ) -> tuple[int, list[TaskView]]:
    """(total, one page) of tasks, newest first, with their counters."""
    actor.require(Permission.VIEW)
    query = Task.all()
    if filters.name.strip():
        query = query.filter(name__icontains=filters.name.strip())
    if filters.category:
        query = query.filter(status__in=filters.category.statuses)
    if filters.created_on:
        start = datetime.combine(filters.created_on, time(), ZoneInfo(filters.zone)).astimezone(timezone.utc)
        query = query.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1))
    if filters.created_from:
        query = query.filter(created_at__gte=filters.created_from)
    if filters.created_to:
        query = query.filter(created_at__lt=filters.created_to)
    total = await query.count()
    tasks = await query.order_by('-created_at', '-id').offset(max(offset, 0)).limit(max(limit, 0))
    return total, await _views(tasks)


async def get_task(actor: Actor, task_id: str | uuid.UUID) -> TaskView:
    actor.require(Permission.VIEW)
    return (await _views([await _task(task_id)]))[0]


async def _task(task_id: str | uuid.UUID) -> Task:
    parsed = templates.parse_id(task_id)
    task = await Task.get_or_none(id=parsed) if parsed else None
    if task is None:
        raise NotFound(f'There is no task {task_id}.')
    return task


async def _views(tasks: list[Task]) -> list[TaskView]:
    counts = await count_messages([str(task.id) for task in tasks if not _frozen(task)])
    names = dict(await Template.filter(id__in=[t.template_id for t in tasks if t.template_id])
                 .values_list('id', 'name'))
    return [_view(task, counts.get(str(task.id)) or _stored_counts(task), names.get(task.template_id, ''))
            for task in tasks]


def _stored_counts(task: Task) -> Counts:
    return Counts(task.total_count, task.processed_count, task.in_progress_count, task.delivered_count,
                  task.failed_count)


def _view(task: Task, counts: Counts, template_name: str) -> TaskView:
    return TaskView(
        id=str(task.id), name=task.name, kind=TaskKind(task.kind), status=TaskStatus(task.status),
        template_id=str(task.template_id) if task.template_id else None, template_name=template_name,
        source_filename=task.source_filename, allowed_time_ranges=task.allowed_time_ranges, time_zone=task.time_zone,
        created_at=task.created_at, updated_at=task.updated_at, started_at=task.started_at,
        completed_at=task.completed_at, counts=counts)


async def count_messages(task_ids: list[str]) -> dict[str, Counts]:
    """Each task's counters, from its messages' statuses (the (task_id, status) index answers it)."""
    if not task_ids:
        return {}
    rows = await sql.execute(
        f"SELECT task_id, status, count(*) AS n FROM messages WHERE task_id {sql.any_of('uuid')} "
        'GROUP BY task_id, status', [sql.Many(task_ids)])
    by_task: dict[str, dict[MessageStatus, int]] = {task_id: {} for task_id in task_ids}
    for row in rows:
        by_task[str(row['task_id'])][MessageStatus(row['status'])] = row['n']
    return {task_id: Counts.of(statuses) for task_id, statuses in by_task.items()}


# --- creating and editing ----------------------------------------------------------------------------------------

def clean_name(name: str) -> str:
    name = (name or '').strip()
    if not name:
        raise ValidationError({'name': 'Enter a task name.'})
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError({'name': f'Use at most {MAX_NAME_LENGTH} characters.'})
    return name


async def create_task(actor: Actor, check: FileCheck, name: str, allowed_time_ranges: list[list[str]],
                      time_zone: str) -> TaskView:
    """Create a task from a checked file's valid rows: its messages wait until it is started."""
    actor.require(Permission.SEND)
    name = clean_name(name)
    schedule = clean_schedule(allowed_time_ranges, time_zone)
    if not check.valid:
        raise ValidationError({'file': 'The file has no valid rows: there is nothing to send.'})
    if await Task.exists(id=check.token):
        raise ValidationError({'file': 'This file was already made into a task.'})
    async with outbox_copier(check, schedule) as copy, in_transaction():
        task = await Task.create(
            id=check.token, name=name, kind=check.kind, template_id=check.template_id,
            source_file=str(check.directory / 'source.xlsx'), source_filename=check.filename[:255],
            allowed_time_ranges=schedule.allowed_time_ranges, time_zone=schedule.time_zone,
            use_short_links=check.use_short_links,
            error_report=str(check.problems_file) if check.problems else '', created_by_id=actor.user_id)
        task.total_count = await copy()
        await task.save(update_fields=['total_count'])
        await audit.record(actor, 'create', ENTITY, task.id, f'Created task “{name}” from {check.filename}',
                           {'rows': check.valid, 'invalid rows': len(check.problems)})
    check.copied()
    _changed(task)
    return await get_task(actor, task.id)


async def add_rows(actor: Actor, task_id: str, check: FileCheck) -> TaskView:
    """Add a checked file's valid rows to a task that has not ended; they are queued at once if it runs."""
    actor.require(Permission.SEND)
    task = await _editable(task_id)
    if not check.valid:
        raise ValidationError({'file': 'The file has no valid rows: there is nothing to add.'})
    async with outbox_copier(check, Schedule(task.allowed_time_ranges, task.time_zone)) as copy, in_transaction():
        added = await copy()
        await Task.filter(id=task.id).update(total_count=task.total_count + added)
        await audit.record(actor, 'update', ENTITY, task.id, f'Added {check.valid} rows from {check.filename}')
    check.copied()
    if task.status is TaskStatus.RUNNING:
        await _move_messages(task, (_S.PAUSED,), _S.QUEUED)
    _changed(task)
    return await get_task(actor, task.id)


async def update_task(actor: Actor, task_id: str, name: str, allowed_time_ranges: list[list[str]],
                      time_zone: str) -> TaskView:
    """Rename a task or change its time limiter; messages waiting for their window are checked against the new
    one."""
    actor.require(Permission.SEND)
    task = await _editable(task_id)
    name = clean_name(name)
    schedule = clean_schedule(allowed_time_ranges, time_zone)
    before = {'name': task.name, 'allowed_time_ranges': task.allowed_time_ranges, 'time_zone': task.time_zone}
    after = {'name': name, 'allowed_time_ranges': schedule.allowed_time_ranges, 'time_zone': schedule.time_zone}
    changes = audit.diff(before, after)
    if not changes:
        return await get_task(actor, task.id)
    async with in_transaction():
        await Task.filter(id=task.id).update(**after)
        if changes.keys() - {'name'}:  # the time limiter changed
            await sql.execute('UPDATE notifications SET allowed_time_ranges = ?, time_zone = ? WHERE task_id = ?',
                              [schedule.allowed_time_ranges, schedule.time_zone, str(task.id)])
        await audit.record(actor, 'update', ENTITY, task.id, f'Changed task “{name}”', changes)
    await _move_messages(task, (_S.DELAYED,), _S.QUEUED)
    _changed(task)
    return await get_task(actor, task.id)


async def _editable(task_id: str) -> Task:
    task = await _task(task_id)
    if task.status in _FINISHED:
        raise ValidationError({'status': f'The task is {STATUS_LABELS[TaskStatus(task.status)].lower()}: '
                                         'it can no longer be changed.'})
    return task


# --- lifecycle ---------------------------------------------------------------------------------------------------

async def start_task(actor: Actor, task_id: str) -> TaskView:
    return await _transition(actor, task_id, (TaskStatus.CREATED,), TaskStatus.RUNNING, (_S.PAUSED,), _S.QUEUED,
                             'Started')


async def pause_task(actor: Actor, task_id: str) -> TaskView:
    return await _transition(actor, task_id, (TaskStatus.RUNNING,), TaskStatus.PAUSED, (_S.QUEUED, _S.DELAYED),
                             _S.PAUSED, 'Paused')


async def resume_task(actor: Actor, task_id: str) -> TaskView:
    return await _transition(actor, task_id, (TaskStatus.PAUSED,), TaskStatus.RUNNING, (_S.PAUSED,), _S.QUEUED,
                             'Resumed')


async def cancel_task(actor: Actor, task_id: str) -> TaskView:
    return await _transition(actor, task_id, (TaskStatus.CREATED, TaskStatus.RUNNING, TaskStatus.PAUSED),
                             TaskStatus.CANCELED, tuple(PRE_SEND), _S.CANCELED, 'Canceled')


async def _transition(actor: Actor, task_id: str, allowed: tuple[TaskStatus, ...], new: TaskStatus,
                      messages_from: tuple[MessageStatus, ...], messages_to: MessageStatus, verb: str) -> TaskView:
    """Change the task's status first (the dispatcher reads it), then move its messages in chunks."""
    actor.require(Permission.SEND)
    task = await _task(task_id)
    now = datetime.now(timezone.utc)
    stamps = {'started_at': now} if new is TaskStatus.RUNNING and not task.started_at else {}
    if new is TaskStatus.CANCELED:
        stamps['completed_at'] = now
    async with in_transaction():
        moved = await Task.filter(id=task.id, status__in=allowed).update(status=new, **stamps)
        if moved:
            await audit.record(actor, 'update', ENTITY, task.id, f'{verb} task “{task.name}”')
    if not moved:
        raise ValidationError({'status': f'A {STATUS_LABELS[TaskStatus(task.status)].lower()} task cannot be '
                                         f'{verb.lower()}.'})
    await _move_messages(task, messages_from, messages_to)
    _changed(task)
    return await get_task(actor, task.id)


async def _move_messages(task: Task, statuses: tuple[MessageStatus, ...], new: MessageStatus) -> int:
    """Move the task's messages in these statuses (not handed to a provider) to `new`, a chunk per transaction."""
    moved = 0
    while True:
        rows = await sql.execute(
            f"SELECT id FROM messages WHERE task_id = ? AND status IN {sql.in_list(len(statuses))} "
            'AND send_started_at IS NULL ORDER BY id LIMIT ?', [str(task.id), *statuses, CHUNK])
        changed = await change_status([StatusChange(str(row['id']), new, _reason(new)) for row in rows])
        if new is _S.QUEUED and changed:
            await _due_now([str(row['id']) for row in changed])
        moved += len(changed)
        if len(rows) < CHUNK or not changed:
            return moved


async def _due_now(message_ids: list[str]) -> None:
    """Queued again: due now, or at the recipient's start time if that is later (a window that opened or was
    changed meanwhile is checked again by the dispatcher)."""
    now = datetime.now(timezone.utc)
    await sql.execute(
        'UPDATE messages SET due_at = COALESCE((SELECT n.send_at FROM notifications n '
        f"WHERE n.id = messages.notification_id AND n.send_at > ?), ?) WHERE id {sql.any_of('uuid')}",
        [now, now, sql.Many(message_ids)])


def _reason(status: MessageStatus) -> str:
    return {_S.PAUSED: 'Its task is paused', _S.CANCELED: 'Its task was canceled'}.get(status, '')


def _changed(task: Task) -> None:
    events.publish_task(events.TaskChanged(str(task.id)))


async def complete_finished_tasks() -> int:
    """Running tasks whose messages have all ended are completed; they, and canceled tasks once their last sent
    messages have ended, keep their final counters."""
    tasks = await Task.filter(status__in=(TaskStatus.RUNNING, TaskStatus.CANCELED))
    finished = 0
    for task in tasks:
        if _frozen(task) or await _has_open_messages(task):
            continue
        counts = (await count_messages([str(task.id)]))[str(task.id)]
        status = TaskStatus.COMPLETED if task.status is TaskStatus.RUNNING else TaskStatus.CANCELED
        await Task.filter(id=task.id, status=task.status).update(
            status=status, completed_at=task.completed_at or datetime.now(timezone.utc), total_count=counts.total,
            processed_count=counts.processed, in_progress_count=counts.in_progress,
            delivered_count=counts.delivered, failed_count=counts.failed)
        _changed(task)
        finished += 1
    return finished


def _frozen(task: Task) -> bool:
    """A finished task whose counters are final (stored in its row)."""
    return task.status in _FINISHED and task.processed_count == task.total_count


async def _has_open_messages(task: Task) -> bool:
    rows = await sql.execute(f'SELECT 1 FROM messages WHERE task_id = ? AND status IN {sql.in_list(len(_OPEN))} '
                             'LIMIT 1', [str(task.id), *_OPEN])
    return bool(rows)


# --- deleting ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeletionSummary:
    unsent: int  # messages that are removed with the task
    kept: int  # messages already with a provider or ended: they stay in the notification history


async def deletion_summary(actor: Actor, task_id: str) -> DeletionSummary:
    actor.require(Permission.VIEW)
    task = await _task(task_id)
    counts = await count_messages([str(task.id)])
    rows = await sql.execute(f'SELECT count(*) AS n FROM messages WHERE task_id = ? AND status IN '
                             f'{sql.in_list(len(PRE_SEND))} AND send_started_at IS NULL',
                             [str(task.id), *PRE_SEND])
    unsent = rows[0]['n']
    return DeletionSummary(unsent, counts[str(task.id)].total - unsent)


async def delete_task(actor: Actor, task_id: str) -> DeletionSummary:
    """Delete a task: its messages not yet sent go with it (the task is paused first, so none is taken meanwhile);
    messages already sent stay in the history, without the task."""
    actor.require(Permission.SEND)
    task = await _task(task_id)
    await Task.filter(id=task.id, status=TaskStatus.RUNNING).update(status=TaskStatus.PAUSED)
    removed = 0
    while True:
        rows = await sql.execute(
            f'SELECT id, notification_id FROM messages WHERE task_id = ? AND status IN {sql.in_list(len(PRE_SEND))} '
            'AND send_started_at IS NULL LIMIT ?', [str(task.id), *PRE_SEND, DELETE_CHUNK])
        if not rows:
            break
        await _remove_messages(rows)
        removed += len(rows)
    summary = await deletion_summary(actor, task_id)
    async with in_transaction():
        await sql.execute('DELETE FROM notifications WHERE task_id = ? AND NOT EXISTS '
                          '(SELECT 1 FROM messages WHERE messages.notification_id = notifications.id)', [str(task.id)])
        await task.delete()
        await audit.record(actor, 'delete', ENTITY, task.id, f'Deleted task “{task.name}”',
                           {'removed messages': removed, 'kept messages': summary.kept})
    _changed(task)
    return DeletionSummary(removed, summary.kept)


async def _remove_messages(rows: list[dict]) -> None:
    ids = sql.Many([str(row['id']) for row in rows])
    async with in_transaction():
        if not sql.is_postgres():
            await sql.execute(f"DELETE FROM message_search WHERE message_id {sql.any_of('uuid')}", [ids])
        await sql.execute(f"DELETE FROM message_events WHERE message_id {sql.any_of('uuid')}", [ids])
        await sql.execute(f"DELETE FROM messages WHERE id {sql.any_of('uuid')}", [ids])
