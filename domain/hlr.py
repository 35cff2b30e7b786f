"""Check phones (HLR): validate numbers and look up their type, operator, region and time zone through an HLR
provider; keep every result, searchable by part of the number and by period, and exportable.

The provider is chosen on Settings → Channels & providers and kept in the AppSetting 'hlr' as {"provider": name,
"settings": {...}} (the offline one when unset). Its secret settings never leave this module in clear, as with
domain.routes: forms get them left out, audit records masked, and a secret left empty keeps the stored one."""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone, tzinfo
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar, Protocol

from python_calamine import CalamineError, CalamineWorkbook
from tortoise.functions import Count
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from . import audit, phones, provider_settings, sql
from .auth import Actor, Permission, now
from .config import settings
from .errors import HeraldError, NotFound, ValidationError
from .models import AppSetting, HlrCheck
from .providers import ProviderConfigError, SettingField, StoredSettings

MAX_NUMBERS = 100_000  # per check
MAX_EXPORT_ROWS = 200_000
MAX_FILE_BYTES = 10 * 1024 * 1024
FILE_TOO_BIG = f'The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.'
FILE_TYPES = ('.xlsx', '.csv', '.txt')
SORTABLE = ('phone', 'status', 'number_type', 'network', 'region', 'cost', 'created_at')
ENTITY = 'hlr_check'
SETTING_KEY = 'hlr'  # the AppSetting that names the provider
SETTING_ENTITY = 'app_setting'
DEFAULT_PROVIDER = 'offline'
PHONE_HEADERS = frozenset({'phone', 'phones', 'phone number', 'телефон', 'номер', 'номер телефона'})
EXPORT_HEADERS = ['Phone', 'Status', 'Reason', 'Number type', 'Operator', 'Region', 'Country', 'Time zone', 'Cost',
                  'Currency', 'Checked at']

_SEPARATORS = re.compile(r'[\n\r,;\t]+')
_PHONE_LENGTH = HlrCheck._meta.fields_map['phone'].max_length
_ROWS_PER_INSERT = 1000  # rows built while the previous ones are written
_COLUMNS = ('id', 'check_id', 'phone', 'status', 'status_code', 'number_type', 'network', 'region', 'country',
            'time_zone', 'ported', 'roaming', 'cost', 'currency', 'provider', 'created_by_id', 'created_at')


class HlrStatus(str, Enum):
    VALID = 'VALID'  # a number in service
    INVALID = 'INVALID'  # no number, or one the network says is not in service
    ABSENT = 'ABSENT'  # in service, but the phone is switched off or out of coverage
    UNKNOWN = 'UNKNOWN'  # the network gave no clear answer
    ERROR = 'ERROR'  # the lookup itself failed: nothing is known about the number


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
# What an HLR provider's lookup found (10–19: the network's answer) or why it failed (20–29).
ABSENT_CODE = 10
UNKNOWN_SUBSCRIBER_CODE = 11
REFUSED_NUMBER_CODE = 12
NO_CLEAR_ANSWER_CODE = 13
UNREACHABLE_CODE = 20
SERVER_ERROR_CODE = 21
REQUEST_REFUSED_CODE = 22
UNREADABLE_CODE = 23
LEFT_OUT_CODE = 24
LOOKUP_REASONS = {
    ABSENT_CODE: 'absent subscriber: the phone is switched off or out of coverage',
    UNKNOWN_SUBSCRIBER_CODE: 'unknown subscriber: the number is not in service',
    REFUSED_NUMBER_CODE: 'the network refused the number',
    NO_CLEAR_ANSWER_CODE: 'the network gave no clear answer',
    UNREACHABLE_CODE: 'lookup failed: the HLR provider could not be reached or did not answer in time',
    SERVER_ERROR_CODE: 'lookup failed: the HLR provider answered with an error; check the number again later',
    REQUEST_REFUSED_CODE: 'lookup failed: the HLR provider refused the lookup',
    UNREADABLE_CODE: "lookup failed: the HLR provider's answer could not be read",
    LEFT_OUT_CODE: "lookup failed: the HLR provider's answer left this number out",
}
REASONS = {code: reason for reason, code in INVALID_CODES.items()} | {OTHER_INVALID_CODE: 'invalid number'} \
    | LOOKUP_REASONS
_TALLY_WORDS = {HlrStatus.VALID: 'valid', HlrStatus.INVALID: 'invalid', HlrStatus.ABSENT: 'absent',
                HlrStatus.UNKNOWN: 'unknown', HlrStatus.ERROR: 'not looked up (the lookup failed)'}


def reason(status_code: int) -> str:
    """Why a check found its number invalid, absent or unknown, or why its lookup failed ('' for valid numbers)."""
    return REASONS.get(status_code, '')


def tally(counts: Mapping[HlrStatus, int]) -> str:
    """'1 valid, 1 invalid, 1 absent': valid and invalid always, the other statuses when a check has them."""
    return ', '.join(f'{counts.get(status, 0):,} {word}' for status, word in _TALLY_WORDS.items()
                     if counts.get(status) or status in (HlrStatus.VALID, HlrStatus.INVALID))


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


class HlrUnavailable(HeraldError):
    """The phone-check provider cannot look anything up as configured (its credentials were refused, its settings
    are wrong): an administrator must fix its settings. Nothing is checked."""


class HlrProvider(Protocol):
    """Constructed as `ProviderClass(settings)`, settings already validated against `settings_schema`
    (providers.registry.create_hlr_provider)."""
    name: ClassVar[str]
    label: ClassVar[str]
    settings_schema: ClassVar[tuple[SettingField, ...]]

    async def check(self, numbers: list[str]) -> list[HlrResult]:
        """One result per E.164 number, in order. Never raises for one number's failure (a failed lookup is an ERROR
        result); raises HlrUnavailable when no number can be looked up as configured."""

    async def close(self) -> None:
        """Release connections."""


# --- the configured provider -------------------------------------------------------------------------------------

@dataclass
class _Built:
    """A provider built from the stored setting `config`, with the checks using it now; once `retired` (the setting
    changed), the last of them closes it."""
    config: str
    provider: HlrProvider
    checks: int = 0
    retired: bool = False


_built: _Built | None = None


def _registry() -> Any:
    from providers import registry  # imported here: the providers import this module
    return registry


async def _stored() -> dict[str, Any]:
    row = await AppSetting.get_or_none(key=SETTING_KEY)
    return dict(row.value) if row else {}


async def _current() -> _Built:
    """The provider the stored setting names, built again (and the old one closed) when the setting changed."""
    global _built  # noqa: PLW0603
    stored = await _stored()
    config = json.dumps(stored, sort_keys=True)
    if _built is None or _built.config != config:
        try:
            provider = _registry().create_hlr_provider(stored.get('provider') or DEFAULT_PROVIDER,
                                                       stored.get('settings') or {})
        except ProviderConfigError as error:
            raise HlrUnavailable(f'Phone checks cannot use the provider chosen on Settings → Channels & providers: '
                                 f'{error}. An administrator must correct its settings.') from error
        old, _built = _built, _Built(config, provider)
        if old is not None:
            await _retire(old)
    return _built


async def _retire(built: _Built) -> None:
    built.retired = True
    if not built.checks:
        await built.provider.close()


@asynccontextmanager
async def _configured_provider() -> AsyncIterator[HlrProvider]:
    """The configured provider, kept open while the caller uses it even if the setting changes meanwhile."""
    built = await _current()
    built.checks += 1
    try:
        yield built.provider
    finally:
        built.checks -= 1
        if built.retired and not built.checks:
            await built.provider.close()


async def hlr_provider() -> HlrProvider:
    """The provider that checks numbers: the one chosen on Settings → Channels & providers, else the offline one.
    Cached; built again when the setting changes (the old one is closed once no check uses it)."""
    return (await _current()).provider


async def close_hlr_provider() -> None:
    """Close the provider's connections (at shutdown)."""
    global _built  # noqa: PLW0603
    built, _built = _built, None
    if built is not None:
        await _retire(built)


# --- choosing and configuring the provider -----------------------------------------------------------------------

def provider_labels() -> dict[str, str]:
    """The phone-check providers: name → label."""
    return {name: cls.label for name, cls in _registry().HLR_PROVIDERS.items()}


def settings_schema(provider: str) -> tuple[SettingField, ...]:
    cls = _registry().HLR_PROVIDERS.get(provider)
    return cls.settings_schema if cls else ()


def _form_view(stored: Mapping[str, Any]) -> StoredSettings:
    provider = stored.get('provider') or DEFAULT_PROVIDER
    return provider_settings.stored_settings(_registry().HLR_PROVIDERS.get(provider), provider,
                                             stored.get('settings') or {})


async def hlr_settings(actor: Actor) -> StoredSettings:
    actor.require(Permission.MANAGE_SETTINGS)
    return _form_view(await _stored())


async def set_hlr_provider(actor: Actor, provider: str, settings: Mapping[str, Any],
                           clear_secrets: frozenset[str] = frozenset()) -> StoredSettings:
    """Make Check phones use `provider` with these settings (unset ones take its defaults). Secret settings left
    empty keep the stored ones, unless named in `clear_secrets` or the provider changes. ValidationError names every
    bad field (`settings.<key>` for a setting); the next check uses the new provider."""
    actor.require(Permission.MANAGE_SETTINGS)
    providers = _registry().HLR_PROVIDERS
    cls = providers.get((provider or '').strip())
    if cls is None:
        raise ValidationError({'provider': f'Choose a provider: {", ".join(providers)}.'})
    async with in_transaction():
        row = await AppSetting.filter(key=SETTING_KEY).select_for_update().first()
        before = dict(row.value) if row else {}
        same = (before.get('provider') or DEFAULT_PROVIDER) == cls.name
        after = {'provider': cls.name, 'settings': provider_settings.settings_to_store(
            cls, settings, (before.get('settings') or {}) if same else {}, clear_secrets)}
        old, new = _audited(before) if before else {}, _audited(after)
        changes = provider_settings.mask_settings(audit.diff(old, dict.fromkeys(old) | new),
                                                  providers.get(old.get('provider', '')), cls)
        if changes:
            await AppSetting.update_or_create(key=SETTING_KEY, defaults={'value': after})
            await audit.record(actor, 'update', SETTING_ENTITY, SETTING_KEY, f'Phone checks use {cls.label}', changes)
    return _form_view(after)


def _audited(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A stored setting as audit records compare it (settings removed show as changed to None)."""
    return {'provider': stored.get('provider') or DEFAULT_PROVIDER,
            **{f'settings.{key}': value for key, value in sorted((stored.get('settings') or {}).items())}}


async def check_number(actor: Actor, number: str) -> HlrResult:
    """Look one number up through the configured provider, as an administrator's test of its settings. Nothing is
    stored, but the test is audited: an HLR provider charges for each lookup."""
    actor.require(Permission.MANAGE_SETTINGS)
    if not (number or '').strip():
        raise ValidationError({'number': 'Enter a phone number to check.'})
    try:
        e164 = phones.normalize_phone(number.strip(), settings().default_region)
    except ValueError as error:
        raise ValidationError({'number': f'This is no valid phone number: {error}.'}) from None
    async with _configured_provider() as provider:
        [result] = await provider.check([e164])
    await audit.record(actor, 'test', SETTING_ENTITY, SETTING_KEY,
                       f'Tested phone checks through {provider.label}: {result.status.value}')
    return replace(result, currency=result.currency or settings().currency)


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
    async with _configured_provider() as provider:
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
        counts = Counter(r.status for r in results)
        await audit.record(actor, 'check', ENTITY, check_id,
                           f'Checked {len(results)} phone number(s): {tally(counts)}',
                           {'numbers': len(results), 'invalid': counts[HlrStatus.INVALID],
                            'failed': counts[HlrStatus.ERROR], 'provider': provider})


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
