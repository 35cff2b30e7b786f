"""Tasks for notifications as a service: a file is checked before anything is created, the task's messages wait until
it starts, pause and resume hold and release them, counters are exact, and deleting removes only unsent messages."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest
from helpers import make_actor
from test_dispatch import INSTANT, engine, settle
from test_task_files import rewrite_member, zip_bomb
from tortoise.transactions import in_transaction

from domain import history, sql, task_files, tasks
from domain.auth import Actor
from domain.channels import Channel
from domain.config import settings
from domain.errors import PermissionDenied, ValidationError
from domain.models import (
    Message,
    Notification,
    Role,
    SenderName,
    SenderStatus,
    Suppression,
    SuppressionKind,
    Tariff,
    Task,
    TaskKind,
    TaskStatus,
)
from domain.statuses import MessageStatus
from domain.task_import import check_file

SMS_HEADERS = {column.key: column.en for column in task_files.COLUMNS[TaskKind.SMS]}


@pytest.fixture
async def operator(db) -> Actor:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    await Tariff.create(channel=Channel.SMS, country='RU', price_per_part='0.0300', currency='EUR')
    return await make_actor(Role.OPERATOR)


def sms_file(path: Path, rows: list[dict[str, object]]) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    keys = list(SMS_HEADERS)
    sheet.append([SMS_HEADERS[key] for key in keys])
    for row in rows:
        sheet.append([row.get(key) for key in keys])
    workbook.save(path)
    return path


def sms_rows(count: int, start: int = 0) -> list[dict[str, object]]:
    return [{'phone': f'+7912345{start + i:04d}', 'sender': 'MyShop', 'text': f'Order {start + i} is ready'}
            for i in range(count)]


async def new_task(actor: Actor, tmp_path: Path, rows: list[dict[str, object]], name: str = 'October') -> str:
    check = await check_file(actor, TaskKind.SMS, sms_file(tmp_path / f'{name}.xlsx', rows), f'{name}.xlsx')
    return (await tasks.create_task(actor, check, name, [], 'UTC')).id


async def message_statuses(task_id: str) -> list[MessageStatus]:
    return sorted(m.status for m in await Message.filter(task_id=task_id))


async def test_a_checked_file_shows_its_rows_problems_and_cost_and_creates_nothing_until_confirmed(
        operator: Actor, tmp_path: Path) -> None:
    rows = sms_rows(3) + [{'phone': '12', 'sender': 'MyShop', 'text': 'Hi'},
                          {'phone': 89123450001, 'sender': 'MyShop', 'text': 'Same phone as row 3'},
                          {'phone': '+79123459999', 'sender': 'Unknown', 'text': 'Hi'}]
    check = await check_file(operator, TaskKind.SMS, sms_file(tmp_path / 'a.xlsx', rows), 'a.xlsx')
    assert (check.rows, check.valid) == (6, 3)
    assert [problem.row for problem in check.problems] == [5, 6, 7]
    assert 'row 3' in check.problems[1].reason
    assert check.problems_file.exists()
    assert check.tally('first').messages == 3 and str(check.tally('first').cost['EUR']) == '0.0900'
    assert [row.recipient for row in check.preview] == ['+79123450000', '+79123450001', '+79123450002']
    assert await Task.all().count() == 0 and await Message.all().count() == 0
    check.discard()
    assert not check.directory.exists()


async def test_a_created_task_waits_until_it_is_started(operator: Actor, tmp_path: Path) -> None:
    routes, dispatcher = await engine(sms=INSTANT)
    task_id = await new_task(operator, tmp_path, sms_rows(3))
    view = await tasks.get_task(operator, task_id)
    assert view.status is TaskStatus.CREATED and view.counts == tasks.Counts(total=3)
    assert await dispatcher.dispatch_once() == 0
    assert await message_statuses(task_id) == [MessageStatus.PAUSED] * 3

    await tasks.start_task(operator, task_id)

    async def delivered() -> bool:
        return await message_statuses(task_id) == [MessageStatus.DELIVERED] * 3
    await settle(dispatcher, delivered)
    assert await tasks.complete_finished_tasks() == 1
    view = await tasks.get_task(operator, task_id)
    assert view.status is TaskStatus.COMPLETED and view.completed_at
    assert view.counts == tasks.Counts(total=3, processed=3, delivered=3) and view.counts.progress == 1.0
    await routes.close()


async def test_pausing_holds_the_queue_and_resuming_releases_it(operator: Actor, tmp_path: Path) -> None:
    routes, dispatcher = await engine(sms=INSTANT)
    task_id = await new_task(operator, tmp_path, sms_rows(4))
    await tasks.start_task(operator, task_id)
    view = await tasks.pause_task(operator, task_id)
    assert view.status is TaskStatus.PAUSED and view.can_resume and not view.can_pause
    assert await message_statuses(task_id) == [MessageStatus.PAUSED] * 4
    assert await dispatcher.dispatch_once() == 0
    with pytest.raises(ValidationError):
        await tasks.start_task(operator, task_id)

    await tasks.resume_task(operator, task_id)

    async def delivered() -> bool:
        return await message_statuses(task_id) == [MessageStatus.DELIVERED] * 4
    await settle(dispatcher, delivered)
    await routes.close()


async def test_a_paused_tasks_messages_claimed_meanwhile_are_held_back(operator: Actor, tmp_path: Path) -> None:
    routes, dispatcher = await engine(sms=INSTANT)
    task_id = await new_task(operator, tmp_path, sms_rows(2))
    await tasks.start_task(operator, task_id)
    await Task.filter(id=task_id).update(status=TaskStatus.PAUSED)  # paused between the claim's read and its plan
    await dispatcher.dispatch_once()
    assert await message_statuses(task_id) == [MessageStatus.PAUSED] * 2
    await routes.close()


async def test_canceling_cancels_every_unsent_message(operator: Actor, tmp_path: Path) -> None:
    task_id = await new_task(operator, tmp_path, sms_rows(3))
    view = await tasks.cancel_task(operator, task_id)
    assert view.status is TaskStatus.CANCELED and not view.can_edit
    assert await message_statuses(task_id) == [MessageStatus.CANCELED] * 3
    await tasks.complete_finished_tasks()
    stored = await Task.get(id=task_id)
    assert (stored.total_count, stored.processed_count, stored.status) == (3, 3, TaskStatus.CANCELED)
    with pytest.raises(ValidationError):
        await tasks.update_task(operator, task_id, 'Renamed', [], 'UTC')


async def test_counters_are_exact(operator: Actor, tmp_path: Path) -> None:
    task_id = await new_task(operator, tmp_path, sms_rows(6))
    ids = [str(m.id) for m in await Message.filter(task_id=task_id).order_by('recipient')]
    for message_id, status in zip(ids, (MessageStatus.SENT, MessageStatus.PENDING, MessageStatus.DELIVERED,
                                        MessageStatus.READ, MessageStatus.UNDELIVERED)):
        await Message.filter(id=message_id).update(status=status)
    counts = (await tasks.get_task(operator, task_id)).counts
    assert counts == tasks.Counts(total=6, processed=3, in_progress=2, delivered=2, failed=1)


async def test_deleting_removes_unsent_messages_and_keeps_sent_ones_in_the_history(
        operator: Actor, tmp_path: Path) -> None:
    task_id = await new_task(operator, tmp_path, sms_rows(3))
    sent = await Message.filter(task_id=task_id).order_by('recipient').first()
    await Message.filter(id=sent.id).update(status=MessageStatus.DELIVERED)
    summary = await tasks.deletion_summary(operator, task_id)
    assert (summary.unsent, summary.kept) == (2, 1)

    await tasks.delete_task(operator, task_id)
    assert not await Task.exists(id=task_id)
    remaining = await Message.all()
    assert [(str(m.id), m.task_id) for m in remaining] == [(str(sent.id), None)]
    assert await Notification.all().count() == 1
    page = await history.list_messages(operator, history.HistoryFilter(search='912345'))
    assert [str(row['id']) for row in page.rows] == [str(sent.id)]
    if not sql.is_postgres():
        indexed = await sql.execute('SELECT count(*) AS n FROM message_search')
        assert indexed[0]['n'] == 1


async def test_rows_added_to_a_running_task_are_queued_at_once(operator: Actor, tmp_path: Path) -> None:
    task_id = await new_task(operator, tmp_path, sms_rows(2))
    await tasks.start_task(operator, task_id)
    again = {'phone': '8 912 345 00 01', 'sender': 'MyShop', 'text': 'Again?'}  # the first file's row 3
    more = await check_file(operator, TaskKind.SMS, sms_file(tmp_path / 'more.xlsx', sms_rows(2, start=10) + [again]),
                            'more.xlsx', task_id=task_id)
    assert [(p.row, p.reason) for p in more.problems] == [(4, 'the same phone as a row the task already has')]
    view = await tasks.add_rows(operator, task_id, more)
    assert view.counts.total == 4
    assert await message_statuses(task_id) == [MessageStatus.QUEUED] * 4


async def test_changing_the_time_limiter_applies_to_the_tasks_messages(operator: Actor, tmp_path: Path) -> None:
    task_id = await new_task(operator, tmp_path, sms_rows(2))
    with pytest.raises(ValidationError) as error:
        await tasks.update_task(operator, task_id, 'October', [['18:00', '09:00']], 'Europe/Moscow')
    assert 'time_ranges.0' in error.value.errors
    view = await tasks.update_task(operator, task_id, 'October, evening', [['18:00', '21:00']], 'Europe/Moscow')
    assert view.name == 'October, evening' and view.allowed_time_ranges == [['18:00', '21:00']]
    for notification in await Notification.filter(task_id=task_id):
        assert notification.allowed_time_ranges == [['18:00', '21:00']]
        assert notification.time_zone == 'Europe/Moscow'


async def test_opted_out_recipients_are_skipped(operator: Actor, tmp_path: Path) -> None:
    await Suppression.create(kind=SuppressionKind.PHONE, value='+79123450001')
    task_id = await new_task(operator, tmp_path, sms_rows(2))
    assert await message_statuses(task_id) == [MessageStatus.PAUSED, MessageStatus.SKIPPED]


def written(content: bytes):
    def make(path: Path) -> Path:
        path.write_bytes(content)
        return path
    return make


def formulas(path: Path) -> Path:
    return sms_file(path, [{'phone': '+79123456789', 'sender': 'MyShop', 'text': '=HYPERLINK("http://x", "y")'}])


def corrupt(path: Path) -> Path:
    sms_file(path, sms_rows(3))
    path.write_bytes(path.read_bytes()[:700])
    return path


def xml_bomb(path: Path) -> Path:
    sms_file(path, sms_rows(1))
    rewrite_member(path, 'xl/worksheets/sheet1.xml', b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
                                                     b'<worksheet><sheetData/></worksheet>')
    return path


def oversized(path: Path) -> Path:
    sms_file(path, sms_rows(1))
    with path.open('ab') as file:
        file.write(bytes(task_files.MAX_FILE_BYTES))
    return path


@pytest.mark.parametrize('make, message', [
    (written(b''), 'empty'),
    (lambda path: sms_file(path, []), 'no rows'),
    (written(b'phone,text\n+79123456789,hi\n'), 'not an Excel .xlsx'),
    (written(b'\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1' + bytes(600)), '.xls'),
    (corrupt, 'damaged'),
    (formulas, 'formulas'),
    (lambda path: zip_bomb(path, 120), 'zip bomb'),
    (xml_bomb, 'unsafe'),
    (oversized, 'larger than'),
])
async def test_an_unusable_file_gets_a_clear_error_and_creates_nothing(operator: Actor, tmp_path: Path, make,
                                                                     message: str) -> None:
    path = make(tmp_path / 'upload.xlsx')
    with pytest.raises(task_files.FileRejected) as error:
        await check_file(operator, TaskKind.SMS, path, 'upload.xlsx')
    assert message in error.value.errors['file']
    assert await Task.all().count() == 0 and await Message.all().count() == 0
    assert not any((settings().data_dir / 'tasks').glob('*'))


async def test_a_task_needs_a_name_and_valid_rows(operator: Actor, tmp_path: Path) -> None:
    check = await check_file(operator, TaskKind.SMS, sms_file(tmp_path / 'a.xlsx', sms_rows(1)), 'a.xlsx')
    with pytest.raises(ValidationError) as error:
        await tasks.create_task(operator, check, '  ', [], 'UTC')
    assert 'name' in error.value.errors
    bad = await check_file(operator, TaskKind.SMS, sms_file(tmp_path / 'b.xlsx', [{'phone': '1', 'text': 'x'}]),
                           'b.xlsx')
    with pytest.raises(ValidationError) as error:
        await tasks.create_task(operator, bad, 'Nothing valid', [], 'UTC')
    assert 'file' in error.value.errors
    assert await Task.all().count() == 0


async def test_a_viewer_can_look_but_not_act(operator: Actor, tmp_path: Path) -> None:
    task_id = await new_task(operator, tmp_path, sms_rows(1))
    viewer = await make_actor(Role.VIEWER)
    assert (await tasks.list_tasks(viewer))[0] == 1
    for action in (tasks.start_task, tasks.cancel_task, tasks.delete_task):
        with pytest.raises(PermissionDenied):
            await action(viewer, task_id)


async def test_the_list_filters_by_category_name_and_day(operator: Actor, tmp_path: Path) -> None:
    first = await new_task(operator, tmp_path, sms_rows(1), 'Spring sale')
    await new_task(operator, tmp_path, sms_rows(1, start=5), 'Autumn sale')
    await tasks.start_task(operator, first)
    during = await tasks.list_tasks(operator, tasks.TaskFilter(category=tasks.Category.DURING))
    assert [task.name for task in during[1]] == ['Spring sale']
    by_name = await tasks.list_tasks(operator, tasks.TaskFilter(name='autumn'))
    assert [task.name for task in by_name[1]] == ['Autumn sale']
    today = (await Task.get(id=first)).created_at.date()
    assert (await tasks.list_tasks(operator, tasks.TaskFilter(created_on=today)))[0] == 2
    yesterday = today - timedelta(days=1)
    assert (await tasks.list_tasks(operator, tasks.TaskFilter(created_on=yesterday)))[0] == 0


async def test_a_large_file_is_imported_through_the_workers(operator: Actor, tmp_path: Path) -> None:
    rows = sms_rows(3000) + [{'phone': '8 912 345 00 01', 'sender': 'MyShop', 'text': 'Sent twice?'}]
    check = await check_file(operator, TaskKind.SMS, sms_file(tmp_path / 'big.xlsx', rows), 'big.xlsx')
    assert [(p.row, p.reason) for p in check.problems] == [(3002, 'the same phone as row 3')]
    assert check.valid == 3000 and check.tally('first').messages == 3000
    task_id = (await tasks.create_task(operator, check, 'Big', [], 'UTC')).id
    assert (await tasks.get_task(operator, task_id)).counts.total == 3000
    assert await Message.filter(task_id=task_id, status=MessageStatus.PAUSED).count() == 3000


async def test_a_window_opened_by_an_edit_releases_the_waiting_messages(operator: Actor, tmp_path: Path) -> None:
    routes, dispatcher = await engine(sms=INSTANT)
    task_id = await new_task(operator, tmp_path, sms_rows(2))
    now = datetime.now(timezone.utc)
    closed = [[f'{(now.hour + 2) % 24:02d}:00', f'{(now.hour + 2) % 24:02d}:30']]
    await tasks.update_task(operator, task_id, 'October', closed, 'UTC')
    await tasks.start_task(operator, task_id)
    await dispatcher.dispatch_once()
    assert await message_statuses(task_id) == [MessageStatus.DELAYED] * 2

    await tasks.update_task(operator, task_id, 'October', [], 'UTC')

    async def delivered() -> bool:
        return await message_statuses(task_id) == [MessageStatus.DELIVERED] * 2
    await settle(dispatcher, delivered)
    await routes.close()


async def test_start_times_in_a_file_are_read_in_the_tasks_time_zone(operator: Actor, tmp_path: Path) -> None:
    path = tmp_path / 'full.xlsx'
    workbook = openpyxl.Workbook()
    workbook.active.append(['Phone', 'SMS sender', 'SMS text', 'Start date', 'Start time'])
    workbook.active.append(['+79123456789', 'MyShop', 'See you', '2030-03-01', '09-30-00'])
    workbook.save(path)
    with pytest.raises(ValidationError):
        await check_file(operator, TaskKind.FULL, path, 'full.xlsx', time_zone='Mars/Olympus')
    check = await check_file(operator, TaskKind.FULL, path, 'full.xlsx', time_zone='Europe/Moscow')
    task_id = (await tasks.create_task(operator, check, 'Spring', [], 'Europe/Moscow')).id
    notification = await Notification.get(task_id=task_id)
    assert notification.send_at == datetime(2030, 3, 1, 6, 30, tzinfo=timezone.utc)
    await tasks.start_task(operator, task_id)
    message = await Message.get(task_id=task_id)
    assert message.status is MessageStatus.QUEUED and message.due_at == notification.send_at


async def test_creating_a_task_while_another_transaction_is_open(operator: Actor, tmp_path: Path) -> None:
    """The staged files are attached and detached between transactions on SQLite's one connection, while the
    dispatcher or another user may hold one."""
    check = await check_file(operator, TaskKind.SMS, sms_file(tmp_path / 'a.xlsx', sms_rows(2)), 'a.xlsx')
    holding = asyncio.Event()

    async def busy() -> None:
        async with in_transaction():
            await SenderName.filter(name='MyShop').update(comment='busy')
            holding.set()
            await asyncio.sleep(0.3)
    other = asyncio.create_task(busy())
    await holding.wait()
    task = await tasks.create_task(operator, check, 'Meanwhile', [], 'UTC')
    await other
    assert task.counts.total == 2
