"""Check phones through Infobip Number Lookup (providers/hlr_http.py), against a loopback server speaking its documented
API (POST /number/1/query, `Authorization: App <key>`): the request on the wire, results mapped, failed lookups kept
as ERROR results, a refused key as a configuration error, choosing the provider in the settings (secrets never shown
or audited in clear), and the settings card."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from helpers import eventually, make_actor, sign_in_as, table_rows
from loopback import LoopbackServer, Recorded, free_port
from nicegui import ui
from nicegui.testing import User

from domain import hlr
from domain.errors import PermissionDenied, ValidationError
from domain.hlr import HlrStatus, HlrUnavailable
from domain.models import AppSetting, AuditEvent, HlrCheck, Role
from domain.provider_settings import MASK
from domain.providers import StoredSettings
from providers.hlr_offline import OfflineHlrProvider

KEY = 'infobip-key-very-secret'
VALID, PORTED, ROAMING, ABSENT, UNKNOWN = '+41793026727', '+41793026728', '+41793026729', '+41793026730', \
    '+41793026731'


def network(name: str, prefix: str, country: str, country_prefix: str, network_id: int) -> dict[str, Any]:
    return {'networkName': name, 'networkPrefix': prefix, 'countryName': country, 'countryPrefix': country_prefix,
            'networkId': network_id}


DELIVERED = {'groupId': 3, 'groupName': 'DELIVERED', 'id': 5, 'name': 'DELIVERED_TO_HANDSET',
             'description': 'Message delivered to handset'}
UNDELIVERABLE = {'groupId': 2, 'groupName': 'UNDELIVERABLE', 'id': 9, 'name': 'UNDELIVERABLE_NOT_DELIVERED',
                 'description': 'Message sent not delivered'}
NO_ERROR = {'groupId': 0, 'groupName': 'OK', 'id': 0, 'name': 'NO_ERROR', 'description': 'No Error', 'permanent': False}
ANSWERS = {  # what the network says, beyond a Swisscom subscriber at home (Infobip's documented examples)
    PORTED: {'ported': True, 'portedNetwork': network('Sunrise', '77', 'Switzerland', '41', 321)},
    ROAMING: {'roaming': True, 'roamingNetwork': network('Tele2', '739', 'Sweden', '46', 456)},
    ABSENT: {'status': UNDELIVERABLE, 'error': {'groupId': 1, 'groupName': 'HANDSET_ERRORS', 'id': 27,
                                                'name': 'EC_ABSENT_SUBSCRIBER_SM', 'description': 'Absent Subscriber',
                                                'permanent': False}},
    UNKNOWN: {'status': UNDELIVERABLE, 'error': {'groupId': 1, 'groupName': 'HANDSET_ERRORS', 'id': 1,
                                                 'name': 'EC_UNKNOWN_SUBSCRIBER', 'description': 'Unknown Subscriber',
                                                 'permanent': True}},
}


def result(to: str) -> dict[str, Any]:
    """Infobip's result for one number; the unknown subscriber's comes without a price."""
    found = {'to': to, 'mccMnc': '22801', 'imsi': '228011234567890',
             'originalNetwork': network('Swisscom', '79', 'Switzerland', '41', 123), 'ported': False,
             'roaming': False, 'servingMSC': '41001', 'status': DELIVERED, 'error': NO_ERROR,
             'price': {'pricePerMessage': 0.005, 'currency': 'EUR'}}
    found |= ANSWERS.get(f'+{to}', {})
    if f'+{to}' == UNKNOWN:
        del found['price']
    return found


def refusal(status: int, message_id: str, text: str) -> JSONResponse:
    return JSONResponse({'requestError': {'serviceException': {'messageId': message_id, 'text': text}}}, status)


class FakeInfobip:
    """Infobip's Number Context lookup on loopback. `answer` replaces its answer (a failing server); `gate`, when
    set, holds answers until it opens."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.answer: Callable[[], Response] | None = None
        self.gate: asyncio.Event | None = None
        self.url = ''

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post('/number/1/query')
        async def query(request: Request) -> Response:
            self.requests.append(await Recorded.of(request))
            if self.gate:
                await self.gate.wait()
            if request.headers.get('authorization') != f'App {KEY}':
                return refusal(401, 'UNAUTHORIZED', 'Invalid login details')
            if self.answer:
                return self.answer()
            return JSONResponse({'bulkId': 'BULK-ID-123-xyz',
                                 'results': [result(to) for to in (await request.json())['to']]})

        return app

    def numbers_asked(self) -> list[str]:
        return sorted(f'+{to}' for request in self.requests for to in json.loads(request.body)['to'])


@pytest.fixture
async def infobip() -> AsyncIterator[FakeInfobip]:
    fake = FakeInfobip()
    async with LoopbackServer(fake.app()) as server:
        fake.url = server.url
        yield fake
        await hlr.close_hlr_provider()


async def use_infobip(url: str, **settings: Any) -> None:
    admin = await make_actor(Role.ADMIN, 'hlr-admin@example.com')
    await hlr.set_hlr_provider(admin, 'infobip', {'base_url': url, 'api_key': KEY, **settings})


async def rows_of(check_id: str) -> dict[str, HlrCheck]:
    return {row.phone: row for row in await HlrCheck.filter(check_id=check_id)}


# --- the lookup ---------------------------------------------------------------------------------------------------

async def test_numbers_go_to_infobip_as_documented_and_its_answers_are_mapped(db, infobip: FakeInfobip) -> None:
    await use_infobip(infobip.url, batch_size='2', price_per_lookup='0.01')
    operator = await make_actor(Role.OPERATOR)
    check_id = await hlr.check_phones(operator, [VALID, PORTED, ROAMING, ABSENT, UNKNOWN, '12345', VALID])

    assert len(infobip.requests) == 3  # five numbers, two a request; '12345' is no number and is not looked up
    for request in infobip.requests:
        assert (request.method, request.path) == ('POST', '/number/1/query')
        assert request.headers['authorization'] == f'App {KEY}'
        assert request.headers['content-type'] == 'application/json'
        assert request.headers['accept'] == 'application/json'
        assert set(json.loads(request.body)) == {'to'} and len(json.loads(request.body)['to']) <= 2
    assert infobip.numbers_asked() == [VALID, PORTED, ROAMING, ABSENT, UNKNOWN]
    assert all(to.isdigit() for request in infobip.requests for to in json.loads(request.body)['to'])

    rows = await rows_of(check_id)
    valid = rows[VALID]
    assert (valid.status, valid.status_code, valid.network, valid.ported, valid.roaming, valid.cost, valid.currency,
            valid.provider) == ('VALID', hlr.VALID_CODE, 'Swisscom', False, False, Decimal('0.005'), 'EUR', 'infobip')
    assert (valid.number_type, valid.region, valid.country, valid.time_zone) == \
        ('mobile', 'Switzerland', 'CH', 'Europe/Zurich')  # from phonenumbers' data
    assert (rows[PORTED].status, rows[PORTED].network, rows[PORTED].ported) == ('VALID', 'Sunrise', True)
    assert (rows[ROAMING].status, rows[ROAMING].network, rows[ROAMING].roaming) == ('VALID', 'Swisscom', True)
    assert (rows[ABSENT].status, hlr.reason(rows[ABSENT].status_code)) == \
        ('ABSENT', 'absent subscriber: the phone is switched off or out of coverage')
    assert (rows[UNKNOWN].status, hlr.reason(rows[UNKNOWN].status_code)) == \
        ('INVALID', 'unknown subscriber: the number is not in service')
    assert (rows[UNKNOWN].cost, rows[UNKNOWN].currency) == (Decimal('0.01'), 'EUR')  # no price: the setting's
    assert (rows['12345'].status, hlr.reason(rows['12345'].status_code)) == ('INVALID', 'too short')
    assert await hlr.count_by_status(operator, check_id) == {HlrStatus.VALID: 3, HlrStatus.ABSENT: 1,
                                                             HlrStatus.INVALID: 2}
    event = await AuditEvent.get(entity_type=hlr.ENTITY, entity_id=check_id)
    assert event.summary == 'Checked 6 phone number(s): 3 valid, 2 invalid, 1 absent'


def server_error() -> Response:
    return refusal(500, 'GENERAL_ERROR', 'Something went wrong')


@pytest.mark.parametrize(('answer', 'code'), [
    (server_error, hlr.SERVER_ERROR_CODE),
    (lambda: refusal(429, 'TOO_MANY_REQUESTS', 'Too many requests'), hlr.SERVER_ERROR_CODE),
    (lambda: refusal(400, 'BAD_REQUEST', 'Bad request'), hlr.REQUEST_REFUSED_CODE),
    (lambda: PlainTextResponse('<html>maintenance</html>'), hlr.UNREADABLE_CODE),
    (lambda: JSONResponse({'bulkId': 'B', 'results': [result(VALID[1:])]}), hlr.LEFT_OUT_CODE),
])
async def test_a_failed_lookup_keeps_the_check_with_error_results(db, infobip: FakeInfobip,
                                                                 answer: Callable[[], Response], code: int) -> None:
    await use_infobip(infobip.url)
    infobip.answer = answer
    operator = await make_actor(Role.OPERATOR)
    check_id = await hlr.check_phones(operator, [VALID, ABSENT, 'hello'])
    rows = await rows_of(check_id)
    failed = [ABSENT] if code == hlr.LEFT_OUT_CODE else [VALID, ABSENT]
    for phone in failed:
        assert (rows[phone].status, rows[phone].cost, rows[phone].provider) == ('ERROR', 0, 'infobip')
        assert hlr.reason(rows[phone].status_code) == hlr.LOOKUP_REASONS[code]
        assert hlr.reason(rows[phone].status_code).startswith('lookup failed: ')
    assert rows['hello'].status == 'INVALID'
    event = await AuditEvent.get(entity_type=hlr.ENTITY, entity_id=check_id)
    assert event.summary.endswith(f'{len(failed)} not looked up (the lookup failed)')


async def test_an_unreachable_provider_gives_error_results(db) -> None:
    await use_infobip(f'http://127.0.0.1:{free_port()}', timeout_s='5')
    check_id = await hlr.check_phones(await make_actor(Role.OPERATOR), [VALID])
    row = (await rows_of(check_id))[VALID]
    assert (row.status, hlr.reason(row.status_code)) == \
        ('ERROR', 'lookup failed: the HLR provider could not be reached or did not answer in time')
    await hlr.close_hlr_provider()


async def test_a_refused_api_key_is_a_configuration_error_and_stores_nothing(db, infobip: FakeInfobip) -> None:
    await use_infobip(infobip.url, api_key='wrong-key', batch_size='1', concurrency='1')
    operator = await make_actor(Role.OPERATOR)
    with pytest.raises(HlrUnavailable) as refused:
        await hlr.check_phones(operator, [VALID, PORTED, ROAMING])
    assert str(refused.value) == (
        'Infobip refused the API key (HTTP 401: Invalid login details). An administrator must enter a key allowed to '
        'look numbers up on Settings → Channels & providers → Phone checks (HLR).')
    assert len(infobip.requests) == 1  # the batches after the refusal send nothing
    assert not await HlrCheck.exists()


# --- choosing the provider ----------------------------------------------------------------------------------------

async def test_switching_the_provider_makes_the_next_check_use_it(db, infobip: FakeInfobip) -> None:
    admin = await make_actor(Role.ADMIN)
    operator = await make_actor(Role.OPERATOR)
    assert (await HlrCheck.get(check_id=await hlr.check_phones(operator, [PORTED]))).provider == 'offline'
    assert infobip.requests == []

    await hlr.set_hlr_provider(admin, 'infobip', {'base_url': infobip.url, 'api_key': KEY})
    check = await HlrCheck.get(check_id=await hlr.check_phones(operator, [PORTED]))
    assert (check.provider, check.network, len(infobip.requests)) == ('infobip', 'Sunrise', 1)
    provider = await hlr.hlr_provider()
    assert provider is await hlr.hlr_provider()  # cached while the setting stays

    infobip.gate = asyncio.Event()  # a check in flight keeps its provider open when the setting changes
    running = asyncio.create_task(hlr.check_phones(operator, [VALID]))
    await eventually(lambda: len(infobip.requests) == 2)
    await hlr.set_hlr_provider(admin, 'offline', {})
    assert isinstance(await hlr.hlr_provider(), OfflineHlrProvider)
    assert not provider.client.is_closed
    infobip.gate.set()
    assert (await HlrCheck.get(check_id=await running)).provider == 'infobip'
    assert provider._client is None  # closed by the last check that used it

    assert (await HlrCheck.get(check_id=await hlr.check_phones(operator, [PORTED]))).network == 'Swisscom'
    assert len(infobip.requests) == 2


async def test_settings_keep_secrets_out_of_forms_and_the_audit_log(db) -> None:
    admin = await make_actor(Role.ADMIN)
    assert await hlr.hlr_settings(admin) == StoredSettings('offline', {}, frozenset())
    saved = await hlr.set_hlr_provider(admin, 'infobip', {'base_url': 'https://xyz.api.infobip.com', 'api_key': KEY,
                                                          'batch_size': '', 'concurrency': None})
    assert saved == StoredSettings('infobip', {'base_url': 'https://xyz.api.infobip.com'}, frozenset({'api_key'}))
    assert await hlr.hlr_settings(admin) == saved

    await hlr.set_hlr_provider(admin, 'infobip', {'base_url': 'https://xyz.api.infobip.com', 'api_key': '',
                                                  'batch_size': '50'})  # an empty secret keeps the stored one
    stored = (await AppSetting.get(key=hlr.SETTING_KEY)).value
    assert stored == {'provider': 'infobip', 'settings': {'api_key': KEY, 'base_url': 'https://xyz.api.infobip.com',
                                                          'batch_size': 50}}
    await hlr.set_hlr_provider(admin, 'infobip', {'api_key': 'new-key-also-secret', 'batch_size': '50',
                                                  'base_url': 'https://xyz.api.infobip.com'})

    with pytest.raises(ValidationError) as cleared:
        await hlr.set_hlr_provider(admin, 'infobip', {'base_url': 'https://xyz.api.infobip.com'},
                                   clear_secrets=frozenset({'api_key'}))
    assert cleared.value.errors == {'settings.api_key': 'Required'}
    with pytest.raises(ValidationError) as wrong:
        await hlr.set_hlr_provider(admin, 'infobip', {'base_url': 'ftp://example.com', 'batch_size': '5000'})
    assert wrong.value.errors == {'settings.base_url': 'Must be an http:// or https:// address',
                                  'settings.batch_size': 'Must be between 1 and 1000'}
    with pytest.raises(ValidationError) as unknown:
        await hlr.set_hlr_provider(admin, 'hlr-galore', {})
    assert unknown.value.errors == {'provider': 'Choose a provider: offline, infobip.'}

    await hlr.set_hlr_provider(admin, 'offline', {})
    assert await hlr.hlr_settings(admin) == StoredSettings('offline', {}, frozenset())
    with pytest.raises(ValidationError) as forgotten:  # a provider chosen again does not find its old secrets
        await hlr.set_hlr_provider(admin, 'infobip', {'base_url': 'https://xyz.api.infobip.com'})
    assert forgotten.value.errors == {'settings.api_key': 'Required'}

    events = await AuditEvent.filter(entity_type=hlr.SETTING_ENTITY).order_by('id')
    assert [event.summary for event in events] == ['Phone checks use Infobip Number Lookup (HLR over HTTP)'] * 3 + [
        'Phone checks use Offline (phone-number data, free)']
    assert [event.changes.get('settings.api_key') for event in events] == [
        [None, MASK], None, [MASK, MASK], [MASK, None]]
    assert events[3].changes['settings.batch_size'] == [50, None]
    assert KEY not in str([event.changes for event in events]) and 'new-key' not in str([e.changes for e in events])

    operator = await make_actor(Role.OPERATOR)
    with pytest.raises(PermissionDenied):
        await hlr.hlr_settings(operator)
    with pytest.raises(PermissionDenied):
        await hlr.set_hlr_provider(operator, 'offline', {})
    with pytest.raises(PermissionDenied):
        await hlr.check_number(operator, VALID)


# --- pages ---------------------------------------------------------------------------------------------------------

def select(user: User, label: str) -> ui.select:
    return next(iter(user.find(kind=ui.select, content=label).elements))


def marked(user: User, marker: str) -> ui.element:
    return next(iter(user.find(marker=marker).elements))


def sent_to_browser(user: User) -> str:
    return ' '.join(str(element._props) for element in user.current_layout.descendants())


async def test_the_check_phones_list_shows_infobips_results_with_cost(user: User, infobip: FakeInfobip) -> None:
    await sign_in_as(user, Role.OPERATOR)
    await use_infobip(infobip.url)
    await user.open('/hlr')
    user.find(marker='numbers').type(f'{VALID}, {PORTED}\n{ABSENT}')
    user.find(marker='check').click()
    await eventually(lambda: len(table_rows(user)) == 3)
    rows = {row['phone']: row for row in table_rows(user)}
    assert {phone: (row['status'], row['network'], row['cost']) for phone, row in rows.items()} == {
        VALID: ('VALID', 'Swisscom', '0.005 EUR'), PORTED: ('VALID', 'Sunrise', '0.005 EUR'),
        ABSENT: ('ABSENT', 'Swisscom', '0.005 EUR')}
    assert rows[ABSENT]['reason'] == 'absent subscriber: the phone is switched off or out of coverage'

    infobip.answer = server_error
    user.find(marker='numbers').type(ROAMING)
    user.find(marker='check').click()
    await eventually(lambda: any(row['phone'] == ROAMING for row in table_rows(user)))
    failed = next(row for row in table_rows(user) if row['phone'] == ROAMING)
    assert (failed['status'], failed['reason'], failed['cost']) == (
        'ERROR', 'lookup failed: the HLR provider answered with an error; check the number again later', '0 EUR')


async def test_the_settings_card_switches_to_infobip_and_checks_a_number(user: User, infobip: FakeInfobip) -> None:
    await sign_in_as(user, Role.ADMIN)
    await user.open('/settings/channels')
    await user.should_see('Phone checks (HLR)')
    await user.should_see('This provider has no settings.')
    select(user, 'Phone-check provider').value = 'infobip'
    await user.should_see('API key *')
    user.find('Base URL *').clear().type(infobip.url)
    user.find('API key *').type(KEY)
    user.find('Numbers per request').clear().type('5000')
    user.find(marker='hlr-save').click()
    await eventually(lambda: user.find('Numbers per request').elements.pop().error == 'Must be between 1 and 1000')
    assert not await AppSetting.exists(key=hlr.SETTING_KEY)
    user.find('Numbers per request').clear().type('10')
    user.find(marker='hlr-save').click()
    await user.should_see('Phone checks now use Infobip Number Lookup (HLR over HTTP).')
    assert (await AppSetting.get(key=hlr.SETTING_KEY)).value == {
        'provider': 'infobip', 'settings': {'base_url': infobip.url, 'api_key': KEY, 'batch_size': 10,
                                            'concurrency': 4, 'timeout_s': 60.0, 'price_per_lookup': 0.0}}
    await eventually(lambda: user.find('API key *').elements.pop().value == '')
    assert KEY not in sent_to_browser(user)

    user.find(marker='hlr-test').click()
    await eventually(lambda: marked(user, 'hlr-test-number').error == 'Enter a phone number to check.')
    user.find(marker='hlr-test-number').type('+41 79 302 67 28')
    user.find(marker='hlr-test').click()
    await user.should_see(f'{PORTED}: VALID · Sunrise (ported) · cost 0.005 EUR')
    assert infobip.numbers_asked() == [PORTED]

    await user.open('/settings/channels')  # the stored provider, its secret kept but not shown
    await user.should_see('Remove the stored api key')
    assert select(user, 'Phone-check provider').value == 'infobip'
    assert user.find('Base URL *').elements.pop().value == infobip.url
    assert user.find('API key *').elements.pop().props['placeholder'] == 'Leave empty to keep'
    assert KEY not in sent_to_browser(user)
    user.find('API key *').type('wrong-key')
    user.notify.messages.clear()  # the first save's notification must not count for this one
    user.find(marker='hlr-save').click()
    await user.should_see('Phone checks now use Infobip Number Lookup (HLR over HTTP).')
    user.find(marker='hlr-test-number').type(VALID)
    user.find(marker='hlr-test').click()
    await user.should_see('Infobip refused the API key (HTTP 401: Invalid login details).')
