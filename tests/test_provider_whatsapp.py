"""The WhatsApp provider against a loopback server that speaks the WhatsApp Cloud API: POST /{version}/{phone number
id}/messages, and status notifications signed with X-Hub-Signature-256 posted to Herald's webhook address
(developers.facebook.com/docs/whatsapp/cloud-api/reference/messages, …/webhooks/components, graph-api/webhooks)."""
from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest
from loopback import LoopbackServer, Recorded, free_port, herald
from messenger_servers import FakeApi, no_backoff, operator, post_report, send, status_is, timeline

from domain import enqueue
from domain.channels import Channel
from domain.enqueue import Destination, SendRequest
from domain.models import Message
from domain.provider_settings import InvalidSettings
from domain.providers import OutgoingMessage, webhook_url
from domain.statuses import MessageStatus
from providers.registry import create_provider

ACCESS_TOKEN = 'EAAGm0PX4ZCpsBAlongaccesstoken'
APP_SECRET = 'c0ffee1234567890app5ecret'
VERIFY_TOKEN = 'herald-verify-4711'
PHONE_NUMBER_ID = '106540352242922'
PATH = f'/v21.0/{PHONE_NUMBER_ID}/messages'
STEP = {'channel': 'whatsapp', 'templateName': 'order_ready', 'language': 'ru',
        'mediaUrl': 'https://cdn.example.com/files/Order%2042.pdf'}
PHONE = '+79123456789'


def message_sent(recorded: Recorded) -> dict:
    body = json.loads(recorded.body)
    return {'messaging_product': 'whatsapp', 'contacts': [{'input': body['to'], 'wa_id': body['to']}],
            'messages': [{'id': f'wamid.HBgL{len(recorded.body)}', 'message_status': 'accepted'}]}


def settings(api_url: str) -> dict:
    return {'access_token': ACCESS_TOKEN, 'phone_number_id': PHONE_NUMBER_ID, 'app_secret': APP_SECRET,
            'verify_token': VERIFY_TOKEN, 'base_url': api_url}


def route(api_url: str) -> dict:
    return {'name': 'wa', 'channel': 'whatsapp', 'provider': 'whatsapp', 'settings': settings(api_url)}


def notification(wamid: str, status: str, **extra) -> bytes:
    """A status notification as Meta posts it."""
    return json.dumps({'object': 'whatsapp_business_account', 'entry': [{'id': '102290129340398', 'changes': [{
        'field': 'messages', 'value': {
            'messaging_product': 'whatsapp',
            'metadata': {'display_phone_number': '15550783881', 'phone_number_id': PHONE_NUMBER_ID},
            'statuses': [{'id': wamid, 'status': status, 'timestamp': '1732770000', 'recipient_id': '79123456789',
                          **extra}]}}]}]}).encode()


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    return {'X-Hub-Signature-256': 'sha256=' + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


async def sent_template(h) -> tuple[str, str]:
    """A template message sent and SENT: its Herald id and its wamid."""
    destination = Destination(phone=PHONE, steps=[{**STEP, 'templateData': ['Anna', '42']}])
    message_id = await send(await operator(), STEP, destination)
    await h.settle(status_is(message_id, MessageStatus.SENT))
    return message_id, (await Message.get(id=message_id)).provider_message_id


async def test_a_template_goes_out_as_documented_and_reports_move_it_to_delivered_then_read(db, monkeypatch) -> None:
    api = FakeApi(PATH, message_sent)
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id, wamid = await sent_template(h)
        hook = webhook_url('whatsapp', 'wa')
        for status, expected in (('delivered', MessageStatus.DELIVERED), ('read', MessageStatus.READ)):
            body = notification(wamid, status)
            answer = await post_report(hook, body, signed(body))
            assert answer.status_code == 200 and answer.json() == {'accepted': 1}
            await h.settle(status_is(message_id, expected))

    [request] = api.requests
    assert (request.method, request.path) == ('POST', PATH)
    assert request.headers['authorization'] == f'Bearer {ACCESS_TOKEN}'
    assert request.headers['content-type'] == 'application/json'
    assert json.loads(request.body) == {
        'messaging_product': 'whatsapp', 'recipient_type': 'individual', 'to': '79123456789', 'type': 'template',
        'template': {'name': 'order_ready', 'language': {'code': 'ru'}, 'components': [
            {'type': 'header', 'parameters': [{'type': 'document', 'document': {
                'link': 'https://cdn.example.com/files/Order%2042.pdf', 'filename': 'Order 42.pdf'}}]},
            {'type': 'body', 'parameters': [{'type': 'text', 'text': 'Anna'}, {'type': 'text', 'text': '42'}]},
        ]}}
    assert wamid.startswith('wamid.')
    assert await timeline(message_id) == [MessageStatus.QUEUED, MessageStatus.SENT, MessageStatus.DELIVERED,
                                          MessageStatus.READ]


async def test_template_parameters_are_filled_for_each_recipient(db, monkeypatch) -> None:
    """A template's parameters may hold variables, as its texts do: each recipient's values go on the wire."""
    api = FakeApi(PATH, message_sent)
    step = {'channel': 'whatsapp', 'templateName': 'order_ready', 'templateData': '{{name}}|{{order}}'}
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        result = await enqueue.enqueue(await operator(), SendRequest(steps=[step], destinations=[
            Destination(phone=PHONE, variables={'name': 'Anna', 'order': '42'}),
            Destination(phone='+79123456780', variables={'name': 'Boris', 'order': '7'})]))
        await h.settle(lambda: all_sent(result))
    parameters = {json.loads(r.body)['to']: json.loads(r.body)['template']['components'][0]['parameters']
                  for r in api.requests}
    assert {to: [p['text'] for p in values] for to, values in parameters.items()} == {
        '79123456789': ['Anna', '42'], '79123456780': ['Boris', '7']}


async def all_sent(result) -> bool:
    return await Message.filter(status=MessageStatus.SENT).count() == len(result.messages)


async def test_a_failed_status_is_undelivered_with_metas_reason(db, monkeypatch) -> None:
    api = FakeApi(PATH, message_sent)
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id, wamid = await sent_template(h)
        body = notification(wamid, 'failed', errors=[{
            'code': 131026, 'title': 'Message undeliverable', 'message': 'Message undeliverable',
            'error_data': {'details': 'Message Undeliverable.'}}])
        await post_report(webhook_url('whatsapp', 'wa'), body, signed(body))
        await h.settle(status_is(message_id, MessageStatus.UNDELIVERED))

    assert (await Message.get(id=message_id)).status_description == 'Message undeliverable (131026)'


async def test_forged_and_unsigned_notifications_are_refused_and_change_nothing(db, monkeypatch) -> None:
    api = FakeApi(PATH, message_sent)
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id, wamid = await sent_template(h)
        hook = webhook_url('whatsapp', 'wa')
        body = notification(wamid, 'delivered')
        for headers in ({}, signed(body, 'someone else'), {'X-Hub-Signature-256': 'sha256=00'},
                        signed(body + b' ')):
            answer = await post_report(hook, body, headers)
            assert answer.status_code == 400, headers
            assert 'X-Hub-Signature-256' in answer.json()['error']['message']
        garbled = b'{"entry": [{"changes": [{"value": {"statuses": [{"status": "delivered"}]}}]}]}'
        assert (await post_report(hook, garbled, signed(garbled))).status_code == 400
        incoming = json.dumps({'object': 'whatsapp_business_account', 'entry': [{'id': '1', 'changes': [{
            'field': 'messages', 'value': {'messages': [{'from': '79123456789', 'id': 'wamid.IN', 'type': 'text',
                                                         'text': {'body': 'Thanks'}}]}}]}]}).encode()
        sent = notification(wamid, 'sent')
        for ignored in (incoming, sent):
            answer = await post_report(hook, ignored, signed(ignored))
            assert answer.status_code == 200 and answer.json() == {'accepted': 0}

    assert (await Message.get(id=message_id)).status is MessageStatus.SENT


async def test_the_address_check_is_answered_with_the_challenge_only_for_the_verify_token(db, monkeypatch) -> None:
    async with herald(monkeypatch, route(f'http://127.0.0.1:{free_port()}')):
        hook = webhook_url('whatsapp', 'wa')
        async with httpx.AsyncClient() as client:
            right = await client.get(hook, params={'hub.mode': 'subscribe', 'hub.verify_token': VERIFY_TOKEN,
                                                   'hub.challenge': '1158201444'})
            wrong = await client.get(hook, params={'hub.mode': 'subscribe', 'hub.verify_token': 'guess',
                                                   'hub.challenge': '1158201444'})
            bare = await client.get(hook)

    assert (right.status_code, right.text) == (200, '1158201444')
    assert wrong.status_code == 400 and '1158201444' not in wrong.text
    assert bare.status_code == 400


async def test_rate_limits_and_server_errors_are_retried(db, monkeypatch) -> None:
    no_backoff(monkeypatch)
    api = FakeApi(PATH, message_sent)
    api.script = [(400, {'error': {'message': '(#130429) Rate limit hit', 'type': 'OAuthException', 'code': 130429,
                                   'fbtrace_id': 'Az8or2yhqkZfEZ-_4Qn_Bam'}}),
                  (500, {'error': {'message': 'An unknown error occurred', 'code': 1}})]
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id = await send(await operator(), STEP, Destination(phone=PHONE))
        await h.settle(status_is(message_id, MessageStatus.SENT))

    assert len(api.requests) == 3


async def test_a_refusal_ends_the_message_with_metas_reason_and_no_secret(db, monkeypatch) -> None:
    api = FakeApi(PATH, message_sent)
    api.script = [(400, {'error': {
        'message': '(#132001) Template name does not exist in the translation', 'type': 'OAuthException',
        'code': 132001, 'error_data': {'messaging_product': 'whatsapp',
                                       'details': 'template name (order_ready) does not exist in ru'}}})]
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id = await send(await operator(), STEP, Destination(phone=PHONE))
        await h.settle(status_is(message_id, MessageStatus.ERROR))

    description = (await Message.get(id=message_id)).status_description
    assert description == ('WhatsApp error 132001: (#132001) Template name does not exist in the translation '
                           '(template name (order_ready) does not exist in ru)')
    assert len(api.requests) == 1
    assert not any(secret in description for secret in (ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN))


@pytest.mark.parametrize(('text', 'params', 'content'), [
    ('Your table is booked', {}, {'type': 'text', 'text': {'body': 'Your table is booked', 'preview_url': False}}),
    ('Our menu', {'mediaUrl': 'https://cdn.example.com/menu.JPG'},
     {'type': 'image', 'image': {'link': 'https://cdn.example.com/menu.JPG', 'caption': 'Our menu'}}),
    ('', {'mediaUrl': 'https://cdn.example.com/tour.mp4'},
     {'type': 'video', 'video': {'link': 'https://cdn.example.com/tour.mp4'}}),
    ('', {'templateName': 'hello_world'},
     {'type': 'template', 'template': {'name': 'hello_world', 'language': {'code': 'en_US'}}}),
    ('', {'templateName': 'promo', 'templateNamespace': 'b4d1_ns', 'templateData': 'Anna | 10%',
          'mediaUrl': 'https://cdn.example.com/promo.png'},
     {'type': 'template', 'template': {'name': 'promo', 'language': {'code': 'en_US'}, 'namespace': 'b4d1_ns',
                                       'components': [
         {'type': 'header', 'parameters': [{'type': 'image', 'image': {'link': 'https://cdn.example.com/promo.png'}}]},
         {'type': 'body', 'parameters': [{'type': 'text', 'text': 'Anna'}, {'type': 'text', 'text': '10%'}]}]}}),
])
async def test_message_kinds(text, params, content) -> None:
    api = FakeApi(PATH, message_sent)
    async with LoopbackServer(api.app) as server:
        provider = create_provider('whatsapp', 'wa', settings(server.url), None)
        [result] = await provider.send([OutgoingMessage('m1', Channel.WHATSAPP, PHONE, text, params=params)])
        await provider.close()

    assert result.accepted
    body = json.loads(api.requests[0].body)
    assert {key: value for key, value in body.items() if key not in ('messaging_product', 'recipient_type', 'to')} \
        == content


async def test_a_step_with_nothing_to_send_is_refused_without_a_request() -> None:
    api = FakeApi(PATH, message_sent)
    async with LoopbackServer(api.app) as server:
        provider = create_provider('whatsapp', 'wa', settings(server.url), None)
        [result] = await provider.send([OutgoingMessage('m1', Channel.WHATSAPP, PHONE, ' ')])
        await provider.close()

    assert (result.accepted, result.transient) == (False, False) and 'template name' in result.error
    assert api.requests == []


def test_whatsapp_settings_are_validated() -> None:
    with pytest.raises(InvalidSettings) as caught:
        create_provider('whatsapp', 'wa', {'phone_number_id': '+1 555 0100'}, None)
    assert set(caught.value.errors) == {'access_token', 'app_secret', 'verify_token'}
    with pytest.raises(InvalidSettings, match='phone_number_id: expected the digits'):
        create_provider('whatsapp', 'wa', {'access_token': 'x', 'app_secret': 'y', 'verify_token': 'z',
                                           'phone_number_id': '+1 555 0100'}, None)
    provider = create_provider('whatsapp', 'wa', {'access_token': 'x', 'app_secret': 'y', 'verify_token': 'z',
                                                  'phone_number_id': PHONE_NUMBER_ID}, None)
    assert (provider.settings['api_version'], provider.settings['base_url'], provider.settings['language']) \
        == ('v21.0', 'https://graph.facebook.com', 'en_US')
