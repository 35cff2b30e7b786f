"""API authentication: tokens from /auth/login and /auth/refresh, API keys and their scopes, rate limits, and a walk
over every operation of the OpenAPI document that nothing answers without a valid, fitting credential."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import jwt
import pytest
from helpers import PASSWORD
from nicegui import app
from nicegui.testing import User

from domain import auth, users
from domain.auth import SYSTEM, Actor, Scope
from domain.models import ApiKey, Role

PUBLIC = {'/api/v1/auth/login', '/api/v1/auth/refresh'}
METHODS = {'get', 'post', 'put', 'patch', 'delete'}
LIST = '/api/v1/templates'  # any operation that answers 200 to a caller with every scope


def client(token: str | None = None) -> httpx.AsyncClient:
    headers = {'Authorization': f'Bearer {token}'} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://herald.test', headers=headers)


async def login(email: str = 'op@example.com', password: str = PASSWORD, **extra: object) -> httpx.Response:
    async with client() as api:
        return await api.post('/api/v1/auth/login', json={'email': email, 'password': password, **extra})


def expired_token(user_record: auth.User, monkeypatch: pytest.MonkeyPatch) -> str:
    real_now = auth.now
    with monkeypatch.context() as patch:
        patch.setattr(auth, 'now', lambda: real_now() - timedelta(hours=2))
        return auth.issue_tokens(user_record, ttl=60).auth_token


def api_operations(schema: dict) -> list[tuple[str, str]]:
    """Every operation under /api/v1 except the public ones, with each path parameter set to a random uuid."""
    return [(method.upper(), re.sub(r'\{[^}]+\}', lambda _: str(uuid.uuid4()), path))
            for path, item in schema['paths'].items() if path.startswith('/api/v1/') and path not in PUBLIC
            for method in item if method in METHODS]


def assert_error(response: httpx.Response, status: int, what: str) -> None:
    assert response.status_code == status, f'{what}: {response.status_code} {response.text[:300]}'
    assert response.json()['error']['message'], what
    if status == 401:
        assert response.headers['www-authenticate'] == 'Bearer', what


async def test_every_operation_needs_a_valid_credential_with_the_right_scope(
        user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    async with client() as api:
        response = await api.get('/api/openapi.json')
    assert response.status_code == 200
    operations = api_operations(response.json())
    assert ('GET', LIST) in operations
    someone = await auth.create_user('op@example.com', PASSWORD, Role.ADMIN)
    claims = {'sub': str(someone.id), 'sv': 0, 'typ': 'auth', 'exp': 4102444800}
    wrongly_signed, unsigned = jwt.encode(claims, 'x' * 32), jwt.encode(claims, None, algorithm='none')
    revoked, revoked_secret = await auth.create_api_key('revoked')
    await auth.revoke_api_key(SYSTEM, revoked.id)
    unscoped, unscoped_secret = await auth.create_api_key('unscoped', [Scope.PHONES_CHECK])
    await ApiKey.filter(id=unscoped.id).update(scopes=[])
    refused = {'no token': None, 'garbage': 'garbage', 'garbage key': 'hk_garbage', 'foreign JWT': wrongly_signed,
               'unsigned JWT': unsigned, 'expired JWT': expired_token(someone, monkeypatch),
               'revoked key': revoked_secret}
    for method, path in operations:
        for what, token in refused.items():
            async with client(token) as api:
                assert_error(await api.request(method, path), 401, f'{method} {path} with {what}')
        async with client(unscoped_secret) as api:
            assert_error(await api.request(method, path), 403, f'{method} {path} with a key without scopes')


async def test_login_gives_tokens_that_work_and_refresh(user: User) -> None:
    account = await auth.create_user('op@example.com', PASSWORD, Role.OPERATOR)
    response = await login(ttl=120)
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {'authToken', 'refreshToken'}
    claims = jwt.decode(tokens['authToken'], options={'verify_signature': False})
    assert claims['exp'] - claims['iat'] == 120 and claims['sub'] == str(account.id)
    async with client(tokens['authToken']) as api:
        assert (await api.get(LIST)).status_code == 200
    async with client() as api:
        refreshed = await api.post('/api/v1/auth/refresh', json={'refreshToken': tokens['refreshToken']})
    assert refreshed.status_code == 200
    new_claims = jwt.decode(refreshed.json()['authToken'], options={'verify_signature': False})
    assert new_claims['exp'] - new_claims['iat'] == auth.TOKEN_TTL
    async with client(refreshed.json()['authToken']) as api:
        assert (await api.get(LIST)).status_code == 200
    actor = await auth.actor_for_token(refreshed.json()['authToken'])
    assert actor == Actor.of(account)


async def test_login_refuses_wrong_credentials_bad_ttl_and_throttles(user: User) -> None:
    await auth.create_user('op@example.com', PASSWORD, Role.OPERATOR)
    for email, password in (('op@example.com', 'wrong password'), ('nobody@example.com', PASSWORD)):
        assert_error(await login(email, password), 401, f'{email} / {password}')
    for ttl in (59, 86401):
        assert (await login(ttl=ttl)).status_code == 422
    for _ in range(auth.MAX_FAILED_LOGINS - 1):  # one failure above already counted
        await login(password='wrong password')
    assert_error(await login(), 429, 'a locked account')


async def test_a_token_is_only_good_for_its_purpose(user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    account = await auth.create_user('op@example.com', PASSWORD, Role.OPERATOR)
    tokens = (await login()).json()
    async with client(tokens['refreshToken']) as api:
        assert_error(await api.get(LIST), 401, 'a refresh token as auth token')
    async with client() as api:
        for bad in (tokens['authToken'], 'garbage', auth.issue_tokens(account).refresh_token[:-2] + 'xx'):
            response = await api.post('/api/v1/auth/refresh', json={'refreshToken': bad})
            assert_error(response, 401, f'refresh with {bad[:20]}')
    async with client(expired_token(account, monkeypatch)) as api:
        assert_error(await api.get(LIST), 401, 'an expired token')


async def test_deactivating_or_signing_out_everywhere_ends_tokens(user: User) -> None:
    admin = Actor.of(await auth.create_user('admin@example.com', PASSWORD, Role.ADMIN))
    account = await auth.create_user('op@example.com', PASSWORD, Role.OPERATOR)
    tokens = (await login()).json()
    await users.reset_password(admin, account.id, 'another long password')  # ends every session
    async with client(tokens['authToken']) as api:
        assert_error(await api.get(LIST), 401, 'a token from before a password reset')
    async with client() as api:
        response = await api.post('/api/v1/auth/refresh', json={'refreshToken': tokens['refreshToken']})
        assert_error(response, 401, 'a refresh token from before a password reset')
    tokens = (await login(password='another long password')).json()
    await users.set_active(admin, account.id, False)
    async with client(tokens['authToken']) as api:
        assert_error(await api.get(LIST), 401, "a deactivated user's token")


async def test_rate_limit_per_key(user: User) -> None:
    _, slow = await auth.create_api_key('slow', rate_limit_per_minute=3)
    _, other = await auth.create_api_key('other')
    async with client(slow) as api:
        for _ in range(3):
            assert (await api.get(LIST)).status_code == 200
        response = await api.get(LIST)
    assert_error(response, 429, 'the fourth request in a minute')
    assert 1 <= int(response.headers['retry-after']) <= 20
    async with client(other) as api:
        assert (await api.get(LIST)).status_code == 200


async def test_last_used_is_written_at_most_once_a_minute(user: User) -> None:
    key, secret = await auth.create_api_key('crm')
    async with client(secret) as api:
        await api.get(LIST)
        first = (await ApiKey.get(id=key.id)).last_used_at
        assert first is not None
        await api.get(LIST)
        assert (await ApiKey.get(id=key.id)).last_used_at == first
        await ApiKey.filter(id=key.id).update(last_used_at=first - timedelta(minutes=2))
        await api.get(LIST)
    assert (await ApiKey.get(id=key.id)).last_used_at > first


async def test_key_actor_has_the_key_scopes(user: User) -> None:
    _, everything = await auth.create_api_key('all')
    _, reader = await auth.create_api_key('reader', [Scope.TEMPLATES_READ, 'messages:read'], 50)
    _, settings = await auth.create_api_key('settings', [Scope.SETTINGS_WRITE])
    assert (await auth.actor_for_token(everything)).scopes == frozenset(Scope)
    actor = await auth.actor_for_token(reader)
    assert (actor.scopes, actor.role, actor.rate_limit_per_minute) == (
        {Scope.TEMPLATES_READ, Scope.MESSAGES_READ}, Role.OPERATOR, 50)
    assert (await auth.actor_for_token(settings)).role is Role.ADMIN  # settings services need the admin's permission
