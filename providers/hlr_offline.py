"""The offline HLR provider (the default): what phonenumbers' data says about a number — valid or not, its type, the
operator it was issued to, its region and time zone. No network, so it cannot know about porting or roaming, and it
costs nothing."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType, carrier, geocoder
from phonenumbers.timezone import time_zones_for_number

from domain import phones
from domain.hlr import VALID_CODE, HlrResult, HlrStatus
from domain.providers import SettingField

LANGUAGE = 'en'
_UNKNOWN_ZONE = 'Etc/Unknown'
_TYPES = {
    PhoneNumberType.MOBILE: 'mobile',
    PhoneNumberType.FIXED_LINE: 'fixed line',
    PhoneNumberType.FIXED_LINE_OR_MOBILE: 'fixed line or mobile',
    PhoneNumberType.TOLL_FREE: 'toll free',
    PhoneNumberType.PREMIUM_RATE: 'premium rate',
    PhoneNumberType.SHARED_COST: 'shared cost',
    PhoneNumberType.VOIP: 'VoIP',
    PhoneNumberType.PERSONAL_NUMBER: 'personal number',
    PhoneNumberType.PAGER: 'pager',
    PhoneNumberType.UAN: 'UAN',
    PhoneNumberType.VOICEMAIL: 'voicemail',
}
_CARRIER_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.PAGER})


class OfflineHlrProvider:
    name: ClassVar[str] = 'offline'
    label: ClassVar[str] = 'Offline (phone-number data, free)'
    settings_schema: ClassVar[tuple[SettingField, ...]] = ()

    def __init__(self, settings: Mapping[str, Any] | None = None) -> None:
        """It has no settings."""

    async def check(self, numbers: list[str]) -> list[HlrResult]:
        """Large batches are looked up in the worker processes of domain.phones, so the event loop stays free."""
        return await phones.in_workers(look_up_all, numbers)

    async def close(self) -> None:
        """It holds no connections."""


def look_up_all(numbers: list[str]) -> list[HlrResult]:
    return [look_up(number) for number in numbers]


def look_up(e164: str) -> HlrResult:
    """phonenumbers' is_valid_number, carrier.name_for_number and geocoder.description_for_number, with the number
    type they each work out first worked out once: it is most of their cost."""
    try:
        number = phonenumbers.parse(e164)
    except NumberParseException:
        return HlrResult.invalid(e164, _why_invalid(e164))
    kind = phonenumbers.number_type(number)
    if kind == PhoneNumberType.UNKNOWN:
        return HlrResult.invalid(e164, _why_invalid(e164))
    geographical = phonenumbers.is_number_type_geographical(kind, number.country_code)
    zones = time_zones_for_number(number)
    return HlrResult(
        phone=phonenumbers.format_number(number, PhoneNumberFormat.E164),
        status=HlrStatus.VALID,
        status_code=VALID_CODE,
        number_type=_TYPES.get(kind, ''),
        network=carrier.name_for_valid_number(number, LANGUAGE) if kind in _CARRIER_TYPES else '',
        region=(geocoder.description_for_valid_number if geographical else geocoder.country_name_for_number)(
            number, LANGUAGE),
        country=phonenumbers.region_code_for_number(number) or '',
        time_zone=zones[0] if len(zones) == 1 and zones[0] != _UNKNOWN_ZONE else '',  # as phones.phone_time_zone
    )


def _why_invalid(text: str) -> str:
    """domain.phones' reason, so that a number gets the same one whoever rejects it."""
    try:
        phones.normalize_phone(text, '')
    except ValueError as error:
        return str(error)
    return 'invalid number'
