"""Tasks over the API: `GET/POST tasks`, `GET/PUT/DELETE tasks/{id}`, `POST tasks/{id}` (add rows),
`POST startedTasks/{id}`, `POST/DELETE pausedTasks/{id}`, `GET tasks/{id}/statuses`.

Statuses on the wire: created, during (running), paused, completed, canceled, failed. The list's `status` filter
takes the tasks page's categories: created, during, paused, completed (completed also finds canceled and failed)."""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from pydantic import BeforeValidator, Field, TypeAdapter

from domain import tasks
from domain.auth import Actor, Scope
from domain.errors import ValidationError
from domain.models import TaskKind, TaskStatus
from domain.task_import import FileCheck, check_file, clean_schedule
from domain.tasks import Category, TaskView

from .auth import scoped
from .wire import ApiModel, Page, Paging, TimeRanges, ranges_from_wire, ranges_to_wire, saved_upload, utc, wire_errors

router = APIRouter(tags=['Tasks'])
MAX_PROBLEMS = 100
WIRE_STATUS = {TaskStatus.CREATED: 'created', TaskStatus.RUNNING: 'during', TaskStatus.PAUSED: 'paused',
               TaskStatus.COMPLETED: 'completed', TaskStatus.CANCELED: 'canceled', TaskStatus.FAILED: 'failed'}
_RANGES = TypeAdapter(TimeRanges)
Reading = Depends(scoped(Scope.TASKS_READ))
Writing = Depends(scoped(Scope.TASKS_WRITE))


class TaskOut(ApiModel):
    id: str
    name: str
    status: str = Field(description='created, during, paused, completed, canceled or failed.')
    created_at: str
    updated_at: str
    allowed_time_ranges: list[list[str]]
    time_zone: str
    total_message_count: int
    total_processed_message_count: int = Field(description='Messages handed to a provider or ended.')
    in_progress_message_count: int = Field(description='With a provider, waiting for the delivery report.')
    completed_message_count: int = Field(description='Ended, whatever the outcome.')
    progress: float = Field(description='Percent of the messages ended, 0–100.')
    kind: TaskKind
    delivered_message_count: int
    failed_message_count: int
    template_id: str | None


class RowProblemOut(ApiModel):
    row: int
    column: str
    reason: str


class ImportedTaskOut(TaskOut):
    rejected_rows: int
    problems: list[RowProblemOut] = Field(description=f'The first {MAX_PROBLEMS} problems of the file\'s rows.')


class TaskChange(ApiModel):
    name: str | None = Field(None, max_length=1000)
    allowed_time_ranges: TimeRanges | None = None
    time_zone: str | None = Field(None, max_length=64)


class DeletedTaskOut(ApiModel):
    removed_message_count: int = Field(description='Messages not yet sent, removed with the task.')
    kept_message_count: int = Field(description='Messages already sent: they stay in the history.')


class TaskStatusOut(ApiModel):
    status: str


def task_to_api(task: TaskView) -> dict[str, Any]:
    counts = task.counts
    return {
        'id': task.id, 'name': task.name, 'status': WIRE_STATUS[task.status],
        'createdAt': task.created_at.isoformat(), 'updatedAt': task.updated_at.isoformat(),
        'allowedTimeRanges': ranges_to_wire(task.allowed_time_ranges), 'timeZone': task.time_zone,
        'totalMessageCount': counts.total, 'totalProcessedMessageCount': counts.processed + counts.in_progress,
        'inProgressMessageCount': counts.in_progress, 'completedMessageCount': counts.processed,
        'progress': round(counts.progress * 100, 2), 'kind': task.kind,
        'deliveredMessageCount': counts.delivered, 'failedMessageCount': counts.failed, 'templateId': task.template_id,
    }


def _imported(task: TaskView, check: FileCheck) -> dict[str, Any]:
    problems = [{'row': p.row, 'column': p.column, 'reason': p.reason} for p in check.problems[:MAX_PROBLEMS]]
    return task_to_api(task) | {'rejectedRows': len({p.row for p in check.problems}), 'problems': problems}


StatusFilter = Literal['created', 'during', 'paused', 'completed', 'Created', 'During', 'Paused', 'Completed']
Moment = Annotated[datetime, BeforeValidator(lambda value: datetime.fromisoformat(value) if isinstance(value, str)
                                             else value), Field(description='ISO 8601; UTC unless it says.')]


@router.get('/tasks', response_model=Page[TaskOut])
async def list_tasks(paging: Paging = Depends(), name: str = Query('', max_length=200),
                     status: StatusFilter | None = Query(None, description='completed also finds canceled and failed'),
                     created_from: Moment | None = Query(None, alias='from'),
                     created_to: Moment | None = Query(None, alias='to'), actor: Actor = Reading) -> dict[str, Any]:
    filters = tasks.TaskFilter(name=name, category=Category(status.lower()) if status else None,
                               created_from=utc(created_from), created_to=utc(created_to))
    total, page = await tasks.list_tasks(actor, filters, paging.offset, paging.limit)
    return {'count': total, 'items': [task_to_api(task) for task in page]}


@router.get('/tasks/{task_id}', response_model=TaskOut)
async def get_task(task_id: str, actor: Actor = Reading) -> dict[str, Any]:
    return task_to_api(await tasks.get_task(actor, task_id))


@router.get('/tasks/{task_id}/statuses', response_model=TaskStatusOut)
async def task_status(task_id: str, actor: Actor = Reading) -> dict[str, Any]:
    return {'status': WIRE_STATUS[(await tasks.get_task(actor, task_id)).status]}


# --- files -------------------------------------------------------------------------------------------------------

async def _import(upload: UploadFile, check: Callable[[Path, str], Awaitable[FileCheck]],
                  use: Callable[[FileCheck], Awaitable[TaskView]]) -> dict[str, Any]:
    """Check an uploaded file and hand its valid rows to `use`; a file refused on the way leaves nothing behind."""
    path = await saved_upload(upload)
    try:
        with wire_errors():
            checked = await check(path, upload.filename or 'messages.xlsx')
    finally:
        path.unlink(missing_ok=True)
    try:
        with wire_errors():
            return _imported(await use(checked), checked)
    except BaseException:
        checked.discard()
        raise


def _ranges(value: str | None) -> list[list[str]]:
    if not value:
        return []
    try:
        return [list(pair) for pair in ranges_from_wire(_RANGES.validate_python(json.loads(value)))]
    except ValueError:  # not JSON, or not a list of pairs (pydantic's ValidationError is a ValueError)
        raise ValidationError({'allowedTimeRanges': 'Send JSON such as [["09:00:00", "22:00:00"]].'}) from None


@router.post('/tasks', response_model=ImportedTaskOut, status_code=201)
async def create_task(messages: Annotated[UploadFile, File(description='The task file (.xlsx).')],
                      name: Annotated[str, Form(min_length=1, max_length=1000)], kind: Annotated[TaskKind, Form()],
                      template_id: Annotated[str | None, Form(alias='templateId', max_length=64)] = None,
                      allowed_time_ranges: Annotated[str | None, Form(
                          alias='allowedTimeRanges', max_length=2000,
                          description='JSON, e.g. [["09:00:00", "22:00:00"]]; none: any time.')] = None,
                      time_zone: Annotated[str, Form(alias='timeZone', max_length=64)] = 'UTC',
                      use_short_links: Annotated[bool, Form(alias='useShortLinks', description=(
                          'Shorten the links in SMS and Viber texts (also when the template says so).'))] = False,
                      actor: Actor = Writing) -> dict[str, Any]:
    ranges = _ranges(allowed_time_ranges)
    with wire_errors():
        tasks.clean_name(name)
        clean_schedule(ranges, time_zone)
    return await _import(
        messages, lambda path, filename: check_file(actor, kind, path, filename, template_id or None,
                                                    time_zone=time_zone, use_short_links=use_short_links),
        lambda check: tasks.create_task(actor, check, name, ranges, time_zone))


@router.post('/tasks/{task_id}', response_model=ImportedTaskOut)
async def add_messages(task_id: str, messages: Annotated[UploadFile, File(description='More rows (.xlsx).')],
                       actor: Actor = Writing) -> dict[str, Any]:
    task = await tasks.get_task(actor, task_id)
    return await _import(
        messages, lambda path, filename: check_file(actor, task.kind, path, filename, task.template_id, task.id,
                                                    task.time_zone),
        lambda check: tasks.add_rows(actor, task.id, check))


# --- changing ----------------------------------------------------------------------------------------------------

@router.put('/tasks/{task_id}', response_model=TaskOut)
async def update_task(task_id: str, body: TaskChange, actor: Actor = Writing) -> dict[str, Any]:
    task = await tasks.get_task(actor, task_id)
    ranges = task.allowed_time_ranges if body.allowed_time_ranges is None else \
        [list(pair) for pair in ranges_from_wire(body.allowed_time_ranges)]
    with wire_errors():
        return task_to_api(await tasks.update_task(actor, task.id, task.name if body.name is None else body.name,
                                                   ranges, body.time_zone or task.time_zone))


@router.delete('/tasks/{task_id}', response_model=DeletedTaskOut)
async def delete_task(task_id: str, actor: Actor = Writing) -> dict[str, Any]:
    summary = await tasks.delete_task(actor, task_id)
    return {'removedMessageCount': summary.unsent, 'keptMessageCount': summary.kept}


@router.post('/startedTasks/{task_id}', response_model=TaskOut)
async def start_task(task_id: str, actor: Actor = Writing) -> dict[str, Any]:
    return task_to_api(await tasks.start_task(actor, task_id))


@router.post('/pausedTasks/{task_id}', response_model=TaskOut)
async def pause_task(task_id: str, actor: Actor = Writing) -> dict[str, Any]:
    return task_to_api(await tasks.pause_task(actor, task_id))


@router.delete('/pausedTasks/{task_id}', response_model=TaskOut)
async def resume_task(task_id: str, actor: Actor = Writing) -> dict[str, Any]:
    return task_to_api(await tasks.resume_task(actor, task_id))
