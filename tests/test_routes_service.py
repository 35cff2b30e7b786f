"""Provider routes: validation, one default per channel, secrets kept out of audit records and forms, permissions,
the configuration file, and the live reload of the engine's route table."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from helpers import eventually, make_actor

from domain import events, routes, seed
from domain.auth import Actor
from domain.channels import Channel
from domain.errors import NotFound, PermissionDenied, ValidationError
from domain.models import AuditEvent, ProviderRoute, Role
from domain.provider_settings import MASK
from domain.providers import OutgoingMessage, SendResult, StoredSettings
from domain.routes import RouteData
from providers.simulator import SimulatorProvider
from scheduler.engine import Engine
from scheduler.routes import Route, RouteTable

SECRET = 'hunter2-very-secret'
SMTP = {'host': 'mail.example.com', 'port': '2525', 'username': 'herald', 'password': SECRET}


def smtp(name: str = 'mail', **changes) -> RouteData:
    return RouteData(**{'name': name, 'channel': 'email', 'provider': 'smtp', 'settings': SMTP, **changes})


def sms(name: str, **changes) -> RouteData:
    return RouteData(**{'name': name, 'channel': 'sms', 'provider': 'simulator', **changes})


@pytest.fixture
async def admin(db) -> Actor:
    return await make_actor(Role.ADMIN)


async def audit_text() -> str:
    return json.dumps([[e.summary, e.changes] for e in await AuditEvent.filter(entity_type=routes.ENTITY)],
                      ensure_ascii=False)


async def test_create_stores_the_given_settings_coerced(admin: Actor) -> None:
    route = await routes.create_route(admin, smtp(concurrency='4', rate_per_second='2,5', is_default=True))
    stored = await ProviderRoute.get(id=route.id)
    assert (stored.name, stored.channel, stored.provider, stored.concurrency, stored.rate_per_second) == (
        'mail', Channel.EMAIL, 'smtp', 4, 2.5)
    assert stored.settings == {'host': 'mail.example.com', 'port': 2525, 'username': 'herald', 'password': SECRET}
    assert stored.is_default and stored.enabled


@pytest.mark.parametrize(('data', 'fields'), [
    (smtp(name=''), {'name'}),
    (smtp(name='has space'), {'name'}),
    (smtp(name='a/b'), {'name'}),
    (smtp(channel='fax'), {'channel'}),
    (smtp(provider='pigeon'), {'provider'}),
    (smtp(channel='sms'), {'provider'}),
    (smtp(concurrency=0), {'concurrency'}),
    (smtp(concurrency='1.5'), {'concurrency'}),
    (smtp(concurrency='many'), {'concurrency'}),
    (smtp(concurrency=10_000), {'concurrency'}),
    (smtp(rate_per_second=0), {'rate_per_second'}),
    (smtp(rate_per_second='-1'), {'rate_per_second'}),
    (smtp(rate_per_second='nan'), {'rate_per_second'}),
    (smtp(settings={**SMTP, 'port': 'abc'}), {'settings.port'}),
    (smtp(settings={**SMTP, 'port': '70000'}), {'settings.port'}),
    (smtp(settings={**SMTP, 'host': ''}), {'settings.host'}),
    (smtp(settings={**SMTP, 'security': 'ssl3'}), {'settings.security'}),
    (smtp(settings={**SMTP, 'colour': 'blue'}), {'settings.colour'}),
    (sms('sim', settings={'delivery_rate': '1.5'}), {'settings.delivery_rate'}),
])
async def test_validation_names_the_field_and_saves_nothing(admin: Actor, data: RouteData, fields: set[str]) -> None:
    with pytest.raises(ValidationError) as error:
        await routes.create_route(admin, data)
    assert set(error.value.errors) == fields
    assert not await ProviderRoute.exists() and not await AuditEvent.exists()


async def test_names_are_unique(admin: Actor) -> None:
    await routes.create_route(admin, sms('sms-a'))
    second = await routes.create_route(admin, sms('sms-b'))
    with pytest.raises(ValidationError, match='already a route named "sms-a"'):
        await routes.create_route(admin, sms(' sms-a '))
    with pytest.raises(ValidationError, match='already a route named "sms-a"'):
        await routes.update_route(admin, second.id, sms('sms-a'))
    assert await ProviderRoute.filter(name='sms-b').exists()


async def test_one_default_route_per_channel(admin: Actor) -> None:
    first = await routes.create_route(admin, sms('sms-a', is_default=True))
    mail = await routes.create_route(admin, smtp(is_default=True))
    second = await routes.create_route(admin, sms('sms-b', is_default=True))
    defaults = await ProviderRoute.filter(is_default=True).order_by('name').values_list('name', flat=True)
    assert defaults == ['mail', 'sms-b']
    await routes.update_route(admin, first.id, sms('sms-a', is_default=True))
    assert not (await ProviderRoute.get(id=second.id)).is_default
    assert (await ProviderRoute.get(id=mail.id)).is_default
    unset = await AuditEvent.filter(entity_type=routes.ENTITY, entity_id=str(second.id)).order_by('-id').first()
    assert unset.changes == {'is_default': [True, False]} and 'no longer the SMS default' in unset.summary


async def test_update_and_delete_are_audited(admin: Actor) -> None:
    route = await routes.create_route(admin, sms('sms-a'))
    assert await routes.update_route(admin, route.id, sms('sms-a')) is not None  # no change, no record
    await routes.update_route(admin, route.id, sms('sms-main', rate_per_second=50, enabled=False,
                                                    settings={'latency_ms': '20'}))
    await routes.delete_route(admin, route.id)
    events_ = await AuditEvent.filter(entity_type=routes.ENTITY).order_by('id')
    assert [e.action for e in events_] == ['create', 'update', 'delete']
    assert events_[1].changes == {'name': ['sms-a', 'sms-main'], 'rate_per_second': [100.0, 50.0],
                                  'enabled': [True, False], 'settings.latency_ms': [None, 20]}
    assert events_[1].actor_label == 'admin@example.com' and 'disabled' in events_[1].summary
    assert events_[2].changes['name'] == ['sms-main', None]
    with pytest.raises(NotFound):
        await routes.delete_route(admin, route.id)


async def test_secrets_are_masked_in_audit_and_kept_out_of_forms(admin: Actor) -> None:
    route = await routes.create_route(admin, smtp())
    assert routes.stored_settings(route) == StoredSettings(
        'smtp', {'host': 'mail.example.com', 'port': 2525, 'username': 'herald'}, frozenset({'password'}))
    created = await AuditEvent.get(entity_type=routes.ENTITY, action='create')
    assert created.changes['settings.password'] == [None, MASK]

    kept = await routes.update_route(admin, route.id, smtp(settings={**SMTP, 'password': '', 'port': '587'}))
    assert kept.settings['password'] == SECRET and kept.settings['port'] == 587
    changed = await routes.update_route(admin, route.id, smtp(settings={**SMTP, 'password': 'another-secret'}))
    assert changed.settings['password'] == 'another-secret'
    last = await AuditEvent.filter(entity_type=routes.ENTITY).order_by('-id').first()
    assert last.changes == {'settings.port': [587, 2525], 'settings.password': [MASK, MASK]}

    cleared = await routes.update_route(admin, route.id, smtp(settings={'host': 'mail.example.com'},
                                                              clear_secrets=frozenset({'password'})))
    assert 'password' not in cleared.settings and routes.stored_settings(cleared).secrets == set()
    await routes.delete_route(admin, route.id)
    text = await audit_text()
    assert SECRET not in text and 'another-secret' not in text and MASK in text


async def test_a_new_provider_does_not_inherit_secrets(admin: Actor) -> None:
    route = await routes.create_route(admin, smtp())
    moved = await routes.update_route(admin, route.id, smtp(provider='simulator', settings={}))
    assert moved.settings == {}
    assert SECRET not in await audit_text()


@pytest.mark.parametrize('role', [Role.VIEWER, Role.OPERATOR])
async def test_only_admins_manage_routes(admin: Actor, role: Role) -> None:
    route = await routes.create_route(admin, sms('sms-a'))
    other = await make_actor(role)
    for action in (routes.list_routes(other), routes.get_route(other, route.id), routes.create_route(other, smtp()),
                   routes.update_route(other, route.id, sms('renamed')), routes.delete_route(other, route.id),
                   routes.put_route(other, sms('sms-a'))):
        with pytest.raises(PermissionDenied):
            await action
    assert await ProviderRoute.all().values_list('name', flat=True) == ['sms-a']


async def test_list_pages_and_sorts(admin: Actor) -> None:
    for name, rate in (('b', 3), ('a', 1), ('c', 2)):
        await routes.create_route(admin, sms(name, rate_per_second=rate))
    total, page = await routes.list_routes(admin, 'rate_per_second', True, 1, 1)
    assert total == 3 and [r.name for r in page] == ['c']
    _, everything = await routes.list_routes(admin, 'nonsense', False, 0, None)
    assert [r.name for r in everything] == ['a', 'b', 'c']


async def test_changes_are_published_after_they_are_saved(admin: Actor) -> None:
    seen: list[tuple[str, ...]] = []
    unsubscribe = events.subscribe_routes(lambda event: seen.append(event.names))
    try:
        route = await routes.create_route(admin, sms('sms-a'))
        await routes.update_route(admin, route.id, sms('sms-b'))
        with pytest.raises(ValidationError):
            await routes.update_route(admin, route.id, sms('sms-b', concurrency=0))
        await routes.delete_route(admin, route.id)
    finally:
        unsubscribe()
    assert seen == [('sms-a',), ('sms-a', 'sms-b'), ('sms-b',)]


# --- the configuration file ---------------------------------------------------------------------------------

async def test_config_routes_are_validated_and_applied_through_the_service(db, tmp_path: Path) -> None:
    path = tmp_path / 'herald.toml'
    path.write_text('[[providers]]\nname = "mail"\nchannel = "email"\nprovider = "smtp"\ndefault = true\n'
                    f'settings = {{ host = "mail.example.com", username = "u", password = "{SECRET}" }}\n')
    config = seed.read_config(path)
    await seed.apply_config(config, 'EUR')
    await seed.apply_config(config, 'EUR')
    route = await ProviderRoute.get(name='mail')
    assert route.is_default and route.settings['password'] == SECRET
    created = await AuditEvent.get(entity_type=routes.ENTITY)
    assert created.actor_label == 'system' and SECRET not in await audit_text()


@pytest.mark.parametrize(('text', 'message'), [
    ('name = "m"\nchannel = "sms"\nprovider = "smtp"', r'providers #1 \(m\) provider: smtp does not send SMS'),
    ('name = "m"\nchannel = "email"\nprovider = "smtp"', r'providers #1 \(m\) settings.host: Required'),
    ('name = "m"\nchannel = "sms"\nprovider = "simulator"\nconcurrency = 0', 'concurrency: Enter a whole number'),
    ('name = "m"\nchannel = "sms"\nprovider = "simulator"\nsettings = { speed = 1 }', 'settings.speed: Unknown'),
    ('name = "m"\nchannel = "sms"\nprovider = "carrier-pigeon"', 'provider: Choose a provider'),
])
def test_bad_config_routes_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / 'herald.toml'
    path.write_text(f'[[providers]]\n{text}\n')
    with pytest.raises(ValidationError, match=message):
        seed.read_config(path)


# --- the engine's route table ---------------------------------------------------------------------------------

async def test_the_running_engine_reloads_changed_routes(admin: Actor) -> None:
    engine = Engine()
    await engine.start()
    try:
        table = engine.routes
        kept = table.routes['simulator-viber'].provider
        old_sms = table.routes['simulator-sms'].provider
        sms_route = await ProviderRoute.get(name='simulator-sms')
        await routes.update_route(admin, sms_route.id, sms('simulator-sms', is_default=True,
                                                           settings={'latency_ms': '5'}))
        await routes.create_route(admin, smtp(is_default=True))
        await table.reloaded()
        assert table.routes['simulator-sms'].provider is not old_sms
        assert table.routes['simulator-sms'].provider.settings['latency_ms'] == 5
        assert table.routes['simulator-viber'].provider is kept  # unchanged routes keep their provider
        assert table.for_channel(Channel.EMAIL).name == 'mail'
        email = await ProviderRoute.get(name='simulator-email')
        await routes.update_route(admin, email.id, RouteData('simulator-email', 'email', 'simulator', enabled=False))
        await routes.delete_route(admin, sms_route.id)
        await table.reloaded()
        assert 'simulator-email' not in table.routes and 'simulator-sms' not in table.routes
        assert table.for_channel(Channel.SMS) is None
    finally:
        await engine.stop()
    assert table.routes == {}


async def test_a_replaced_provider_is_closed_only_after_its_sends(admin: Actor, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    closed: list[SimulatorProvider] = []  # an earlier test's engine may still listen and close its own: count ours
    original_close = SimulatorProvider.close

    async def close(self: SimulatorProvider) -> None:
        closed.append(self)
        await original_close(self)
    monkeypatch.setattr(SimulatorProvider, 'close', close)
    route = await routes.create_route(admin, sms('sms-a', settings={'latency_ms': '300', 'report_delay_ms': '60000'}))
    table = RouteTable()
    await table.load()
    unsubscribe = events.subscribe_routes(table.on_routes_changed)
    try:
        old = table.routes['sms-a']
        sending = asyncio.create_task(send(old, OutgoingMessage('m1', Channel.SMS, '+4915112345678', 'Hi')))
        await asyncio.sleep(0.05)
        await routes.update_route(admin, route.id, sms('sms-a', settings={'latency_ms': '0'}))
        await table.reloaded()
        assert table.routes['sms-a'].provider is not old.provider and closed.count(old.provider) == 0
        results = await sending
        assert [r.accepted for r in results] == [True]
        await eventually(lambda: closed.count(old.provider) == 1)
        await send(old, OutgoingMessage('m2', Channel.SMS, '+4915112345678', 'Late'))  # held across the reload
        assert closed.count(old.provider) == 2
    finally:
        unsubscribe()
        await table.close()


async def send(route: Route, message: OutgoingMessage) -> list[SendResult]:
    """Send one message through a route as the dispatcher does, returning its results."""
    results: list[SendResult] = []

    async def hand_over(_route: Route, messages: list[OutgoingMessage]) -> list[OutgoingMessage]:
        return messages

    async def settle(part: list[SendResult]) -> None:
        results.extend(part)
    await route.send([message], hand_over, settle)
    return results


async def test_a_route_that_cannot_be_built_leaves_the_table_as_it_was(admin: Actor) -> None:
    await routes.create_route(admin, sms('sms-a'))
    table = RouteTable()
    await table.load()
    before = dict(table.routes)
    await ProviderRoute.create(name='broken', channel=Channel.SMS, provider='carrier-pigeon')
    with pytest.raises(Exception, match='Unknown provider'):
        await table.load()
    assert table.routes == before
    await table.close()
