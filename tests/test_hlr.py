import io
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import phonenumbers
import pytest
from helpers import make_actor
from phonenumbers import PhoneNumberFormat, PhoneNumberType, carrier, geocoder

from domain import hlr
from domain.config import reload_settings
from domain.errors import PermissionDenied, ValidationError
from domain.hlr import HlrStatus
from domain.models import AuditEvent, HlrCheck, Role
from domain.xlsx import write_xlsx
from providers.hlr_offline import OfflineHlrProvider, look_up, look_up_all

MOBILE = '+79001234567'  # Russia, T2
MOSCOW = '+74951234567'  # a Moscow fixed line
BERLIN_MOBILE = '+491701234567'


# --- the offline provider ----------------------------------------------------------------------------------------

def test_offline_provider_describes_valid_numbers() -> None:
    mobile, moscow, german = look_up(MOBILE), look_up(MOSCOW), look_up(BERLIN_MOBILE)
    assert (mobile.status, mobile.status_code, mobile.number_type, mobile.network, mobile.region, mobile.country) == \
        (HlrStatus.VALID, hlr.VALID_CODE, 'mobile', 'T2', 'Russia', 'RU')
    assert mobile.time_zone == ''  # Russian mobiles span eleven zones: none is picked
    assert (moscow.number_type, moscow.network, moscow.region, moscow.country, moscow.time_zone) == \
        ('fixed line', '', 'Moscow', 'RU', 'Europe/Moscow')
    assert (german.number_type, german.network, german.region, german.country, german.time_zone) == \
        ('mobile', 'T-Mobile', 'Germany', 'DE', 'Europe/Berlin')
    assert (mobile.ported, mobile.roaming, mobile.cost) == (None, None, Decimal(0))  # unknown offline, and free


@pytest.mark.parametrize(('number', 'why'), [
    ('+7900123', 'too short'),
    ('+7900123456789012', 'too long'),
    ('+999123456', 'unknown country code'),
    ('hello', 'not a phone number'),
])
def test_offline_provider_says_why_a_number_is_invalid(number: str, why: str) -> None:
    result = look_up(number)
    assert (result.phone, result.status, hlr.reason(result.status_code)) == (number, HlrStatus.INVALID, why)


def test_offline_provider_agrees_with_phonenumbers_own_lookups() -> None:
    """look_up works out the number type once; phonenumbers' functions each work it out again."""
    chance = random.Random(7)
    examples = [phonenumbers.format_number(example, PhoneNumberFormat.E164)
                for region in sorted(phonenumbers.SUPPORTED_REGIONS)
                for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE)
                if (example := phonenumbers.example_number_for_type(region, kind))]
    numbers = [example[:-3] + f'{chance.randrange(1000):03d}' for example in examples for _ in range(3)]
    numbers += [example[:-2] for example in examples]  # mostly too short
    valid = 0
    for number in numbers:
        result, parsed = look_up(number), phonenumbers.parse(number)
        assert (result.status is HlrStatus.VALID) == phonenumbers.is_valid_number(parsed), number
        if result.status is HlrStatus.VALID:
            valid += 1
            assert result.network == carrier.name_for_number(parsed, 'en'), number
            assert result.region == geocoder.description_for_number(parsed, 'en'), number
    assert len(numbers) > valid > 1000


async def test_offline_provider_checks_large_batches_in_worker_processes() -> None:
    numbers = [f'+7900{i:07d}' for i in range(2500)] + ['+7900123']
    assert await OfflineHlrProvider().check(numbers) == look_up_all(numbers)


def test_every_reason_of_phones_has_its_own_code() -> None:
    codes = list(hlr.INVALID_CODES.values()) + [hlr.OTHER_INVALID_CODE, hlr.VALID_CODE]
    assert len(set(codes)) == len(codes)
    assert hlr.reason(hlr.VALID_CODE) == ''
    assert hlr.reason(hlr.OTHER_INVALID_CODE) == 'invalid number'


# --- checking ----------------------------------------------------------------------------------------------------

async def test_a_check_stores_one_result_per_distinct_number(db) -> None:
    operator = await make_actor(Role.OPERATOR)
    check_id = await hlr.check_phones(operator, [
        '8 (900) 123-45-67', '+7 495 123-45-67', '12345', 'hello', '8-900-123-45-67', 79001234567, 79001234567.0,
        '', '   ', None, 'hello', 12345.0])
    rows = {row.phone: row for row in await HlrCheck.filter(check_id=check_id)}
    assert set(rows) == {MOBILE, MOSCOW, '12345', 'hello'}
    mobile = rows[MOBILE]
    assert (mobile.status, mobile.status_code, mobile.number_type, mobile.network, mobile.region, mobile.country) == \
        ('VALID', hlr.VALID_CODE, 'mobile', 'T2', 'Russia', 'RU')
    assert (mobile.cost, mobile.currency, mobile.provider, mobile.created_by_id) == \
        (Decimal(0), 'EUR', 'offline', operator.user_id)
    assert rows[MOSCOW].time_zone == 'Europe/Moscow'
    assert (rows['12345'].status, hlr.reason(rows['12345'].status_code)) == ('INVALID', 'too short')
    assert (rows['hello'].status, hlr.reason(rows['hello'].status_code)) == ('INVALID', 'not a phone number')
    assert len({row.created_at for row in rows.values()}) == 1
    assert await hlr.count_by_status(operator, check_id) == {HlrStatus.VALID: 2, HlrStatus.INVALID: 2}
    event = await AuditEvent.get(entity_type=hlr.ENTITY, entity_id=check_id)
    assert (event.action, event.summary) == ('check', 'Checked 4 phone number(s): 2 valid, 2 invalid')


async def test_numbers_without_country_code_are_read_in_the_default_region(db, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = await make_actor(Role.ADMIN)
    in_russia = await hlr.check_phones(admin, ['89001234567', '+49 170 1234567'])
    assert sorted(await HlrCheck.filter(check_id=in_russia).values_list('phone', flat=True)) == [BERLIN_MOBILE, MOBILE]
    monkeypatch.setenv('HERALD_DEFAULT_REGION', 'DE')
    reload_settings()
    in_germany = await hlr.check_phones(admin, ['0170 1234567'])
    assert await HlrCheck.filter(check_id=in_germany).values_list('phone', flat=True) == [BERLIN_MOBILE]


async def test_a_viewer_cannot_check_but_can_search(db) -> None:
    viewer = await make_actor(Role.VIEWER)
    with pytest.raises(PermissionDenied):
        await hlr.check_phones(viewer, [MOBILE])
    assert await HlrCheck.all().count() == 0
    assert await hlr.search_checks(viewer) == (0, [])


async def test_empty_and_oversized_checks_are_refused(db) -> None:
    operator = await make_actor(Role.OPERATOR)
    with pytest.raises(ValidationError) as empty:
        await hlr.check_phones(operator, ['', '  ', None])
    assert empty.value.errors == {'phones': 'Enter at least one phone number.'}
    with pytest.raises(ValidationError) as too_many:
        await hlr.check_phones(operator, [MOBILE] * (hlr.MAX_NUMBERS + 1))
    assert too_many.value.errors == {
        'phones': 'At most 100,000 numbers per check; this list has 100,001. Split it into several checks.'}
    assert await HlrCheck.all().count() == 0
    check_id = await hlr.check_phones(operator, [MOBILE] * hlr.MAX_NUMBERS)
    assert await HlrCheck.filter(check_id=check_id).count() == 1


async def test_a_large_check_is_validated_and_looked_up_in_workers(db) -> None:
    operator = await make_actor(Role.OPERATOR)
    numbers = [f'8 900 {i:07d}' for i in range(3000)] + ['not a number'] * 10
    check_id = await hlr.check_phones(operator, numbers)
    assert await hlr.count_by_status(operator, check_id) == {HlrStatus.VALID: 3000, HlrStatus.INVALID: 1}
    assert await HlrCheck.filter(check_id=check_id, phone='+79000002999', network='T2').exists()


# --- searching ---------------------------------------------------------------------------------------------------

async def make_history() -> tuple[str, str]:
    """Two checks: an old one (40 days ago) and one of today."""
    operator = await make_actor(Role.OPERATOR)
    old = await hlr.check_phones(operator, [MOSCOW, '+74957654321'])
    await HlrCheck.filter(check_id=old).update(created_at=datetime.now(timezone.utc) - timedelta(days=40))
    new = await hlr.check_phones(operator, [MOBILE, BERLIN_MOBILE, '=1+2'])
    return old, new


async def test_search_by_part_of_the_number_and_by_period(db) -> None:
    await make_history()
    viewer = await make_actor(Role.VIEWER)

    async def phones(**kwargs) -> list[str]:
        total, rows = await hlr.search_checks(viewer, sort='phone', descending=False, **kwargs)
        assert total == len(rows)
        return [row.phone for row in rows]

    assert await phones() == ['+491701234567', '+74951234567', '+74957654321', '+79001234567', '=1+2']
    assert await phones(phone_part='123') == ['+491701234567', '+74951234567', '+79001234567']
    assert await phones(phone_part='(495) 12-3') == ['+74951234567']  # only the digits count
    assert await phones(phone_part='+7 495') == ['+74951234567', '+74957654321']
    assert await phones(phone_part='000') == []
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    assert await phones(date_from=today) == ['+491701234567', '+79001234567', '=1+2']
    assert await phones(date_to=today) == ['+74951234567', '+74957654321']
    assert await phones(phone_part='495', date_from=today - timedelta(days=41), date_to=today - timedelta(days=39)) \
        == ['+74951234567', '+74957654321']
    with pytest.raises(ValidationError) as letters:
        await hlr.search_checks(viewer, 'abc')
    assert letters.value.errors == {'phone': 'Search with digits of the phone number.'}


async def test_search_sorts_and_pages(db) -> None:
    await make_history()
    viewer = await make_actor(Role.VIEWER)
    total, page = await hlr.search_checks(viewer, offset=1, limit=2, sort='phone', descending=True)
    assert (total, [row.phone for row in page]) == (5, ['+79001234567', '+74957654321'])
    total, newest = await hlr.search_checks(viewer, limit=3)  # newest first; phones ascending within a check
    assert [row.phone for row in newest] == ['+491701234567', '+79001234567', '=1+2']
    _, by_status = await hlr.search_checks(viewer, sort='status', descending=False, limit=1)
    assert by_status[0].status == 'INVALID'
    _, unknown = await hlr.search_checks(viewer, sort='password_hash', limit=1)  # unknown columns sort by time
    assert unknown[0].phone == '+491701234567'


# --- exporting ---------------------------------------------------------------------------------------------------

async def test_export_holds_every_matching_result_as_text_numbers_and_times(db, tmp_path: Path) -> None:
    await make_history()
    viewer = await make_actor(Role.VIEWER)
    moscow = ZoneInfo('Europe/Moscow')
    rows = await hlr.export_rows(viewer, '', sort='phone', descending=False, zone=moscow)
    assert len(rows) == 5
    path = tmp_path / 'hlr.xlsx'
    assert write_xlsx(path, 'HLR checks', hlr.EXPORT_HEADERS, rows) == 5

    sheet = openpyxl.load_workbook(io.BytesIO(path.read_bytes())).active
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == hlr.EXPORT_HEADERS
    assert values[1][:10] == ('+491701234567', 'VALID', None, 'mobile', 'T-Mobile', 'Germany', 'DE', 'Europe/Berlin',
                              0, 'EUR')
    assert values[4][:8] == ('+79001234567', 'VALID', None, 'mobile', 'T2', 'Russia', 'RU', None)
    assert values[5][:3] == ('=1+2', 'INVALID', 'not a phone number')
    formula = sheet.cell(row=6, column=1)
    assert (formula.data_type, formula.value) == ('s', '=1+2')  # text, never a formula
    checked_at = sheet.cell(row=2, column=11)
    assert checked_at.is_date
    stored = (await HlrCheck.get(phone=BERLIN_MOBILE)).created_at
    assert abs(checked_at.value - stored.astimezone(moscow).replace(tzinfo=None)) < timedelta(seconds=1)

    only_moscow = await hlr.export_rows(viewer, '495', zone=moscow)
    assert [row[0] for row in only_moscow] == ['+74951234567', '+74957654321']


async def test_export_is_capped(db, monkeypatch: pytest.MonkeyPatch) -> None:
    await make_history()
    viewer = await make_actor(Role.VIEWER)
    monkeypatch.setattr(hlr, 'MAX_EXPORT_ROWS', 4)
    with pytest.raises(ValidationError) as error:
        await hlr.export_rows(viewer)
    assert error.value.errors == {'export': '5 results match: an export holds at most 4. Narrow the search or the '
                                            'period.'}
    assert len(await hlr.export_rows(viewer, '7')) == 4


# --- reading numbers ---------------------------------------------------------------------------------------------

def xlsx(*rows: tuple) -> bytes:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_numbers_are_split_on_new_lines_commas_and_semicolons() -> None:
    assert hlr.split_numbers('8 (900) 123-45-67, +7 900 1234567;\n\n 12\t+49 170 1234567\r\n;;') == [
        '8 (900) 123-45-67', '+7 900 1234567', '12', '+49 170 1234567']


@pytest.mark.parametrize(('name', 'data', 'numbers'), [
    ('numbers.xlsx', xlsx(('Name', 'Телефон'), ('Ann', 79001234567), ('Bob', '8 900 765-43-21'), ('Cy', None)),
     [79001234567.0, '8 900 765-43-21']),
    ('numbers.xlsx', xlsx((79001234567,), ('+7 495 123-45-67',)), [79001234567.0, '+7 495 123-45-67']),
    ('numbers.xlsx', xlsx(('Numbers',), ('89001234567',)), ['89001234567']),
    ('list.csv', 'name;phone\nAnn;+79001234567\nBob;8 900 765 43 21\n'.encode(), ['+79001234567', '8 900 765 43 21']),
    ('list.csv', '+79001234567,x\n89007654321,y\n'.encode(), ['+79001234567', '89007654321']),
    ('list.csv', 'Имя;Телефон\nАня;89001234567\n'.encode('cp1251'), ['89001234567']),
    ('list.TXT', '\ufeff+79001234567\n89007654321; 12'.encode(), ['+79001234567', '89007654321', '12']),
])
def test_numbers_from_files(name: str, data: bytes, numbers: list) -> None:
    assert hlr.numbers_from_file(name, data) == numbers


@pytest.mark.parametrize(('name', 'data', 'message'), [
    ('numbers.pdf', b'%PDF-1.4', 'Upload an .xlsx, .csv or .txt file.'),
    ('numbers', b'+79001234567', 'Upload an .xlsx, .csv or .txt file.'),
    ('numbers.xlsx', b'PK\x03\x04 this is no workbook', 'This file is not a readable Excel workbook (.xlsx).'),
    ('numbers.xlsx', b'', 'This file is not a readable Excel workbook (.xlsx).'),
    ('numbers.xlsx', xlsx(), 'The file has no phone numbers.'),
    ('numbers.txt', b'\n \n', 'The file has no phone numbers.'),
    ('numbers.csv', b'phone\n', 'The file has no phone numbers.'),
    ('numbers.txt', b'\x00\x01\x02\xff\xfe', 'This file is not a text file (UTF-8 or Windows-1251).'),
    ('numbers.txt', b'1' * (hlr.MAX_FILE_BYTES + 1), 'The file is larger than 10 MB.'),
])
def test_unusable_files_are_refused_with_a_reason(name: str, data: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as error:
        hlr.numbers_from_file(name, data)
    assert error.value.errors == {'file': message}
