"""Infobip Number Lookup: an HLR lookup over HTTP. It asks the subscriber's home network whether a number is in
service, absent (phone off) or unknown, which network serves it now (after porting), and whether it roams.

Wire format, as Infobip documents its "Number Context lookup" (OpenAPI operation `number-context-lookup`):
`POST {base_url}/number/1/query` with `Authorization: App <API key>` and `{"to": ["41793026727", …]}` (international
numbers without '+', at most 1,000 a request), answered 200 with `{"bulkId", "results": [{to, mccMnc, imsi,
originalNetwork {networkName, networkPrefix, countryName, countryPrefix, networkId}, ported, portedNetwork {…},
roaming, roamingNetwork {…}, servingMSC, status {groupId, groupName, id, name, description}, error {groupId, groupName,
id, name, description, permanent}}]}`; errors as `{"requestError": {"serviceException": {messageId, text}}}` (401
for a wrong key). A result's `price {pricePerMessage | pricePerLookup, currency}`, when there is one, is its cost;
else the `price_per_lookup` setting is.

The number's type, region and time zone come from phonenumbers' data (as the offline provider finds them); the
lookup decides its status, operator, porting, roaming and cost. Numbers go in batches (`batch_size` a request,
`concurrency` requests at once). A batch whose request fails (unreachable, timeout, 5xx, an unreadable answer) gets
ERROR results saying the lookup failed, so the check is kept; 401 or 403 (the key is wrong or may not look numbers up)
stops the check with HlrUnavailable.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import httpx

from domain import hlr, phones, sql
from domain.hlr import HlrResult, HlrStatus, HlrUnavailable
from domain.providers import SettingField

from .hlr_offline import look_up_all
from .http import TIMEOUT, check_http_settings

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = 'https://api.infobip.com'
QUERY_PATH = '/number/1/query'
MAX_BATCH = 1000  # Infobip's maxItems for `to`
MAX_CONCURRENCY = 50
CREDENTIAL_STATUSES = frozenset({401, 403})
BUSY_STATUSES = frozenset({408, 425, 429})
_UNKNOWN_SUBSCRIBER = frozenset({'EC_UNKNOWN_SUBSCRIBER', 'EC_UNIDENTIFIED_SUBSCRIBER'})
_NETWORK_LENGTH = 200

Found = dict[str, Any]  # HlrResult fields a lookup decided


class InfobipHlrProvider:
    name: ClassVar[str] = 'infobip'
    label: ClassVar[str] = 'Infobip Number Lookup (HLR over HTTP)'
    settings_schema: ClassVar[tuple[SettingField, ...]] = (
        SettingField('base_url', 'Base URL', default=DEFAULT_BASE_URL, required=True,
                     help="Your account's API base URL from the Infobip web interface, e.g. "
                          'https://xxxxx.api.infobip.com.'),
        SettingField('api_key', 'API key', 'secret', required=True,
                     help='An Infobip API key allowed to look numbers up (scope number-lookup:send).'),
        SettingField('batch_size', 'Numbers per request', 'int', default=100,
                     help=f'How many numbers one request looks up (1 to {MAX_BATCH:,}).'),
        SettingField('concurrency', 'Requests at once', 'int', default=4,
                     help=f'How many requests a check sends at the same time (1 to {MAX_CONCURRENCY}).'),
        replace(TIMEOUT, default=60.0, help='How long to wait for the answer to one request: a lookup asks the '
                                            'networks, which takes seconds.'),
        SettingField('price_per_lookup', 'Price per lookup', 'float', default=0.0,
                     help="The cost recorded for a lookup whose answer has no price, in Herald's currency."),
    )

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict[str, str]:
        errors = check_http_settings(settings)
        if not 1 <= settings['batch_size'] <= MAX_BATCH:
            errors['batch_size'] = f'must be between 1 and {MAX_BATCH}'
        if not 1 <= settings['concurrency'] <= MAX_CONCURRENCY:
            errors['concurrency'] = f'must be between 1 and {MAX_CONCURRENCY}'
        if not settings['price_per_lookup'] >= 0:
            errors['price_per_lookup'] = 'must not be negative'
        return errors

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.settings['base_url'].strip().rstrip('/'), timeout=self.settings['timeout_s'],
                headers={'Authorization': f'App {self.settings["api_key"]}', 'Accept': 'application/json'},
                limits=httpx.Limits(max_connections=self.settings['concurrency']))
        return self._client

    async def check(self, numbers: list[str]) -> list[HlrResult]:
        if not numbers:
            return []
        requests = asyncio.Semaphore(self.settings['concurrency'])
        refusals: list[HlrUnavailable] = []
        batches = sql.chunks(numbers, self.settings['batch_size'])
        described, *answers = await asyncio.gather(phones.in_workers(look_up_all, numbers),
                                                   *(self._look_up(list(batch), requests, refusals) for batch in batches))
        if refusals:
            raise refusals[0]
        found = {number: fields for answer in answers for number, fields in answer.items()}
        return [replace(result, phone=number, **found.get(number, _failed(hlr.LEFT_OUT_CODE)))
                for number, result in zip(numbers, described)]

    async def _look_up(self, numbers: list[str], requests: asyncio.Semaphore, refusals: list[HlrUnavailable]
                       ) -> dict[str, Found]:
        """What one request finds about `numbers` (E.164), by number; a refused key goes to `refusals`, after which
        the batches still waiting send nothing."""
        async with requests:
            if refusals:
                return {}
            try:
                response = await self.client.post(QUERY_PATH, json={'to': [number.lstrip('+') for number in numbers]})
            except httpx.HTTPError as error:
                log.warning('Infobip Number Lookup: %d number(s) not looked up: %s: %s', len(numbers),
                            type(error).__name__, error)
                return dict.fromkeys(numbers, _failed(hlr.UNREACHABLE_CODE))
        if response.is_success:
            try:
                return _answers(response.json(), Decimal(str(self.settings['price_per_lookup'])))
            except (ValueError, KeyError, TypeError, AttributeError, InvalidOperation) as error:
                log.warning('Infobip Number Lookup answered a body Herald cannot read (%s: %s)', type(error).__name__,
                            error)
                return dict.fromkeys(numbers, _failed(hlr.UNREADABLE_CODE))
        log.warning('Infobip Number Lookup answered %s', _refusal(response))
        if response.status_code in CREDENTIAL_STATUSES:
            refusals.append(HlrUnavailable(
                f'Infobip refused the API key ({_refusal(response)}). An administrator must enter a key allowed to '
                f'look numbers up on Settings → Channels & providers → Phone checks (HLR).'))
            return {}
        busy = response.status_code in BUSY_STATUSES or response.status_code >= 500
        return dict.fromkeys(numbers, _failed(hlr.SERVER_ERROR_CODE if busy else hlr.REQUEST_REFUSED_CODE))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _failed(code: int) -> Found:
    """A lookup that failed: nothing from the network, and nothing to pay."""
    return {'status': HlrStatus.ERROR, 'status_code': code}


def _answers(body: Mapping[str, Any], price: Decimal) -> dict[str, Found]:
    """The results of a 200 answer, by E.164 number (Infobip's `to` echoes the number as sent, without '+')."""
    return {'+' + re.sub(r'\D', '', str(item['to'])): _found(item, price) for item in body['results']}


def _found(item: Mapping[str, Any], price_per_lookup: Decimal) -> Found:
    """One result: the network serving the number is the one it was ported to, if it was; a lookup Infobip made
    costs its price (the setting's when the answer has none)."""
    status, code = _status(item.get('status') or {}, item.get('error') or {})
    ported = _flag(item.get('ported'))
    network = item.get('portedNetwork') if ported and item.get('portedNetwork') else item.get('originalNetwork')
    found: Found = {'status': status, 'status_code': code, 'ported': ported, 'roaming': _flag(item.get('roaming'))}
    if name := str((network or {}).get('networkName') or '').strip():
        found['network'] = name[:_NETWORK_LENGTH]
    price = item.get('price') or {}
    amount = price.get('pricePerLookup', price.get('pricePerMessage'))
    if amount is not None:
        found['cost'], found['currency'] = Decimal(str(amount)), str(price.get('currency') or '')[:3]
    elif status is not HlrStatus.ERROR:
        found['cost'] = price_per_lookup
    return found


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _status(status: Mapping[str, Any], error: Mapping[str, Any]) -> tuple[HlrStatus, int]:
    """Infobip's status group (DELIVERED: the network knows the subscriber; UNDELIVERABLE, REJECTED, …) and error
    (EC_ABSENT_SUBSCRIBER…, EC_UNKNOWN_SUBSCRIBER, `permanent`) as an HLR status and its code."""
    error_name = str(error.get('name') or '').upper()
    group = str(status.get('groupName') or '').upper()
    if 'ABSENT_SUBSCRIBER' in error_name:
        return HlrStatus.ABSENT, hlr.ABSENT_CODE
    if error_name in _UNKNOWN_SUBSCRIBER:
        return HlrStatus.INVALID, hlr.UNKNOWN_SUBSCRIBER_CODE
    if error.get('permanent') is True:
        return HlrStatus.INVALID, hlr.REFUSED_NUMBER_CODE
    if group == 'DELIVERED':
        return HlrStatus.VALID, hlr.VALID_CODE
    if group == 'REJECTED':  # Infobip would not look it up (no credit, a network it does not cover, …)
        return HlrStatus.ERROR, hlr.REQUEST_REFUSED_CODE
    return HlrStatus.UNKNOWN, hlr.NO_CLEAR_ANSWER_CODE


def _refusal(response: httpx.Response) -> str:
    """'HTTP 401: Invalid login details', from Infobip's serviceException text where the body has one."""
    try:
        text = response.json()['requestError']['serviceException']['text']
    except (ValueError, KeyError, TypeError):
        text = response.text
    return f'HTTP {response.status_code}: {str(text)[:200]}'.rstrip(': ')
