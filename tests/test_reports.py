"""The history's Excel report (domain/reports.py): messages made by enqueue and moved by change_status, read back."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from helpers import make_actor

from domain import enqueue, report_process, reports, sql
from domain.auth import Actor
from domain.channels import Channel
from domain.config import settings
from domain.delivery import StatusChange, change_status
from domain.enqueue import Destination, SendRequest
from domain.errors import ValidationError
from domain.history import HistoryFilter, where
from domain.models import Message, Role, SenderName, SenderStatus, ShortLink, Tariff, Template
from domain.statuses import MessageStatus

SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Hi {{name}}, your code is {{code}}'}
EMAIL = {'channel': 'email', 'fromEmail': 'shop@example.com', 'subject': 'Code {{code}}', 'text': 'Code {{code}}'}
MOSCOW = ZoneInfo('Europe/Moscow')


@pytest.fixture
async def operator(db) -> Actor:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    await Tariff.create(channel=Channel.SMS, country='RU', price_per_part=Decimal('2.5'), currency='RUB')
    return await make_actor(Role.OPERATOR)


async def send(actor: Actor, *phones: str, steps: list[dict] | None = None, **request) -> list[str]:
    destinations = [Destination(phone=phone, email=f'{phone[1:]}@example.com', variables={'name': 'Ann', 'code': 7})
                    for phone in phones]
    result = await enqueue.enqueue(actor, SendRequest(steps=[SMS] if steps is None else steps,
                                                      destinations=destinations, **request))
    assert not result.rejected
    return [message.id for message in result.messages]


async def export(actor: Actor, tmp_path: Path, language: str = 'en', **filters) -> list[dict[str, object]]:
    """The report's rows as {header: value}, after checking its header row."""
    path = tmp_path / f'report-{len(list(tmp_path.glob("report-*")))}.xlsx'
    seen: list[tuple[int, int]] = []
    count = await reports.export_history(actor, HistoryFilter(**filters), path, language, lambda *p: seen.append(p))
    rows = list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    headers = reports.HEADERS[language]
    assert list(rows[0]) == headers
    assert count == len(rows) - 1 and seen[-1] == (count, count)
    return [dict(zip(headers, row + (None,) * (len(headers) - len(row)))) for row in rows[1:]]


def local(moment: datetime) -> datetime:
    """A stored time as the report shows it: in Moscow time, without a zone (Excel has none)."""
    return moment.astimezone(MOSCOW).replace(tzinfo=None)


def close_to(value: object, expected: datetime) -> bool:
    """Equal to Excel's precision (openpyxl reads times to the millisecond)."""
    return isinstance(value, datetime) and abs(value - expected) <= timedelta(milliseconds=1)


async def test_headers_in_the_manuals_order_in_english_and_russian(operator: Actor, tmp_path: Path) -> None:
    assert await export(operator, tmp_path) == []
    assert await export(operator, tmp_path, 'ru') == []
    assert reports.HEADERS['en'][:5] == ['Message ID', 'Download ID', 'Group ID', 'Delivery ID',
                                        'Message delivery status']
    assert reports.HEADERS['en'][-5:] == ['Date of message registration in the system', 'Sent date',
                                         'Delivery status received date', 'Send start date (for DELAYED messages)',
                                         'End date of delivery']
    assert reports.HEADERS['ru'][-5:] == ['Дата регистрации сообщения в системе', 'Дата отправки',
                                         'Дата получения статуса о доставке',
                                         'Дата начала отправки (для DELAYED сообщений)', 'Дата окончания доставки']
    assert len(reports.HEADERS['ru']) == len(reports.HEADERS['en'])
    assert openpyxl.load_workbook(tmp_path / 'report-1.xlsx').active.title == 'История уведомлений'


async def test_every_column_of_a_delivered_cascade(operator: Actor, tmp_path: Path) -> None:
    template = await Template.create(name='Login code', steps=[SMS, EMAIL])
    sms_id, email_id = await send(operator, '+79123456789', steps=[], template_id=template.id, group_id='group-1',
                                  flow_id='flow-1', bulk_id='bulk-1')
    await ShortLink.create(code='aB3', target='https://shop.example/x', message_id=sms_id, clicks=3)
    sent_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    delivered_at = sent_at + timedelta(seconds=42)
    await change_status([StatusChange(sms_id, MessageStatus.SENT, network='MTS')], at=sent_at)
    await change_status([StatusChange(sms_id, MessageStatus.DELIVERED)], at=delivered_at)
    sms, email = await Message.get(id=sms_id), await Message.get(id=email_id)

    rows = {row['Message ID']: row for row in await export(operator, tmp_path, zone='Europe/Moscow')}
    row = rows[sms_id]
    assert row == {
        **row,
        'Download ID': 'bulk-1', 'Group ID': 'group-1', 'Delivery ID': 'flow-1', 'Message delivery status': 'DELIVERED',
        'Status description': MessageStatus.DELIVERED.description, 'Send channel': 'SMS', 'Sender': 'MyShop',
        'Recipient': '+79123456789', 'Message text': 'Hi Ann, your code is 7', 'Message cost': 2.5, 'Currency': 'RUB',
        'Cellular network operator': 'MTS', 'Message template ID': str(template.id),
        'Message template name': 'Login code', 'Number of message parts': 1, 'Number of views and clicks Email': None,
        'Short link': f'{settings().public_url}/s/aB3', 'Number of clicks on the link': 3,
        'Sent date': local(sent_at), 'Delivery status received date': local(delivered_at),
        'Send start date (for DELAYED messages)': None, 'End date of delivery': local(delivered_at),
    }
    assert json.loads(row['Variables']) == {'name': 'Ann', 'code': 7}
    assert close_to(row['Date of message registration in the system'], local(sms.created_at))

    other = rows[email_id]
    assert (other['Message delivery status'], other['Send channel'], other['Recipient']) == (
        'SKIPPED', 'Email', '79123456789@example.com')
    assert (other['Number of views and clicks Email'], other['Message text'], other['Sent date']) == ('0 / 0',
                                                                                                     'Code 7', None)
    assert close_to(other['End date of delivery'], local(email.ended_at))


async def test_dates_in_the_filters_zone(operator: Actor, tmp_path: Path) -> None:
    [message_id] = await send(operator, '+79123456789')
    sent_at = datetime(2030, 6, 1, 22, 30, tzinfo=timezone.utc)
    await change_status([StatusChange(message_id, MessageStatus.SENT)], at=sent_at)
    for zone, expected in (('UTC', datetime(2030, 6, 1, 22, 30)), ('Asia/Tokyo', datetime(2030, 6, 2, 7, 30)),
                           ('America/New_York', datetime(2030, 6, 1, 18, 30))):
        [row] = await export(operator, tmp_path, zone=zone)
        assert row['Sent date'] == expected


async def test_put_off_sending_shows_its_start(operator: Actor, tmp_path: Path) -> None:
    later = datetime(2030, 1, 1, 9, 0, tzinfo=timezone.utc)
    await send(operator, '+79123456789', send_at=later)
    [row] = await export(operator, tmp_path)
    assert row['Send start date (for DELAYED messages)'] == datetime(2030, 1, 1, 9, 0)


async def test_filters_select_the_same_messages_as_the_page(operator: Actor, tmp_path: Path) -> None:
    delivered, error = await send(operator, '+79123456701', '+79123456702')
    [email] = await send(operator, '+79990000003', steps=[EMAIL])
    [old] = await send(operator, '+79123456704')
    await change_status([StatusChange(delivered, MessageStatus.SENT)])
    await change_status([StatusChange(delivered, MessageStatus.DELIVERED), StatusChange(error, MessageStatus.ERROR)])
    await Message.filter(id=old).update(created_at=datetime.now(timezone.utc) - timedelta(days=40))

    async def ids(**filters) -> set[str]:
        return {row['Message ID'] for row in await export(operator, tmp_path, **filters)}
    assert await ids() == {delivered, error, email, old}
    assert await ids(status=MessageStatus.DELIVERED) == {delivered}
    assert await ids(channel=Channel.EMAIL) == {email}
    assert await ids(search='345670') == {delivered, error, old}
    assert await ids(search='+7 912 345-67-02') == {error}
    assert await ids(date_from=date.today() - timedelta(days=1)) == {delivered, error, email}
    assert await ids(date_to=date.today() - timedelta(days=30)) == {old}


async def test_formula_looking_text_stays_text(operator: Actor, tmp_path: Path) -> None:
    formula = {'channel': 'sms', 'from': 'MyShop', 'text': '=HYPERLINK("http://evil.example","{{name}}")'}
    await send(operator, '+79123456789', steps=[formula])
    path = tmp_path / 'formula.xlsx'
    await reports.export_history(operator, HistoryFilter(), path)
    cell = openpyxl.load_workbook(path).active.cell(row=2, column=reports.HEADERS['en'].index('Message text') + 1)
    assert cell.data_type == 's' and cell.value == '=HYPERLINK("http://evil.example","Ann")'


async def test_keyset_chunks_read_every_message_once_in_order(operator: Actor,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages of one request share their created_at: the rowid (SQLite: insertion order) or the id (PostgreSQL)
    breaks the ties between chunks."""
    created = await send(operator, *(f'+791234567{i:02d}' for i in range(7)))
    monkeypatch.setattr(report_process, 'CHUNK', 3)
    clause, params = where(HistoryFilter())
    chunks = [[str(row[0]) for row in rows] async for rows, _ in report_process._chunks(clause, params)]
    assert [len(chunk) for chunk in chunks] == [3, 3, 1]
    assert [message_id for chunk in chunks for message_id in chunk] == (sorted(created) if sql.is_postgres()
                                                                        else created)


async def test_too_many_rows_for_a_sheet_is_refused(operator: Actor, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    await send(operator, '+79123456701', '+79123456702')
    monkeypatch.setattr(reports, 'MAX_ROWS', 2)
    with pytest.raises(ValidationError) as error:
        await reports.export_history(operator, HistoryFilter(), tmp_path / 'big.xlsx')
    assert 'at most 1' in error.value.errors['report']
    assert not (tmp_path / 'big.xlsx').exists()


async def test_writer_failure_is_raised(operator: Actor, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match='could not be written: FileNotFoundError'):
        await reports.export_history(operator, HistoryFilter(), tmp_path / 'missing' / 'report.xlsx')


async def test_a_viewer_may_export(db, tmp_path: Path) -> None:
    viewer = await make_actor(Role.VIEWER)
    assert await export(viewer, tmp_path) == []
