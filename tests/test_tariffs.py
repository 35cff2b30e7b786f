"""Tariffs: validation, upsert, permissions, audit, the lookup used for pricing, and the page."""
from decimal import Decimal

import pytest
from helpers import eventually, make_actor, sign_in_as, table_rows
from nicegui import ui
from nicegui.testing import User

from domain import tariffs
from domain.auth import Actor
from domain.channels import Channel
from domain.config import reload_settings
from domain.errors import NotFound, PermissionDenied, ValidationError
from domain.models import AuditEvent, Role, Tariff


@pytest.fixture
async def admin(db) -> Actor:
    return await make_actor(Role.ADMIN)


async def test_set_creates_then_updates(admin: Actor) -> None:
    created = await tariffs.set_tariff(admin, 'sms', 'ru', '2.15', 'rub')
    assert (created.channel, created.country, created.price_per_part, created.currency) == (
        Channel.SMS, 'RU', Decimal('2.15'), 'RUB')
    updated = await tariffs.set_tariff(admin, Channel.SMS, 'RU', Decimal('2.2000'), 'RUB')
    assert updated.id == created.id and await Tariff.all().count() == 1
    stored = await Tariff.get(id=created.id)
    assert stored.price_per_part == Decimal('2.2')


async def test_currency_defaults_to_the_configured_one(admin: Actor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('HERALD_CURRENCY', 'usd')
    reload_settings()
    assert (await tariffs.set_tariff(admin, Channel.VIBER, '*', 0)).currency == 'USD'


@pytest.mark.parametrize(('country', 'price', 'currency', 'field'), [
    ('XX', '1', 'EUR', 'country'), ('', '1', 'EUR', 'country'), ('RUS', '1', 'EUR', 'country'),
    ('DE', '-0.01', 'EUR', 'price_per_part'), ('DE', 'abc', 'EUR', 'price_per_part'),
    ('DE', 'NaN', 'EUR', 'price_per_part'), ('DE', '0.00001', 'EUR', 'price_per_part'),
    ('DE', '100000000', 'EUR', 'price_per_part'), ('DE', '1', 'EURO', 'currency'), ('DE', '1', 'E1R', 'currency'),
])
async def test_validation(admin: Actor, country: str, price: str, currency: str, field: str) -> None:
    with pytest.raises(ValidationError) as error:
        await tariffs.set_tariff(admin, Channel.SMS, country, price, currency)
    assert set(error.value.errors) == {field}
    assert not await Tariff.exists()


async def test_edge_values_are_accepted(admin: Actor) -> None:
    await tariffs.set_tariff(admin, Channel.SMS, 'DE', '0.1230', 'EUR')  # trailing zeros are not decimals
    await tariffs.set_tariff(admin, Channel.SMS, 'FR', '99999999.9999', 'EUR')
    await tariffs.set_tariff(admin, Channel.SMS, 'XK', 0.5, 'EUR')  # Kosovo: no ISO name, but phonenumbers has it
    with pytest.raises(ValidationError, match='Choose a channel'):
        await tariffs.set_tariff(admin, 'pigeon', 'DE', '1', 'EUR')


async def test_list_and_find(admin: Actor) -> None:
    for channel, country, price in ((Channel.VIBER, 'DE', '1'), (Channel.SMS, '*', '3'), (Channel.SMS, 'RU', '2'),
                                    (Channel.SMS, 'AM', '4')):
        await tariffs.set_tariff(admin, channel, country, price, 'EUR')
    assert [(t.channel, t.country) for t in await tariffs.list_tariffs(admin)] == [
        (Channel.SMS, 'AM'), (Channel.SMS, 'RU'), (Channel.SMS, '*'), (Channel.VIBER, 'DE')]
    assert [t.country for t in await tariffs.list_tariffs(admin, Channel.VIBER)] == ['DE']
    assert (await tariffs.find_tariff(Channel.SMS, 'ru')).price_per_part == Decimal('2')
    assert (await tariffs.find_tariff(Channel.SMS, 'DE')).country == '*'
    assert await tariffs.find_tariff(Channel.EMAIL, 'DE') is None
    assert tariffs.cost(3, await tariffs.find_tariff(Channel.SMS, 'RU')) == Decimal('6')


@pytest.mark.parametrize('role', [Role.VIEWER, Role.OPERATOR])
async def test_only_admins_change_tariffs(admin: Actor, role: Role) -> None:
    tariff = await tariffs.set_tariff(admin, Channel.SMS, 'RU', '2', 'RUB')
    actor = await make_actor(role)
    assert len(await tariffs.list_tariffs(actor)) == 1
    with pytest.raises(PermissionDenied):
        await tariffs.set_tariff(actor, Channel.SMS, 'RU', '0', 'RUB')
    with pytest.raises(PermissionDenied):
        await tariffs.delete_tariff(actor, tariff.id)
    assert (await Tariff.get(id=tariff.id)).price_per_part == Decimal('2')


async def test_delete_and_audit(admin: Actor) -> None:
    tariff = await tariffs.set_tariff(admin, Channel.SMS, 'RU', '2.15', 'RUB')
    await tariffs.set_tariff(admin, Channel.SMS, 'RU', '2.15', 'RUB')  # no change, no audit record
    await tariffs.set_tariff(admin, Channel.SMS, 'RU', '2.5', 'RUB')
    await tariffs.delete_tariff(admin, tariff.id)
    with pytest.raises(NotFound):
        await tariffs.delete_tariff(admin, tariff.id)
    events = await AuditEvent.filter(entity_type='tariff').order_by('id')
    assert [e.action for e in events] == ['create', 'update', 'delete']
    assert events[0].changes == {'channel': [None, 'sms'], 'country': [None, 'RU'],
                                 'price_per_part': [None, '2.15'], 'currency': [None, 'RUB']}
    assert events[1].changes == {'price_per_part': ['2.15', '2.5']}
    assert events[1].summary == 'Set SMS to Russia at 2.5 RUB per part'
    assert events[2].summary == 'Deleted the SMS tariff to Russia'


def test_country_names() -> None:
    names = tariffs.countries()
    assert next(iter(names)) == '*' and names['*'] == 'Any other country'
    assert names['DE'] == 'Germany' and names['XK'] == 'XK'
    assert len(names) == 246


# --- the page ---------------------------------------------------------------------------------------------

async def test_admin_adds_edits_and_deletes_a_tariff(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    await user.open('/settings/tariffs')
    user.find('Add tariff').click()
    await user.should_see('Add a tariff')
    next(iter(user.find(kind=ui.select, content='Country').elements)).value = 'DE'
    user.find('Price per part').type('0.123456')
    user.find('Save tariff').click()
    await user.should_see('at most 4 decimals')
    user.find('Price per part').clear().type('0.0650')
    user.find('Save tariff').click()
    await user.should_see('Tariff saved.')
    row = table_rows(user)[0]
    assert (row['channel_label'], row['country_name'], row['country'], row['price_per_part'], row['currency']) == (
        'SMS', 'Germany', 'DE', '0.065', 'EUR')
    user.find(ui.table).trigger('edit', row)
    await user.should_see('Change the tariff')
    assert not next(iter(user.find(kind=ui.select, content='Country').elements)).enabled
    user.find('Price per part').clear().type('0.07')
    user.find('Save tariff').click()
    await eventually(lambda: table_rows(user)[0]['price_per_part'] == '0.07')
    user.find(ui.table).trigger('delete', row)
    await user.should_see('Delete the SMS tariff to Germany?')
    user.find(kind=ui.button, content='Delete').click()
    await user.should_see('Tariff deleted.')
    assert table_rows(user) == []


async def test_channel_filter_from_the_url(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    admin = await make_actor(Role.ADMIN, 'second@example.com')
    await tariffs.set_tariff(admin, Channel.SMS, '*', '1', 'EUR')
    await tariffs.set_tariff(admin, Channel.VIBER, '*', '0.5', 'EUR')
    await user.open('/settings/tariffs?channel=viber')
    assert [r['channel'] for r in table_rows(user)] == ['viber']
    next(iter(user.find(kind=ui.select, content='Channel').elements)).value = None
    await eventually(lambda: len(table_rows(user)) == 2)
    await user.open('/settings/tariffs?channel=nonsense')
    assert len(table_rows(user)) == 2


@pytest.mark.parametrize('role', [Role.VIEWER, Role.OPERATOR])
async def test_others_only_read(user: User, role: Role) -> None:
    await sign_in_as(user, role)
    await tariffs.set_tariff(await make_actor(Role.ADMIN), Channel.SMS, 'RU', '2.15', 'RUB')
    await user.open('/settings/tariffs')
    assert [(r['country_name'], r['price_per_part']) for r in table_rows(user)] == [('Russia', '2.15')]
    await user.should_not_see('Add tariff')
    assert 'actions' not in [c['name'] for c in user.find(ui.table).elements.pop().columns]
