import uuid

import httpx
from nicegui import app
from nicegui.testing import User

from domain import auth, templates
from domain.auth import SYSTEM
from domain.channels import Channel
from domain.models import SenderName, SenderStatus
from domain.templates import TemplateInput


async def create_templates(*names: str) -> list:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    steps = [{'channel': 'sms', 'from': 'MyShop', 'text': 'Hi {{name}}', 'validityPeriod': 15, 'required': False},
             {'channel': 'telegram', 'text': 'Hi {{name}}', 'required': True}]
    return [await templates.create_template(SYSTEM, TemplateInput(name, [('09:00', '21:00')], 'fixed', 'UTC', steps))
            for name in names]


def client(secret: str | None) -> httpx.AsyncClient:
    headers = {'Authorization': f'Bearer {secret}'} if secret else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://herald.test', headers=headers)


async def test_list_and_get_templates(user: User) -> None:
    first, second, third = await create_templates('Alpha', 'Beta', 'Alphabet')
    _, secret = await auth.create_api_key('tests')
    async with client(secret) as api:
        listed = (await api.get('/api/v1/templates')).json()
        assert listed['count'] == 3
        assert [item['name'] for item in listed['items']] == ['Alphabet', 'Beta', 'Alpha']
        page = (await api.get('/api/v1/templates', params={'limit': 1, 'offset': 1})).json()
        assert (page['count'], [item['name'] for item in page['items']]) == (3, ['Beta'])
        named = (await api.get('/api/v1/templates', params={'name': 'alpha'})).json()
        assert (named['count'], {item['id'] for item in named['items']}) == (2, {str(first.id), str(third.id)})

        one = await api.get(f'/api/v1/templates/{second.id}')
        assert one.status_code == 200
        body = one.json()
        assert body['id'] == str(second.id) and body['name'] == 'Beta'
        assert body['channels'] == {
            'sms': {'from': 'MyShop', 'text': 'Hi {{name}}', 'validityPeriod': 15, 'required': False},
            'telegram': {'text': 'Hi {{name}}', 'validityPeriod': None, 'required': True}}
        assert body['allowedTimeRanges'] == [['09:00:00', '21:00:00']]
        assert {'createdAt', 'updatedAt', 'timeZone'} <= set(body)


async def test_errors(user: User) -> None:
    _, secret = await auth.create_api_key('tests')
    async with client(secret) as api:
        for missing in (str(uuid.uuid4()), 'not-an-id'):
            response = await api.get(f'/api/v1/templates/{missing}')
            assert response.status_code == 404
            assert 'no template' in response.json()['error']['message']
        assert (await api.get('/api/v1/templates', params={'limit': 101})).status_code == 422
        assert (await api.get('/api/v1/templates', params={'limit': 0})).status_code == 422
        assert (await api.get('/api/v1/templates', params={'offset': -1})).status_code == 422
    async with client(None) as anonymous:
        assert (await anonymous.get('/api/v1/templates')).status_code == 401
    async with client('hk_wrong') as wrong:
        assert (await wrong.get('/api/v1/templates')).status_code == 401
