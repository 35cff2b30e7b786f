"""Configuration as code: a TOML file (HERALD_CONFIG) that seeds sender names, tariffs and provider routes.

```toml
[[sender_names]]
name = "MyShop"
channel = "sms"

[[tariffs]]
channel = "sms"
country = "RU"        # ISO 3166 alpha-2, or "*" for every other country
price_per_part = 2.15
currency = "RUB"

[[providers]]
name = "sms-main"
channel = "sms"
provider = "simulator"
concurrency = 10
rate_per_second = 50
default = true
backup = "sms-backup"  # takes the traffic while this route fails (a route of the same channel)
settings = { latency_ms = 200 }

[[providers]]
name = "sms-backup"
channel = "sms"
provider = "simulator"
```
Applying it again changes nothing; entries are matched by (name, channel), (channel, country) and name.
Provider routes go through domain/routes.py, as if an admin saved them: the same checks (settings against the
provider's schema), one default route per channel, and audit records by "system" with secrets masked.
"""
from __future__ import annotations

import tomllib
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tortoise.transactions import in_transaction

from . import cluster, routes
from .auth import SYSTEM
from .channels import Channel
from .errors import ValidationError
from .models import ProviderRoute, SenderName, SenderStatus, Tariff

SECTIONS = ('sender_names', 'tariffs', 'providers')


def read_config(path: Path) -> dict[str, list[dict[str, Any]]]:
    try:
        data = tomllib.loads(path.read_text(encoding='utf-8'))
    except OSError as error:
        raise ValidationError({'HERALD_CONFIG': f'cannot read {path}: {error.strerror}'}) from error
    except tomllib.TOMLDecodeError as error:
        raise ValidationError({'HERALD_CONFIG': f'{path} is not valid TOML: {error}'}) from error
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise ValidationError({'HERALD_CONFIG': f'unknown section(s) {", ".join(sorted(unknown))}; '
                                                f'expected {", ".join(SECTIONS)}'})
    config = {section: data.get(section, []) for section in SECTIONS}
    _validate(config)
    return config


def _channel(value: Any, where: str, errors: dict[str, str]) -> None:
    if value not in {c.value for c in Channel}:
        errors[where] = f'channel must be one of {", ".join(c.value for c in Channel)}, not {value!r}'


def _validate(config: dict[str, list[dict[str, Any]]]) -> None:
    errors: dict[str, str] = {}
    for i, entry in enumerate(config['sender_names'], 1):
        where = f'sender_names #{i}'
        _channel(entry.get('channel'), where, errors)
        if not str(entry.get('name', '')).strip():
            errors[where] = 'name is required'
    for i, entry in enumerate(config['tariffs'], 1):
        where = f'tariffs #{i}'
        _channel(entry.get('channel'), where, errors)
        country = str(entry.get('country', ''))
        if not (country == '*' or (len(country) == 2 and country.isalpha())):
            errors[where] = 'country must be an ISO 3166 alpha-2 code or "*"'
        try:
            if Decimal(str(entry.get('price_per_part'))) < 0:
                errors[where] = 'price_per_part must not be negative'
        except InvalidOperation:
            errors[where] = 'price_per_part must be a number'
    for i, entry in enumerate(config['providers'], 1):
        where = f'providers #{i}'
        if not entry.get('name') or not entry.get('provider'):
            errors[where] = 'name and provider are required'
        elif not isinstance(entry.get('settings', {}), dict):
            errors[where] = 'settings must be a table'
        else:
            try:
                routes.check(_route(entry))
            except ValidationError as error:
                errors |= {f'{where} ({entry["name"]}) {key}': message for key, message in error.errors.items()}
    if errors:
        raise ValidationError(errors)


async def apply_config(config: dict[str, list[dict[str, Any]]], default_currency: str) -> None:
    async with in_transaction():
        await cluster.one_at_a_time('seed')
        for entry in config['sender_names']:
            await SenderName.update_or_create(
                name=entry['name'].strip(), channel=Channel(entry['channel']),
                defaults={'status': SenderStatus.APPROVED, 'comment': entry.get('comment', 'From the configuration file')})
        for entry in config['tariffs']:
            await Tariff.update_or_create(
                channel=Channel(entry['channel']), country=entry['country'].upper(),
                defaults={'price_per_part': Decimal(str(entry['price_per_part'])),
                          'currency': entry.get('currency', default_currency).upper()})
        for entry in config['providers']:  # backups are set once every route exists
            await routes.put_route(SYSTEM, replace(_route(entry), backup=None))
        for entry in config['providers']:
            await routes.put_route(SYSTEM, _route(entry))


def _route(entry: dict[str, Any]) -> routes.RouteData:
    return routes.RouteData(
        name=str(entry['name']), channel=str(entry.get('channel', '')), provider=str(entry['provider']),
        settings=entry.get('settings', {}), concurrency=entry.get('concurrency', 10),
        rate_per_second=entry.get('rate_per_second', 100), is_default=bool(entry.get('default', False)),
        enabled=bool(entry.get('enabled', True)), backup=str(entry.get('backup', '')))


async def ensure_routes() -> None:
    """A fresh Herald sends through the simulator on every channel until real providers are configured."""
    async with in_transaction():
        await cluster.one_at_a_time('seed')
        if await ProviderRoute.exists():
            return
        await ProviderRoute.bulk_create([
                ProviderRoute(name=f'simulator-{channel.value}', channel=channel, provider='simulator',
                              is_default=True, concurrency=8, rate_per_second=2000, settings={})
                for channel in Channel])
