"""Tasks over the API: a task made from an uploaded xlsx, its lifecycle, added rows, changes and deletion; a file
that cannot be used answers 422 and leaves nothing behind."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
from nicegui import app
from nicegui.testing import User
from test_tasks import sms_file, sms_rows

from domain import auth
from domain.channels import Channel
from domain.config import settings
from domain.models import Message, Role, SenderName, SenderStatus, ShortLink, Task
from domain.statuses import MessageStatus

XLSX = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'


def client(secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://herald.test',
                             headers={'Authorization': f'Bearer {secret}'})


def upload(tmp_path: Path, rows: list[dict[str, object]], name: str = 'october.xlsx') -> dict:
    return {'messages': (name, sms_file(tmp_path / name, rows).read_bytes(), XLSX)}


async def api_key(*scopes: str) -> str:
    await SenderName.get_or_create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    return (await auth.create_api_key('tests', scopes=list(scopes) or None))[1]


def leftovers() -> list[Path]:
    """Check directories and uploads on disk."""
    return [path for folder in ('tasks', 'uploads') for path in (settings().data_dir / folder).glob('*')]


async def create(api: httpx.AsyncClient, tmp_path: Path, rows: list[dict[str, object]], **fields: str) -> dict:
    answer = await api.post('/api/v1/tasks', data={'name': 'October', 'kind': 'sms'} | fields,
                            files=upload(tmp_path, rows))
    assert answer.status_code == 201, answer.text
    return answer.json()


async def test_a_task_from_a_file_and_its_lifecycle(user: User, tmp_path: Path) -> None:
    async with client(await api_key()) as api:
        rows = sms_rows(3) + [{'phone': '12', 'sender': 'MyShop', 'text': 'Hi'}]
        task = await create(api, tmp_path, rows, allowedTimeRanges=json.dumps([['09:00:00', '21:00:00']]),
                            timeZone='Europe/Berlin')
        assert (task['name'], task['kind'], task['status'], task['totalMessageCount']) == ('October', 'sms',
                                                                                          'created', 3)
        assert (task['allowedTimeRanges'], task['timeZone']) == ([['09:00:00', '21:00:00']], 'Europe/Berlin')
        assert task['rejectedRows'] == 1 and [p['row'] for p in task['problems']] == [5]
        assert {'column', 'reason'} <= set(task['problems'][0])
        assert {'createdAt', 'updatedAt', 'totalProcessedMessageCount', 'inProgressMessageCount',
                'completedMessageCount', 'progress', 'deliveredMessageCount', 'failedMessageCount'} <= set(task)
        task_id = task['id']
        assert await Message.filter(task_id=task_id, status=MessageStatus.PAUSED).count() == 3

        async def status() -> str:
            return (await api.get(f'/api/v1/tasks/{task_id}/statuses')).json()['status']
        assert await status() == 'created'
        assert (await api.post(f'/api/v1/pausedTasks/{task_id}')).status_code == 422  # not running yet
        started = await api.post(f'/api/v1/startedTasks/{task_id}')
        assert (started.status_code, started.json()['status'], await status()) == (200, 'during', 'during')
        assert (await api.post(f'/api/v1/startedTasks/{task_id}')).status_code == 422
        assert (await api.post(f'/api/v1/pausedTasks/{task_id}')).json()['status'] == 'paused'
        assert await status() == 'paused'
        assert (await api.delete(f'/api/v1/pausedTasks/{task_id}')).json()['status'] == 'during'

        one = (await api.get(f'/api/v1/tasks/{task_id}')).json()
        assert (one['id'], one['status'], one['totalMessageCount']) == (task_id, 'during', 3)
        assert (await api.get(f'/api/v1/tasks/{task_id}/statuses')).json() == {'status': 'during'}
        assert (await api.get('/api/v1/tasks/not-a-task')).status_code == 404


async def test_the_list_filters_and_pages(user: User, tmp_path: Path) -> None:
    async with client(await api_key()) as api:
        first = await create(api, tmp_path, sms_rows(1), name='Spring sale')
        second = await create(api, tmp_path, sms_rows(1), name='Autumn sale')
        await api.post(f'/api/v1/startedTasks/{second["id"]}')

        async def names(**params: object) -> list[str]:
            answer = await api.get('/api/v1/tasks', params=params)
            assert answer.status_code == 200, answer.text
            listed = answer.json()
            assert listed['count'] == len(listed['items']) or 'limit' in params
            return [item['name'] for item in listed['items']]
        assert await names() == ['Autumn sale', 'Spring sale']
        assert await names(name='spring') == ['Spring sale']
        assert await names(status='During') == ['Autumn sale']
        assert await names(status='created') == ['Spring sale']
        assert await names(status='completed') == []
        assert await names(limit=1, offset=1) == ['Spring sale']
        assert await names(**{'from': first['createdAt']}) == ['Autumn sale', 'Spring sale']
        assert await names(**{'to': first['createdAt']}) == []
        assert await names(**{'from': '2000-01-01T00:00:00', 'to': '2001-01-01T00:00:00Z'}) == []
        for params in ({'status': 'running'}, {'limit': 0}, {'limit': 1001}, {'offset': -1}, {'from': 'yesterday'}):
            assert (await api.get('/api/v1/tasks', params=params)).status_code == 422, params


async def test_an_unusable_file_answers_422_and_leaves_nothing(user: User, tmp_path: Path) -> None:
    async with client(await api_key()) as api:
        garbage = await api.post('/api/v1/tasks', data={'name': 'Broken', 'kind': 'sms'},
                                 files={'messages': ('broken.xlsx', b'not a workbook at all', XLSX)})
        assert garbage.status_code == 422
        assert 'Excel' in garbage.json()['error']['fields']['messages']

        invalid = await api.post('/api/v1/tasks', data={'name': 'Invalid', 'kind': 'sms'},
                                 files=upload(tmp_path, [{'phone': '12', 'sender': 'MyShop', 'text': 'Hi'}]))
        assert invalid.status_code == 422
        assert 'no valid rows' in invalid.json()['error']['fields']['messages']

        for fields, field in (({'name': ' '}, 'name'), ({'kind': 'fax'}, 'kind'),
                              ({'allowedTimeRanges': '[["22:00:00", "09:00:00"]]'}, 'allowedTimeRanges[0]'),
                              ({'allowedTimeRanges': 'not json'}, 'allowedTimeRanges'),
                              ({'timeZone': 'Mars/Olympus'}, 'timeZone'), ({'kind': 'universal'}, 'templateId')):
            answer = await api.post('/api/v1/tasks', data={'name': 'Bad', 'kind': 'sms'} | fields,
                                    files=upload(tmp_path, sms_rows(2)))
            assert answer.status_code == 422, (fields, answer.text)
            assert field in answer.json()['error']['fields'], (fields, answer.text)
        missing = await api.post('/api/v1/tasks', data={'name': 'No file', 'kind': 'sms'})
        assert missing.status_code == 422 and 'messages' in missing.json()['error']['fields']
    assert await Task.all().count() == 0 and await Message.all().count() == 0
    assert leftovers() == []


async def test_rows_added_changes_and_deletion(user: User, tmp_path: Path) -> None:
    async with client(await api_key()) as api:
        task_id = (await create(api, tmp_path, sms_rows(3)))['id']
        added = await api.post(f'/api/v1/tasks/{task_id}', files=upload(tmp_path, sms_rows(3, start=2), 'more.xlsx'))
        assert added.status_code == 200, added.text
        assert (added.json()['totalMessageCount'], added.json()['rejectedRows']) == (5, 1)
        assert 'row' in added.json()['problems'][0]['reason']
        nothing_new = await api.post(f'/api/v1/tasks/{task_id}', files=upload(tmp_path, sms_rows(1), 'same.xlsx'))
        assert nothing_new.status_code == 422 and 'messages' in nothing_new.json()['error']['fields']

        renamed = await api.put(f'/api/v1/tasks/{task_id}', json={'name': 'November'})
        assert (renamed.status_code, renamed.json()['name'], renamed.json()['allowedTimeRanges']) == (200, 'November',
                                                                                                    [])
        limited = await api.put(f'/api/v1/tasks/{task_id}', json={'allowedTimeRanges': [['10:00:00', '18:00:00']]})
        assert (limited.json()['name'], limited.json()['allowedTimeRanges']) == ('November', [['10:00:00', '18:00:00']])
        bad = await api.put(f'/api/v1/tasks/{task_id}', json={'name': '', 'allowedTimeRanges': [['25:00:00', '26:00']]})
        assert bad.status_code == 422 and 'name' in bad.json()['error']['fields']
        assert (await api.get(f'/api/v1/tasks/{task_id}')).json()['name'] == 'November'

        deleted = await api.delete(f'/api/v1/tasks/{task_id}')
        assert deleted.json() == {'removedMessageCount': 5, 'keptMessageCount': 0}
        assert (await api.get(f'/api/v1/tasks/{task_id}')).status_code == 404
        assert (await api.delete(f'/api/v1/tasks/{task_id}')).status_code == 404
    assert await Message.all().count() == 0


async def test_scopes_and_roles(user: User, tmp_path: Path) -> None:
    async with client(await api_key()) as api:
        task_id = (await create(api, tmp_path, sms_rows(2)))['id']
    async with client(await api_key('tasks:read')) as reader:
        assert (await reader.get('/api/v1/tasks')).json()['count'] == 1
        assert (await reader.post('/api/v1/tasks', data={'name': 'X', 'kind': 'sms'},
                                  files=upload(tmp_path, sms_rows(1)))).status_code == 403
        assert (await reader.post(f'/api/v1/startedTasks/{task_id}')).status_code == 403
        assert (await reader.delete(f'/api/v1/tasks/{task_id}')).status_code == 403
    async with client(await api_key('templates:read')) as other:
        assert (await other.get('/api/v1/tasks')).status_code == 403
    viewer = await auth.create_user('viewer@example.com', 'correct horse', Role.VIEWER)
    async with client(auth.issue_tokens(viewer).auth_token) as api:
        assert (await api.get(f'/api/v1/tasks/{task_id}')).status_code == 200
        refused = await api.post('/api/v1/tasks', data={'name': 'X', 'kind': 'sms'},
                                 files=upload(tmp_path, sms_rows(1)))
        assert refused.status_code == 403
        assert (await api.post(f'/api/v1/startedTasks/{task_id}')).status_code == 403
    assert await Task.all().count() == 1
    assert (await Task.get(id=task_id)).status == 'created'


async def test_links_are_shortened_when_asked(user: User, tmp_path: Path) -> None:
    rows = [{'phone': '+79123450001', 'sender': 'MyShop', 'text': 'Track it: https://shop.example.com/orders/1'}]
    async with client(await api_key()) as api:
        plain = await create(api, tmp_path, rows)
        short = await create(api, tmp_path, [row | {'phone': '+79123450002'} for row in rows], useShortLinks='true')
    assert 'https://shop.example.com/orders/1' in (await Message.get(task_id=plain['id'])).text
    assert 'https://shop.example.com/orders/1' not in (await Message.get(task_id=short['id'])).text
    assert await ShortLink.filter(target='https://shop.example.com/orders/1').count() == 1
