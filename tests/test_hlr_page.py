"""Check phones (HLR): checking typed and uploaded numbers, searching by part and by period (kept in the URL),
exporting every matching result, and what a viewer may do."""
from __future__ import annotations

import io
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import openpyxl
from helpers import eventually, make_actor, sign_in_as, table_rows
from nicegui import ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing import User
from test_hlr import xlsx

from domain import hlr
from domain.models import HlrCheck, Role
from ui import session

ZONE = 'Asia/Vladivostok'  # UTC+10: a day there starts ten hours before the UTC day
MOSCOW = '+74951234567'


def phones_listed(user: User) -> list[str]:
    return [row['phone'] for row in table_rows(user)]


async def listed(user: User, expected: list[str]) -> None:
    await eventually(lambda: phones_listed(user) == expected)


def browser_in(user: User, zone: str) -> None:
    """What every page's script tells the server."""
    user.http_client.cookies.set(session.ZONE_COOKIE, zone)


def marked(user: User, marker: str) -> ui.element:
    return next(iter(user.find(marker=marker).elements))


async def test_an_operator_checks_pasted_numbers_and_searches_them(user: User) -> None:
    await sign_in_as(user, Role.OPERATOR)
    await user.open('/hlr')
    await user.should_see('No phone numbers have been checked yet.')
    user.find(marker='check').click()
    await eventually(lambda: marked(user, 'numbers').error == 'Enter at least one phone number.')
    assert table_rows(user) == []

    user.find(marker='numbers').type('8 (900) 123-45-67, +7 495 123-45-67; 12345\n89001234567')
    user.find(marker='check').click()
    await user.should_see('Checked 3 number(s): 2 valid, 1 invalid.')
    await listed(user, [MOSCOW, '+79001234567', '12345'])  # newest first, then by phone
    rows = {row['phone']: row for row in table_rows(user)}
    assert {key: rows['+79001234567'][key] for key in ('status', 'reason', 'number_type', 'network', 'region',
                                                       'cost')} == {
        'status': 'VALID', 'reason': '', 'number_type': 'mobile', 'network': 'T2', 'region': 'Russia, RU',
        'cost': '0 EUR'}
    assert rows[MOSCOW]['region'] == 'Moscow, RU'
    assert (rows['12345']['status'], rows['12345']['reason']) == ('INVALID', 'too short')
    assert marked(user, 'numbers').value == ''

    user.find(marker='search').type('900 12')
    await listed(user, ['+79001234567'])
    marked(user, 'search').value = 'abc'
    await eventually(lambda: marked(user, 'search').error == 'Search with digits of the phone number.')
    assert table_rows(user) == []
    user.find('Clear').click()
    await listed(user, [MOSCOW, '+79001234567', '12345'])

    await user.open('/hlr?search=495&sort=phone&desc=false')  # the filters a reload or a shared link keeps
    await listed(user, [MOSCOW])
    assert marked(user, 'search').value == '495'


async def test_the_period_is_read_in_the_browsers_time_zone(user: User) -> None:
    operator = await make_actor(Role.OPERATOR, 'checker@example.com')
    old = await hlr.check_phones(operator, [MOSCOW])
    await HlrCheck.filter(check_id=old).update(created_at=datetime.now(timezone.utc) - timedelta(days=40))
    today = datetime.now(timezone.utc).astimezone(ZoneInfo(ZONE)).date()
    new = await hlr.check_phones(operator, ['+79001234567'])
    early = datetime.combine(today, time(0, 30), ZoneInfo(ZONE))  # still the day before in UTC
    await HlrCheck.filter(check_id=new).update(created_at=early.astimezone(timezone.utc))
    await sign_in_as(user, Role.VIEWER)
    browser_in(user, ZONE)

    await user.open(f'/hlr?date_from={today}&date_to={today}')
    await listed(user, ['+79001234567'])
    assert marked(user, 'period').value == today.isoformat()
    marked(user, 'period-picker').value = {'from': (today - timedelta(days=41)).isoformat(),
                                           'to': (today - timedelta(days=39)).isoformat()}
    await listed(user, [MOSCOW])
    assert marked(user, 'period').value == f'{today - timedelta(days=41)} – {today - timedelta(days=39)}'
    user.find('Clear').click()
    await listed(user, ['+79001234567', MOSCOW])
    assert marked(user, 'period').value == ''

    await user.open('/hlr?date_from=not-a-date')  # a broken link shows everything
    await listed(user, ['+79001234567', MOSCOW])


async def test_a_viewer_sees_and_exports_every_matching_result_but_cannot_check(user: User) -> None:
    operator = await make_actor(Role.OPERATOR, 'checker@example.com')
    await hlr.check_phones(operator, [f'+7900123{i:04d}' for i in range(25)] + ['=HYPERLINK("http://x")', MOSCOW])
    await sign_in_as(user, Role.VIEWER)
    browser_in(user, ZONE)
    await user.open('/hlr?search=900123')
    await eventually(lambda: len(table_rows(user)) == 20)  # one page of 25
    await user.should_not_see(marker='numbers')
    await user.should_not_see(marker='check')

    user.find(marker='export').click()
    response = await user.download.next(timeout=10)
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == hlr.EXPORT_HEADERS
    assert [row[0] for row in rows[1:]] == [f'+7900123{i:04d}' for i in range(25)]
    assert rows[1][1:5] == ('VALID', None, 'mobile', 'T2')

    await user.open('/hlr?search=')
    await eventually(lambda: len(table_rows(user)) == 20)
    user.find(marker='export').click()
    response = await user.download.next(timeout=10)
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    assert sheet.max_row == 28
    cell = next(c for c in sheet['A'] if c.value == '=HYPERLINK("http://x")')
    assert cell.data_type == 's'  # text, not a formula



async def test_numbers_are_checked_from_an_uploaded_file(user: User) -> None:
    await sign_in_as(user, Role.OPERATOR)
    await user.open('/hlr')
    upload = next(iter(user.find(ui.upload).elements))
    data = xlsx(('Name', 'Phone'), ('Ann', 79001234567), ('Bob', '8 495 123-45-67'), ('Cy', 'n/a'))
    await upload.handle_uploads([SmallFileUpload('clients.xlsx', '', data)])
    await user.should_see('Checked 3 number(s): 2 valid, 1 invalid.')
    await listed(user, [MOSCOW, '+79001234567', 'n/a'])

    await upload.handle_uploads([SmallFileUpload('clients.xlsx', '', b'PK\x03\x04 broken')])
    await user.should_see('clients.xlsx: This file is not a readable Excel workbook (.xlsx).')
    await upload.handle_uploads([SmallFileUpload('clients.docx', '', b'+79001234567')])
    await user.should_see('clients.docx: Upload an .xlsx, .csv or .txt file.')
    await upload.handle_uploads([SmallFileUpload('huge.txt', '', b'7' * (hlr.MAX_FILE_BYTES + 1))])
    await user.should_see('The file is larger than 10 MB.')
    assert await HlrCheck.all().count() == 3
    await listed(user, [MOSCOW, '+79001234567', 'n/a'])
