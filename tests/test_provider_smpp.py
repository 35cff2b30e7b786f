"""The SMPP provider through the real engine against an SMSC simulator in its own process (tests/smpp_server.py):
the PDUs on the wire, concatenated parts, receipts, refusals, throttling, drops, enquire_link and the window."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timezone

import pytest
from helpers import make_actor
from loopback import Herald, herald
from smpp_server import Smsc
from smtp_server import make_certificate

from domain import enqueue
from domain.auth import Actor
from domain.channels import Channel
from domain.enqueue import Destination, SendRequest
from domain.models import Message, MessageEvent, Role, SenderName, SenderStatus
from domain.provider_settings import InvalidSettings
from domain.providers import DeliveryReport, OutgoingMessage, WebhookRejected, WebhookRequest
from domain.sms import analyze
from domain.statuses import MessageStatus
from providers.registry import create_provider
from providers.smpp import IN_DOUBT
from providers.smpp_pdu import GSM_BASIC, GSM_EXTENSION

_S = MessageStatus
CYRILLIC = ('Здравствуйте! Ваш заказ №4521 собран и передан в службу доставки. Курьер привезёт его завтра с 10 до 14 '
            'часов. Пожалуйста, держите телефон включённым: курьер позвонит за час до приезда. Если время вам не '
            'подходит, ответьте на это сообщение или позвоните нам. Спасибо, что выбрали наш магазин! Хорошего дня.')
PHONE = '+79123456789'


@pytest.fixture
def smsc(tmp_path) -> Iterator[Smsc]:
    server = Smsc(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
async def operator(db) -> Actor:
    for name in ('MyShop', '4915112345678'):
        await SenderName.create(name=name, channel=Channel.SMS, status=SenderStatus.APPROVED)
    return await make_actor(Role.OPERATOR)


def route(smsc: Smsc, **settings) -> dict:
    return {'name': 'smpp', 'channel': 'sms', 'provider': 'smpp', 'settings': {
        'host': '127.0.0.1', 'port': smsc.port, 'system_id': 'herald', 'password': 'secret',
        'reconnect_min_s': 0.05, 'reconnect_max_s': 0.2, **settings}}


@pytest.fixture
async def engine(monkeypatch, smsc, operator) -> Callable:
    """`async with engine(**settings) as h`: a Herald engine with one SMPP route to the simulator."""
    def start(**settings) -> AsyncIterator[Herald]:
        return herald(monkeypatch, route(smsc, **settings))
    return start


async def send(operator: Actor, text: str, phones: tuple[str, ...] = (PHONE,), sender: str = 'MyShop') -> list[str]:
    result = await enqueue.enqueue(operator, SendRequest(
        steps=[{'channel': 'sms', 'from': sender, 'text': text}],
        destinations=[Destination(phone=phone) for phone in phones]))
    return [str(created.id) for created in result.messages]


def all_in(status: MessageStatus, ids: list[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await Message.filter(id__in=ids, status=status).count() == len(ids)
    return check


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError('the condition did not come true')
        await asyncio.sleep(0.02)


def text_of(submit: dict) -> str:
    payload = bytes.fromhex(submit['short_message'])
    if submit['esm_class'] & 0x40:
        payload = payload[payload[0] + 1:]
    if submit['data_coding'] == 8:
        return payload.decode('utf-16-be')
    extension = {code: char for char, code in GSM_EXTENSION.items()}
    septets = iter(payload)
    return ''.join(extension[next(septets)] if septet == 0x1B else GSM_BASIC[septet] for septet in septets)


async def test_a_300_character_cyrillic_text_goes_as_5_udh_parts_and_their_receipts_deliver_it(
        engine, smsc, operator) -> None:
    text = CYRILLIC[:300]
    assert len(text) == 300 and analyze(text).parts == 5
    async with engine() as h:
        [message_id] = await send(operator, text)
        await h.settle(all_in(_S.DELIVERED, [message_id]))

    [bind] = smsc.pdus('bind_transceiver')
    assert (bind['system_id'], bind['password'], bind['system_type'], bind['interface_version']) == \
        ('herald', 'secret', '', 0x34)
    submits = smsc.pdus('submit_sm')
    assert len(submits) == 5
    reference = bytes.fromhex(submits[0]['short_message'])[3]
    for number, submit in enumerate(submits, 1):
        assert (submit['data_coding'], submit['esm_class'], submit['registered_delivery']) == (8, 0x40, 1)
        assert (submit['source_addr'], submit['source_addr_ton'], submit['source_addr_npi']) == ('MyShop', 5, 0)
        assert (submit['destination_addr'], submit['dest_addr_ton'], submit['dest_addr_npi']) == ('79123456789', 1, 1)
        assert bytes.fromhex(submit['short_message'])[:6] == bytes((0x05, 0x00, 0x03, reference, 5, number))
        assert len(text_of(submit)) <= 67
    assert ''.join(text_of(submit) for submit in submits) == text
    message = await Message.get(id=message_id)
    assert message.provider_message_id == submits[0]['message_id']
    assert message.status_description == 'DELIVRD'
    timeline = [event.status for event in await MessageEvent.filter(message_id=message_id).order_by('id')]
    assert timeline == [_S.QUEUED, _S.SENT, _S.DELIVERED]
    answers = smsc.pdus('deliver_sm_resp')
    assert len(answers) == 5 and all(answer['status'] == 0 for answer in answers)


async def test_a_gsm_text_is_one_part_and_a_text_only_receipt_delivers_it(engine, smsc, operator) -> None:
    text = 'Code 1234 @ €5 {ok}'
    async with engine() as h:
        await smsc.control('set', receipt_tlvs=False)
        [message_id] = await send(operator, text, sender='4915112345678')
        await h.settle(all_in(_S.DELIVERED, [message_id]))

    [submit] = smsc.pdus('submit_sm')
    assert (submit['data_coding'], submit['esm_class'], submit['tlvs']) == (0, 0, '')
    assert bytes.fromhex(submit['short_message']) == b'Code 1234 \x00 \x1b\x655 \x1b\x28ok\x1b\x29'
    assert (submit['source_addr'], submit['source_addr_ton'], submit['source_addr_npi']) == ('4915112345678', 1, 1)


async def test_one_undelivered_part_makes_the_message_undelivered(engine, smsc, operator) -> None:
    text = 'x' * 200
    assert analyze(text).parts == 2
    async with engine() as h:
        await smsc.control('set', receipt_stats=['DELIVRD', 'UNDELIV'])
        [message_id] = await send(operator, text)
        await h.settle(all_in(_S.UNDELIVERED, [message_id]))

    assert [s['esm_class'] for s in smsc.pdus('submit_sm')] == [0x40, 0x40]
    assert ''.join(text_of(s) for s in smsc.pdus('submit_sm')) == text
    assert (await Message.get(id=message_id)).status_description == 'UNDELIV err:001 (part 2 of 2)'


async def test_a_refused_bind_fails_permanently_naming_the_bind_not_the_password(engine, smsc, operator) -> None:
    async with engine(password='wrong1') as h:
        [message_id] = await send(operator, 'Hello')
        await h.settle(all_in(_S.ERROR, [message_id]))

    message = await Message.get(id=message_id)
    assert 'refused bind_transceiver' in message.status_description
    assert 'ESME_RINVPASWD' in message.status_description
    assert 'wrong1' not in message.status_description
    assert smsc.pdus('submit_sm') == []


async def test_no_smsc_is_a_transient_error(monkeypatch, smsc, operator) -> None:
    smsc.stop()
    async with herald(monkeypatch, route(smsc, connect_timeout_s=2)) as h:
        [message_id] = await send(operator, 'Hello')
        await h.dispatcher.dispatch_once()

    message = await Message.get(id=message_id)
    assert (message.status, message.attempt) == (_S.QUEUED, 1)
    assert message.status_description.startswith('Cannot connect to the SMSC at 127.0.0.1:')


async def test_throttling_is_retried(engine, smsc, operator) -> None:
    async with engine() as h:
        await smsc.control('set', throttle=1)
        [message_id] = await send(operator, 'Hello')
        await h.dispatcher.dispatch_once()
        message = await Message.get(id=message_id)
        assert (message.status, message.attempt) == (_S.QUEUED, 1)
        assert message.status_description == 'The SMSC refused the message: ESME_RTHROTTLED'
        await Message.filter(id=message_id).update(due_at=datetime.now(timezone.utc))
        await h.settle(all_in(_S.DELIVERED, [message_id]))

    assert len(smsc.pdus('submit_sm')) == 2
    assert len(smsc.pdus('bind_transceiver')) == 1


async def test_an_error_status_refuses_the_message_permanently(engine, smsc, operator) -> None:
    async with engine() as h:
        await smsc.control('set', refuse=[0x0B, 1])
        [message_id] = await send(operator, 'Hello')
        await h.settle(all_in(_S.ERROR, [message_id]))

    assert (await Message.get(id=message_id)).status_description == 'The SMSC refused the message: ESME_RINVDSTADR'


async def test_dropped_connections_are_reopened_and_later_messages_go(engine, smsc, operator) -> None:
    async with engine() as h:
        first = await send(operator, 'First')
        await h.settle(all_in(_S.DELIVERED, first))
        await smsc.control('drop')
        second = await send(operator, 'Second')
        await h.settle(all_in(_S.DELIVERED, second))
        smsc.restart()
        await wait_bound(smsc)
        third = await send(operator, 'Third')
        await h.settle(all_in(_S.DELIVERED, third))

    assert len(smsc.pdus('bind_transceiver')) == 3
    assert [text_of(s) for s in smsc.pdus('submit_sm')] == ['First', 'Second', 'Third']


async def wait_bound(smsc: Smsc) -> None:
    for _ in range(500):
        if (await smsc.control('stats'))['bound']:
            return
        await asyncio.sleep(0.02)
    raise AssertionError('the provider did not bind again')


async def test_a_connection_lost_before_the_answer_is_in_doubt_and_never_resent(engine, smsc, operator) -> None:
    async with engine() as h:
        await smsc.control('set', drop_after_submits=1)
        [lost] = await send(operator, 'Lost')
        await h.settle(all_in(_S.ERROR, [lost]))
        [later] = await send(operator, 'Later')
        await h.settle(all_in(_S.DELIVERED, [later]))

    message = await Message.get(id=lost)
    assert message.in_doubt and message.status_description.startswith('In doubt: the connection was lost')
    assert [text_of(s) for s in smsc.pdus('submit_sm')] == ['Lost', 'Later']


async def test_enquire_link_is_sent_when_idle_and_answered(engine, smsc, operator) -> None:
    async with engine(enquire_link_s=0.1) as h:
        [message_id] = await send(operator, 'Hello')
        await h.settle(all_in(_S.DELIVERED, [message_id]))
        await eventually(lambda: len(smsc.pdus('enquire_link')) >= 2)
        await smsc.control('enquire_link')
        await eventually(lambda: smsc.pdus('enquire_link_resp'))

    [answer] = smsc.pdus('enquire_link_resp')
    assert answer['status'] == 0
    assert len(smsc.pdus('bind_transceiver')) == 1, 'the link stayed up'


async def test_the_window_limits_unanswered_submits(engine, smsc, operator) -> None:
    phones = tuple(f'+7912345{n:04}' for n in range(12))
    async with engine(window_size=3) as h:
        await smsc.control('set', resp_delay=0.1)
        ids = await send(operator, 'Hello', phones)
        await h.settle(all_in(_S.DELIVERED, ids))

    assert len(smsc.pdus('submit_sm')) == 12
    assert (await smsc.control('stats'))['max_outstanding'] == 3


async def test_an_unknown_receipt_is_answered_and_changes_nothing(engine, smsc, operator) -> None:
    async with engine() as h:
        [first] = await send(operator, 'Hello')
        await h.settle(all_in(_S.DELIVERED, [first]))
        answered = len(smsc.pdus('deliver_sm_resp'))
        await smsc.control('receipt', id='NOSUCHID', stat='UNDELIV')
        await eventually(lambda: len(smsc.pdus('deliver_sm_resp')) == answered + 1)
        [second] = await send(operator, 'Again')
        await h.settle(all_in(_S.DELIVERED, [second]))

    assert await Message.filter(status=_S.DELIVERED).count() == 2
    assert len(smsc.pdus('bind_transceiver')) == 1


# The provider on its own


@pytest.fixture
async def provider_for(smsc) -> AsyncIterator[Callable]:
    providers = []

    def make(sink=None, **settings):
        provider = create_provider('smpp', 'sms', route(smsc, **settings)['settings'], sink)
        providers.append(provider)
        return provider
    yield make
    for provider in providers:
        await provider.close()


def sms(text: str, sender: str = 'MyShop') -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), Channel.SMS, PHONE, text, sender)


@pytest.mark.parametrize('text', [
    'a' * 160, 'a' * 161, 'a' * 152 + '€' * 5, 'б' * 70, 'б' * 71, 'б' * 66 + '😀' * 3, '😀' * 100,
])
async def test_parts_are_the_parts_counted(provider_for, smsc, text) -> None:
    [result] = await provider_for().send([sms(text)])

    assert result.accepted
    submits = smsc.pdus('submit_sm')
    assert len(submits) == analyze(text).parts
    assert ''.join(text_of(s) for s in submits) == text
    assert all(len(bytes.fromhex(s['short_message'])) <= 140 or s['data_coding'] == 0 for s in submits)


async def test_receipts_of_every_part_resolve_to_the_first_parts_id(provider_for, smsc) -> None:
    reports: list[DeliveryReport] = []

    async def sink(batch: list[DeliveryReport]) -> None:
        reports.extend(batch)
    [result] = await provider_for(sink).send([sms(CYRILLIC[:150])])
    await eventually(lambda: reports)

    submits = smsc.pdus('submit_sm')
    assert len(submits) == 3 and result.provider_message_id == submits[0]['message_id']
    assert reports == [DeliveryReport(submits[0]['message_id'], _S.DELIVERED, 'DELIVRD')]


async def test_a_throttled_later_part_is_tried_again_not_the_message(provider_for, smsc) -> None:
    await smsc.control('set', throttle=1, throttle_skip=1)
    [result] = await provider_for().send([sms('x' * 200)])

    assert result.accepted
    submits = smsc.pdus('submit_sm')
    assert [s['message_id'] is not None for s in submits] == [True, False, True]
    assert result.provider_message_id == submits[0]['message_id']


async def test_a_part_lost_after_the_first_was_accepted_leaves_the_message_in_doubt(provider_for, smsc) -> None:
    await smsc.control('set', drop_after_submits=2)
    [result] = await provider_for().send([sms('x' * 200)])

    first = smsc.pdus('submit_sm')[0]
    assert not result.accepted and result.in_doubt and not result.transient
    assert result.provider_message_id == first['message_id']
    assert result.error.startswith(f'{IN_DOUBT}: the connection was lost')
    assert 'part 2 of 2' in result.error


async def test_an_intermediate_receipt_makes_the_message_pending(provider_for, smsc) -> None:
    reports: list[DeliveryReport] = []

    async def sink(batch: list[DeliveryReport]) -> None:
        reports.extend(batch)
    await smsc.control('set', receipt_stats=['ENROUTE'])
    [result] = await provider_for(sink).send([sms('Hello')])
    await eventually(lambda: reports)
    await smsc.control('receipt', id=result.provider_message_id, stat='EXPIRED')
    await eventually(lambda: len(reports) == 2)

    assert [(r.provider_message_id, r.status) for r in reports] == [
        (result.provider_message_id, _S.PENDING), (result.provider_message_id, _S.EXPIRED)]


@pytest.mark.parametrize('verify', [False, True])
async def test_tls(tmp_path, verify) -> None:
    server = Smsc(tmp_path, certificate=make_certificate(tmp_path)).start()
    provider = create_provider('smpp', 'sms', route(server, tls=True, verify_certificate=verify)['settings'], None)
    try:
        [result] = await provider.send([sms('Hello')])
    finally:
        await provider.close()
        server.stop()

    if verify:
        assert result.transient and 'CERTIFICATE_VERIFY_FAILED' in result.error
        assert server.pdus() == []
    else:
        assert result.accepted and len(server.pdus('submit_sm')) == 1


async def test_throughput_spaces_the_submits(provider_for, smsc) -> None:
    provider = provider_for(throughput_per_second=20)
    started = time.monotonic()
    results = await provider.send([sms(f'Hello {n}') for n in range(5)])

    assert all(result.accepted for result in results)
    assert time.monotonic() - started >= 4 / 20 * 0.9


def test_gsm_table_is_the_one_parts_are_counted_with() -> None:
    from domain.sms import GSM7_BASIC, GSM7_EXTENSION
    assert len(GSM_BASIC) == 128 and set(GSM_BASIC) - {'\x1b'} == GSM7_BASIC
    assert set(GSM_EXTENSION) == GSM7_EXTENSION


def test_settings_are_checked() -> None:
    with pytest.raises(InvalidSettings) as caught:
        create_provider('smpp', 'sms', {'host': 'smsc', 'system_id': 'a' * 16, 'password': 'x' * 9,
                                        'source_ton': 'seven', 'window_size': '0'}, None)
    assert set(caught.value.errors) == {'system_id', 'password', 'source_ton', 'window_size'}
    provider = create_provider('smpp', 'sms', {'host': 'smsc', 'system_id': 'herald'}, None)
    assert (provider.settings['port'], provider.settings['source_ton'], provider.settings['window_size']) == \
        (2775, 'auto', 10)


def test_http_posts_are_not_receipts() -> None:
    provider = create_provider('smpp', 'sms', {'host': 'smsc', 'system_id': 'herald'}, None)
    with pytest.raises(WebhookRejected):
        provider.parse_webhook(WebhookRequest(b'id:1 stat:DELIVRD'))
