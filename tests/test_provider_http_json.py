"""The generic HTTP/JSON provider against a loopback API shaped by its settings: the rendered request, answers read
with paths, delivery reports under HMAC or a shared secret, forged reports, template injection, bad settings."""
from __future__ import annotations

import hashlib
import hmac
import json
import uuid
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
from domain.providers import OutgoingMessage
from domain.statuses import MessageStatus
from providers.http_json import parse_path, render
from providers.registry import create_provider

API_KEY = 'Bearer live-key-5b1d0c'
WEBHOOK_SECRET = 'whsec-0a9e7c'
PHONE = '+79123456789'
CHAT = '123456789'
SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Your code is 1234'}
TEMPLATE = '''{
  "to": {{recipient}},
  "from": {{sender}},
  "text": {{text}},
  "meta": {"herald_id": {{id}}, "parts": {{parts}}, "channel": {{channel}}, "label": "msg {{id}}"},
  "callback": {{webhook_url}}
}'''
STATUS_MAP = '''delivered_ok = DELIVERED
failed = UNDELIVERED
seen = READ'''


class FakeApi:
    """An SMS API of the usual shape: bearer auth, JSON in, {"status", "messages": [{"id"}]} out."""

    def __init__(self) -> None:
        self.url = ''
        self.requests: list[Recorded] = []
        self.answers: list[tuple[int, dict]] = []
        self.app = FastAPI()
        self.app.api_route('/v1/messages', methods=['POST', 'PUT', 'GET'])(self.messages)

    async def messages(self, request: Request) -> JSONResponse:
        recorded = await Recorded.of(request)
        self.requests.append(recorded)
        if recorded.headers.get('authorization') != API_KEY:
            return JSONResponse({'error': {'message': f'bad key {recorded.headers.get("authorization")}'}}, 401)
        if self.answers:
            status, body = self.answers.pop(0)
            return JSONResponse(body, status)
        return JSONResponse({'status': 'ok', 'messages': [{'id': f'p-{uuid.uuid4().hex}'}]})

    def body(self, index: int = 0) -> dict:
        return json.loads(self.requests[index].body)


@pytest.fixture
async def api():
    fake = FakeApi()
    async with LoopbackServer(fake.app) as server:
        fake.url = server.url
        yield fake


def settings(api: FakeApi, **extra) -> dict:
    return {'url': f'{api.url}/v1/messages', 'headers': 'X-Api-Version: 2\nAccept-Language: en',
            'auth_header': API_KEY, 'body_template': TEMPLATE, 'id_path': 'messages[0].id', 'ok_path': 'status',
            'ok_value': 'ok', 'error_path': 'error.message', 'report_list_path': 'events', 'report_id_path': 'ref',
            'report_status_path': 'state', 'report_description_path': 'info', 'status_map': STATUS_MAP,
            'webhook_auth': 'hmac_sha256', 'webhook_header': 'X-Signature', 'webhook_secret': WEBHOOK_SECRET,
            **extra}


def route(api: FakeApi, channel: str = 'sms', **extra) -> dict:
    return {'name': f'json-{channel}', 'channel': channel, 'provider': 'http-json', 'settings': settings(api, **extra)}


def signed(body: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {'Content-Type': 'application/json',
            'X-Signature': 'sha256=' + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


async def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=body, headers=headers)


@pytest.fixture
async def operator(db) -> Actor:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    return await make_actor(Role.OPERATOR)


async def send(actor: Actor, step: dict, destination: Destination = Destination(phone=PHONE)) -> None:
    await enqueue.enqueue(actor, SendRequest(steps=[step], destinations=[destination]))


def message_is(status: MessageStatus):
    async def check() -> bool:
        return (await Message.first()).status == status
    return check


async def test_the_template_is_sent_and_an_hmac_signed_report_delivers_it(operator, monkeypatch, api) -> None:
    async with herald(monkeypatch, route(api)) as h:
        await send(operator, SMS)
        await h.settle(message_is(MessageStatus.SENT))

        [request] = api.requests
        message = await Message.first()
        assert (request.method, request.path) == ('POST', '/v1/messages')
        assert (request.headers['content-type'], request.headers['x-api-version']) == ('application/json', '2')
        assert request.headers['accept-language'] == 'en'
        webhook = f'{h.url}/webhooks/http-json/json-sms'
        assert api.body() == {'to': PHONE, 'from': 'MyShop', 'text': 'Your code is 1234', 'callback': webhook,
                              'meta': {'herald_id': str(message.id), 'parts': 1, 'channel': 'sms',
                                       'label': f'msg {message.id}'}}
        provider_id = message.provider_message_id
        assert provider_id.startswith('p-')

        body = json.dumps({'events': [{'ref': provider_id, 'state': 'accepted'},
                                      {'ref': provider_id, 'state': 'delivered_ok', 'info': 'Handset ack'}]}).encode()
        answer = await post(webhook, body, signed(body))
        assert (answer.status_code, answer.json()) == (200, {'accepted': 1})
        await h.settle(message_is(MessageStatus.DELIVERED))
        assert (await Message.first()).status_description == 'Handset ack'


async def test_a_get_api_with_a_shared_secret_reports_read(operator, monkeypatch, api) -> None:
    template = '{"chat_id": {{recipient}}, "text": {{text}}, "ref": {{id}}}'
    telegram = route(api, 'telegram', method='GET', body_template=template, id_path='', ok_path='', ok_value='',
                     report_list_path='', webhook_auth='secret_header', webhook_header='X-Hook-Token')
    async with herald(monkeypatch, telegram) as h:
        await send(operator, {'channel': 'telegram', 'text': 'Hello'}, Destination(messenger_user_id=CHAT))
        await h.settle(message_is(MessageStatus.SENT))

        request = api.requests[0]
        message = await Message.first()
        assert (request.method, request.body) == ('GET', b'')
        assert request.query == {'chat_id': CHAT, 'text': 'Hello', 'ref': str(message.id)}
        assert message.provider_message_id == str(message.id)
        webhook = f'{h.url}/webhooks/http-json/json-telegram'
        body = json.dumps({'ref': str(message.id), 'state': 'delivered_ok'}).encode()
        assert (await post(webhook, body, {'X-Hook-Token': WEBHOOK_SECRET})).status_code == 200
        await h.settle(message_is(MessageStatus.DELIVERED))
        async with httpx.AsyncClient() as client:  # a report may also come as a GET with query parameters
            read = {'ref': str(message.id), 'state': 'seen'}
            assert (await client.get(webhook, params=read, headers={'X-Hook-Token': 'guess'})).status_code == 400
            assert (await client.get(webhook, params=read, headers={'X-Hook-Token': WEBHOOK_SECRET})).status_code == 200
        await h.settle(message_is(MessageStatus.READ))


async def test_a_form_body(api) -> None:
    template = '{"to": {{recipient}}, "body": {{text}}, "n": {{parts}}}'
    provider = create_provider('http-json', 'f', settings(api, content_type='form', method='PUT',
                                                          body_template=template), None)
    [result] = await provider.send([OutgoingMessage('m1', Channel.VIBER, PHONE, 'Hi & bye', parts=2)])
    await provider.close()
    request = api.requests[0]
    assert result.accepted and request.method == 'PUT'
    assert request.headers['content-type'] == 'application/x-www-form-urlencoded'
    assert dict(parse_qsl(request.body.decode())) == {'to': PHONE, 'body': 'Hi & bye', 'n': '2'}


async def test_text_that_looks_like_json_or_a_placeholder_stays_a_string(api) -> None:
    provider = create_provider('http-json', 'j', settings(api), None)
    text = 'Hi"}, "x": "{{id}}\\"} {{params.imageUrl}}'
    message = OutgoingMessage('m-1', Channel.SMS, PHONE, text, sender='Shop", "admin": true, "y": "')
    [result] = await provider.send([message])
    await provider.close()
    body = api.body()
    assert result.accepted
    assert set(body) == {'to', 'from', 'text', 'meta', 'callback'}
    assert (body['text'], body['from']) == (text, message.sender)
    assert render('{"a": "<{{text}}>"}', {'text': text}) == '{"a": "<' + json.dumps(text)[1:-1] + '>"}'


async def test_forged_reports_are_refused_and_change_nothing(operator, monkeypatch, api) -> None:
    async with herald(monkeypatch, route(api)) as h:
        await send(operator, SMS)
        await h.settle(message_is(MessageStatus.SENT))
        webhook = f'{h.url}/webhooks/http-json/json-sms'
        body = json.dumps({'events': [{'ref': (await Message.first()).provider_message_id,
                                       'state': 'delivered_ok'}]}).encode()
        answers = [
            await post(webhook, body, {'Content-Type': 'application/json'}),
            await post(webhook, body, signed(body, secret='guessed')),
            await post(webhook, body.replace(b'delivered_ok', b'failed'), signed(body)),
            await post(webhook, body, {'X-Signature': WEBHOOK_SECRET}),
        ]
        assert [answer.status_code for answer in answers] == [400, 400, 400, 400]
        assert (await Message.first()).status == MessageStatus.SENT


async def test_errors_are_retried_or_refused_with_the_apis_reason(api) -> None:
    api.answers = [(503, {'error': {'message': 'Maintenance'}}),
                   (400, {'error': {'message': f'Invalid number, key {API_KEY}'}}),
                   (200, {'status': 'error', 'error': {'message': 'Insufficient balance'}}),
                   (200, {'status': 'ok', 'messages': []})]
    provider = create_provider('http-json', 'j', settings(api), None)
    message = OutgoingMessage('m1', Channel.SMS, PHONE, 'Hi', sender='MyShop')
    results = [(await provider.send([message]))[0] for _ in range(4)]
    await provider.close()
    unavailable, invalid, balance, unreadable = results
    assert (unavailable.transient, unavailable.error) == (True, 'HTTP 503: Maintenance')
    assert (invalid.transient, invalid.error) == (False, 'HTTP 400: Invalid number, key ***')
    assert (balance.accepted, balance.transient, balance.error) == (False, False, 'Insufficient balance')
    assert unreadable.in_doubt and not unreadable.accepted


async def test_a_refusal_through_the_engine_hides_the_credential(operator, monkeypatch, api) -> None:
    async with herald(monkeypatch, route(api, auth_header='Bearer wrong-key-31f')) as h:
        await send(operator, SMS)
        await h.settle(message_is(MessageStatus.ERROR))
        description = (await Message.first()).status_description
        assert description == 'HTTP 401: bad key ***'


def test_bad_settings_are_each_named() -> None:
    with pytest.raises(InvalidSettings) as raised:
        create_provider('http-json', 'j', {
            'url': 'api.example.com', 'headers': 'X-Ok: 1\nnot a header', 'body_template': '{"to": {{recipient}},}',
            'id_path': 'messages[x].id', 'ok_path': 'status', 'report_id_path': 'ref', 'report_status_path': 'a..b',
            'status_map': 'delivered = DELIVERED\nok = SHIPPED', 'webhook_header': 'Bad Header'}, None)
    errors = raised.value.errors
    assert set(errors) == {'url', 'headers', 'body_template', 'id_path', 'ok_value', 'report_status_path',
                           'status_map', 'webhook_secret', 'webhook_header'}
    assert errors['headers'] == 'line 2: expected "Name: value"'
    assert errors['body_template'].startswith('not JSON once its placeholders are filled in')
    assert 'unknown status' in errors['status_map'] and 'SHIPPED' in errors['status_map']


@pytest.mark.parametrize(('template', 'extra', 'message'), [
    ('{"to": {{phone}}}', {}, 'unknown placeholder {{phone}}'),
    ('{"to": {{params.nope}}}', {}, 'unknown placeholder {{params.nope}}'),
    ('{"to": {{__import__}}}', {}, 'unknown placeholder {{__import__}}'),
    ('{"to": {"nested": {{recipient}}}}', {'content_type': 'form'}, 'a form or GET template must be one JSON object '
                                                                      'of plain values'),
])
def test_bad_templates_are_refused(template: str, extra: dict, message: str) -> None:
    with pytest.raises(InvalidSettings) as raised:
        create_provider('http-json', 'j', {'url': 'https://api.example.com', 'body_template': template, **extra}, None)
    assert raised.value.errors == {'body_template': message}


def test_paths() -> None:
    assert parse_path('messages[0].id') == ('messages', 0, 'id')
    assert parse_path('[2][0].a-b.c') == (2, 0, 'a-b', 'c')
    for bad in ('a..b', 'a.', '.a', 'a[x]', 'a[0', 'a]'):
        with pytest.raises(ValueError):
            parse_path(bad)
