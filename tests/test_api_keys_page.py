"""Settings → API keys: admins create keys (the secret shown once), see them used, and revoke them."""
from __future__ import annotations

import httpx
import pytest
from helpers import eventually, make_actor, sign_in_as, table_rows
from nicegui import app, ui
from nicegui.testing import User

from domain import auth
from domain.auth import Scope
from domain.errors import PermissionDenied, ValidationError
from domain.models import ApiKey, AuditEvent, Role


async def call_api(secret: str) -> int:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://herald.test',
                                 headers={'Authorization': f'Bearer {secret}'}) as api:
        return (await api.get('/api/v1/templates')).status_code


async def test_admin_creates_a_key_and_sees_its_secret_once(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    await user.open('/settings/api-keys')
    user.find('New API key').click()
    await user.should_see('Create key')
    user.find('Create key').click()
    await user.should_see('Give the key a name.')
    user.find(kind=ui.input, content='Name').type('CRM')
    for scope in (Scope.TASKS_WRITE, Scope.SETTINGS_WRITE):
        user.find(kind=ui.checkbox, content=scope.label).click()
    next(iter(user.find(kind=ui.number, content='Requests a minute').elements)).value = 120
    user.find('Create key').click()
    await user.should_see('will not be shown again')
    secret = next(iter(user.find(marker='secret').elements)).text
    assert secret.startswith(auth.API_KEY_PREFIX)
    key = await ApiKey.get(name='CRM')
    assert secret not in key.key_hash and key.rate_limit_per_minute == 120
    assert set(key.scopes) == {scope.value for scope in Scope} - {'tasks:write', 'settings:write'}
    user.find('Done').click()
    await user.should_not_see('will not be shown again')
    [row] = table_rows(user)
    assert (row['name'], row['prefix'], row['status'], row['rate_limit'], row['created_by'], row['last_used_at']) \
        == ('CRM', f'{secret[:10]}…', 'active', 120, 'admin@example.com', None)
    assert 'Write tasks' not in row['scopes'] and 'Read templates' in row['scopes']
    assert await call_api(secret) == 200
    await user.open('/settings/api-keys')
    await user.should_see('API keys')
    await user.should_not_see(secret)
    await eventually(lambda: table_rows(user)[0]['last_used_at'] is not None)
    assert await AuditEvent.filter(entity_type='api_key', action='create', actor_label='admin@example.com').exists()


async def test_admin_revokes_a_key_and_it_stops_working(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    key, secret = await auth.create_api_key('CI')
    assert await call_api(secret) == 200
    await user.open('/settings/api-keys')
    await user.should_see('API keys')
    [row] = table_rows(user)
    assert (row['scopes'], row['created_by'], row['status']) == ('All', 'system', 'active')
    user.find(ui.table).trigger('revoke', row)
    await user.should_see('Revoke the API key "CI"?')
    user.find(kind=ui.button, content='Revoke').click()
    await user.should_see('Revoked "CI".')
    await eventually(lambda: table_rows(user)[0]['status'] == 'revoked')
    assert await call_api(secret) == 401
    assert await AuditEvent.filter(entity_type='api_key', entity_id=str(key.id), action='revoke').exists()


@pytest.mark.parametrize('role', [Role.VIEWER, Role.OPERATOR])
async def test_only_admins_open_the_page(user: User, role: Role) -> None:
    await sign_in_as(user, role)
    await user.open('/settings/api-keys')
    await user.should_see('has no access to this page')
    await user.should_not_see('New API key')


async def test_services_check_permission_and_input(db) -> None:
    operator = await make_actor(Role.OPERATOR)
    admin = await make_actor(Role.ADMIN)
    key, _ = await auth.create_api_key('CI', actor=admin)
    for action in (auth.create_api_key('x', actor=operator), auth.list_api_keys(operator),
                   auth.revoke_api_key(operator, key.id)):
        with pytest.raises(PermissionDenied):
            await action
    for name, scopes, rate, field in (('  ', None, 600, 'name'), ('x', ['users:delete'], 600, 'scopes'),
                                      ('x', [], 600, 'scopes'), ('x', None, 0, 'rate_limit_per_minute'),
                                      ('x', None, 100_001, 'rate_limit_per_minute')):
        with pytest.raises(ValidationError) as error:
            await auth.create_api_key(name, scopes, rate, actor=admin)
        assert set(error.value.errors) == {field}
    assert [k.name for k in await auth.list_api_keys(admin)] == ['CI']
    assert (await auth.list_api_keys(admin))[0].created_by.email == 'admin@example.com'
