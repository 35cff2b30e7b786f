import uuid

import httpx
from nicegui import app
from nicegui.testing import User

from domain import auth, templates
from domain.auth import SYSTEM
from domain.channels import Channel
from domain.models import Role, SenderName, SenderStatus
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
        assert (await api.get('/api/v1/templates', params={'limit': 1001})).status_code == 422
        assert (await api.get('/api/v1/templates', params={'limit': 0})).status_code == 422
        assert (await api.get('/api/v1/templates', params={'offset': -1})).status_code == 422
    async with client(None) as anonymous:
        assert (await anonymous.get('/api/v1/templates')).status_code == 401
    async with client('hk_wrong') as wrong:
        assert (await wrong.get('/api/v1/templates')).status_code == 401


BODY = {'name': 'Order ready', 'channels': {'sms': {'from': 'MyShop', 'text': 'Hi {{name}}', 'validityPeriod': 60},
                                            'email': {'fromEmail': 'shop@example.com', 'subject': 'Order',
                                                      'text': 'Hi {{name}}', 'required': True}},
        'allowedTimeRanges': [['09:00:00', '22:00:00']], 'timeZone': 'Europe/Berlin', 'useShortLinks': True}


async def test_create_change_and_delete_a_template(user: User) -> None:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    _, secret = await auth.create_api_key('tests', scopes=['templates:read', 'templates:write'])
    async with client(secret) as api:
        created = await api.post('/api/v1/templates', json=BODY | {'unknownField': 1})
        assert created.status_code == 201, created.text
        body = created.json()
        assert list(body['channels']) == ['sms', 'email']
        assert body['channels']['sms'] == {'from': 'MyShop', 'text': 'Hi {{name}}', 'validityPeriod': 60,
                                           'required': False}
        assert (body['allowedTimeRanges'], body['timeZone'], body['useShortLinks']) == \
            ([['09:00:00', '22:00:00']], 'Europe/Berlin', True)
        stored = await templates.get_template(SYSTEM, body['id'])
        assert stored.allowed_time_ranges == [['09:00', '22:00']]
        assert [step['channel'] for step in stored.steps] == ['sms', 'email']

        changed = BODY | {'name': 'Order shipped', 'channels': {'email': BODY['channels']['email']},
                          'allowedTimeRanges': [['08:00', '12:00:00'], ['13:00:00', '24:00:00']]}
        answer = await api.put(f'/api/v1/templates/{body["id"]}', json=changed)
        assert answer.status_code == 200, answer.text
        assert answer.json()['name'] == 'Order shipped' and list(answer.json()['channels']) == ['email']
        assert answer.json()['allowedTimeRanges'] == [['08:00:00', '12:00:00'], ['13:00:00', '24:00:00']]
        assert (await api.get(f'/api/v1/templates/{body["id"]}')).json()['name'] == 'Order shipped'

        assert (await api.delete(f'/api/v1/templates/{body["id"]}')).status_code == 204
        assert (await api.get(f'/api/v1/templates/{body["id"]}')).status_code == 404
        assert (await api.delete(f'/api/v1/templates/{body["id"]}')).status_code == 404
        assert (await api.put(f'/api/v1/templates/{uuid.uuid4()}', json=BODY)).status_code == 404


async def test_invalid_templates_are_refused_field_by_field(user: User) -> None:
    await create_templates('Taken')
    _, secret = await auth.create_api_key('tests')
    async with client(secret) as api:
        bad = BODY | {'name': 'taken', 'timeZone': 'Mars/Olympus',
                      'channels': {'sms': {'from': 'Unknown', 'text': 'Hi {{'}, 'email': {'subject': 'x'}},
                      'allowedTimeRanges': [['10:00:00', '09:00:00'], ['09:30:15', '11:00:00']]}
        answer = await api.post('/api/v1/templates', json=bad)
        assert answer.status_code == 422
        fields = answer.json()['error']['fields']
        assert {'name', 'timeZone', 'channels.sms.from', 'channels.sms.text', 'channels.email.fromEmail',
                'allowedTimeRanges[0]', 'allowedTimeRanges[1]'} <= set(fields), fields
        shape = await api.post('/api/v1/templates', json={'name': 'x', 'channels': {'fax': {}},
                                                          'allowedTimeRanges': [['09:00:00']]})
        assert shape.status_code == 422
        assert any(field.startswith('channels') for field in shape.json()['error']['fields'])
        no_channel = await api.post('/api/v1/templates', json=BODY | {'name': 'Empty', 'channels': {}})
        assert no_channel.status_code == 422 and 'channels' in no_channel.json()['error']['fields']
    assert [t.name for t in (await templates.search_templates(SYSTEM))[1]] == ['Taken']


async def test_scopes_and_roles(user: User) -> None:
    template, = await create_templates('Alpha')
    _, reader = await auth.create_api_key('reader', scopes=['templates:read'])
    _, sender = await auth.create_api_key('sender', scopes=['messages:send'])
    async with client(reader) as api:
        assert (await api.get(f'/api/v1/templates/{template.id}')).status_code == 200
        assert (await api.post('/api/v1/templates', json=BODY)).status_code == 403
        assert (await api.delete(f'/api/v1/templates/{template.id}')).status_code == 403
    async with client(sender) as api:
        assert (await api.get('/api/v1/templates')).status_code == 403
    viewer = await auth.create_user('viewer@example.com', 'correct horse', Role.VIEWER)
    async with client(auth.issue_tokens(viewer).auth_token) as api:
        assert (await api.get('/api/v1/templates')).json()['count'] == 1
        assert (await api.delete(f'/api/v1/templates/{template.id}')).status_code == 403
    assert await templates.get_template(SYSTEM, template.id)
