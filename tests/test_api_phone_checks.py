"""Phone checks over the API: numbers checked and their results read again by check id."""
from __future__ import annotations

import httpx
from nicegui import app
from nicegui.testing import User

from domain import auth
from domain.models import HlrCheck


def client(secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://herald.test',
                             headers={'Authorization': f'Bearer {secret}'})


async def test_numbers_are_checked_and_read_again(user: User) -> None:
    _, secret = await auth.create_api_key('tests', scopes=['phones:check'])
    async with client(secret) as api:
        answer = await api.post('/api/v1/phoneChecks', json={'phones': ['+79123456789', '12', '+79123456789']})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body['checkId'] and set(body['result']) == {'+79123456789', '12'}
        assert body['result']['+79123456789'] == {'status': 'VALID', 'statusCode': 1}
        assert body['result']['12']['status'] == 'INVALID' and body['result']['12']['statusCode'] > 1
        again = await api.get('/api/v1/phoneChecks', params={'checkId': body['checkId']})
        assert again.json() == body
        repeated = await api.post('/api/v1/phoneChecks', json={'checkId': body['checkId'], 'phones': ['+79123456789']})
        assert repeated.json() == body  # a known check is answered again, not checked twice
        assert await HlrCheck.filter().count() == 2


async def test_errors_and_scope(user: User) -> None:
    _, secret = await auth.create_api_key('tests', scopes=['phones:check'])
    async with client(secret) as api:
        assert (await api.post('/api/v1/phoneChecks', json={'phones': []})).status_code == 422
        assert (await api.post('/api/v1/phoneChecks', json={'phones': [{'x': 1}]})).status_code == 422
        assert (await api.get('/api/v1/phoneChecks', params={'checkId': 'unknown'})).status_code == 404
        assert (await api.get('/api/v1/phoneChecks')).status_code == 422
    _, reader = await auth.create_api_key('reader', scopes=['messages:read'])
    async with client(reader) as api:
        assert (await api.post('/api/v1/phoneChecks', json={'phones': ['+79123456789']})).status_code == 403
    assert not await HlrCheck.exists()
