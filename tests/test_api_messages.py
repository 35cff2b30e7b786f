"""Messages over the API: a batch sent and followed to delivery, refused requests that create nothing, validation
only, a task's held messages, the filtered list, canceling scheduled messages, and Excel uploads."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import openpyxl
from nicegui import app
from nicegui.testing import User

from domain import auth, routes, task_files
from domain.auth import SYSTEM
from domain.channels import Channel
from domain.config import settings
from domain.enqueue import Destination, SendRequest, enqueue
from domain.models import (
    BulkUpload,
    Message,
    Notification,
    ProviderRoute,
    Role,
    SenderName,
    SenderStatus,
    Task,
    TaskStatus,
)
from domain.statuses import MessageStatus

XLSX = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'
SMS = {'sms': {'text': 'Hi', 'from': 'MyShop'}}


def client(secret: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://herald.test',
                             headers={'Authorization': f'Bearer {secret}'})


async def api_key(*scopes: str) -> str:
    await SenderName.get_or_create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    return (await auth.create_api_key('tests', scopes=list(scopes) or None))[1]


async def instant_sms() -> None:
    """The simulator delivers every SMS at once (the running engine reloads the route)."""
    await eventually(lambda: ProviderRoute.exists(name='simulator-sms'))  # the engine seeds it as it starts
    route = await ProviderRoute.get(name='simulator-sms')
    await routes.update_route(SYSTEM, route.id, routes.RouteData(
        name=route.name, channel=route.channel, provider=route.provider, is_default=True,
        settings={'report_delay_ms': 0, 'delivery_rate': 1.0, 'seed': 1}))


async def eventually(check, seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError('did not happen in time')


def later(minutes: int = 60) -> str:
    return (datetime.now(timezone.utc) + timedelta(minutes=minutes)).isoformat()


async def test_a_message_is_sent_and_followed_until_delivered(user: User) -> None:
    await instant_sms()
    async with client(await api_key()) as api:
        answer = await api.post('/api/v1/messages', json={
            'messages': [{'channels': SMS, 'destinations': [{'phone': '79001234567'}]}]})
        assert answer.status_code == 200, answer.text
        [item] = answer.json()
        assert item['id'] and item['bulkId'] and item['status'] == 'QUEUED' and item['channel'] == 'sms'
        assert 'groupId' in item and 'error' in item and item['error'] is None

        async def delivered() -> bool:
            listed = (await api.get('/api/v1/messages', params={'id': item['id']})).json()
            return listed['items'][0]['status'] == 'DELIVERED'
        await eventually(delivered)
        listed = (await api.get('/api/v1/messages', params={'id': item['id']})).json()
        assert listed['count'] == 1
        shown = listed['items'][0]
        assert (shown['statusCode'], shown['partCount'], shown['bulkId']) == (MessageStatus.DELIVERED.code, 1,
                                                                              item['bulkId'])
        assert shown['createdAt'] and shown['sentAt'] and shown['deliveredAt']
        assert shown['destination']['phone'] == '+79001234567'
        assert shown['message']['text'] == 'Hi' and shown['message']['from'] == 'MyShop'
        assert shown['tracks'] == {'shortLinkClicks': 0, 'emailOpens': 0, 'emailClicks': 0}


async def test_a_batch_shares_its_bulk_id_and_reports_refused_destinations(user: User) -> None:
    async with client(await api_key()) as api:
        answer = await api.post('/api/v1/messages', json={'bulkId': 'october-1', 'messages': [
            {'groupId': 'g1', 'sendAt': later(), 'channels': SMS,
             'destinations': [{'phone': '+79001234567'}, {'phone': '12'}]},
            {'channels': {'sms': {'text': 'Hi {{name}}', 'from': 'MyShop'}, 'email': {
                'fromEmail': 'shop@example.com', 'subject': 'Hi', 'text': 'Hi {{name}}'}},
             'destinations': [{'phone': '+79001234568', 'email': 'ann@example.com', 'variables': {'name': 'Ann'}},
                              {'phone': '+79001234569'}]},
            {'channels': {'sms': {'text': 'Hi', 'from': 'NotApproved'}}, 'destinations': [{'phone': '+79001234560'}]},
        ]})
        assert answer.status_code == 200, answer.text
        items = answer.json()
        created = [item for item in items if item['id']]
        assert {item['bulkId'] for item in items} == {'october-1'}
        assert [(i['messageIndex'], i['destinationIndex'], i['channel']) for i in created] == [
            (0, 0, 'sms'), (1, 0, 'sms'), (1, 0, 'email')]
        assert created[0]['groupId'] == 'g1'
        errors = {(i['messageIndex'], i['destinationIndex']): i['error'] for i in items if i['error']}
        assert set(errors) == {(0, 1), (1, 1), (2, None)}
        assert errors[(0, 1)] == {'message': 'Phone: too short',
                                  'fields': {'messages[0].destinations[1].phone': 'Phone: too short'}}
        assert 'name' in errors[(1, 1)]['message']
        assert 'messages[2].channels.sms.from' in errors[(2, None)]['fields']
        assert await Message.filter(bulk_id='october-1').count() == 3

        again = await api.post('/api/v1/messages', json={'bulkId': 'october-1', 'messages': [
            {'channels': SMS, 'destinations': [{'phone': '+79001234567'}]}]})
        assert again.json()[0]['id'] == created[0]['id']  # a retry with the same bulk id creates nothing twice
        assert await Message.filter(bulk_id='october-1').count() == 3


async def test_requests_that_cannot_be_sent_answer_422_and_create_nothing(user: User) -> None:
    async with client(await api_key()) as api:
        answer = await api.post('/api/v1/messages', json={'messages': [
            {'destinations': [{'phone': '79001234567'}]},
            {'channels': {'sms': {'text': 'Hi', 'from': 'Unknown'}}, 'destinations': [{'phone': '79001234567'}]},
            {'templateId': 'no-such-template', 'destinations': [{'phone': '79001234567'}]}]})
        assert answer.status_code == 422
        fields = answer.json()['error']['fields']
        assert set(fields) == {'messages[0].channels', 'messages[1].channels.sms.from', 'messages[2].templateId'}
        for body in ({'messages': []}, {'messages': [{'channels': SMS, 'destinations': []}]},
                     {'messages': [{'channels': {'fax': {'text': 'Hi'}}, 'destinations': [{'phone': '1'}]}]},
                     {'messages': [{'channels': {'sms': {'text': 'Hi', 'from': 'MyShop', 'validityPeriod': 0}},
                                    'destinations': [{'phone': '79001234567'}]}]}):
            refused = await api.post('/api/v1/messages', json=body)
            assert refused.status_code == 422, body
            assert refused.json()['error']['fields']
        assert not await Message.exists()


async def test_validate_checks_without_sending(user: User) -> None:
    async with client(await api_key()) as api:
        answer = await api.post('/api/v1/messages', json={'messages': [{'validate': True, 'channels': SMS,
                                                                        'destinations': [{'phone': '79001234567'},
                                                                                         {'phone': 'abc'}]}]})
        assert answer.status_code == 200, answer.text
        first, second = answer.json()
        assert first['validated'] and not first['id'] and not first['error']
        assert second['destinationIndex'] == 1 and second['error']['message']
        assert not await Message.exists()


async def test_messages_added_to_a_task_wait_until_it_runs(user: User) -> None:
    task = await Task.create(name='Spring', kind='full', allowed_time_ranges=[['09:00', '21:00']])
    async with client(await api_key()) as api:
        answer = await api.post('/api/v1/messages', json={'taskId': str(task.id), 'messages': [
            {'channels': SMS, 'destinations': [{'phone': '79001234567'}, {'phone': '79001234568'}]}]})
        assert answer.status_code == 200, answer.text
        assert {item['status'] for item in answer.json()} == {'PAUSED'}
        listed = (await api.get('/api/v1/messages', params={'taskId': str(task.id)})).json()
        assert listed['count'] == 2 and {item['taskId'] for item in listed['items']} == {str(task.id)}
        assert (await Task.get(id=task.id)).total_count == 2
        await Task.filter(id=task.id).update(status=TaskStatus.COMPLETED)
        closed = await api.post('/api/v1/messages', json={'taskId': str(task.id), 'messages': [
            {'channels': SMS, 'destinations': [{'phone': '79001234569'}]}]})
        assert closed.status_code == 422 and 'taskId' in closed.json()['error']['fields']
        unknown = await api.post('/api/v1/messages', json={'taskId': 'nope', 'messages': [
            {'channels': SMS, 'destinations': [{'phone': '79001234569'}]}]})
        assert unknown.status_code == 404
    assert await Message.filter(task_id=task.id).count() == 2


async def test_the_list_filters_sorts_and_pages(user: User) -> None:
    async with client(await api_key()) as api:
        for bulk, group, phones in (('b1', 'g1', ['79001230001', '79001230002']), ('b2', 'g2', ['79001230003'])):
            answer = await api.post('/api/v1/messages', json={'bulkId': bulk, 'messages': [
                {'groupId': group, 'sendAt': later(), 'channels': SMS,
                 'destinations': [{'phone': phone} for phone in phones]}]})
            assert answer.status_code == 200
        await enqueue(SYSTEM, SendRequest(destinations=[Destination(phone='79001230004', email='bo@example.com')],
                                          steps=[{'channel': 'email', 'fromEmail': 'a@example.com', 'subject': 'S',
                                                  'text': 'T'}],
                                          bulk_id='b3', flow_id='f1', send_at=datetime.now(timezone.utc)
                                          + timedelta(hours=1)))

        async def phones(**params: object) -> list[str]:
            answer = await api.get('/api/v1/messages', params=params)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body['count'] >= len(body['items'])
            return [item['destination']['phone'] for item in body['items']]

        oldest_first = await phones(sort='createdAt')  # a batch shares its creation time: its order is the id's
        assert set(oldest_first[:2]) == {'+79001230001', '+79001230002'}
        assert oldest_first[2:] == ['+79001230003', '+79001230004']
        assert await phones(sort='-createdAt') == oldest_first[::-1]
        assert sorted(await phones(bulkId='b1,b2')) == ['+79001230001', '+79001230002', '+79001230003']
        assert await phones(groupId='g2') == ['+79001230003']
        assert await phones(flowId='f1', channel='email') == ['+79001230004']
        assert await phones(channel='sms', limit=1, offset=1, sort='createdAt') == oldest_first[1:2]
        assert await phones(status='DELIVERED') == []
        assert len(await phones(status='QUEUED')) == 4
        assert await phones(**{'from': later(), 'to': later(120)}) == []
        assert len(await phones(**{'from': later(-10), 'to': later(10)})) == 4
        assert await phones(id='not-a-uuid') == []
        email = (await api.get('/api/v1/messages', params={'channel': 'email'})).json()['items'][0]
        assert email['message']['fromEmail'] == 'a@example.com' and email['message']['subject'] == 'S'
        assert email['flowId'] == 'f1' and email['sendAt']
        for bad in ({'sort': 'phone'}, {'status': 'LOST'}, {'channel': 'fax'}, {'limit': 0}, {'limit': 1001},
                    {'offset': -1}, {'id': ','.join(f'{i}' for i in range(1001))}, {'from': 'yesterday'}):
            assert (await api.get('/api/v1/messages', params=bad)).status_code == 422, bad


async def test_canceling_scheduled_messages(user: User) -> None:
    async with client(await api_key()) as api:
        answer = await api.post('/api/v1/messages', json={'bulkId': 'later', 'messages': [
            {'groupId': 'g', 'sendAt': later(), 'channels': SMS,
             'destinations': [{'phone': f'7900123000{i}'} for i in range(4)]}]})
        ids = [item['id'] for item in answer.json()]
        await Message.filter(id=ids[0]).update(send_started_at=datetime.now(timezone.utc))  # handed to a provider
        await Message.filter(id=ids[1]).update(status=MessageStatus.DELIVERED)
        one = await api.delete('/api/v1/messages', params={'id': ids[2]})
        assert one.json() == {'canceled': 1}
        rest = await api.delete('/api/v1/messages', params={'bulkId': 'later'})
        assert rest.json() == {'canceled': 1}
        assert (await api.delete('/api/v1/messages', params={'groupId': 'g'})).json() == {'canceled': 0}
        assert (await api.delete('/api/v1/messages')).status_code == 422
        statuses = {str(m.id): m.status for m in await Message.filter(bulk_id='later')}
        assert [statuses[i] for i in ids] == [MessageStatus.QUEUED, MessageStatus.DELIVERED, MessageStatus.CANCELED,
                                              MessageStatus.CANCELED]


async def test_canceling_a_first_step_cancels_the_steps_waiting_for_it(user: User) -> None:
    await SenderName.get_or_create(name='MyShop', channel=Channel.VIBER, status=SenderStatus.APPROVED)
    async with client(await api_key()) as api:
        answer = await api.post('/api/v1/messages', json={'messages': [
            {'sendAt': later(), 'channels': {'viber': {'text': 'Hi', 'from': 'MyShop'}} | SMS,
             'destinations': [{'phone': '79001234567'}]}]})
        first, second = answer.json()
        assert (first['status'], second['status']) == ('QUEUED', 'CREATED')
        assert (await api.delete('/api/v1/messages', params={'id': first['id']})).json() == {'canceled': 2}


async def test_scopes(user: User) -> None:
    async with client(await api_key('messages:read')) as reader:
        refused = await reader.post('/api/v1/messages', json={'messages': [
            {'channels': SMS, 'destinations': [{'phone': '79001234567'}]}]})
        assert refused.status_code == 403
        assert (await reader.delete('/api/v1/messages', params={'bulkId': 'x'})).status_code == 403
        assert (await reader.get('/api/v1/messages')).status_code == 200
    async with client(await api_key('messages:send')) as sender:
        assert (await sender.get('/api/v1/messages')).status_code == 403


def full_file(path: Path, rows: list[list[object]]) -> bytes:
    workbook = openpyxl.Workbook()
    workbook.active.append(['Phone', 'SMS sender', 'SMS text'])
    for row in rows:
        workbook.active.append(row)
    workbook.save(path)
    return path.read_bytes()


async def test_an_excel_upload_becomes_a_started_task(user: User, tmp_path: Path) -> None:
    secret = await api_key()
    content = full_file(tmp_path / 'spring.xlsx', [['+79001234567', 'MyShop', 'Hi'], ['+79001234568', 'MyShop', 'Yo'],
                                                   ['12', 'MyShop', 'Hi']])
    async with client(secret) as api:
        answer = await api.post('/api/v1/messages/bulk', files={'messages': ('spring.xlsx', content, XLSX)})
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert (result['status'], result['totalRows'], result['acceptedRows'], result['rejectedRows']) == (
            'completed', 3, 2, 1)
        assert result['problems'][0]['row'] == 4 and result['problems'][0]['reason']
        task = await Task.get(id=result['taskId'])
        assert task.name == 'spring.xlsx' and task.status is TaskStatus.RUNNING
        assert await Message.filter(bulk_id=result['bulkId'], task_id=task.id).count() == 2
        assert (await api.get(f'/api/v1/messages/bulk/{result["id"]}')).json() == result

        started = await api.post('/api/v1/messages/bulk', files={'messages': ('again.xlsx', content, XLSX)},
                                 data={'async': 'true'})
        assert started.status_code == 200 and started.json()['id']

        async def completed() -> bool:
            shown = (await api.get(f'/api/v1/messages/bulk/{started.json()["id"]}')).json()
            return shown['status'] == 'completed'
        await eventually(completed)
    async with client(await api_key()) as other:
        assert (await other.get(f'/api/v1/messages/bulk/{result["id"]}')).status_code == 404
        assert (await other.get('/api/v1/messages/bulk/not-an-id')).status_code == 404


async def test_a_bad_upload_fails_and_creates_nothing(user: User, tmp_path: Path) -> None:
    async with client(await api_key()) as api:
        answer = await api.post('/api/v1/messages/bulk', files={'messages': ('x.xlsx', b'not a workbook', XLSX)})
        assert answer.status_code == 200
        result = answer.json()
        assert result['status'] == 'failed' and result['error'] in (task_files.NOT_XLSX, task_files.DAMAGED)
        invalid = full_file(tmp_path / 'bad.xlsx', [['12', 'MyShop', 'Hi']])
        only_bad = (await api.post('/api/v1/messages/bulk', files={'messages': ('bad.xlsx', invalid, XLSX)})).json()
        assert only_bad['status'] == 'failed' and only_bad['rejectedRows'] == 1 and only_bad['problems']
        missing = await api.post('/api/v1/messages/bulk', data={'async': 'true'})
        assert missing.status_code == 422
    assert not await Message.exists() and not await Task.exists()
    assert await BulkUpload.filter(status='failed').count() == 2


async def test_a_users_token_acts_with_the_users_role(user: User, tmp_path: Path) -> None:
    await SenderName.get_or_create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    viewer = await auth.create_user('viewer@example.com', 'correct horse', Role.VIEWER)
    async with client(auth.issue_tokens(viewer).auth_token) as api:
        body = {'messages': [{'channels': SMS, 'destinations': [{'phone': '79001234567'}]}]}
        assert (await api.post('/api/v1/messages', json=body)).status_code == 403
        content = full_file(tmp_path / 'a.xlsx', [['+79001234567', 'MyShop', 'Hi']])
        assert (await api.post('/api/v1/messages/bulk', files={'messages': ('a.xlsx', content, XLSX)})).status_code \
            == 403
        assert (await api.get('/api/v1/messages')).status_code == 200
    assert not list((settings().data_dir / 'uploads').glob('*'))
    operator = await auth.create_user('operator@example.com', 'correct horse', Role.OPERATOR)
    async with client(auth.issue_tokens(operator).auth_token) as api:
        content = full_file(tmp_path / 'b.xlsx', [['+79001234567', 'MyShop', 'Hi']])
        result = (await api.post('/api/v1/messages/bulk', files={'messages': ('b.xlsx', content, XLSX)})).json()
        assert result['status'] == 'completed'
        assert (await api.get(f'/api/v1/messages/bulk/{result["id"]}')).status_code == 200
    assert (await BulkUpload.get(id=result['id'])).owner == f'user:{operator.id}'
    assert not await Message.filter(task_id=None).exists()


async def test_time_ranges_and_a_provider_name_are_taken(user: User) -> None:
    await eventually(lambda: ProviderRoute.exists(name='simulator-sms'))  # the engine seeds it as it starts
    async with client(await api_key()) as api:
        answer = await api.post('/api/v1/messages', json={'messages': [
            {'allowedTimeRanges': [['09:00:00', '21:00:00']], 'callbackUrl': 'https://example.com/cb',
             'callbackData': 'order-7', 'channels': {'sms': {'text': 'Hi', 'from': 'MyShop', 'provider': 'simulator-sms'}},
             'destinations': [{'phone': '79001234567', 'externalId': 'e-1', 'clientId': 'c-1'}]}]})
        assert answer.status_code == 200, answer.text
        notification = await Notification.get(bulk_id=answer.json()[0]['bulkId'])
        assert notification.allowed_time_ranges == [['09:00', '21:00']]
        assert (notification.callback_url, notification.callback_data) == ('https://example.com/cb', 'order-7')
        shown = (await api.get('/api/v1/messages', params={'id': answer.json()[0]['id']})).json()['items'][0]
        assert shown['destination'] | {'phone': None} == {'phone': None, 'email': None, 'clientId': 'c-1',
                                                          'externalId': 'e-1', 'messengerUserId': None}
        refused = await api.post('/api/v1/messages', json={'messages': [
            {'allowedTimeRanges': [['21:00:00', '09:00:00']], 'channels': SMS,
             'destinations': [{'phone': '79001234567'}]}]})
        assert refused.status_code == 422 and 'messages[0].allowedTimeRanges.0' in refused.json()['error']['fields']


async def test_a_channels_provider_names_the_route_its_messages_go_through(user: User) -> None:
    await instant_sms()
    spare = await routes.create_route(SYSTEM, routes.RouteData(
        name='sms-spare', channel='sms', provider='simulator', settings={'report_delay_ms': 0, 'delivery_rate': 1.0}))
    async with client(await api_key()) as api:
        refused = await api.post('/api/v1/messages', json={'messages': [{
            'channels': {'sms': {**SMS['sms'], 'provider': 'nowhere'}}, 'destinations': [{'phone': '79001234567'}]}]})
        assert refused.status_code == 422, refused.text
        assert refused.json()['error']['fields'] == {
            'messages[0].channels.sms.provider': 'There is no provider route named "nowhere".'}
        answer = await api.post('/api/v1/messages', json={'messages': [{
            'channels': {'sms': {**SMS['sms'], 'provider': 'sms-spare'}}, 'destinations': [{'phone': '79001234567'}]}]})
        assert answer.status_code == 200, answer.text
        message_id = answer.json()[0]['id']
        await eventually(lambda: Message.exists(id=message_id, status=MessageStatus.DELIVERED))
    message = await Message.get(id=message_id)
    assert (message.pinned_route_id, message.route_id) == (spare.id, spare.id), 'not the default simulator-sms'
