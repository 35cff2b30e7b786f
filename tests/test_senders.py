"""Sender names: requests, decisions, rules of the carriers, permissions, audit, and the page."""

import pytest
from helpers import eventually, make_actor, sign_in_as, table_rows
from nicegui import ui
from nicegui.testing import User

from domain import auth, senders
from domain.auth import Actor
from domain.channels import Channel
from domain.errors import NotFound, PermissionDenied, ValidationError
from domain.models import AuditEvent, Role, SenderName, SenderStatus


@pytest.fixture
async def admin(db) -> Actor:
    return await make_actor(Role.ADMIN)


@pytest.fixture
async def operator(db) -> Actor:
    return await make_actor(Role.OPERATOR)


@pytest.mark.parametrize('name', ['MyShop', 'A', 'Shop 24.ru', 'my_shop-1', 'ABCDEFGHIJK', '123456789012345', '7'])
async def test_valid_sms_names(operator: Actor, name: str) -> None:
    sender = await senders.request_sender(operator, f'  {name} ', Channel.SMS)
    assert sender.name == name and sender.status is SenderStatus.REQUESTED


@pytest.mark.parametrize('name', ['', '   ', 'ABCDEFGHIJKL', '1234567890123456', 'Магазин', 'Shop!', '12-34'])
async def test_invalid_sms_names(operator: Actor, name: str) -> None:
    with pytest.raises(ValidationError) as error:
        await senders.request_sender(operator, name, Channel.SMS)
    assert 'name' in error.value.errors
    assert not await SenderName.exists()


async def test_viber_names_are_up_to_64_characters(operator: Actor) -> None:
    await senders.request_sender(operator, 'Магазин «Ромашка» ' + 'x' * 46, 'viber')
    with pytest.raises(ValidationError, match='at most 64'):
        await senders.request_sender(operator, 'x' * 65, Channel.VIBER)


@pytest.mark.parametrize('channel', [Channel.EMAIL, Channel.WHATSAPP, 'fax'])
async def test_only_sms_and_viber_have_sender_names(operator: Actor, channel) -> None:
    with pytest.raises(ValidationError) as error:
        await senders.request_sender(operator, 'MyShop', channel)
    assert error.value.errors['channel'] == 'Sender names are registered for SMS, Viber only.'


async def test_duplicates_are_refused_but_the_same_name_may_exist_on_another_channel(operator: Actor,
                                                                                     admin: Actor) -> None:
    sender = await senders.request_sender(operator, 'MyShop', Channel.SMS)
    with pytest.raises(ValidationError, match='already been requested and awaits a decision'):
        await senders.request_sender(operator, 'MyShop', Channel.SMS)
    await senders.decide_sender(admin, sender.id, True)
    with pytest.raises(ValidationError, match='"MyShop" for SMS is already approved'):
        await senders.request_sender(admin, 'MyShop', Channel.SMS)
    await senders.request_sender(operator, 'MyShop', Channel.VIBER)
    assert await SenderName.all().count() == 2


async def test_approve_and_reject(operator: Actor, admin: Actor) -> None:
    shop = await senders.request_sender(operator, 'MyShop', Channel.SMS, 'Registered with all carriers')
    bank = await senders.request_sender(operator, 'MyBank', Channel.SMS)
    approved = await senders.decide_sender(admin, shop.id, True)
    assert approved.status is SenderStatus.APPROVED and approved.decided_by_id == admin.user_id
    assert approved.decided_at is not None and approved.comment == 'Registered with all carriers'
    with pytest.raises(ValidationError) as error:
        await senders.decide_sender(admin, bank.id, False, '  ')
    assert error.value.errors == {'comment': 'Say why the name is rejected.'}
    rejected = await senders.decide_sender(admin, bank.id, False, 'Not registered with the carriers')
    assert rejected.status is SenderStatus.REJECTED and rejected.comment == 'Not registered with the carriers'
    with pytest.raises(ValidationError, match='already rejected'):
        await senders.decide_sender(admin, bank.id, True)
    assert await senders.approved_names(Channel.SMS) == ['MyShop']
    assert await senders.is_approved(Channel.SMS, 'MyShop') and not await senders.is_approved(Channel.SMS, 'MyBank')


async def test_a_rejected_name_may_be_requested_again(operator: Actor, admin: Actor) -> None:
    sender = await senders.request_sender(operator, 'MyShop', Channel.SMS)
    await senders.decide_sender(admin, sender.id, False, 'Register it first')
    other = await make_actor(Role.OPERATOR, 'other@example.com')
    again = await senders.request_sender(other, 'MyShop', Channel.SMS, 'Registered now')
    assert again.id == sender.id
    stored = await SenderName.get(id=sender.id)
    assert stored.status is SenderStatus.REQUESTED and stored.comment == 'Registered now'
    assert stored.requested_by_id == other.user_id and stored.decided_by_id is None and stored.decided_at is None
    event = await AuditEvent.filter(entity_type='sender_name').order_by('-id').first()
    assert event.action == 'request' and event.actor_label == 'other@example.com'
    assert event.changes['status'] == ['rejected', 'requested']


async def test_permissions(db) -> None:
    viewer, operator = await make_actor(Role.VIEWER), await make_actor(Role.OPERATOR)
    with pytest.raises(PermissionDenied):
        await senders.request_sender(viewer, 'MyShop', Channel.SMS)
    sender = await senders.request_sender(operator, 'MyShop', Channel.SMS)
    for actor in (viewer, operator):
        with pytest.raises(PermissionDenied):
            await senders.decide_sender(actor, sender.id, True)
        with pytest.raises(PermissionDenied):
            await senders.delete_sender(actor, sender.id)
    assert (await senders.list_senders(viewer))[0] == 1
    assert (await SenderName.get(id=sender.id)).status is SenderStatus.REQUESTED


async def test_delete(operator: Actor, admin: Actor) -> None:
    sender = await senders.request_sender(operator, 'MyShop', Channel.SMS)
    await senders.delete_sender(admin, sender.id)
    assert not await SenderName.exists()
    with pytest.raises(NotFound):
        await senders.delete_sender(admin, sender.id)
    with pytest.raises(NotFound):
        await senders.decide_sender(admin, sender.id, True)


async def test_every_change_is_audited(operator: Actor, admin: Actor) -> None:
    sender = await senders.request_sender(operator, 'MyShop', Channel.SMS, 'please')
    await senders.decide_sender(admin, sender.id, True, 'ok')
    await senders.delete_sender(admin, sender.id)
    events = await AuditEvent.filter(entity_type='sender_name', entity_id=str(sender.id)).order_by('id')
    assert [(e.action, e.actor_label) for e in events] == [
        ('request', 'operator@example.com'), ('approve', 'admin@example.com'), ('delete', 'admin@example.com')]
    assert events[0].changes['name'] == [None, 'MyShop']
    assert events[1].changes == {'status': ['requested', 'approved'], 'comment': ['please', 'ok']}
    assert events[1].summary == 'Approved sender name "MyShop" for SMS'
    assert events[2].changes['status'] == ['approved', None]


async def test_list_filters_sorts_and_pages(operator: Actor, admin: Actor) -> None:
    for name in ('Alpha', 'Bravo', 'Charlie', 'Delta'):
        await senders.request_sender(operator, name, Channel.SMS)
    viber = await senders.request_sender(operator, 'Alpha Viber', Channel.VIBER)
    await senders.decide_sender(admin, viber.id, True)
    total, rows = await senders.list_senders(admin, sort='name', descending=False, offset=1, limit=2)
    assert total == 5 and [r.name for r in rows] == ['Alpha Viber', 'Bravo']
    assert rows[0].requested_by.email == 'operator@example.com' and rows[0].decided_by.email == 'admin@example.com'
    assert rows[1].decided_by is None
    total, rows = await senders.list_senders(admin, status=SenderStatus.APPROVED)
    assert total == 1 and rows[0].name == 'Alpha Viber'
    total, rows = await senders.list_senders(admin, channel=Channel.SMS, search='ALPHA')
    assert total == 1 and rows[0].name == 'Alpha'
    total, rows = await senders.list_senders(admin, sort='password_hash', descending=True, limit=None)
    assert total == 5 and rows[0].name == 'Alpha Viber'


# --- the page ---------------------------------------------------------------------------------------------





async def test_operator_requests_a_name_and_sees_it(user: User) -> None:
    await sign_in_as(user, Role.OPERATOR)
    await user.open('/settings/senders')
    user.find('Request sender name').click()
    await user.should_see('Request a sender name')
    user.find(kind=ui.input, content='Sender name').type('Shop!')
    user.find('Submit request').click()
    await user.should_see('at least one letter')
    user.find(kind=ui.input, content='Sender name').clear().type('MyShop')
    user.find('Comment').type('Registered with MTS')
    user.find('Submit request').click()
    await user.should_see('Requested "MyShop" for SMS')
    rows = table_rows(user)
    assert [(r['name'], r['channel'], r['status'], r['comment'], r['requested_by']) for r in rows] == [
        ('MyShop', 'SMS', 'requested', 'Registered with MTS', 'operator@example.com')]
    assert 'actions' not in [c['name'] for c in user.find(ui.table).elements.pop().columns]


async def test_admin_approves_rejects_and_deletes(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    operator = await make_actor(Role.OPERATOR)
    shop = await senders.request_sender(operator, 'MyShop', Channel.SMS)
    bank = await senders.request_sender(operator, 'MyBank', Channel.VIBER)
    await user.open('/settings/senders')
    table = user.find(ui.table)
    table.trigger('approve', {'id': shop.id, 'name': 'MyShop'})
    await user.should_see('Approve "MyShop"?')
    user.find(kind=ui.button, content='Approve').click()
    await user.should_see('"MyShop" approved')
    table.trigger('reject', {'id': bank.id, 'name': 'MyBank'})
    await user.should_see('Reject "MyBank"?')
    user.find(kind=ui.button, content='Reject').click()
    await user.should_see('Say why the name is rejected.')
    user.find('Comment').type('Not registered')
    user.find(kind=ui.button, content='Reject').click()
    await user.should_see('"MyBank" rejected')
    assert {r['name']: r['status'] for r in table_rows(user)} == {'MyShop': 'approved', 'MyBank': 'rejected'}
    table.trigger('delete', {'id': bank.id, 'name': 'MyBank'})
    await user.should_see('Delete the sender name "MyBank"?')
    user.find(kind=ui.button, content='Delete').click()
    await user.should_see('"MyBank" deleted')
    assert [r['name'] for r in table_rows(user)] == ['MyShop']


async def test_filters_come_from_the_url_and_pages_come_from_the_server(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    admin = Actor.of(await auth.User.get(email='admin@example.com'))
    for i in range(25):
        await senders.request_sender(admin, f'Shop{i:02}', Channel.SMS)
    await senders.request_sender(admin, 'Viber shop', Channel.VIBER)
    await user.open('/settings/senders?channel=viber')
    assert [r['name'] for r in table_rows(user)] == ['Viber shop']
    next(iter(user.find(kind=ui.select, content='Channel').elements)).value = None
    await eventually(lambda: len(table_rows(user)) == 20)
    next(iter(user.find(kind=ui.input, content='Search').elements)).value = 'viber'
    await eventually(lambda: [r['name'] for r in table_rows(user)] == ['Viber shop'])
    await user.open('/settings/senders?status=approved')
    assert table_rows(user) == []
    await user.open('/settings/senders?channel=sms&search=shop1')
    assert len(table_rows(user)) == 10
    await user.open('/settings/senders?channel=sms&status=nonsense')
    table = next(iter(user.find(ui.table).elements))
    assert len(table.rows) == 20 and table.pagination['rowsNumber'] == 25
    page_two = {'page': 2, 'rowsPerPage': 20, 'sortBy': 'name', 'descending': False}
    user.find(ui.table).trigger('request', {'pagination': page_two})
    await eventually(lambda: [r['name'] for r in table.rows] == ['Shop20', 'Shop21', 'Shop22', 'Shop23', 'Shop24'])
    assert table.pagination['page'] == 2


async def test_viewer_sees_the_list_only(user: User) -> None:
    await sign_in_as(user, Role.VIEWER)
    await senders.request_sender(auth.SYSTEM, 'MyShop', Channel.SMS)
    await user.open('/settings/senders')
    assert [r['name'] for r in table_rows(user)] == ['MyShop']
    await user.should_not_see('Request sender name')
    assert 'actions' not in [c['name'] for c in user.find(ui.table).elements.pop().columns]
