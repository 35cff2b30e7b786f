"""Destinations: phone numbers to E.164 (phonenumbers) and email addresses, with human reasons for rejects."""
from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberFormat, ValidationResult
from phonenumbers import phonenumberutil as _util
from phonenumbers.timezone import time_zones_for_number

Raw = str | int | float
T = TypeVar('T')

_PHONE_CHARACTERS = re.compile(r'\+?[0-9(][0-9\s().\-/]*')  # digits and the separators people type
_SEPARATORS = re.compile(r'[^0-9+]')  # parsing is a third faster without them
_EXCEL_FLOAT = re.compile(r'([0-9]+)\.0+')  # a number cell read as text: '79123456789.0'
_NOT_A_NUMBER = 'not a phone number'
_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: 'unknown country code',
    NumberParseException.NOT_A_NUMBER: _NOT_A_NUMBER,
    NumberParseException.TOO_SHORT_AFTER_IDD: 'too short',
    NumberParseException.TOO_SHORT_NSN: 'too short',
    NumberParseException.TOO_LONG: 'too long',
}
_LENGTH_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: 'unknown country code',
    ValidationResult.TOO_SHORT: 'too short',
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: 'too short: the area code is missing',
    ValidationResult.INVALID_LENGTH: 'wrong length for its country',
    ValidationResult.TOO_LONG: 'too long',
}
_UNKNOWN_ZONE = 'Etc/Unknown'
_INTERNATIONAL = re.compile(r'\+[1-9][0-9]{3,16}')
_MIN_NSN, _MAX_NSN = _util._MIN_LENGTH_FOR_NSN, _util._MAX_LENGTH_FOR_NSN
_TOO_SHORT_TO_STRIP = (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                       ValidationResult.INVALID_LENGTH)

MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
MAX_EMAIL_LOCAL_LENGTH = 64
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_EMAIL_DOMAIN = re.compile(r'((?!-)[^\W_]([^\W_]|-){0,62}(?<!-)\.)+([^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})')


# --- phones ------------------------------------------------------------------------------------------------------

def normalize_phone(raw: Raw, default_region: str) -> str:
    """E.164 ('+79123456789') of a number as typed, or as a spreadsheet gave it; ValueError with the reason.

    A number without a '+' is read in `default_region` (an ISO code). A bare run of digits, as spreadsheets
    keep numbers whose '+' they dropped, is also read as international: first when it is too long for a
    national number of the region even without the region's trunk prefix ('8 495…' stays Moscow, not
    Vietnam's +84 95…), else when the national reading fails. The reason given is that of the first reading."""
    return phonenumbers.format_number(_valid_number(raw, default_region)[0], PhoneNumberFormat.E164)


def normalize_phone_and_country(raw: Raw, default_region: str) -> tuple[str, str]:
    """`normalize_phone` and `phone_country` from a single parse (for pricing many numbers)."""
    number, region = _valid_number(raw, default_region)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), _supported(region)


Contacts = tuple[str | None, str, str | None]  # E.164 phone, its country, email


def normalize_contacts(pairs: list[tuple[Raw | None, str | None]], default_region: str) -> list[Contacts | str]:
    """For each (phone, email) of a destination: (E.164 phone, its country, normalized email), or why it is
    unusable. Either may be missing, not both unusable."""
    results: list[Contacts | str] = []
    for phone, email in pairs:
        try:
            e164, country = normalize_phone_and_country(phone, default_region) if phone not in (None, '') else (None, '')
            results.append((e164, country, normalize_email(email) if email else None))
        except ValueError as error:
            results.append(str(error))
    return results


async def normalize_contacts_in_parallel(pairs: list[tuple[Raw | None, str | None]],
                                         default_region: str) -> list[Contacts | str]:
    """`normalize_contacts` spread over worker processes (every core) when there are enough to be worth it."""
    return await in_workers(normalize_contacts, pairs, default_region)


async def in_workers(function: Callable[..., list[T]], items: list[Any], *args: Any) -> list[T]:
    """`function(items, *args)` (a module-level function returning one result per item), split over the worker
    processes when there are at least PARALLEL_FROM items; the event loop stays free meanwhile. The workers start
    with the first such call and stay."""
    if len(items) < PARALLEL_FROM:
        return function(items, *args)
    start_workers()
    size = -(-len(items) // (2 * _workers_count))
    loop = asyncio.get_running_loop()
    parts = await asyncio.gather(*(loop.run_in_executor(_workers, function, items[i:i + size], *args)
                                   for i in range(0, len(items), size)))
    return [result for part in parts for result in part]


async def in_worker(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` (module-level) in one of the worker processes, off the event loop."""
    start_workers()
    return await asyncio.get_running_loop().run_in_executor(_workers, function, *args)


PARALLEL_FROM = 2000  # items; below this, shipping them to a worker costs more than it saves
_workers: ProcessPoolExecutor | None = None
_workers_count = 0


def start_workers() -> None:
    """Start the processes that validate large batches of numbers (spawned: forking a process with threads is
    unsafe)."""
    global _workers, _workers_count  # noqa: PLW0603
    if _workers is None:
        _workers_count = os.cpu_count() or 1
        _workers = ProcessPoolExecutor(_workers_count, mp_context=multiprocessing.get_context('spawn'))
        for _ in range(_workers_count):
            _workers.submit(normalize_contacts, [('+79123456789', None)], 'RU')


def worker_pids() -> list[int]:
    return [process.pid for process in (_workers._processes or {}).values()] if _workers else []  # noqa: SLF001


def stop_workers() -> None:
    global _workers  # noqa: PLW0603
    if _workers is not None:
        _workers.shutdown(wait=False, cancel_futures=True)
        _workers = None


def _valid_number(raw: Raw, default_region: str) -> tuple[phonenumbers.PhoneNumber, str]:
    """The number and its region, or ValueError with the reason of the first reading tried."""
    text = _text(raw)
    default = _region(default_region)
    readings = _readings(_SEPARATORS.sub('', text), text.isdigit(), default)
    for candidate, region in readings:  # the fast readings, while they can tell valid from invalid
        found = _national_shortcut(candidate, default) if region else _fast_international(candidate)
        if found is _UNKNOWN:
            break
        if found is not None:
            return found
    reason = ''
    for candidate, region in readings:
        try:
            number = _parse(candidate, region)
        except NumberParseException as error:
            reason = reason or _PARSE_REASONS.get(error.error_type, _NOT_A_NUMBER)
            continue
        if valid_region := _valid_region(number):
            return number, valid_region
        reason = reason or _invalid_reason(number)
    raise ValueError(reason)


_UNKNOWN = object()  # a fast reading cannot tell: phonenumbers.parse must


def _fast_international(candidate: str) -> tuple[phonenumbers.PhoneNumber, str] | object | None:
    if not _INTERNATIONAL.fullmatch(candidate):
        return _UNKNOWN
    try:
        number = _parse(candidate, None)
    except NumberParseException:
        return None
    found = _valid_region(number)
    return (number, found) if found else None


def _valid_region(number: phonenumbers.PhoneNumber) -> str | None:
    """`phonenumbers.is_valid_number`, returning the region it finds (`region_code_for_number`) or None.

    `is_valid_number` finds the region, then checks the number against it, and pricing asks for the region again:
    for a country code several regions share (+7, +1) that matched the number's type three times. Where the
    region is found by its number type, that match already proves the number valid (tested against phonenumbers)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(number.country_code)
    if not regions:
        return None
    if len(regions) == 1:
        return regions[0] if phonenumbers.is_valid_number_for_region(number, regions[0]) else None
    national = phonenumbers.national_significant_number(number)
    for region in regions:
        metadata = PhoneMetadata.metadata_for_region(region, None)
        if metadata is None:
            continue
        if metadata.leading_digits is not None:
            if re.match(metadata.leading_digits, national):
                return region if phonenumbers.is_valid_number_for_region(number, region) else None
        elif _util._number_type_helper(national, metadata) != phonenumbers.PhoneNumberType.UNKNOWN:
            return region
    return None


def _parse(candidate: str, region: str) -> phonenumbers.PhoneNumber:
    """`phonenumbers.parse`, with a fast path for the common '+<digits>' (what `phonenumbers.parse` would do with it,
    minus its search for extensions, letters and phone contexts, which such a string cannot have; the equivalence is
    tested over every country code)."""
    if not _INTERNATIONAL.fullmatch(candidate):
        return phonenumbers.parse(candidate, region)
    digits = candidate[1:]
    for length in (1, 2, 3):
        country_code = int(digits[:length])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return phonenumbers.parse(candidate, region)
    national = digits[length:]
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(
        country_code, phonenumbers.region_code_for_country_code(country_code))
    if metadata is None or not _MIN_NSN <= len(national) <= _MAX_NSN:
        return phonenumbers.parse(candidate, region)
    _, stripped, _ = _util._maybe_strip_national_prefix_carrier_code(national, metadata)
    if _util._test_number_length(stripped, metadata) not in _TOO_SHORT_TO_STRIP:
        national = stripped
    if not _MIN_NSN <= len(national) <= _MAX_NSN:
        return phonenumbers.parse(candidate, region)
    number = phonenumbers.PhoneNumber(country_code=country_code)
    _util._set_italian_leading_zeros_for_phone_number(national, number)
    number.national_number = int(national)
    return number


def normalize_many(values: Iterable[Raw], default_region: str) -> list[tuple[str | None, str | None]]:
    """(phone, None) or (None, reason) for each value, in order; repeated values are parsed once."""
    done: dict[Raw, tuple[str | None, str | None]] = {}
    results = []
    for value in values:
        result = done.get(value)
        if result is None:
            try:
                result = (normalize_phone(value, default_region), None)
            except ValueError as error:
                result = (None, str(error))
            done[value] = result
        results.append(result)
    return results


@lru_cache(maxsize=65536)
def phone_country(e164: str) -> str:
    """The ISO region of a number ('RU'), or '' for international services and numbers that do not parse."""
    try:
        return _supported(phonenumbers.region_code_for_number(phonenumbers.parse(e164)))
    except NumberParseException:
        return ''


def _supported(region: str | None) -> str:
    return region if region in phonenumbers.SUPPORTED_REGIONS else ''


@lru_cache(maxsize=65536)
def phone_time_zone(e164: str) -> str | None:
    """The time zone of a number when phonenumbers knows exactly one, else None (the caller's fallback applies).

    Numbers that span zones give None rather than an arbitrary pick: phonenumbers lists every Russian zone,
    alphabetically, for a Russian mobile number, so its first zone would be Asia/Almaty."""
    try:
        zones = time_zones_for_number(phonenumbers.parse(e164))
    except NumberParseException:
        return None
    return zones[0] if len(zones) == 1 and zones[0] != _UNKNOWN_ZONE else None


def _text(raw: Raw) -> str:
    """The number as text: spreadsheet numbers (79123456789.0) become their digits; ValueError for junk."""
    if raw is None:
        raise ValueError('empty')
    if isinstance(raw, str):
        text = raw.strip()
    elif isinstance(raw, float) and math.isfinite(raw) and raw.is_integer():
        text = str(int(raw))
    elif isinstance(raw, int) and not isinstance(raw, bool):
        text = str(raw)
    else:
        raise ValueError(_NOT_A_NUMBER)
    if not text:
        raise ValueError('empty')
    if not _PHONE_CHARACTERS.fullmatch(text):
        raise ValueError(_NOT_A_NUMBER)
    excel = _EXCEL_FLOAT.fullmatch(text)
    return excel[1] if excel else text


@dataclass(frozen=True, slots=True)
class _Region:
    """What reading a bare run of digits needs to know about the default region."""
    code: str | None  # None: not a region phonenumbers knows, so only international numbers parse
    longest: int  # the longest national number
    trunk_prefix: str  # dialled before a national number: '8' in Russia, '0' in Germany
    country_code: int = 0
    international_prefix: re.Pattern | None = None  # dialled before an international number: '810' in Russia
    plain: bool = False  # reading a national number only strips the trunk prefix (no carrier codes, no rewriting)

    def international_first(self, digits: str) -> bool:
        if self.trunk_prefix and digits.startswith(self.trunk_prefix):
            return len(digits) - len(self.trunk_prefix) > self.longest
        return len(digits) > self.longest


@lru_cache(maxsize=256)
def _region(code: str) -> _Region:
    code = (code or '').strip().upper()
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(code)
    if metadata is None:
        return _Region(None, 0, '')
    trunk = metadata.national_prefix or ''
    plain = metadata.national_prefix_for_parsing in (None, trunk) and metadata.national_prefix_transform_rule is None
    international = re.compile(metadata.international_prefix) if metadata.international_prefix else None
    return _Region(code, max(metadata.general_desc.possible_length or (0,)), trunk, metadata.country_code,
                   international, plain and international is not None)


def _national_shortcut(digits: str, region: _Region) -> tuple[phonenumbers.PhoneNumber, str] | object | None:
    """A national number read through the fast international path ('8 912 …' in Russia as '+7 912 …'): the valid
    number, None when it is invalid, or _UNKNOWN where `phonenumbers.parse` must read it. Only where reading a
    national number does nothing but strip the trunk prefix: there it yields the same number (tested against
    phonenumbers)."""
    if not region.plain or not digits.isdigit() or region.international_prefix.match(digits):
        return _UNKNOWN
    trunk = region.trunk_prefix
    national = digits[len(trunk):] if trunk and digits.startswith(trunk) else digits
    if trunk and national.startswith(trunk):  # phonenumbers strips the trunk prefix once, the fast path again
        return _UNKNOWN
    if len(national) not in _possible_lengths(region.country_code):  # invalid, without parsing
        return _UNKNOWN if national is not digits else None
    try:
        number = _parse(f'+{region.country_code}{national}', region.code)
    except NumberParseException:
        number = None
    if found := number and _valid_region(number):
        return number, found
    return _UNKNOWN if national is not digits else None  # parse may keep a trunk prefix whose removal fails


@lru_cache(maxsize=256)
def _possible_lengths(country_code: int) -> frozenset[int]:
    """The lengths a valid national number of any region of this country code may have."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    metadata = [PhoneMetadata.metadata_for_region(region, None) for region in regions]
    return frozenset(length for m in metadata if m for length in m.general_desc.possible_length or ())


def _readings(number: str, bare: bool, region: _Region) -> list[tuple[str, str | None]]:
    """(number, region) readings to try, most likely first; `bare`: the input was digits only."""
    if not bare:
        return [(number, region.code)]
    national, international = (number, region.code), ('+' + number, None)
    if region.code is None:
        return [international]
    return [international, national] if region.international_first(number) else [national, international]


def _invalid_reason(number: phonenumbers.PhoneNumber) -> str:
    result = phonenumbers.is_possible_number_with_reason(number)
    return _LENGTH_REASONS.get(result, 'invalid number for its country')


# --- emails ------------------------------------------------------------------------------------------------------

def normalize_email(raw: str) -> str:
    """The address with surrounding spaces removed and its domain in lower case; ValueError with the reason."""
    text = raw.strip() if isinstance(raw, str) else ''
    if not text:
        raise ValueError('empty')
    if len(text) > MAX_EMAIL_LENGTH:
        raise ValueError(f'too long: at most {MAX_EMAIL_LENGTH} characters')
    local, at, domain = text.rpartition('@')
    if not at or not local:
        raise ValueError('not an email address: it needs a name, “@” and a domain')
    if len(local) > MAX_EMAIL_LOCAL_LENGTH:
        raise ValueError(f'the part before “@” is longer than {MAX_EMAIL_LOCAL_LENGTH} characters')
    if not _EMAIL_LOCAL.fullmatch(local):
        raise ValueError('the part before “@” has characters an address cannot have')
    domain = domain.lower()
    if not _EMAIL_DOMAIN.fullmatch(domain):
        raise ValueError(f'“{domain}” is not a valid domain' if domain else 'the domain after “@” is missing')
    return f'{local}@{domain}'


def is_valid_email(raw: str) -> bool:
    try:
        normalize_email(raw)
    except ValueError:
        return False
    return True
