"""Sender names and tariffs over the API: lists, requests of new names, tariffs set all or none."""
from __future__ import annotations

from decimal import Decimal

import httpx
from nicegui import app
from nicegui.testing import User

from domain import auth
from domain.auth import SYSTEM
from domain.channels import Channel
from domain.models import Role, SenderName, SenderStatus, Tariff
from domain.senders import decide_sender


def client(secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://herald.test',
                             headers={'Authorization': f'Bearer {secret}'})


async def key(*scopes: str) -> str:
    return (await auth.create_api_key('tests', scopes=list(scopes) or None))[1]


async def operator_token() -> str:
    return auth.issue_tokens(await auth.create_user('operator@example.com', 'correct horse', Role.OPERATOR)).auth_token


async def test_sender_names_are_listed_and_requested(user: User) -> None:
    approved = await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    rejected = await SenderName.create(name='Spam', channel=Channel.SMS, status=SenderStatus.REJECTED,
                                       comment='Misleading')
    async with client(await key()) as api:
        body = {'senders': [{'name': 'MyShop', 'channel': 'sms'}, {'name': 'NewShop', 'channel': 'sms',
                                                                   'comment': 'Our second brand'},
                            {'name': 'Spam', 'channel': 'sms'}, {'name': 'My Shop Viber', 'channel': 'viber'}]}
        answer = await api.put('/api/v1/senders', json=body)
        assert answer.status_code == 200, answer.text
        items = answer.json()['items']
        assert [(i['name'], i['channel'], i['status']) for i in items] == [
            ('MyShop', 'sms', 'approved'), ('NewShop', 'sms', 'requested'), ('Spam', 'sms', 'rejected'),
            ('My Shop Viber', 'viber', 'requested')]
        assert items[0]['id'] == approved.id and items[2]['id'] == rejected.id and items[2]['comment'] == 'Misleading'
        assert items[1]['comment'] == 'Our second brand' and items[1]['decidedAt'] is None
        again = await api.put('/api/v1/senders', json=body)
        assert [i['id'] for i in again.json()['items']] == [i['id'] for i in items]
        assert await SenderName.all().count() == 4

        listed = (await api.get('/api/v1/senders')).json()
        assert listed['count'] == 4 and {'id', 'createdAt', 'decidedAt'} <= set(listed['items'][0])
        await decide_sender(SYSTEM, items[1]['id'], approve=True)
        requested = (await api.get('/api/v1/senders', params={'status': 'requested'})).json()
        assert [i['name'] for i in requested['items']] == ['My Shop Viber']
        viber = (await api.get('/api/v1/senders', params={'channel': 'viber'})).json()
        assert (viber['count'], viber['items'][0]['name']) == (1, 'My Shop Viber')
        page = (await api.get('/api/v1/senders', params={'limit': 1, 'offset': 1})).json()
        assert (page['count'], len(page['items'])) == (4, 1)
        assert (await api.get('/api/v1/senders', params={'status': 'maybe'})).status_code == 422


async def test_a_bad_sender_name_requests_none(user: User) -> None:
    async with client(await key()) as api:
        answer = await api.put('/api/v1/senders', json={'senders': [
            {'name': 'GoodName', 'channel': 'sms'}, {'name': 'Far too long a name', 'channel': 'sms'},
            {'name': 'Mail', 'channel': 'email'}]})
        assert answer.status_code == 422
        assert 'senders[1].name' in answer.json()['error']['fields']
        shape = await api.put('/api/v1/senders', json={'senders': [{'name': 'X', 'channel': 'fax'}]})
        assert shape.status_code == 422 and 'senders[0].channel' in shape.json()['error']['fields']
    assert await SenderName.all().count() == 0


async def test_sender_scopes_and_roles(user: User) -> None:
    async with client(await key('settings:read')) as reader:
        assert (await reader.get('/api/v1/senders')).status_code == 200
        assert (await reader.put('/api/v1/senders', json={'senders': []})).status_code == 403
    async with client(await key('tasks:read')) as other:
        assert (await other.get('/api/v1/senders')).status_code == 403
    async with client(await operator_token()) as operator:  # operators may request names
        answer = await operator.put('/api/v1/senders', json={'senders': [{'name': 'OpShop', 'channel': 'sms'}]})
        assert answer.status_code == 200 and answer.json()['items'][0]['status'] == 'requested'


async def test_tariffs_are_listed_and_set_all_or_none(user: User) -> None:
    await Tariff.create(channel=Channel.SMS, country='DE', price_per_part=Decimal('0.0700'), currency='EUR')
    await Tariff.create(channel=Channel.VIBER, country='DE', price_per_part=Decimal('0.0100'), currency='EUR')
    async with client(await key()) as api:
        listed = (await api.get('/api/v1/tariffs/sms')).json()
        assert listed['count'] == 1
        assert {k: v for k, v in listed['items'][0].items() if k != 'updatedAt'} == {
            'country': 'DE', 'countryName': 'Germany', 'pricePerPart': 0.07, 'currency': 'EUR'}

        answer = await api.put('/api/v1/tariffs/sms', json={'tariffs': [
            {'country': 'de', 'pricePerPart': 0.065}, {'country': 'RU', 'pricePerPart': '0.0312', 'currency': 'usd'},
            {'country': '*', 'pricePerPart': 0.1}]})
        assert answer.status_code == 200, answer.text
        assert [(t['country'], t['pricePerPart'], t['currency']) for t in answer.json()['items']] == [
            ('DE', 0.065, 'EUR'), ('RU', 0.0312, 'USD'), ('*', 0.1, 'EUR')]
        viber = (await api.get('/api/v1/tariffs/viber')).json()['items']
        assert [(t['country'], t['pricePerPart']) for t in viber] == [('DE', 0.01)]

        bad = await api.put('/api/v1/tariffs/sms', json={'tariffs': [
            {'country': 'FR', 'pricePerPart': 0.05}, {'country': 'XX', 'pricePerPart': 0.05},
            {'country': 'IT', 'pricePerPart': -1}, {'country': 'ES', 'pricePerPart': '0.00001'},
            {'country': 'fr', 'pricePerPart': 0.06}, {'country': 'PT', 'pricePerPart': 1, 'currency': 'EU'}]})
        assert bad.status_code == 422
        assert set(bad.json()['error']['fields']) == {'tariffs[1].country', 'tariffs[2].pricePerPart',
                                                      'tariffs[3].pricePerPart', 'tariffs[4].country',
                                                      'tariffs[5].currency'}
        assert not await Tariff.filter(country='FR').exists()
        assert (await api.get('/api/v1/tariffs/fax')).status_code == 422
    assert await Tariff.filter(channel=Channel.SMS).count() == 3


async def test_tariff_scopes_and_roles(user: User) -> None:
    body = {'tariffs': [{'country': 'DE', 'pricePerPart': 0.05}]}
    async with client(await key('settings:read')) as reader:
        assert (await reader.get('/api/v1/tariffs/sms')).status_code == 200
        assert (await reader.put('/api/v1/tariffs/sms', json=body)).status_code == 403
    async with client(await key('messages:send')) as other:
        assert (await other.get('/api/v1/tariffs/sms')).status_code == 403
    async with client(await operator_token()) as operator:
        assert (await operator.get('/api/v1/tariffs/sms')).status_code == 200
        refused = await operator.put('/api/v1/tariffs/sms', json=body)
        assert refused.status_code == 403 and 'operator' in refused.json()['error']['message']
    assert await Tariff.all().count() == 0
