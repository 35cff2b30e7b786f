"""User management: permissions, guard rails around admins, ended sessions, audit, and the page."""
import asyncio

import pytest
from helpers import PASSWORD, eventually, make_actor, sign_in_as, table_rows
from nicegui import ui
from nicegui.testing import User

from domain import auth, users
from domain.auth import SYSTEM, Actor
from domain.errors import NotFound, PermissionDenied, ValidationError
from domain.models import AuditEvent, Role
from domain.models import User as UserModel


@pytest.fixture
async def admin(db) -> Actor:
    return await make_actor(Role.ADMIN)


async def test_add_user(admin: Actor) -> None:
    user = await users.add_user(admin, ' Ann@Example.com ', 'long enough', 'operator', 'Ann')
    assert (user.email, user.name, user.role) == ('ann@example.com', 'Ann', Role.OPERATOR)
    assert await auth.authenticate('ann@example.com', 'long enough')
    with pytest.raises(ValidationError) as error:
        await users.add_user(admin, 'ann@example.com', 'long enough', Role.VIEWER)
    assert error.value.errors == {'email': 'A user with this email already exists.'}
    with pytest.raises(ValidationError) as error:
        await users.add_user(admin, 'bob@example.com', 'short', 'boss')
    assert set(error.value.errors) == {'role'}
    assert [u.email for u in await users.list_users(admin)] == ['admin@example.com', 'ann@example.com']


@pytest.mark.parametrize('role', [Role.VIEWER, Role.OPERATOR])
async def test_only_admins_manage_users(db, role: Role) -> None:
    actor = await make_actor(role)
    other = await auth.create_user('other@example.com', PASSWORD, Role.VIEWER)
    calls = [users.list_users(actor), users.add_user(actor, 'x@example.com', PASSWORD, Role.ADMIN),
             users.change_role(actor, other.id, Role.ADMIN), users.set_active(actor, other.id, False),
             users.reset_password(actor, other.id, 'new password'), users.delete_user(actor, other.id)]
    for call in calls:
        with pytest.raises(PermissionDenied):
            await call
    stored = await UserModel.get(id=other.id)
    assert (stored.role, stored.is_active, stored.session_version) == (Role.VIEWER, True, 0)
    assert not await UserModel.filter(email='x@example.com').exists()


async def test_role_change_deactivation_and_password_reset_end_sessions(admin: Actor) -> None:
    user = await auth.create_user('ann@example.com', PASSWORD, Role.OPERATOR)
    assert await auth.active_user(user.id, 0)
    changed = await users.change_role(admin, user.id, Role.VIEWER)
    assert changed.role is Role.VIEWER and changed.session_version == 1
    assert await auth.active_user(user.id, 0) is None
    assert (await users.change_role(admin, user.id, 'viewer')).session_version == 1  # no change, no bump
    reset = await users.reset_password(admin, user.id, 'a new password')
    assert reset.session_version == 2
    assert await auth.authenticate('ann@example.com', 'a new password')
    with pytest.raises(ValidationError, match='at least 8'):
        await users.reset_password(admin, user.id, 'short')
    deactivated = await users.set_active(admin, user.id, False)
    assert deactivated.session_version == 3 and not deactivated.is_active
    with pytest.raises(ValidationError):
        await auth.authenticate('ann@example.com', 'a new password')
    activated = await users.set_active(admin, user.id, True)
    assert activated.is_active and activated.session_version == 3
    assert await auth.active_user(user.id, 3)


async def test_password_reset_unlocks_the_account(admin: Actor) -> None:
    user = await auth.create_user('ann@example.com', PASSWORD, Role.OPERATOR)
    for _ in range(auth.MAX_FAILED_LOGINS):
        with pytest.raises(ValidationError):
            await auth.authenticate('ann@example.com', 'wrong password')
    assert (await UserModel.get(id=user.id)).locked_until is not None
    await users.reset_password(admin, user.id, 'a new password')
    assert await auth.authenticate('ann@example.com', 'a new password')


async def test_an_admin_cannot_demote_deactivate_or_delete_themselves(admin: Actor) -> None:
    await auth.create_user('second@example.com', PASSWORD, Role.ADMIN)
    for call, message in ((users.change_role(admin, admin.user_id, Role.OPERATOR), 'cannot demote yourself'),
                          (users.set_active(admin, admin.user_id, False), 'cannot deactivate yourself'),
                          (users.delete_user(admin, admin.user_id), 'cannot delete yourself')):
        with pytest.raises(PermissionDenied, match=message):
            await call
    me = await UserModel.get(id=admin.user_id)
    assert (me.role, me.is_active, me.session_version) == (Role.ADMIN, True, 0)


async def test_the_last_active_admin_stays(admin: Actor) -> None:
    last = await UserModel.get(id=admin.user_id)
    for call, message in ((users.change_role(SYSTEM, last.id, Role.VIEWER), 'cannot be demoted'),
                          (users.set_active(SYSTEM, last.id, False), 'cannot be deactivated'),
                          (users.delete_user(SYSTEM, last.id), 'cannot be deleted')):
        with pytest.raises(PermissionDenied, match='admin@example.com is the last active admin and ' + message):
            await call
    inactive = await auth.create_user('inactive@example.com', PASSWORD, Role.ADMIN)
    await users.set_active(admin, inactive.id, False)
    with pytest.raises(PermissionDenied, match='last active admin'):
        await users.change_role(SYSTEM, last.id, Role.OPERATOR)
    second = await auth.create_user('second@example.com', PASSWORD, Role.ADMIN)
    await users.change_role(SYSTEM, last.id, Role.OPERATOR)
    with pytest.raises(PermissionDenied, match='second@example.com is the last active admin'):
        await users.delete_user(SYSTEM, second.id)
    await users.delete_user(SYSTEM, inactive.id)  # an inactive admin is no safeguard: it may go
    assert await UserModel.filter(role=Role.ADMIN, is_active=True).count() == 1


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(admin: Actor) -> None:
    other = Actor.of(await auth.create_user('second@example.com', PASSWORD, Role.ADMIN))
    results = await asyncio.gather(users.change_role(admin, other.user_id, Role.OPERATOR),
                                   users.change_role(other, admin.user_id, Role.OPERATOR), return_exceptions=True)
    assert sorted(type(result).__name__ for result in results) == ['PermissionDenied', 'User']
    assert await UserModel.filter(role=Role.ADMIN, is_active=True).count() == 1


async def test_delete_user(admin: Actor) -> None:
    user = await auth.create_user('ann@example.com', PASSWORD, Role.OPERATOR)
    await users.delete_user(admin, user.id)
    assert not await UserModel.filter(id=user.id).exists()
    with pytest.raises(NotFound):
        await users.delete_user(admin, user.id)


async def test_changes_are_audited_without_secrets(admin: Actor) -> None:
    user = await users.add_user(admin, 'ann@example.com', 'secret password', Role.OPERATOR, 'Ann')
    await users.change_role(admin, user.id, Role.VIEWER)
    await users.set_active(admin, user.id, False)
    await users.reset_password(admin, user.id, 'other secret pw')
    await users.delete_user(admin, user.id)
    events = await AuditEvent.filter(entity_type='user', entity_id=str(user.id)).order_by('id')
    assert [e.action for e in events] == ['create', 'update', 'update', 'update', 'delete']
    assert {e.actor_label for e in events} == {'admin@example.com'}
    assert events[0].changes == {'email': [None, 'ann@example.com'], 'name': [None, 'Ann'],
                                 'role': [None, 'operator'], 'is_active': [None, True]}
    assert events[1].changes == {'role': ['operator', 'viewer']}
    assert events[2].changes == {'is_active': [True, False]}
    assert events[3].summary == 'Reset the password of ann@example.com' and events[3].changes == {}
    stored = ' '.join(f'{e.summary} {e.changes}' for e in await AuditEvent.all())
    assert 'secret' not in stored and 'argon2' not in stored and 'password_hash' not in stored


# --- the page ---------------------------------------------------------------------------------------------

async def test_admin_adds_a_user(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    await user.open('/settings/users')
    user.find('Add user').click()
    await user.should_see('Add a user')
    user.find(kind=ui.input, content='Email').type('ann@example.com')
    user.find(kind=ui.input, content='Name').type('Ann')
    user.find(kind=ui.input, content='Password').type('short')
    user.find('Create user').click()
    await user.should_see('at least 8 characters')
    user.find(kind=ui.input, content='Password').clear().type('long enough')
    next(iter(user.find(kind=ui.select, content='Role').elements)).value = 'viewer'
    user.find('Create user').click()
    await user.should_see('Added ann@example.com.')
    rows = {r['email']: r for r in table_rows(user)}
    assert (rows['ann@example.com']['name'], rows['ann@example.com']['role']) == ('Ann', 'viewer')
    assert rows['admin@example.com']['me'] and not rows['ann@example.com']['me']
    assert rows['admin@example.com']['last_login_at'] is not None
    assert (await UserModel.get(email='ann@example.com')).role is Role.VIEWER


async def test_admin_changes_role_activity_password_and_deletes(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    ann = await auth.create_user('ann@example.com', PASSWORD, Role.OPERATOR)
    await user.open('/settings/users')
    table = user.find(ui.table)
    table.trigger('role', {'id': ann.id, 'role': 'admin'})
    await user.should_see('Saved.')
    table.trigger('active', {'id': ann.id, 'active': False})
    await eventually(lambda: {r['email']: (r['role'], r['is_active']) for r in table_rows(user)}['ann@example.com']
                     == ('admin', False))
    table.trigger('reset', {'id': ann.id, 'email': 'ann@example.com'})
    await user.should_see('New password for ann@example.com')
    user.find(kind=ui.input, content='New password').type('brand new password')
    user.find('Set password').click()
    await user.should_see('The password of ann@example.com is reset.')
    stored = await UserModel.get(id=ann.id)
    assert (stored.role, stored.is_active, stored.session_version) == (Role.ADMIN, False, 3)
    table.trigger('delete', {'id': ann.id, 'email': 'ann@example.com'})
    await user.should_see('Delete the user ann@example.com?')
    user.find(kind=ui.button, content='Delete').click()
    await user.should_see('Deleted ann@example.com.')
    assert [r['email'] for r in table_rows(user)] == ['admin@example.com']


async def test_the_page_refuses_to_demote_yourself(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    me = await UserModel.get(email='admin@example.com')
    await user.open('/settings/users')
    user.find(ui.table).trigger('role', {'id': me.id, 'role': 'viewer'})
    await user.should_see('You cannot demote yourself')
    assert table_rows(user)[0]['role'] == 'admin'


async def test_resetting_your_own_password_keeps_this_session(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    me = await UserModel.get(email='admin@example.com')
    await user.open('/settings/users')
    user.find(ui.table).trigger('reset', {'id': me.id, 'email': me.email})
    await user.should_see('New password for admin@example.com')
    user.find(kind=ui.input, content='New password').type('brand new password')
    user.find('Set password').click()
    await user.should_see('The password of admin@example.com is reset.')
    await user.open('/settings/users')
    await user.should_see('Add user')


async def test_operator_has_no_access(user: User) -> None:
    await sign_in_as(user, Role.OPERATOR)
    await user.open('/settings/users')
    await user.should_see('Your role (operator) has no access to this page.')
    await user.should_not_see('Add user')
    with pytest.raises(AssertionError):
        user.find(ui.table)
