"""The Kannel provider against a loopback smsbox written to Kannel's User's Guide: the sendsms request, delivery
reports called on the dlr-url with Kannel's escape codes replaced, forged reports, error answers and retries."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from helpers import make_actor
from loopback import LoopbackServer, Recorded, herald

from domain import enqueue
from domain.auth import Actor
from domain.channels import Channel
from domain.enqueue import Destination, SendRequest
from domain.models import Message, Role, SenderName, SenderStatus
from domain.provider_settings import InvalidSettings
from domain.providers import OutgoingMessage
from domain.statuses import MessageStatus
from providers.registry import create_provider

PASSWORD = 'kannel-secret-pass-91c2'
PHONE = '+79123456789'
SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Your code is 1234'}
SMSC_ANSWER = 'id:7d1f sub:001 dlvrd:001 submit date:2611280450 done date:2611280451 stat:DELIVRD err:000'


class FakeKannel:
    """smsbox's sendsms interface: checks the sendsms-user, records the request, answers as Kannel 1.4 does."""

    def __init__(self) -> None:
        self.url = ''
        self.requests: list[Recorded] = []
        self.errors: list[tuple[int, str]] = []
        self.app = FastAPI()
        self.app.get('/cgi-bin/sendsms')(self.sendsms)

    async def sendsms(self, request: Request) -> PlainTextResponse:
        recorded = await Recorded.of(request)
        self.requests.append(recorded)
        query = recorded.query
        if (query.get('username'), query.get('password')) != ('herald', PASSWORD):
            return PlainTextResponse('Authorization failed for sendsms', status_code=403)
        if self.errors:
            status, text = self.errors.pop(0)
            return PlainTextResponse(text, status_code=status)
        return PlainTextResponse('0: Accepted for delivery', status_code=202)

    @staticmethod
    async def report(dlr_url: str, kind: int, answer: str = SMSC_ANSWER, at: int | None = None) -> httpx.Response:
        """Kannel calls the dlr-url with GET after replacing its escape codes (values URL-encoded)."""
        url = (dlr_url.replace('%d', str(kind)).replace('%A', quote(answer, safe=''))
               .replace('%T', str(at if at is not None else int(time.time()))))
        async with httpx.AsyncClient() as client:
            return await client.get(url)


@pytest.fixture
async def kannel():
    fake = FakeKannel()
    async with LoopbackServer(fake.app) as server:
        fake.url = server.url
        yield fake


def route(kannel: FakeKannel, **extra) -> dict:
    return {'name': 'kannel-sms', 'channel': 'sms', 'provider': 'kannel',
            'settings': {'base_url': kannel.url, 'username': 'herald', 'password': PASSWORD, **extra}}


@pytest.fixture
async def operator(db) -> Actor:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    return await make_actor(Role.OPERATOR)


async def send(actor: Actor, text: str = SMS['text']) -> None:
    await enqueue.enqueue(actor, SendRequest(steps=[{**SMS, 'text': text}], destinations=[Destination(phone=PHONE)]))


def message_is(status: MessageStatus):
    async def check() -> bool:
        return (await Message.first()).status == status
    return check


async def test_an_sms_goes_out_as_sendsms_and_its_delivery_report_delivers_it(operator, monkeypatch, kannel) -> None:
    async with herald(monkeypatch, route(kannel, smsc='operator-a')) as h:
        await send(operator)
        await h.settle(message_is(MessageStatus.SENT))

        [request] = kannel.requests
        message = await Message.first()
        assert (request.method, request.path) == ('GET', '/cgi-bin/sendsms')
        query = dict(request.query)
        dlr_url = query.pop('dlr-url')
        assert query == {'username': 'herald', 'password': PASSWORD, 'to': PHONE, 'from': 'MyShop',
                         'text': 'Your code is 1234', 'charset': 'UTF-8', 'coding': '0', 'smsc': 'operator-a',
                         'dlr-mask': '19'}
        assert dlr_url.startswith(f'{h.url}/webhooks/kannel/kannel-sms?id={message.id}&sig=')
        assert dlr_url.endswith('&type=%d&answer=%A&at=%T')
        assert message.provider_message_id == str(message.id)

        for intermediate in (8, 4):
            answer = await kannel.report(dlr_url, intermediate)
            assert answer.status_code == 200 and answer.json() == {'accepted': 0}
        assert (await Message.first()).status == MessageStatus.SENT
        answer = await kannel.report(dlr_url, 1, at=1_795_000_000)
        assert answer.json() == {'accepted': 1}
        await h.settle(message_is(MessageStatus.DELIVERED))
        message = await Message.first()
        assert message.status_description == f'Kannel report 1: {SMSC_ANSWER}'


async def test_text_outside_gsm_goes_as_ucs2(operator, monkeypatch, kannel) -> None:
    async with herald(monkeypatch, route(kannel)) as h:
        await send(operator, 'Ваш код 1234')
        await h.settle(message_is(MessageStatus.SENT))
        query = kannel.requests[0].query
        assert (query['text'], query['coding'], query['charset']) == ('Ваш код 1234', '2', 'UTF-8')


@pytest.mark.parametrize(('kind', 'expected'), [(2, MessageStatus.UNDELIVERED), (16, MessageStatus.ERROR)])
async def test_failed_reports_end_the_message(operator, monkeypatch, kannel, kind, expected) -> None:
    async with herald(monkeypatch, route(kannel)) as h:
        await send(operator)
        await h.settle(message_is(MessageStatus.SENT))
        await kannel.report(kannel.requests[0].query['dlr-url'], kind, answer='stat:UNDELIV err:001')
        await h.settle(message_is(expected))
        assert (await Message.first()).status_description == f'Kannel report {kind}: stat:UNDELIV err:001'


async def test_forged_reports_are_refused_and_change_nothing(operator, monkeypatch, kannel) -> None:
    async with herald(monkeypatch, route(kannel)) as h:
        await send(operator)
        await h.settle(message_is(MessageStatus.SENT))
        message = await Message.first()
        webhook = f'{h.url}/webhooks/kannel/kannel-sms'
        genuine = kannel.requests[0].query['dlr-url']
        signature = genuine.split('&sig=')[1].split('&')[0]
        async with httpx.AsyncClient() as client:
            answers = [
                await client.get(webhook, params={'id': str(message.id), 'type': '1'}),
                await client.get(webhook, params={'id': str(message.id), 'sig': '0' * 32, 'type': '1'}),
                await client.get(webhook, params={'id': str(uuid.uuid4()), 'sig': signature, 'type': '1'}),
                await client.get(genuine.replace('%d', 'one')),
            ]
        assert [answer.status_code for answer in answers] == [400, 400, 400, 400]
        assert (await Message.first()).status == MessageStatus.SENT


async def test_a_temporary_failure_is_retried_and_a_refusal_ends_the_message(operator, monkeypatch, kannel) -> None:
    kannel.errors = [(503, 'Sendsms temporarily unavailable'), (400, 'Sender missing and no global set, rejected')]
    async with herald(monkeypatch, route(kannel)) as h:
        await send(operator)

        async def attempted() -> bool:
            return bool(kannel.requests) and (await Message.first()).status_description != ''
        await h.settle(attempted)
        message = await Message.first()
        assert message.status == MessageStatus.QUEUED
        assert message.status_description == 'HTTP 503: Sendsms temporarily unavailable'
        await Message.filter(id=message.id).update(due_at=datetime.now(timezone.utc))  # skip the backoff

        await h.settle(message_is(MessageStatus.ERROR))
        assert (await Message.first()).status_description == 'HTTP 400: Sender missing and no global set, rejected'
        assert len(kannel.requests) == 2


async def test_a_wrong_password_is_refused_without_showing_it(kannel) -> None:
    provider = create_provider('kannel', 'k', {**route(kannel)['settings'], 'password': 'wrong-' + PASSWORD}, None)
    [result] = await provider.send([OutgoingMessage('m1', Channel.SMS, PHONE, 'Hi', sender='MyShop')])
    await provider.close()
    assert (result.accepted, result.transient) == (False, False)
    assert result.error == 'HTTP 403: Authorization failed for sendsms'
    assert PASSWORD not in result.error


async def test_no_delivery_reports_when_the_mask_is_zero(kannel) -> None:
    provider = create_provider('kannel', 'k', {**route(kannel)['settings'], 'dlr_mask': 0}, None)
    [result] = await provider.send([OutgoingMessage('m1', Channel.SMS, PHONE, 'Hi')])
    await provider.close()
    assert result.accepted and result.provider_message_id == 'm1'
    assert {'dlr-url', 'dlr-mask', 'from'}.isdisjoint(kannel.requests[0].query)


def test_bad_settings_are_named() -> None:
    with pytest.raises(InvalidSettings) as raised:
        create_provider('kannel', 'k', {'username': 'u', 'password': 'p', 'dlr_mask': 32, 'base_url': 'x'}, None)
    assert set(raised.value.errors) == {'dlr_mask', 'base_url'}
    with pytest.raises(InvalidSettings) as raised:
        create_provider('kannel', 'k', {'username': 'u'}, None)
    assert raised.value.errors == {'password': 'required'}
