"""Idempotency-Key: a retried POST gets the first answer and does nothing twice; the same key with another body
answers 422, and while the first is still being answered, 409."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import httpx
from nicegui import app
from nicegui.testing import User

from domain import auth, idempotency
from domain.channels import Channel
from domain.models import ApiKey, IdempotentRequest, Message, SenderName, SenderStatus

BODY = {'messages': [{'channels': {'sms': {'text': 'Hi', 'from': 'MyShop'}},
                      'destinations': [{'phone': '79001234567'}]}]}


def client(secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://herald.test',
                             headers={'Authorization': f'Bearer {secret}'})


async def api_key(name: str = 'tests') -> str:
    await SenderName.get_or_create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    return (await auth.create_api_key(name))[1]


async def test_a_retry_gets_the_first_answer_and_sends_nothing_twice(user: User) -> None:
    async with client(await api_key()) as api:
        first = await api.post('/api/v1/messages', json=BODY, headers={'Idempotency-Key': 'order-1'})
        assert first.status_code == 200
        retry = await api.post('/api/v1/messages', json=BODY, headers={'Idempotency-Key': 'order-1'})
        assert (retry.status_code, retry.json()) == (200, first.json())
        assert retry.headers['idempotent-replayed'] == 'true'
        assert await Message.all().count() == 1

        other = await api.post('/api/v1/messages', json=BODY | {'bulkId': 'x'}, headers={'Idempotency-Key': 'order-1'})
        assert other.status_code == 422 and 'another request' in other.json()['error']['message']
        refused = await api.post('/api/v1/messages', json={'messages': []}, headers={'Idempotency-Key': 'bad'})
        assert refused.status_code == 422
        again = await api.post('/api/v1/messages', json={'messages': []}, headers={'Idempotency-Key': 'bad'})
        assert (again.status_code, again.json()) == (422, refused.json())
        fresh = await api.post('/api/v1/messages', json=BODY, headers={'Idempotency-Key': 'order-2'})
        assert fresh.status_code == 200 and fresh.json()[0]['id'] != first.json()[0]['id']
        assert (await api.post('/api/v1/messages', json=BODY, headers={'Idempotency-Key': 'k' * 256})).status_code \
            == 422
    async with client(await api_key('another')) as someone_else:
        theirs = await someone_else.post('/api/v1/messages', json=BODY, headers={'Idempotency-Key': 'order-1'})
        assert theirs.status_code == 200 and theirs.json()[0]['id'] != first.json()[0]['id']
    assert await Message.all().count() == 3


async def test_a_retry_while_the_first_is_answered_gets_409(user: User) -> None:
    secret = await api_key()
    key = await ApiKey.get(name='tests')
    await IdempotentRequest.create(owner=f'key:{key.id}', key='busy', method='POST', path='/api/v1/messages',
                                   fingerprint='x')
    async with client(secret) as api:
        busy = await api.post('/api/v1/messages', json=BODY, headers={'Idempotency-Key': 'busy'})
        assert busy.status_code == 409
    assert not await Message.exists()


async def test_a_key_whose_first_request_was_abandoned_can_be_used_again(user: User) -> None:
    """A process that died while answering leaves its claim without an answer: after a while the key is free."""
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    key, secret = await auth.create_api_key('crm')
    stale = await IdempotentRequest.create(owner=f'key:{key.id}', key='crashed', method='POST',
                                           path='/api/v1/messages', fingerprint='x')
    await IdempotentRequest.filter(id=stale.id).update(created_at=datetime.now(timezone.utc) - timedelta(hours=1))
    async with client(secret) as api:
        answer = await api.post('/api/v1/messages', json=BODY, headers={'Idempotency-Key': 'crashed'})
        assert answer.status_code == 200
        again = await api.post('/api/v1/messages', json=BODY, headers={'Idempotency-Key': 'crashed'})
        assert again.json() == answer.json() and again.headers['idempotent-replayed'] == 'true'
    assert await Message.filter().count() == 1


async def test_answers_older_than_a_day_are_forgotten(user: User) -> None:
    old = await IdempotentRequest.create(owner='key:1', key='old', method='POST', path='/', fingerprint='x')
    await IdempotentRequest.filter(id=old.id).update(created_at=datetime.now(timezone.utc) - timedelta(hours=25))
    await IdempotentRequest.create(owner='key:1', key='new', method='POST', path='/', fingerprint='x')
    assert await idempotency.delete_expired() == 1
    assert [r.key for r in await IdempotentRequest.all()] == ['new']


async def test_simultaneous_requests_with_one_key_send_once(user: User) -> None:
    async with client(await api_key()) as api:
        answers = await asyncio.gather(*(api.post('/api/v1/messages', json=BODY, headers={'Idempotency-Key': 'same'})
                                         for _ in range(4)))
        assert {answer.status_code for answer in answers} <= {200, 409}
        assert [answer.status_code for answer in answers].count(200) >= 1
    assert await Message.all().count() == 1
