"""The Viber provider against a loopback server that speaks Infobip's Viber Business Messages API (POST
/viber/2/messages) and posts delivery and seen reports to the webhook addresses each message names, as Infobip
does."""
from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlsplit

import pytest
from loopback import LoopbackServer, Recorded, herald
from messenger_servers import FakeApi, no_backoff, operator, post_report, send, status_is, timeline

from domain.channels import Channel
from domain.enqueue import Destination
from domain.models import Message
from domain.provider_settings import InvalidSettings
from domain.providers import OutgoingMessage, webhook_url
from domain.statuses import MessageStatus
from providers.registry import create_provider

API_KEY = '003026bbc133714df1834b8638bb496e-8f4b3d9a-e931-478d-a994-28a725159ab9'
SECRET = 'a long and random report secret'
PATH = '/viber/2/messages'
STEP = {'channel': 'viber', 'from': 'MyShop', 'text': 'Spring sale: -20% on everything',
        'imageUrl': 'https://cdn.example.com/sale.png', 'buttonText': 'Shop now',
        'buttonUrl': 'https://shop.example.com/sale'}
PHONE = '+79123456789'


def accepted(recorded: Recorded) -> dict:
    """Infobip's answer to a send: each destination's messageId and a PENDING status."""
    [message] = json.loads(recorded.body)['messages']
    return {'messages': [{'messageId': d['messageId'], 'destination': d['to'], 'status': {
        'groupId': 1, 'groupName': 'PENDING', 'id': 26, 'name': 'PENDING_ACCEPTED',
        'description': 'Message sent to next instance'}} for d in message['destinations']]}


def settings(api_url: str) -> dict:
    return {'api_key': API_KEY, 'base_url': api_url, 'webhook_secret': SECRET}


def route(api_url: str) -> dict:
    return {'name': 'viber-main', 'channel': 'viber', 'provider': 'viber', 'settings': settings(api_url)}


def delivery_report(message_id: str, group: str, name: str, error: dict | None = None) -> bytes:
    return json.dumps({'results': [{
        'bulkId': None, 'messageId': message_id, 'to': '79123456789', 'sender': 'MyShop',
        'sentAt': '2026-11-28T05:00:00.000+0000', 'doneAt': '2026-11-28T05:00:02.000+0000', 'messageCount': 1,
        'mccMnc': '25001', 'price': {'pricePerMessage': 0.01, 'currency': 'EUR'},
        'status': {'groupId': 3, 'groupName': group, 'id': 5, 'name': name, 'description': f'Message {name}'},
        'error': error or {'groupId': 0, 'groupName': 'OK', 'id': 0, 'name': 'NO_ERROR',
                           'description': 'No Error', 'permanent': False}}]}).encode()


def seen_report(message_id: str) -> bytes:
    return json.dumps({'results': [{'messageId': message_id, 'from': 'MyShop', 'to': '79123456789',
                                    'sentAt': '2026-11-28T05:00:00.000+0000',
                                    'seenAt': '2026-11-28T05:01:00.000+0000'}]}).encode()


async def sent(h, api: FakeApi) -> tuple[str, str]:
    """A message sent and SENT: its id and the report address Infobip was given."""
    message_id = await send(await operator(), STEP, Destination(phone=PHONE))
    await h.settle(status_is(message_id, MessageStatus.SENT))
    return message_id, json.loads(api.requests[-1].body)['messages'][0]['webhooks']['delivery']['url']


async def test_a_message_goes_out_as_documented_and_reports_move_it_to_delivered_then_read(db, monkeypatch) -> None:
    api = FakeApi(PATH, accepted)
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id, report_url = await sent(h, api)
        for body, expected in ((delivery_report(message_id, 'DELIVERED', 'DELIVERED_TO_HANDSET'),
                                MessageStatus.DELIVERED), (seen_report(message_id), MessageStatus.READ)):
            answer = await post_report(report_url, body)
            assert answer.status_code == 200 and answer.json() == {'accepted': 1}
            await h.settle(status_is(message_id, expected))

    [request] = api.requests
    assert (request.method, request.path) == ('POST', PATH)
    assert request.headers['authorization'] == f'App {API_KEY}'
    assert request.headers['content-type'] == 'application/json'
    token = hmac.new(SECRET.encode(), b'viber-main', hashlib.sha256).hexdigest()
    hook = f'{webhook_url("viber", "viber-main")}?token={token}'
    assert json.loads(request.body) == {'messages': [{
        'sender': 'MyShop',
        'destinations': [{'to': '79123456789', 'messageId': message_id}],
        'content': {'type': 'IMAGE', 'mediaUrl': 'https://cdn.example.com/sale.png',
                    'text': 'Spring sale: -20% on everything',
                    'button': {'title': 'Shop now', 'action': 'https://shop.example.com/sale'}},
        'webhooks': {'delivery': {'url': hook, 'intermediateReport': False}, 'seen': {'url': hook},
                     'contentType': 'application/json'},
    }]}
    message = await Message.get(id=message_id)
    assert message.provider_message_id == message_id and message.network == '25001'
    assert await timeline(message_id) == [MessageStatus.QUEUED, MessageStatus.SENT, MessageStatus.DELIVERED,
                                          MessageStatus.READ]


@pytest.mark.parametrize(('group', 'name', 'error', 'status', 'description'), [
    ('UNDELIVERABLE', 'UNDELIVERABLE_NOT_DELIVERED', {'groupId': 1, 'groupName': 'HANDSET_ERRORS', 'id': 7001,
                                                      'name': 'EC_NOT_VIBER_USER', 'description': 'Not a Viber user',
                                                      'permanent': True},
     MessageStatus.UNDELIVERED, 'Not a Viber user'),
    ('EXPIRED', 'EXPIRED_EXPIRED', None, MessageStatus.EXPIRED, 'Message EXPIRED_EXPIRED'),
    ('REJECTED', 'REJECTED_NOT_ENOUGH_CREDITS', None, MessageStatus.UNDELIVERED,
     'Message REJECTED_NOT_ENOUGH_CREDITS'),
])
async def test_failed_reports(db, monkeypatch, group, name, error, status, description) -> None:
    api = FakeApi(PATH, accepted)
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id, report_url = await sent(h, api)
        await post_report(report_url, delivery_report(message_id, group, name, error))
        await h.settle(status_is(message_id, status))

    assert (await Message.get(id=message_id)).status_description == description


async def test_reports_without_the_token_are_refused_and_change_nothing(db, monkeypatch) -> None:
    api = FakeApi(PATH, accepted)
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id, report_url = await sent(h, api)
        body = delivery_report(message_id, 'DELIVERED', 'DELIVERED_TO_HANDSET')
        bare = webhook_url('viber', 'viber-main')
        forged = hmac.new(b'a guessed secret', b'viber-main', hashlib.sha256).hexdigest()
        for url in (bare, f'{bare}?token=', f'{bare}?token={forged}', f'{bare}?token={API_KEY}'):
            answer = await post_report(url, body)
            assert answer.status_code == 400, url
        garbled = await post_report(report_url, b'<xml/>')
        assert garbled.status_code == 400

    assert (await Message.get(id=message_id)).status is MessageStatus.SENT
    assert urlsplit(report_url).query.startswith('token=')


async def test_server_errors_and_rate_limits_are_retried(db, monkeypatch) -> None:
    no_backoff(monkeypatch)
    api = FakeApi(PATH, accepted)
    api.script = [(503, 'Service Unavailable'),
                  (429, {'requestError': {'serviceException': {'messageId': 'TOO_MANY_REQUESTS',
                                                               'text': 'Too many requests'}}})]
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id = await send(await operator(), STEP, Destination(phone=PHONE))
        await h.settle(status_is(message_id, MessageStatus.SENT))

    assert len(api.requests) == 3
    assert len({request.body for request in api.requests}) == 1


@pytest.mark.parametrize(('status', 'answer', 'description'), [
    (401, {'requestError': {'serviceException': {'messageId': 'UNAUTHORIZED', 'text': 'Invalid login details'}}},
     'Infobip UNAUTHORIZED: Invalid login details'),
    (400, {'errorCode': 'E400', 'description': 'Request cannot be processed.', 'action': 'Check the syntax',
           'violations': [{'property': 'messages[0].sender', 'violation': 'must not be blank'}], 'resources': []},
     'Infobip E400: Request cannot be processed. (messages[0].sender: must not be blank)'),
])
async def test_refusals_end_the_message_with_infobips_reason_and_no_secret(db, monkeypatch, status, answer,
                                                                          description) -> None:
    api = FakeApi(PATH, accepted)
    api.script = [(status, answer)]
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id = await send(await operator(), STEP, Destination(phone=PHONE))
        await h.settle(status_is(message_id, MessageStatus.ERROR))

    stored = (await Message.get(id=message_id)).status_description
    assert stored == description
    assert API_KEY not in stored and SECRET not in stored
    assert len(api.requests) == 1


async def test_a_message_rejected_in_the_answer_is_refused() -> None:
    def rejected(_: Recorded) -> dict:
        return {'messages': [{'messageId': 'm1', 'status': {
            'groupId': 5, 'groupName': 'REJECTED', 'id': 6, 'name': 'REJECTED_NETWORK',
            'description': 'Message has been rejected by the network'}}]}
    api = FakeApi(PATH, rejected)
    async with LoopbackServer(api.app) as server:
        provider = create_provider('viber', 'viber-main', settings(server.url), None)
        [result] = await provider.send([OutgoingMessage('m1', Channel.VIBER, PHONE, 'Hi', sender='MyShop')])
        await provider.close()

    assert (result.accepted, result.transient) == (False, False)
    assert result.error == 'Infobip REJECTED_NETWORK: Message has been rejected by the network'


@pytest.mark.parametrize(('text', 'params', 'content'), [
    ('Hello', {}, {'type': 'TEXT', 'text': 'Hello'}),
    ('Hello', {'buttonText': 'Open', 'buttonUrl': 'https://shop.example.com'},
     {'type': 'TEXT', 'text': 'Hello', 'button': {'title': 'Open', 'action': 'https://shop.example.com'}}),
    ('', {'imageUrl': 'https://cdn.example.com/a.jpg'}, {'type': 'IMAGE', 'mediaUrl': 'https://cdn.example.com/a.jpg'}),
])
async def test_content_kinds(text, params, content) -> None:
    api = FakeApi(PATH, accepted)
    async with LoopbackServer(api.app) as server:
        provider = create_provider('viber', 'viber-main', settings(server.url), None)
        [result] = await provider.send([OutgoingMessage('m1', Channel.VIBER, PHONE, text, sender='MyShop',
                                                        params=params)])
        [half_button] = await provider.send([OutgoingMessage('m2', Channel.VIBER, PHONE, text, sender='MyShop',
                                                             params={'buttonText': 'Open'})])
        await provider.close()

    assert result.accepted and result.provider_message_id == 'm1'
    assert json.loads(api.requests[0].body)['messages'][0]['content'] == content
    assert not half_button.accepted and 'button' in half_button.error
    assert len(api.requests) == 1


def test_viber_settings_are_validated() -> None:
    with pytest.raises(InvalidSettings) as caught:
        create_provider('viber', 'v', {}, None)
    assert set(caught.value.errors) == {'api_key', 'webhook_secret'}
    with pytest.raises(InvalidSettings, match='webhook_secret: use at least 16 characters'):
        create_provider('viber', 'v', {'api_key': 'k', 'webhook_secret': 'short'}, None)
    provider = create_provider('viber', 'v', {'api_key': 'k', 'webhook_secret': SECRET}, None)
    assert provider.settings['base_url'] == 'https://api.infobip.com'
