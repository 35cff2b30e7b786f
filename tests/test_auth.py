"""Sign-in, sessions, roles, throttling and the API's bearer guard."""
import httpx
import pytest
from helpers import PASSWORD, sign_in_as
from nicegui import app
from nicegui.testing import User

from domain import auth
from domain.auth import Actor, Permission
from domain.errors import LoginThrottled, PermissionDenied, ValidationError
from domain.models import ApiKey, Role


async def test_every_page_leads_to_first_run_setup_without_users(user: User) -> None:
    for path in ('/', '/templates', '/settings/users'):
        await user.open(path)
        await user.should_see('Welcome to Herald')


async def test_first_run_creates_the_admin_and_then_is_closed(user: User) -> None:
    await user.open('/setup')
    user.find('Email').type('boss@example.com')
    user.find('Password').type(PASSWORD)
    user.find('Repeat password').type(PASSWORD)
    user.find('Create administrator').click()
    await user.should_see('Sign out')
    admin = await auth.User.get(email='boss@example.com')
    assert admin.role is Role.ADMIN
    with pytest.raises(PermissionDenied):
        await auth.create_first_admin('intruder@example.com', PASSWORD)


async def test_first_run_rejects_short_password_and_creates_nothing(user: User) -> None:
    await user.open('/setup')
    user.find('Email').type('boss@example.com')
    user.find('Password').type('short')
    user.find('Repeat password').type('short')
    user.find('Create administrator').click()
    await user.should_see('at least 8 characters')
    assert not await auth.has_users()


async def test_unauthenticated_page_redirects_to_login_and_back(user: User) -> None:
    await auth.create_user('op@example.com', PASSWORD, Role.OPERATOR)
    await user.open('/templates')
    await user.should_see('Notification center')
    user.find('Email').type('op@example.com')
    user.find('Password').type(PASSWORD)
    user.find('Sign in').click()
    await user.should_see('Templates')
    await user.should_see('Sign out')


async def test_wrong_password_is_refused(user: User) -> None:
    await auth.create_user('op@example.com', PASSWORD, Role.OPERATOR)
    await user.open('/login')
    user.find('Email').type('op@example.com')
    user.find('Password').type('not the password')
    user.find('Sign in').click()
    await user.should_see('Wrong email or password.')
    await user.should_not_see('Sign out')


async def test_sign_out_ends_the_session(user: User) -> None:
    await sign_in_as(user, Role.OPERATOR)
    user.find(marker='sign-out').click()
    await user.should_see('Notification center')
    await user.open('/templates')
    await user.should_see('Notification center')


async def test_viewer_cannot_open_admin_pages(user: User) -> None:
    await sign_in_as(user, Role.VIEWER)
    await user.open('/settings/users')
    await user.should_see('has no access to this page')
    await user.should_not_see('Add user')


async def test_failed_logins_lock_the_account(db) -> None:
    await auth.create_user('op@example.com', PASSWORD, Role.OPERATOR)
    for _ in range(auth.MAX_FAILED_LOGINS):
        with pytest.raises(ValidationError):
            await auth.authenticate('op@example.com', 'wrong password')
    with pytest.raises(LoginThrottled):
        await auth.authenticate('op@example.com', PASSWORD)


async def test_successful_login_resets_the_failure_count(db) -> None:
    await auth.create_user('op@example.com', PASSWORD, Role.OPERATOR)
    for _ in range(auth.MAX_FAILED_LOGINS - 1):
        with pytest.raises(ValidationError):
            await auth.authenticate('op@example.com', 'wrong password')
    await auth.authenticate('OP@example.com', PASSWORD)
    with pytest.raises(ValidationError):
        await auth.authenticate('op@example.com', 'wrong password')
    assert (await auth.authenticate('op@example.com', PASSWORD)).email == 'op@example.com'


async def test_passwords_are_stored_as_argon2_hashes(db) -> None:
    created = await auth.create_user('op@example.com', PASSWORD, Role.OPERATOR)
    assert created.password_hash.startswith('$argon2id$')
    assert PASSWORD not in created.password_hash


async def test_deactivated_user_cannot_sign_in(db) -> None:
    created = await auth.create_user('op@example.com', PASSWORD, Role.OPERATOR)
    created.is_active = False
    await created.save()
    with pytest.raises(ValidationError):
        await auth.authenticate('op@example.com', PASSWORD)


@pytest.mark.parametrize(('role', 'allowed'), [
    (Role.VIEWER, {Permission.VIEW}),
    (Role.OPERATOR, {Permission.VIEW, Permission.MANAGE_TEMPLATES, Permission.SEND, Permission.REQUEST_SENDER}),
    (Role.ADMIN, set(Permission)),
])
def test_role_permissions(role: Role, allowed: set[Permission]) -> None:
    actor = Actor(label='someone', role=role)
    for permission in Permission:
        assert actor.can(permission) is (permission in allowed)
        if permission not in allowed:
            with pytest.raises(PermissionDenied):
                actor.require(permission)


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://test')


async def test_api_refuses_requests_without_a_valid_bearer_token(user: User) -> None:
    _, secret = await auth.create_api_key('ci')
    async with _client() as client:
        for headers in ({}, {'Authorization': 'Bearer nope'}, {'Authorization': f'Basic {secret}'}):
            for path in ('/api/v1/templates', '/api/v1/no-such-route'):
                response = await client.get(path, headers=headers)
                assert response.status_code == 401
                assert response.json()['error']['message']


async def test_api_key_is_accepted_hashed_and_revocable(user: User) -> None:
    key, secret = await auth.create_api_key('crm')
    assert secret not in key.key_hash
    async with _client() as client:
        response = await client.get('/api/v1/templates', headers={'Authorization': f'Bearer {secret}'})
        assert response.status_code == 200
        assert (await ApiKey.get(id=key.id)).last_used_at is not None
        await ApiKey.filter(id=key.id).update(revoked_at=auth.now())
        response = await client.get('/api/v1/templates', headers={'Authorization': f'Bearer {secret}'})
        assert response.status_code == 401
