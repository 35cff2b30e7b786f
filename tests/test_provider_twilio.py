"""The Twilio provider against a loopback server written to Twilio's Messages API documentation: the request on the
wire, status callbacks signed as Twilio signs them, forged callbacks, error answers and retries."""
from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qsl

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from helpers import make_actor
from loopback import LoopbackServer, Recorded, herald

from domain import enqueue
from domain.auth import Actor
from domain.channels import Channel
from domain.enqueue import Destination, SendRequest
from domain.models import Message, Role, SenderName, SenderStatus
from domain.provider_settings import InvalidSettings
from domain.providers import OutgoingMessage, WebhookRejected, WebhookRequest
from domain.statuses import MessageStatus
from providers.registry import create_provider
from providers.twilio import signature

ACCOUNT = 'AC' + '0123456789abcdef' * 2
TOKEN = 'tw-secret-auth-token-7f3a'
PHONE = '+79123456789'
SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Your code is 1234'}
WHATSAPP = {'channel': 'whatsapp', 'templateName': 'order', 'text': 'Your order has shipped',
            'mediaUrl': 'https://example.com/parcel.png'}


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Written from Twilio's "Validating requests" page, independently of the provider's code."""
    data = url
    for name in sorted(params):
        data += name + params[name]
    return base64.b64encode(hmac.new(token.encode(), data.encode('utf-8'), hashlib.sha1).digest()).decode()


class FakeTwilio:
    """Twilio's Messages resource: records requests, answers 201 with a sid, or the queued error answers."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.errors: list[tuple[int, dict]] = []
        self.url = ''
        self.app = FastAPI()
        self.app.post('/2010-04-01/Accounts/{account}/Messages.json')(self.create)

    async def create(self, account: str, request: Request) -> JSONResponse:
        recorded = await Recorded.of(request)
        self.requests.append(recorded)
        expected = 'Basic ' + base64.b64encode(f'{ACCOUNT}:{TOKEN}'.encode()).decode()
        if account != ACCOUNT or recorded.headers.get('authorization') != expected:
            return error(401, 20003, 'Authenticate')
        if self.errors:
            status, body = self.errors.pop(0)
            return JSONResponse(body, status_code=status)
        form = dict(parse_qsl(recorded.body.decode()))
        sid = 'SM' + uuid.uuid4().hex
        return JSONResponse({'sid': sid, 'status': 'queued', 'to': form['To'], 'from': form.get('From'),
                             'body': form['Body'], 'account_sid': ACCOUNT}, status_code=201)

    @staticmethod
    def form(recorded: Recorded) -> dict[str, str]:
        return dict(parse_qsl(recorded.body.decode()))

    @staticmethod
    async def callback(url: str, sid: str, status: str, token: str = TOKEN, **extra: str) -> httpx.Response:
        """A StatusCallback request as Twilio makes it: a signed form POST."""
        params = {'MessageSid': sid, 'SmsSid': sid, 'MessageStatus': status, 'SmsStatus': status,
                  'AccountSid': ACCOUNT, 'ApiVersion': '2010-04-01', **extra}
        headers = {'X-Twilio-Signature': twilio_signature(token, url, params)}
        async with httpx.AsyncClient() as client:
            return await client.post(url, data=params, headers=headers)


def error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({'code': code, 'message': message, 'more_info': f'https://www.twilio.com/docs/errors/{code}',
                         'status': status}, status_code=status)


def settings(twilio: FakeTwilio, **extra: str) -> dict[str, str]:
    return {'account_sid': ACCOUNT, 'auth_token': TOKEN, 'base_url': twilio.url, **extra}


def sms_route(twilio: FakeTwilio, **extra: str) -> dict:
    return {'name': 'tw-sms', 'channel': 'sms', 'provider': 'twilio', 'settings': settings(twilio, **extra)}


@pytest.fixture
async def twilio():
    fake = FakeTwilio()
    async with LoopbackServer(fake.app) as server:
        fake.url = server.url
        yield fake


@pytest.fixture
async def operator(db) -> Actor:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    return await make_actor(Role.OPERATOR)


async def send(actor: Actor, step: dict) -> None:
    await enqueue.enqueue(actor, SendRequest(steps=[step], destinations=[Destination(phone=PHONE)]))


def message_is(status: MessageStatus):
    async def check() -> bool:
        return (await Message.first()).status == status
    return check


def test_the_signature_matches_twilios_documented_example() -> None:
    url = 'https://mycompany.com/myapp.php?foo=1&bar=2'
    params = {'CallSid': 'CA1234567890ABCDE', 'Caller': '+14158675309', 'Digits': '1234', 'From': '+14158675309',
              'To': '+18005551212'}
    assert twilio_signature('12345', url, params) == 'RSOYDt4T1cUTdK1PDd93/VVr8B8='
    assert signature('12345', url, list(params.items())[::-1]) == 'RSOYDt4T1cUTdK1PDd93/VVr8B8='


async def test_an_sms_goes_out_as_twilio_documents_and_its_callback_delivers_it(operator, monkeypatch, twilio) -> None:
    async with herald(monkeypatch, sms_route(twilio)) as h:
        await send(operator, SMS)
        await h.settle(message_is(MessageStatus.SENT))

        [request] = twilio.requests
        assert (request.method, request.path) == ('POST', f'/2010-04-01/Accounts/{ACCOUNT}/Messages.json')
        assert request.headers['content-type'] == 'application/x-www-form-urlencoded'
        callback = f'{h.url}/webhooks/twilio/tw-sms'
        assert twilio.form(request) == {'To': PHONE, 'From': 'MyShop', 'Body': 'Your code is 1234',
                                        'StatusCallback': callback}
        message = await Message.first()
        assert message.provider_message_id.startswith('SM')

        for status in ('sending', 'sent'):
            answer = await twilio.callback(callback, message.provider_message_id, status)
            assert answer.status_code == 200 and answer.json() == {'accepted': 0}
        assert (await Message.first()).status == MessageStatus.SENT
        answer = await twilio.callback(callback, message.provider_message_id, 'delivered')
        assert answer.json() == {'accepted': 1}
        await h.settle(message_is(MessageStatus.DELIVERED))


async def test_a_whatsapp_message_carries_its_media_and_is_then_read(operator, monkeypatch, twilio) -> None:
    route = {'name': 'tw-wa', 'channel': 'whatsapp', 'provider': 'twilio',
             'settings': settings(twilio, from_number='+14155238886')}
    async with herald(monkeypatch, route) as h:
        await send(operator, WHATSAPP)
        await h.settle(message_is(MessageStatus.SENT))

        form = twilio.form(twilio.requests[0])
        assert (form['To'], form['From']) == (f'whatsapp:{PHONE}', 'whatsapp:+14155238886')
        assert (form['Body'], form['MediaUrl']) == ('Your order has shipped', 'https://example.com/parcel.png')
        sid, callback = (await Message.first()).provider_message_id, form['StatusCallback']
        await twilio.callback(callback, sid, 'delivered')
        await h.settle(message_is(MessageStatus.DELIVERED))
        await twilio.callback(callback, sid, 'read')
        await h.settle(message_is(MessageStatus.READ))


async def test_a_messaging_service_replaces_the_sender(operator, monkeypatch, twilio) -> None:
    service = 'MG' + 'a' * 32
    async with herald(monkeypatch, sms_route(twilio, messaging_service_sid=service)) as h:
        await send(operator, SMS)
        await h.settle(message_is(MessageStatus.SENT))
        form = twilio.form(twilio.requests[0])
        assert form['MessagingServiceSid'] == service and 'From' not in form


@pytest.mark.parametrize(('status', 'expected', 'description'), [
    ('undelivered', MessageStatus.UNDELIVERED, 'Twilio: undelivered, error 30003'),
    ('failed', MessageStatus.ERROR, 'Twilio: failed, error 30003'),
])
async def test_failures_end_the_message_with_twilios_error_code(operator, monkeypatch, twilio, status,
                                                                expected, description) -> None:
    async with herald(monkeypatch, sms_route(twilio)) as h:
        await send(operator, SMS)
        await h.settle(message_is(MessageStatus.SENT))
        sid = (await Message.first()).provider_message_id
        await twilio.callback(f'{h.url}/webhooks/twilio/tw-sms', sid, status, ErrorCode='30003')
        await h.settle(message_is(expected))
        assert (await Message.first()).status_description == description


async def test_forged_callbacks_are_refused_and_change_nothing(operator, monkeypatch, twilio) -> None:
    async with herald(monkeypatch, sms_route(twilio)) as h:
        await send(operator, SMS)
        await h.settle(message_is(MessageStatus.SENT))
        sid = (await Message.first()).provider_message_id
        callback = f'{h.url}/webhooks/twilio/tw-sms'

        wrong_token = await twilio.callback(callback, sid, 'delivered', token='not-the-token')
        params = {'MessageSid': sid, 'MessageStatus': 'delivered'}
        async with httpx.AsyncClient() as client:
            signed_elsewhere = await client.post(callback, data=params, headers={
                'X-Twilio-Signature': twilio_signature(TOKEN, 'https://elsewhere.example/hook', params)})
            tampered = await client.post(callback, data={**params, 'MessageStatus': 'delivered', 'ErrorCode': '1'},
                                         headers={'X-Twilio-Signature': twilio_signature(TOKEN, callback, params)})
            unsigned = await client.post(callback, data=params)
        for answer in (wrong_token, signed_elsewhere, tampered, unsigned):
            assert answer.status_code == 400
        assert (await Message.first()).status == MessageStatus.SENT


async def test_a_server_error_is_retried_and_a_refusal_ends_the_message(operator, monkeypatch, twilio) -> None:
    twilio.errors = [(503, {'code': 20500, 'message': 'Internal Server Error', 'status': 503}),
                     (400, {'code': 21211, 'message': f"The 'To' number {PHONE} is not valid ({TOKEN})",
                            'more_info': 'https://www.twilio.com/docs/errors/21211', 'status': 400})]
    async with herald(monkeypatch, sms_route(twilio)) as h:
        await send(operator, SMS)
        await h.settle(lambda: attempted(twilio))
        message = await Message.first()
        assert message.status == MessageStatus.QUEUED
        assert message.status_description == 'Twilio error 20500: Internal Server Error'
        await Message.filter(id=message.id).update(due_at=datetime.now(timezone.utc))  # skip the backoff

        await h.settle(message_is(MessageStatus.ERROR))
        message = await Message.first()
        assert len(twilio.requests) == 2
        assert message.status_description == f"Twilio error 21211: The 'To' number {PHONE} is not valid (***)"
        assert TOKEN not in message.status_description


async def attempted(twilio: FakeTwilio) -> bool:
    return bool(twilio.requests) and (await Message.first()).status_description != ''


async def test_rate_limits_are_transient_and_other_refusals_permanent(twilio) -> None:
    twilio.errors = [(429, {'code': 20429, 'message': 'Too Many Requests', 'status': 429}),
                     (400, {'code': 20429, 'message': 'Too Many Requests', 'status': 400}),
                     (401, {'code': 20003, 'message': 'Authenticate', 'status': 401})]
    provider = create_provider('twilio', 'tw', settings(twilio), None)
    message = OutgoingMessage(str(uuid.uuid4()), Channel.SMS, PHONE, 'Hi', sender='MyShop')
    limited, limited_in_body, refused = [(await provider.send([message]))[0] for _ in range(3)]
    await provider.close()
    for result in (limited, limited_in_body):
        assert (result.transient, result.error) == (True, 'Twilio error 20429: Too Many Requests')
    assert (refused.transient, refused.error) == (False, 'Twilio error 20003: Authenticate')
    assert not any(result.accepted for result in (limited, limited_in_body, refused))


async def test_a_whatsapp_message_needs_a_from_number() -> None:
    provider = create_provider('twilio', 'tw', {'account_sid': ACCOUNT, 'auth_token': TOKEN}, None)
    [result] = await provider.send([OutgoingMessage('m1', Channel.WHATSAPP, PHONE, 'Hi')])
    await provider.close()
    assert not result.accepted and 'From number' in result.error


def test_the_provider_verifies_a_callback_signed_over_the_public_url() -> None:
    provider = create_provider('twilio', 'tw', {'account_sid': ACCOUNT, 'auth_token': TOKEN}, None)
    url = 'https://herald.example.com/webhooks/twilio/tw'
    params = {'MessageSid': 'SM1', 'MessageStatus': 'delivered', 'ErrorCode': ''}
    body = '&'.join(f'{key}={value}' for key, value in params.items()).encode()
    headers = {'x-twilio-signature': twilio_signature(TOKEN, url, params)}
    [report] = provider.parse_webhook(WebhookRequest(body, headers, url=url))
    assert (report.provider_message_id, report.status) == ('SM1', MessageStatus.DELIVERED)
    with pytest.raises(WebhookRejected):
        provider.parse_webhook(WebhookRequest(body, headers, url='http://herald.example.com/webhooks/twilio/tw'))


def test_bad_settings_are_named() -> None:
    with pytest.raises(InvalidSettings) as raised:
        create_provider('twilio', 'tw', {'account_sid': 'AB12', 'auth_token': TOKEN, 'from_number': '555',
                                         'messaging_service_sid': 'XX', 'base_url': 'ftp://x'}, None)
    assert set(raised.value.errors) == {'account_sid', 'from_number', 'messaging_service_sid', 'base_url'}
    with pytest.raises(InvalidSettings) as raised:
        create_provider('twilio', 'tw', {'account_sid': ACCOUNT}, None)
    assert raised.value.errors == {'auth_token': 'required'}
