"""Settings → Channels & providers: adding, editing and deleting routes, settings forms drawn from each provider's
schema, secrets never sent to the browser, who may see the page, and the running engine taking changes at once."""
from __future__ import annotations

import asyncio

import pytest
from helpers import eventually, sign_in_as, table_rows
from nicegui import ui
from nicegui.testing import User

from domain import route_health, routes
from domain.auth import SYSTEM
from domain.channels import Channel
from domain.models import Message, ProviderRoute, Role, SenderName, SenderStatus
from domain.routes import RouteData

SECRET = 'hunter2-very-secret'


def select(user: User, label: str) -> ui.select:
    return next(iter(user.find(kind=ui.select, content=label).elements))


def row(user: User, name: str) -> dict:
    return next(r for r in table_rows(user) if r['name'] == name)


def sent_to_browser(user: User) -> str:
    """Every element's props and the table rows: what the browser was given."""
    return ' '.join(str(element._props) for element in user.current_layout.descendants()) + str(table_rows(user))


async def webhook_status(user: User, provider: str, route: str) -> int:
    """The webhook route answers 404 for a route the engine does not have, and 400 (not genuine) for one it has."""
    return (await user.http_client.post(f'/webhooks/{provider}/{route}', content=b'{}')).status_code


async def add_smtp_route(user: User) -> None:
    user.find('Add route').click()
    await user.should_see('Add a route')
    user.find('Name').type('mail')
    select(user, 'Channel').value = 'email'
    select(user, 'Provider').value = 'smtp'
    await user.should_see('Server *')
    user.find('Server *').type('mail.example.com')
    user.find('User name').type('herald')
    user.find('Password').type(SECRET)
    user.find('Default route of its channel').click()


async def test_admin_adds_edits_and_deletes_an_smtp_route(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    await user.open('/settings/channels')
    assert {r['name'] for r in table_rows(user)} >= {'simulator-sms', 'simulator-email'}
    assert await webhook_status(user, 'smtp', 'mail') == 404
    await add_smtp_route(user)
    user.find('Save route').click()
    await user.should_see('Route "mail" saved.')
    assert {key: row(user, 'mail')[key] for key in ('channel', 'provider', 'is_default', 'enabled', 'concurrency',
                                                    'rate_per_second')} == {
        'channel': 'Email', 'provider': 'smtp', 'is_default': True, 'enabled': True, 'concurrency': 10,
        'rate_per_second': '100'}
    assert not row(user, 'simulator-email')['is_default']
    route = await ProviderRoute.get(name='mail')
    assert route.settings == {'host': 'mail.example.com', 'port': 587, 'security': 'starttls',
                              'username': 'herald', 'password': SECRET, 'verify_certificate': True,
                              'pool_size': 4, 'timeout_s': 30.0}
    await eventually_async(lambda: webhook_status(user, 'smtp', 'mail'), 400)  # the engine sends through it now

    user.find(ui.table).trigger('edit', row(user, 'mail'))
    await user.should_see('Change the route "mail"')
    await user.should_see('Remove the stored password')
    assert user.find('Password').elements.pop().value == '' and SECRET not in sent_to_browser(user)
    user.find('Port').clear().type('2525')
    user.find('Rate per second').clear().type('12.5')
    user.find('Save route').click()
    await eventually(lambda: row(user, 'mail')['rate_per_second'] == '12.5')
    route = await ProviderRoute.get(name='mail')
    assert route.settings['port'] == 2525 and route.settings['password'] == SECRET

    user.find(ui.table).trigger('delete', row(user, 'mail'))
    await user.should_see('Delete the route "mail"?')
    user.find(kind=ui.button, content='Delete').click()
    await user.should_see('Route "mail" deleted.')
    assert 'mail' not in {r['name'] for r in table_rows(user)}
    await eventually_async(lambda: webhook_status(user, 'smtp', 'mail'), 404)


async def test_a_bad_setting_is_shown_next_to_its_field_and_saves_nothing(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    await user.open('/settings/channels')
    await add_smtp_route(user)
    user.find('Port').clear().type('many')
    user.find('Concurrency').clear().type('0')
    user.find('Save route').click()
    await user.should_see("Expected a whole number, got 'many'")
    assert user.find('Port').elements.pop().error == "Expected a whole number, got 'many'"
    assert user.find('Concurrency').elements.pop().error.startswith('Enter a whole number')
    assert not await ProviderRoute.filter(name='mail').exists()
    assert 'mail' not in {r['name'] for r in table_rows(user)}


async def test_the_settings_form_follows_the_provider_and_channel(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    await user.open('/settings/channels')
    user.find('Add route').click()
    await user.should_see('Add a route')
    select(user, 'Provider').value = 'simulator'
    await user.should_see('Delivery rate (0–1)')
    assert 'smtp' not in select(user, 'Provider').options  # SMTP sends email only
    select(user, 'Channel').value = 'email'
    assert {'simulator', 'smtp'} <= set(select(user, 'Provider').options)
    select(user, 'Provider').value = 'smtp'
    await user.should_see('Server *')
    await user.should_not_see('Delivery rate (0–1)')
    assert user.find('Port').elements.pop().value == '587'
    select(user, 'Channel').value = 'sms'  # SMTP cannot send SMS: back to a provider that can
    assert select(user, 'Provider').value in routes.provider_names('sms')
    select(user, 'Provider').value = 'simulator'
    await user.should_see('Delivery rate (0–1)')
    await user.should_not_see('Server *')


async def test_disabling_a_route_takes_it_out_of_the_running_engine(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    await user.open('/settings/channels')
    assert await webhook_status(user, 'simulator', 'simulator-sms') == 400
    user.find(ui.table).trigger('edit', row(user, 'simulator-sms'))
    await user.should_see('Change the route "simulator-sms"')
    user.find('Enabled').click()
    user.find('Save route').click()
    await eventually(lambda: not row(user, 'simulator-sms')['enabled'])
    await eventually_async(lambda: webhook_status(user, 'simulator', 'simulator-sms'), 404)


@pytest.mark.parametrize('role', [Role.VIEWER, Role.OPERATOR])
async def test_others_have_no_access(user: User, role: Role) -> None:
    await sign_in_as(user, role)
    await user.open('/settings/channels')
    await user.should_see('has no access to this page')
    await user.should_not_see('Add route')
    await user.should_not_see(kind=ui.table)


async def eventually_async(probe, expected: object) -> None:
    """Wait until an async probe gives `expected` (the engine reloads its routes in the background)."""
    value = None
    for _ in range(100):
        value = await probe()
        if value == expected:
            return
        await asyncio.sleep(0.02)
    assert value == expected


async def test_a_test_message_goes_through_the_chosen_route_and_the_dialog_follows_it(
        user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(route_health, 'FIGURES_SECONDS', 0)  # the day's figures are read afresh on each refresh
    await sign_in_as(user, Role.ADMIN)
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    spare = await routes.create_route(SYSTEM, RouteData(name='spare-sms', channel='sms', provider='simulator',
                                                        settings={'delivery_rate': 1, 'report_delay_ms': 0}))
    await user.open('/settings/channels')
    user.find(ui.table).trigger('test', row(user, 'spare-sms'))
    await user.should_see('Send a test message through "spare-sms"')
    user.find(kind=ui.button, content='Send').click()
    await user.should_see('Enter the phone number to send to.')
    user.find('Phone number').type('+79123456789')
    user.find(kind=ui.button, content='Send').click()
    await user.should_see('Test message: DELIVERED', retries=200)
    message = await Message.get()
    assert (message.route_id, message.pinned_route_id, message.sender) == (spare.id, spare.id, 'MyShop')
    assert message.text == 'A test message from Herald.'
    await eventually(lambda: (row(user, 'spare-sms')['sent'], row(user, 'spare-sms')['delivered']) == (1, 1))
    assert row(user, 'spare-sms')['state_label'] == 'Healthy'


async def test_a_route_gets_a_backup_of_its_channel_in_the_form(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    await routes.create_route(SYSTEM, RouteData(name='spare-sms', channel='sms', provider='simulator'))
    await user.open('/settings/channels')
    user.find(ui.table).trigger('edit', row(user, 'simulator-sms'))
    await user.should_see('Change the route "simulator-sms"')
    assert select(user, 'Backup route').options == ['spare-sms']
    select(user, 'Backup route').value = 'spare-sms'
    user.find('Save route').click()
    await user.should_see('Route "simulator-sms" saved.')
    assert row(user, 'simulator-sms')['backup'] == 'spare-sms'
    user.find(ui.table).trigger('edit', row(user, 'simulator-sms'))
    await user.should_see('Change the route "simulator-sms"')
    assert select(user, 'Backup route').value == 'spare-sms'
