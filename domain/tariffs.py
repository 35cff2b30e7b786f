"""Tariffs: the price of one message part per channel and destination country."""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import phonenumbers
from tortoise.transactions import in_transaction

from . import audit
from .auth import Actor, Permission
from .channels import Channel
from .config import settings
from .errors import NotFound, ValidationError
from .models import Tariff

ANY_COUNTRY = '*'
ENTITY = 'tariff'
MAX_DECIMALS = 4
MAX_PRICE = Decimal(10) ** 8  # the column holds 12 digits, 4 of them decimals
CURRENCY = re.compile(r'[A-Z]{3}')


@dataclass(frozen=True)
class Rate:
    """A tariff's price, detached from the database: a table of these goes to worker processes."""
    price_per_part: Decimal
    currency: str


TariffTable = dict[tuple[Channel, str], Tariff | Rate]


def detached(table: TariffTable) -> TariffTable:
    return {key: Rate(tariff.price_per_part, tariff.currency) for key, tariff in table.items()}


def choose(table: TariffTable, channel: Channel, country: str | None) -> Tariff | Rate | None:
    """The tariff for a country, else the channel's '*' tariff, else None."""
    return table.get((channel, (country or '').upper())) or table.get((channel, ANY_COUNTRY))


async def tariff_table(channel: Channel | None = None) -> TariffTable:
    """Every tariff (of a channel), for pricing many messages without a query each."""
    query = Tariff.filter(channel=channel) if channel else Tariff.all()
    return {(t.channel, t.country): t for t in await query}


async def find_tariff(channel: Channel, country: str | None) -> Tariff | None:
    countries = [c for c in ((country or '').upper(), ANY_COUNTRY) if c]
    rows = await Tariff.filter(channel=channel, country__in=countries)
    return choose({(t.channel, t.country): t for t in rows}, channel, country)


def cost(parts: int, tariff: Tariff | Rate | None) -> Decimal:
    return Decimal(parts) * tariff.price_per_part if tariff else Decimal(0)


def country_name(code: str) -> str:
    """An English country name for an ISO code ('*' is every country without a tariff of its own)."""
    # The names behind geocoder's public functions. Its data takes 100 MB: loaded only where names are shown, not in
    # the worker processes, which price by code.
    from phonenumbers.geocoder import _region_display_name
    if code == ANY_COUNTRY:
        return 'Any other country'
    return _region_display_name(code, 'en') or code


def countries() -> dict[str, str]:
    """Every country a tariff may name, code → name, by name ('*' first)."""
    names = sorted((country_name(code), code) for code in phonenumbers.SUPPORTED_REGIONS)
    return {ANY_COUNTRY: country_name(ANY_COUNTRY)} | {code: name for name, code in names}


async def list_tariffs(actor: Actor, channel: Channel | None = None) -> list[Tariff]:
    """Tariffs by channel, then country ('*' last in each channel)."""
    actor.require(Permission.VIEW)
    query = Tariff.filter(channel=channel) if channel else Tariff.all()
    tariffs = await query
    order = list(Channel)
    return sorted(tariffs, key=lambda t: (order.index(t.channel), t.country == ANY_COUNTRY, t.country))


def _validated(channel: Channel | str, country: str, price: Decimal | str | float,
               currency: str | None) -> tuple[Channel, str, Decimal, str]:
    errors = {}
    try:
        channel = Channel(channel)
    except ValueError:
        errors['channel'] = 'Choose a channel.'
    country = country.strip().upper()
    if country != ANY_COUNTRY and country not in phonenumbers.SUPPORTED_REGIONS:
        errors['country'] = 'Choose a country (ISO 3166 alpha-2 code) or "*" for any other country.'
    try:
        price = Decimal(str(price).strip().replace(',', '.'))  # a decimal comma is common in Europe
    except InvalidOperation:
        price = None
    if price is None or not price.is_finite() or price < 0 or price >= MAX_PRICE:
        errors['price_per_part'] = 'Enter a price of 0 or more.'
    elif price.normalize().as_tuple().exponent < -MAX_DECIMALS:
        errors['price_per_part'] = f'A price has at most {MAX_DECIMALS} decimals.'
    currency = (currency or '').strip().upper() or settings().currency
    if not CURRENCY.fullmatch(currency):
        errors['currency'] = 'A currency is a 3-letter code such as EUR.'
    if errors:
        raise ValidationError(errors)
    return channel, country, price, currency


def plain(price: Decimal) -> str:
    """A price without trailing zeros or exponent: 2.1500 → '2.15', 10.0000 → '10'."""
    return f'{Decimal(price).normalize():f}'


def _state(tariff: Tariff) -> dict[str, str]:
    return {'channel': tariff.channel.value, 'country': tariff.country,
            'price_per_part': plain(tariff.price_per_part), 'currency': tariff.currency}


async def set_tariff(actor: Actor, channel: Channel | str, country: str, price_per_part: Decimal | str | float,
                     currency: str | None = None) -> Tariff:
    """Create the tariff of a channel and country, or change its price."""
    actor.require(Permission.MANAGE_SETTINGS)
    row = _validated(channel, country, price_per_part, currency)
    async with in_transaction():
        return await _save(actor, *row)


async def set_tariffs(actor: Actor, channel: Channel | str,
                      rows: list[tuple[str, Decimal | str | float, str | None]]) -> list[Tariff]:
    """Set several tariffs of a channel, (country, price per part, currency) each, all or none: every row is checked
    first (errors keyed `<row index>.<field>`), then all are saved in one transaction."""
    actor.require(Permission.MANAGE_SETTINGS)
    errors: dict[str, str] = {}
    valid: dict[str, tuple[Channel, str, Decimal, str]] = {}
    for i, (country, price, currency) in enumerate(rows):
        try:
            row = _validated(channel, country, price, currency)
        except ValidationError as error:
            errors.update({f'{i}.{key}': message for key, message in error.errors.items()})
            continue
        if row[1] in valid:
            errors[f'{i}.country'] = f'{country_name(row[1])} is given twice.'
        valid[row[1]] = row
    if errors:
        raise ValidationError(errors)
    async with in_transaction():
        return [await _save(actor, *row) for row in valid.values()]


async def _save(actor: Actor, channel: Channel, country: str, price: Decimal, currency: str) -> Tariff:
    """Create or change one validated tariff, inside the caller's transaction."""
    tariff = await Tariff.filter(channel=channel, country=country).select_for_update().first()
    before = _state(tariff) if tariff else {}
    if tariff is None:
        tariff = await Tariff.create(channel=channel, country=country, price_per_part=price, currency=currency)
    else:
        tariff.price_per_part, tariff.currency = price, currency
        await tariff.save()
    changes = audit.diff(before, _state(tariff))
    if changes:
        await audit.record(actor, 'update' if before else 'create', ENTITY, tariff.id,
                           f'Set {channel.label} to {country_name(country)} at {plain(price)} {currency} per part',
                           changes)
    return tariff


async def delete_tariff(actor: Actor, tariff_id: int) -> None:
    actor.require(Permission.MANAGE_SETTINGS)
    async with in_transaction():
        tariff = await Tariff.filter(id=tariff_id).select_for_update().first()
        if tariff is None:
            raise NotFound('This tariff no longer exists.')
        state = _state(tariff)
        await tariff.delete()
        await audit.record(actor, 'delete', ENTITY, tariff_id,
                           f'Deleted the {tariff.channel.label} tariff to {country_name(tariff.country)}',
                           audit.diff(state, dict.fromkeys(state)))
