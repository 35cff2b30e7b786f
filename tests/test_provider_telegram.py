"""The Telegram provider against a loopback server that speaks the Bot API's sendMessage
(https://core.telegram.org/bots/api#sendmessage, #making-requests)."""
from __future__ import annotations

import json
import logging

import httpx
import pytest
from loopback import LoopbackServer, Recorded, free_port, herald
from messenger_servers import FakeApi, no_backoff, operator, send, status_is, timeline

from domain.channels import Channel
from domain.enqueue import Destination
from domain.models import Message
from domain.provider_settings import InvalidSettings
from domain.providers import OutgoingMessage
from domain.statuses import MessageStatus
from providers.registry import create_provider
from providers.telegram import MASK

TOKEN = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw'
STEP = {'channel': 'telegram', 'text': 'Your order is ready'}


def sent_message(recorded: Recorded) -> dict:
    """sendMessage's answer: the Message Telegram put in the chat."""
    body = json.loads(recorded.body)
    chat_id = int(body['chat_id']) if body['chat_id'].lstrip('-').isdigit() else -1001987654321
    return {'ok': True, 'result': {'message_id': 42, 'date': 1732770000, 'text': body['text'],
                                   'chat': {'id': chat_id, 'type': 'private'}}}


def telegram_api() -> FakeApi:
    return FakeApi(f'/bot{TOKEN}/sendMessage', sent_message)


def route(api_url: str, **settings) -> dict:
    return {'name': 'tg', 'channel': 'telegram', 'provider': 'telegram',
            'settings': {'bot_token': TOKEN, 'base_url': api_url, **settings}}


async def test_a_message_goes_out_as_documented_and_is_delivered_by_the_answer(db, monkeypatch) -> None:
    api = telegram_api()
    async with LoopbackServer(api.app) as server, \
            herald(monkeypatch, route(server.url, parse_mode='HTML', disable_notification='true')) as h:
        message_id = await send(await operator(), {**STEP, 'text': '<b>Ready</b>'},
                                Destination(messenger_user_id='5550001234'))
        await h.settle(status_is(message_id, MessageStatus.DELIVERED))

    [request] = api.requests
    assert (request.method, request.path) == ('POST', f'/bot{TOKEN}/sendMessage')
    assert request.headers['content-type'] == 'application/json'
    assert json.loads(request.body) == {'chat_id': '5550001234', 'text': '<b>Ready</b>', 'parse_mode': 'HTML',
                                        'disable_notification': True}
    message = await Message.get(id=message_id)
    assert message.provider == 'telegram' and message.provider_message_id == '5550001234:42'
    assert await timeline(message_id) == [MessageStatus.QUEUED, MessageStatus.DELIVERED]


async def test_a_channel_name_is_a_chat_id_and_plain_text_has_no_parse_mode(db, monkeypatch) -> None:
    api = telegram_api()
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id = await send(await operator(), STEP, Destination(messenger_user_id='@myshop_news'))
        await h.settle(status_is(message_id, MessageStatus.DELIVERED))

    assert json.loads(api.requests[0].body) == {'chat_id': '@myshop_news', 'text': 'Your order is ready'}
    assert (await Message.get(id=message_id)).provider_message_id == '-1001987654321:42'


async def test_flood_limits_and_server_errors_are_retried(db, monkeypatch) -> None:
    no_backoff(monkeypatch)
    api = telegram_api()
    api.script = [(429, {'ok': False, 'error_code': 429, 'description': 'Too Many Requests: retry after 3',
                         'parameters': {'retry_after': 3}}),
                  (502, '<html>Bad Gateway</html>')]
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id = await send(await operator(), STEP, Destination(messenger_user_id='5550001234'))
        await h.settle(status_is(message_id, MessageStatus.DELIVERED))

    assert len(api.requests) == 3
    assert len({request.body for request in api.requests}) == 1


@pytest.mark.parametrize(('status', 'description'), [
    (400, 'Bad Request: chat not found'),
    (403, 'Forbidden: bot was blocked by the user'),
])
async def test_refusals_end_the_message_with_telegrams_reason(db, monkeypatch, status, description) -> None:
    api = telegram_api()
    api.script = [(status, {'ok': False, 'error_code': status, 'description': description})]
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id = await send(await operator(), STEP, Destination(messenger_user_id='5550001234'))
        await h.settle(status_is(message_id, MessageStatus.ERROR))

    assert len(api.requests) == 1
    assert (await Message.get(id=message_id)).status_description == f'Telegram {status}: {description}'


async def test_the_token_appears_in_no_description_and_no_log(db, monkeypatch, caplog) -> None:
    caplog.set_level(logging.INFO, logger='httpx')
    api = telegram_api()
    api.script = [(404, f'Not Found: /bot{TOKEN}/sendMessage')]  # a proxy echoing the path
    async with LoopbackServer(api.app) as server, herald(monkeypatch, route(server.url)) as h:
        message_id = await send(await operator(), STEP, Destination(messenger_user_id='5550001234'))
        await h.settle(status_is(message_id, MessageStatus.ERROR))

    description = (await Message.get(id=message_id)).status_description
    assert TOKEN not in description and f'/bot{MASK}/sendMessage' in description
    assert 'sendMessage' in caplog.text and TOKEN not in caplog.text


async def test_an_unreachable_server_is_a_transient_error_without_the_token() -> None:
    provider = create_provider('telegram', 'tg', {'bot_token': TOKEN, 'base_url': f'http://127.0.0.1:{free_port()}'},
                               None)
    [result] = await provider.send([OutgoingMessage('m1', Channel.TELEGRAM, '5550001234', 'Hi')])
    await provider.close()

    assert not result.accepted and result.transient and 'unreachable' in result.error
    assert TOKEN not in result.error


async def test_an_ok_false_answer_is_a_refusal() -> None:
    api = FakeApi(f'/bot{TOKEN}/sendMessage', lambda _: {'ok': False, 'error_code': 400,
                                                        'description': 'Bad Request: message text is empty'})
    async with LoopbackServer(api.app) as server:
        provider = create_provider('telegram', 'tg', {'bot_token': TOKEN, 'base_url': server.url}, None)
        [empty, refused] = await provider.send([OutgoingMessage('m1', Channel.TELEGRAM, '5550001234', ' '),
                                                OutgoingMessage('m2', Channel.TELEGRAM, '5550001234', 'Hi')])
        await provider.close()

    assert (empty.accepted, empty.transient, empty.error) == (False, False, 'A Telegram message needs a text')
    assert (refused.accepted, refused.error) == (False, 'Telegram 400: Bad Request: message text is empty')
    assert len(api.requests) == 1


async def test_telegram_has_no_webhook(db, monkeypatch) -> None:
    async with herald(monkeypatch, route(f'http://127.0.0.1:{free_port()}')) as h:
        async with httpx.AsyncClient() as client:
            answer = await client.post(f'{h.url}/webhooks/telegram/tg', json={'ok': True})
    assert answer.status_code == 400


def test_telegram_settings_are_validated() -> None:
    with pytest.raises(InvalidSettings) as caught:
        create_provider('telegram', 'tg', {'parse_mode': 'Markdown'}, None)
    assert set(caught.value.errors) == {'bot_token', 'parse_mode'}
    with pytest.raises(InvalidSettings, match='bot_token: expected the token'):
        create_provider('telegram', 'tg', {'bot_token': 'not a token'}, None)
    provider = create_provider('telegram', 'tg', {'bot_token': TOKEN}, None)
    assert provider.settings['base_url'] == 'https://api.telegram.org'
    assert provider.settings['parse_mode'] == 'none' and provider.settings['disable_notification'] is False
