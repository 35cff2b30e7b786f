"""The Tasks for notifications page: the list with counters, filters in the URL, creating a task from an uploaded
file, editing, the lifecycle buttons, deleting, and what a viewer sees."""
from __future__ import annotations

import io
import uuid
from datetime import datetime, timezone
from typing import Any

import openpyxl
import pytest
from helpers import eventually, make_actor, sign_in_as
from nicegui import ui
from nicegui.testing import User

from domain import task_import, tasks
from domain.auth import Actor
from domain.channels import Channel
from domain.config import settings
from domain.models import Message, Role, SenderName, SenderStatus, Tariff, Task, TaskKind
from domain.statuses import MessageStatus
from domain.tasks import TaskView
from domain.xlsx import MEDIA_TYPE

HEADERS = ['Phone', 'Sender', 'Text', 'External ID']
VALID = [['+79001230001', 'MyShop', 'Your order is ready', 'o-1'], ['+79001230002', 'MyShop', 'Hello', 'o-2'],
         ['+79001230003', 'MyShop', 'Bye', 'o-3']]
INVALID = ['not a phone', 'MyShop', 'Oops', 'o-4']


def closed_window() -> list[list[str]]:
    """A sending window that is closed now (UTC): started tasks' messages wait DELAYED, so the task keeps running."""
    start = (datetime.now(timezone.utc).hour + 2) % 24
    return [[f'{start:02d}:00', f'{start + 1:02d}:00' if start < 23 else '24:00']]


def workbook(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in [HEADERS, *rows]:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def prepare() -> None:
    await SenderName.get_or_create(name='MyShop', channel=Channel.SMS, defaults={'status': SenderStatus.APPROVED})
    await Tariff.create(channel=Channel.SMS, country='*', price_per_part='0.05', currency='EUR')


async def make_task(actor: Actor, name: str, rows: list[list[Any]] = VALID) -> TaskView:
    path = settings().data_dir / f'{uuid.uuid4().hex}.xlsx'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(workbook(rows))
    check = await task_import.check_file(actor, TaskKind.SMS, path, 'contacts.xlsx')
    return await tasks.create_task(actor, check, name, closed_window(), 'UTC')


def rows(user: User) -> list[dict]:
    return user.find(marker='tasks').elements.pop().rows


def row(user: User, name: str) -> dict:
    return next(r for r in rows(user) if r['name'] == name)


def names(user: User) -> list[str]:
    return [r['name'] for r in rows(user)]


async def upload(user: User, content: bytes, filename: str = 'contacts.xlsx') -> None:
    """What the browser's file picker does: hand the file to the dialog's ui.upload."""
    element = user.find(ui.upload).elements.pop()
    await element.handle_uploads([ui.upload.SmallFileUpload(filename, MEDIA_TYPE, content)])


@pytest.fixture
def urls(user: User, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The addresses the page shows in the address bar."""
    shown: list[str] = []
    monkeypatch.setattr(user.navigate.history, 'replace', shown.append)
    return shown


async def test_lists_tasks_with_counters_and_filters_them_in_the_url(user: User, urls: list[str]) -> None:
    await prepare()
    operator = await make_actor(Role.OPERATOR, 'ops@example.com')
    await make_task(operator, 'Spring sale')
    running = await make_task(operator, 'Order reminders', VALID[:2])
    await tasks.start_task(operator, running.id)
    await sign_in_as(user, Role.VIEWER)
    await user.open('/tasks')
    await eventually(lambda: sorted(names(user)) == ['Order reminders', 'Spring sale'])
    sale = row(user, 'Spring sale')
    assert (sale['kind'], sale['status'], sale['total'], sale['processed'], sale['progress']) == \
        ('SMS messages', 'Created', 3, 0, 0)
    assert (row(user, 'Order reminders')['status'], row(user, 'Order reminders')['total']) == ('During', 2)

    user.find(marker='category-created').click()
    await eventually(lambda: names(user) == ['Spring sale'])
    assert urls[-1] == '/tasks?category=created'
    user.find(marker='category-completed').click()
    await user.should_see('No tasks match the filters.')
    user.find(marker='category-all').click()
    user.find(marker='name').type('order')
    await eventually(lambda: names(user) == ['Order reminders'] and urls[-1] == '/tasks?name=order')
    today = datetime.now(timezone.utc).date().isoformat()
    await user.open(f'/tasks?category=during&date={today}')
    await eventually(lambda: names(user) == ['Order reminders'])
    await user.open('/tasks?date=2001-01-01')
    await user.should_see('No tasks match the filters.')
    user.find(marker='clear').click()
    await eventually(lambda: len(rows(user)) == 2 and urls[-1] == '/tasks')


async def test_counters_follow_the_messages_live(user: User) -> None:
    await prepare()
    operator = await make_actor(Role.OPERATOR, 'ops@example.com')
    task = await make_task(operator, 'Spring sale')
    await sign_in_as(user, Role.VIEWER)
    await user.open('/tasks')
    await eventually(lambda: names(user) == ['Spring sale'])
    await tasks.start_task(operator, task.id)  # published: the page refreshes within a second
    await eventually(lambda: row(user, 'Spring sale')['status'] == 'During')


async def test_create_a_task_from_an_uploaded_file(user: User) -> None:
    await prepare()
    await sign_in_as(user, Role.OPERATOR)
    await user.open('/tasks')
    user.find(marker='add-task').click()
    await user.should_see(marker='task-dialog')
    assert not user.find(marker='create-task').elements.pop().enabled
    user.find(marker='task-name').type('Spring sale')
    await upload(user, workbook([*VALID, INVALID]))
    await user.should_see('Rows in the file: 4 · valid: 3 · invalid: 1', marker='file-summary', retries=150)
    [problem] = user.find(marker='problems').elements.pop().rows
    assert (problem['row'], problem['column']) == (5, 'Phone')
    preview = user.find(marker='preview').elements.pop().rows
    assert [p['recipient'] for p in preview] == ['+79001230001', '+79001230002', '+79001230003']
    assert preview[0]['cost'] == '0.05 EUR'
    await user.should_see('Estimated cost: 0.15 EUR', marker='cost')
    await user.should_see('Messages by channel: SMS: 3')
    user.find('Download invalid rows').click()
    await user.download.next()

    user.find(marker='create-task').click()
    await eventually(lambda: names(user) == ['Spring sale'])
    assert row(user, 'Spring sale')['total'] == 3
    task = await Task.get(name='Spring sale')
    assert task.status == 'created' and task.source_filename == 'contacts.xlsx'
    assert set(await Message.filter(task_id=task.id).values_list('status', flat=True)) == {MessageStatus.PAUSED}
    [_, invalid] = openpyxl.load_workbook(task.error_report).active.iter_rows(values_only=True)
    assert invalid[0] == 5 and 'not a phone' in invalid


async def test_the_dialog_checks_name_file_and_cancel_creates_nothing(user: User) -> None:
    await prepare()
    await sign_in_as(user, Role.OPERATOR)
    await user.open('/tasks')
    user.find(marker='add-task').click()
    await user.should_see(marker='task-dialog')
    await upload(user, b'this is no workbook', 'contacts.xlsx')
    await user.should_see('not an Excel .xlsx file', marker='file-error', retries=150)
    assert not user.find(marker='create-task').elements.pop().enabled
    await upload(user, workbook([INVALID]))
    await user.should_see('valid: 0 · invalid: 1', marker='file-summary', retries=150)
    assert not user.find(marker='create-task').elements.pop().enabled
    await upload(user, workbook(VALID))
    await user.should_see('valid: 3', marker='file-summary', retries=150)
    user.find(marker='create-task').click()  # no name yet
    await eventually(lambda: user.find(marker='task-name').elements.pop().error == 'Enter a task name.')
    checks = list((settings().data_dir / 'tasks').iterdir())
    assert len(checks) == 1  # the earlier checks were thrown away when the next file came
    user.find(marker='cancel-task').click()
    await eventually(lambda: not checks[0].exists())

    user.find(marker='add-task').click()
    await user.should_see(marker='task-dialog')
    await upload(user, workbook(VALID))
    await user.should_see('valid: 3', marker='file-summary', retries=150)
    user.find(marker='kind').click()
    user.find('Start chat sessions').click()  # a kind that sends through a template: the check asks for one
    await user.should_see('The kind of task changed: select the file again.', marker='file-error', retries=150)
    assert not list((settings().data_dir / 'tasks').iterdir())
    await upload(user, workbook(VALID))
    await eventually(lambda: user.find(marker='template').elements.pop().error ==
                     'Choose the template that Start chat sessions send through.')
    user.find(marker='cancel-task').click()
    await user.should_not_see(marker='task-dialog')
    assert not await Task.exists() and not await Message.exists()


async def test_start_pause_resume_cancel_and_delete(user: User) -> None:
    await prepare()
    await sign_in_as(user, Role.OPERATOR)
    operator = await make_actor(Role.OPERATOR, 'ops@example.com')
    await make_task(operator, 'Spring sale')
    await user.open('/tasks')
    await eventually(lambda: names(user) == ['Spring sale'])
    table = user.find(marker='tasks')
    assert row(user, 'Spring sale')['can_start'] and not row(user, 'Spring sale')['can_pause']
    for action, status in (('start', 'During'), ('pause', 'Paused'), ('resume', 'During')):
        table.trigger(action, row(user, 'Spring sale'))
        await eventually(lambda status=status: row(user, 'Spring sale')['status'] == status)
    table.trigger('cancel', row(user, 'Spring sale'))
    await user.should_see('Cancel the task “Spring sale”?')
    user.find('Cancel task').click()
    await eventually(lambda: row(user, 'Spring sale')['status'] == 'Canceled')
    assert not any(row(user, 'Spring sale')[f'can_{flag}'] for flag in ('start', 'pause', 'resume', 'edit'))

    await make_task(operator, 'Reminders')
    await eventually(lambda: 'Reminders' in names(user))
    table.trigger('delete', row(user, 'Reminders'))
    await user.should_see('3 messages not yet sent will be removed. 0 messages already sent stay in the '
                          'notification history.')
    user.find(kind=ui.button, content='Delete').click()
    await eventually(lambda: names(user) == ['Spring sale'])
    assert not await Task.exists(name='Reminders')


async def test_edit_a_task_and_add_rows(user: User) -> None:
    await prepare()
    await sign_in_as(user, Role.OPERATOR)
    operator = await make_actor(Role.OPERATOR, 'ops@example.com')
    await make_task(operator, 'Spring sale', VALID[:1])
    await user.open('/tasks')
    await eventually(lambda: names(user) == ['Spring sale'])
    user.find(marker='tasks').trigger('rowClick', [{}, row(user, 'Spring sale'), 0])
    await user.should_see('Change message sending task')
    task_id = (await Task.get(name='Spring sale')).id
    assert user.find(marker='task-messages').elements.pop().props['href'] == f'/history?task={task_id}&from=all'
    name = user.find(marker='task-name')
    name.clear().type('Summer sale')
    user.find(marker='range-start-0').clear().type('25:00')
    user.find(marker='save-task').click()
    await eventually(lambda: user.find(marker='range-start-0').elements.pop().error is not None)
    user.find(marker='range-start-0').clear().type('08:00')
    user.find(marker='range-end-0').clear().type('20:00')
    await upload(user, workbook(VALID[1:]))
    await user.should_see('valid: 2', marker='file-summary', retries=150)
    user.find('Add 2 rows').click()
    await eventually(lambda: row(user, 'Spring sale')['total'] == 3)
    user.find(marker='save-task').click()
    await eventually(lambda: names(user) == ['Summer sale'])
    task = await Task.get(name='Summer sale')
    assert task.allowed_time_ranges == [['08:00', '20:00']]


async def test_a_viewer_sees_tasks_but_no_actions(user: User) -> None:
    await prepare()
    operator = await make_actor(Role.OPERATOR, 'ops@example.com')
    await make_task(operator, 'Spring sale')
    await sign_in_as(user, Role.VIEWER)
    await user.open('/tasks')
    await eventually(lambda: names(user) == ['Spring sale'])
    await user.should_not_see('Add new message sending task')
    table = user.find(marker='tasks').elements.pop()
    assert 'actions' not in [c['name'] for c in table.columns]
    assert 'body-cell-actions' not in table.slots
    user.find(marker='tasks').trigger('rowClick', [{}, row(user, 'Spring sale'), 0])
    await user.should_see('You can view tasks but not change them.')
    assert user.find(marker='task-name').elements.pop().props.get('readonly') is True
    await user.should_not_see(marker='save-task')
    await user.should_not_see(marker='file')
