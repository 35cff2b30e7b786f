"""Check phones (HLR): validate numbers and look up their type, operator, region and time zone through an HLR
provider; keep every result, searchable by part of the number and by period, and exportable."""
from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from decimal import Decimal
from enum import Enum
from typing import ClassVar, Protocol

from python_calamine import CalamineError, CalamineWorkbook
from tortoise.functions import Count
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from . import audit, phones, sql
from .auth import Actor, Permission, now
from .config import settings
from .errors import NotFound, ValidationError
from .models import HlrCheck

MAX_NUMBERS = 100_000  # per check
MAX_EXPORT_ROWS = 200_000
MAX_FILE_BYTES = 10 * 1024 * 1024
FILE_TOO_BIG = f'The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.'
FILE_TYPES = ('.xlsx', '.csv', '.txt')
SORTABLE = ('phone', 'status', 'number_type', 'network', 'region', 'cost', 'created_at')
ENTITY = 'hlr_check'
PHONE_HEADERS = frozenset({'phone', 'phones', 'phone number', 'телефон', 'номер', 'номер телефона'})
EXPORT_HEADERS = ['Phone', 'Status', 'Reason', 'Number type', 'Operator', 'Region', 'Country', 'Time zone', 'Cost',
                  'Currency', 'Checked at']

_SEPARATORS = re.compile(r'[\n\r,;\t]+')
_PHONE_LENGTH = HlrCheck._meta.fields_map['phone'].max_length
_ROWS_PER_INSERT = 1000  # rows built while the previous ones are written
_COLUMNS = ('id', 'check_id', 'phone', 'status', 'status_code', 'number_type', 'network', 'region', 'country',
            'time_zone', 'ported', 'roaming', 'cost', 'currency', 'provider', 'created_by_id', 'created_at')


class HlrStatus(str, Enum):
    VALID = 'VALID'
    INVALID = 'INVALID'


VALID_CODE = 1
# Why a number is invalid, as domain.phones words it, and its status code.
INVALID_CODES = {
    'not a phone number': 2,
    'too short': 3,
    'too long': 4,
    'unknown country code': 5,
    'wrong length for its country': 6,
    'too short: the area code is missing': 7,
    'invalid number for its country': 8,
}
OTHER_INVALID_CODE = 9
REASONS = {code: reason for reason, code in INVALID_CODES.items()} | {OTHER_INVALID_CODE: 'invalid number'}


def reason(status_code: int) -> str:
    """Why a check found its number invalid ('' for valid numbers)."""
    return REASONS.get(status_code, '')


@dataclass(frozen=True, slots=True)
class HlrResult:
    """What a provider found out about one number (E.164, or as given when it is no number at all)."""
    phone: str
    status: HlrStatus
    status_code: int
    number_type: str = ''  # mobile, fixed line, …
    network: str = ''  # the operator the number was issued to (or serves it now, where the provider knows)
    region: str = ''
    country: str = ''  # ISO 3166 alpha-2
    time_zone: str = ''  # when the number has exactly one
    ported: bool | None = None
    roaming: bool | None = None
    cost: Decimal = Decimal(0)
    currency: str = ''

    @classmethod
    def invalid(cls, phone: str, why: str) -> HlrResult:
        return cls(phone[:_PHONE_LENGTH], HlrStatus.INVALID, INVALID_CODES.get(why, OTHER_INVALID_CODE))


class HlrProvider(Protocol):
    name: ClassVar[str]

    async def check(self, numbers: list[str]) -> list[HlrResult]:
        """One result per E.164 number, in order. Never raises for one number's failure."""


_provider: HlrProvider | None = None


def hlr_provider() -> HlrProvider:
    """The provider that checks numbers: the offline one (an HTTP HLR provider may take its place)."""
    global _provider  # noqa: PLW0603
    if _provider is None:
        from providers.hlr_offline import OfflineHlrProvider  # imported here: the provider imports this module
        _provider = OfflineHlrProvider()
    return _provider


# --- reading numbers ---------------------------------------------------------------------------------------------

def split_numbers(text: str) -> list[str]:
    """The numbers of a text with one or many of them, separated by new lines, commas, semicolons or tabs."""
    return [part.strip() for part in _SEPARATORS.split(text or '') if part.strip()]


def numbers_from_file(filename: str, data: bytes) -> list[phones.Raw]:
    """The numbers of an uploaded file: .xlsx (the column headed phone/телефон, else the first), .csv (the same) or
    .txt (as `split_numbers`). ValidationError({'file': …}) for a file that is too big, of another type or
    unreadable. CPU work: run it off the event loop."""
    suffix = filename[filename.rfind('.'):].lower() if '.' in filename else ''
    if suffix not in FILE_TYPES:
        raise ValidationError({'file': f'Upload an {", ".join(FILE_TYPES[:-1])} or {FILE_TYPES[-1]} file.'})
    if len(data) > MAX_FILE_BYTES:
        raise ValidationError({'file': FILE_TOO_BIG})
    if suffix == '.xlsx':
        numbers = _from_rows(_xlsx_rows(data))
    else:
        text = _decode(data)
        numbers = split_numbers(text) if suffix == '.txt' else _from_rows(_csv_rows(text))
    if not numbers:
        raise ValidationError({'file': 'The file has no phone numbers.'})
    return numbers


def _xlsx_rows(data: bytes) -> Sequence[list[object]]:
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        return workbook.get_sheet_by_index(0).to_python(skip_empty_area=True)
    except (CalamineError, ValueError, IndexError, OSError):  # calamine raises these for damaged workbooks
        raise ValidationError({'file': 'This file is not a readable Excel workbook (.xlsx).'}) from None


def _decode(data: bytes) -> str:
    for encoding in ('utf-8-sig', 'cp1251'):  # Excel in Russian saves CSV as Windows-1251
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if '\x00' not in text:
            return text
    raise ValidationError({'file': 'This file is not a text file (UTF-8 or Windows-1251).'})


def _csv_rows(text: str) -> list[list[str]]:
    first_line = text.split('\n', 1)[0]
    delimiter = max(';,\t', key=first_line.count)
    try:
        return list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as error:
        raise ValidationError({'file': f'This CSV file cannot be read: {error}.'}) from None


def _from_rows(rows: Sequence[Sequence[object]]) -> list[phones.Raw]:
    """The phone column's values: the column headed like PHONE_HEADERS, else the first; a first row without digits
    is a header."""
    if not rows:
        return []
    header = [str(cell).strip().lower() for cell in rows[0]]
    column = next((i for i, name in enumerate(header) if name in PHONE_HEADERS), 0)
    first = header[column] if column < len(header) else ''
    has_header = column > 0 or first in PHONE_HEADERS or (first and not any(c.isdigit() for c in first))
    values = (row[column] if column < len(row) else None for row in rows[1 if has_header else 0:])
    return [value for value in values if not _blank(value)]


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


# --- checking ----------------------------------------------------------------------------------------------------

def _as_text(raw: phones.Raw) -> str:
    """How an entry that is no valid number is shown: as given (spreadsheet numbers without their '.0')."""
    if isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        return str(int(raw))
    return str(raw).strip()


async def check_phones(actor: Actor, raw_numbers: Sequence[phones.Raw]) -> str:
    """Check the numbers (as typed, or as a spreadsheet gave them) and store one result per distinct number;
    returns the check's id. Numbers without '+' are read in the default region ('8 912…' in Russia)."""
    actor.require(Permission.SEND)
    entries = [raw if isinstance(raw, (int, float)) else str(raw).strip() for raw in raw_numbers if not _blank(raw)]
    if not entries:
        raise ValidationError({'phones': 'Enter at least one phone number.'})
    if len(entries) > MAX_NUMBERS:
        raise ValidationError({'phones': f'At most {MAX_NUMBERS:,} numbers per check; this list has '
                                         f'{len(entries):,}. Split it into several checks.'})
    distinct = list(dict.fromkeys(entries))
    normalized = await phones.normalize_contacts_in_parallel([(raw, None) for raw in distinct],
                                                              settings().default_region)
    valid: dict[str, None] = {}
    invalid: dict[str, HlrResult] = {}
    for raw, result in zip(distinct, normalized):
        if isinstance(result, str):
            text = _as_text(raw)
            invalid.setdefault(text, HlrResult.invalid(text, result))
        else:
            valid[result[0]] = None
    provider = hlr_provider()
    results = [*await provider.check(list(valid)), *invalid.values()]
    check_id = sql.new_id()
    await _store(actor, check_id, provider.name, results)
    return check_id


async def _store(actor: Actor, check_id: str, provider: str, results: list[HlrResult]) -> None:
    """One row per result, written in batches (a check may hold 100,000) with the audit record, in one transaction."""
    created_at = now()
    currency = settings().currency
    async with in_transaction(), sql.Writer() as writer:
        for part in sql.chunks(results, _ROWS_PER_INSERT):
            await writer.insert_many('hlr_checks', _COLUMNS, [
                (sql.new_id(), check_id, r.phone, r.status.value, r.status_code, r.number_type, r.network, r.region,
                 r.country, r.time_zone, r.ported, r.roaming, r.cost, r.currency or currency, provider,
                 actor.user_id, created_at)
                for r in part])
        invalid = sum(r.status is HlrStatus.INVALID for r in results)
        await audit.record(actor, 'check', ENTITY, check_id,
                           f'Checked {len(results)} phone number(s): {len(results) - invalid} valid, {invalid} invalid',
                           {'numbers': len(results), 'invalid': invalid, 'provider': provider})


async def count_by_status(actor: Actor, check_id: str) -> dict[HlrStatus, int]:
    actor.require(Permission.VIEW)
    rows = await HlrCheck.filter(check_id=check_id).group_by('status').annotate(n=Count('id')) \
        .values_list('status', 'n')
    return {HlrStatus(status): count for status, count in rows}


# --- searching and exporting -------------------------------------------------------------------------------------

def _filtered(phone_part: str, date_from: datetime | None, date_to: datetime | None) -> QuerySet[HlrCheck]:
    """Checks whose number contains the digits of `phone_part`, made in [date_from, date_to)."""
    query = HlrCheck.all()
    part = (phone_part or '').strip()
    if part:
        digits = re.sub(r'\D', '', part)
        if not digits:
            raise ValidationError({'phone': 'Search with digits of the phone number.'})
        query = query.filter(phone__contains=digits)
    if date_from:  # in UTC: SQLite compares the stored text
        query = query.filter(created_at__gte=date_from.astimezone(timezone.utc))
    if date_to:
        query = query.filter(created_at__lt=date_to.astimezone(timezone.utc))
    return query


def _ordering(sort: str, descending: bool) -> tuple[str, ...]:
    column = sort if sort in SORTABLE else 'created_at'
    return f'{"-" if descending else ""}{column}', 'phone', 'id'


async def search_checks(actor: Actor, phone_part: str = '', date_from: datetime | None = None,
                        date_to: datetime | None = None, offset: int = 0, limit: int = 20,
                        sort: str = 'created_at', descending: bool = True) -> tuple[int, list[HlrCheck]]:
    """(total, one page) of check results; `date_to` is exclusive."""
    actor.require(Permission.VIEW)
    query = _filtered(phone_part, date_from, date_to)
    total = await query.count()
    rows = await query.order_by(*_ordering(sort, descending)).offset(max(offset, 0)).limit(max(limit, 0))
    return total, rows


async def export_rows(actor: Actor, phone_part: str = '', date_from: datetime | None = None,
                      date_to: datetime | None = None, sort: str = 'created_at', descending: bool = True,
                      zone: tzinfo | None = None) -> list[tuple[object, ...]]:
    """Every result the search finds, as rows under EXPORT_HEADERS; times in `zone` (default UTC), without it."""
    actor.require(Permission.VIEW)
    query = _filtered(phone_part, date_from, date_to)
    total = await query.count()
    if total > MAX_EXPORT_ROWS:
        raise ValidationError({'export': f'{total:,} results match: an export holds at most {MAX_EXPORT_ROWS:,}. '
                                         f'Narrow the search or the period.'})
    rows = await query.order_by(*_ordering(sort, descending)).values_list(
        'phone', 'status', 'status_code', 'number_type', 'network', 'region', 'country', 'time_zone', 'cost',
        'currency', 'created_at')
    zone = zone or timezone.utc
    return [(phone, status, reason(code), number_type, network, region, country, time_zone, cost, currency,
             created_at.astimezone(zone).replace(tzinfo=None))
            for phone, status, code, number_type, network, region, country, time_zone, cost, currency, created_at
            in rows]


async def phone_check_results(actor: Actor, check_id: str) -> dict[str, HlrCheck]:
    """Each number of a check and its result."""
    actor.require(Permission.VIEW)
    rows = await HlrCheck.filter(check_id=check_id).order_by('phone')
    if not rows:
        raise NotFound(f'There is no phone check {check_id}.')
    return {row.phone: row for row in rows}
