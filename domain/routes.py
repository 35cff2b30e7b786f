"""Provider routes (Settings → Channels & providers): which provider serves a channel, with its settings and limits.

Secret settings (a provider's `secret` fields) never leave this module in clear: audit records mask them, and
`stored_settings` leaves them out for forms. When a route is updated, a secret left empty keeps the stored one
(see domain.provider_settings).
Every change publishes `events.RoutesChanged`, on which the running engine reloads its routes.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from providers.registry import PROVIDERS

from . import audit, events, provider_settings
from .auth import Actor, Permission
from .channels import Channel
from .errors import NotFound, ValidationError
from .models import ProviderRoute
from .providers import SettingField, StoredSettings

ENTITY = 'provider_route'
NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,99}')  # it is a path segment of the route's webhook URL
MAX_CONCURRENCY = 1000
MAX_RATE = 1_000_000
SORTABLE = frozenset({'name', 'channel', 'provider', 'is_default', 'enabled', 'concurrency', 'rate_per_second'})


@dataclass(frozen=True)
class RouteData:
    """What a form or the configuration file says a route should be. On update, secret settings left empty keep
    their stored values unless named in `clear_secrets`."""
    name: str
    channel: Channel | str
    provider: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    concurrency: int | float | str | None = 10
    rate_per_second: float | str | None = 100.0
    is_default: bool = False
    enabled: bool = True
    clear_secrets: frozenset[str] = frozenset()
    backup: str | None = None  # the name of the route that takes its traffic while it fails; None: unchanged


def provider_names(channel: Channel | str | None = None) -> list[str]:
    """The providers (serving `channel`), by name."""
    return sorted(name for name, cls in PROVIDERS.items() if channel is None or channel in cls.channels)


def settings_schema(provider: str) -> tuple[SettingField, ...]:
    cls = PROVIDERS.get(provider)
    return cls.settings_schema if cls else ()


def stored_settings(route: ProviderRoute | None) -> StoredSettings | None:
    """What a form may show of the route's settings (no secrets)."""
    if route is None:
        return None
    return provider_settings.stored_settings(PROVIDERS.get(route.provider), route.provider, route.settings)


def _whole(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(str(value).strip().replace(',', '.')) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def check(data: RouteData, stored: ProviderRoute | None = None) -> dict[str, Any]:
    """The route's fields as they are stored, or ValidationError naming every bad one (`settings.<key>` for a
    setting). `stored` is the route being updated, whose secrets are kept where `data` leaves them empty."""
    errors: dict[str, str] = {}
    name = (data.name or '').strip()
    if not NAME.fullmatch(name):
        errors['name'] = ('Enter a name of up to 100 letters, digits, ".", "-" or "_", starting with a letter or '
                          'digit: it is part of the route\'s webhook address.')
    try:
        channel = Channel(data.channel)
    except ValueError:
        channel = None
        errors['channel'] = f'Choose a channel: {", ".join(c.value for c in Channel)}.'
    provider = (data.provider or '').strip()
    if provider not in PROVIDERS:
        errors['provider'] = f'Choose a provider: {", ".join(provider_names())}.'
    elif channel is not None and channel not in PROVIDERS[provider].channels:
        errors['provider'] = f'{provider} does not send {channel.label}.'
    concurrency = _whole(data.concurrency)
    if concurrency is None or not 1 <= concurrency <= MAX_CONCURRENCY:
        errors['concurrency'] = f'Enter a whole number from 1 to {MAX_CONCURRENCY}.'
    rate = _number(data.rate_per_second)
    if rate is None or not 0 < rate <= MAX_RATE:
        errors['rate_per_second'] = f'Enter a number of messages per second above 0, at most {MAX_RATE:,}.'
    settings: dict[str, Any] = {}
    if provider in PROVIDERS:
        same = stored is not None and stored.provider == provider
        try:
            settings = provider_settings.settings_to_store(PROVIDERS[provider], data.settings,
                                                           stored.settings if same else {}, data.clear_secrets)
        except ValidationError as error:
            errors.update(error.errors)
    if errors:
        raise ValidationError(errors)
    return {'name': name, 'channel': channel, 'provider': provider, 'settings': settings, 'concurrency': concurrency,
            'rate_per_second': rate, 'is_default': bool(data.is_default), 'enabled': bool(data.enabled)}


async def _state(route: ProviderRoute) -> dict[str, Any]:
    backup = await ProviderRoute.get_or_none(id=route.backup_id) if route.backup_id else None
    return {'name': route.name, 'channel': route.channel.value, 'provider': route.provider,
            'concurrency': route.concurrency, 'rate_per_second': route.rate_per_second,
            'is_default': route.is_default, 'enabled': route.enabled, 'backup': backup.name if backup else None,
            **{f'settings.{key}': value for key, value in sorted(route.settings.items())}}


async def _backup_id(data: RouteData, channel: Channel, route: ProviderRoute | None) -> int | None:
    """The id of the backup route `data` names: one of the same channel, whose own backups never lead back."""
    if data.backup is None:
        return route.backup_id if route else None
    name = data.backup.strip()
    if not name:
        return None
    backup = await ProviderRoute.get_or_none(name=name)
    if backup is None:
        raise ValidationError({'backup': f'There is no route named "{name}".'})
    if route is not None and backup.id == route.id:
        raise ValidationError({'backup': 'A route cannot be its own backup.'})
    if backup.channel is not channel:
        raise ValidationError({'backup': f'"{name}" sends {backup.channel.label}, not {channel.label}.'})
    seen, current = {backup.id}, backup
    while current.backup_id is not None and current.backup_id not in seen:
        if route is not None and current.backup_id == route.id:
            raise ValidationError({'backup': f'"{name}" already falls back on this route, directly or not.'})
        seen.add(current.backup_id)
        current = await ProviderRoute.get(id=current.backup_id)
    return backup.id


async def backup_choices(channel: Channel | str, route_id: int | None = None) -> list[str]:
    """The names of the routes that may back up a route of `channel` (the route itself excluded)."""
    return [route.name for route in await ProviderRoute.filter(channel=channel).exclude(id=route_id or 0)
            .order_by('name')]


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """audit.diff with secret settings masked."""
    provider = after.get('provider') or before.get('provider') or ''
    old_provider = before.get('provider') or provider
    return provider_settings.mask_settings(audit.diff(before, after), PROVIDERS.get(old_provider),
                                           PROVIDERS.get(provider))


async def list_routes(actor: Actor, sort: str | None = 'channel', descending: bool = False, offset: int = 0,
                      limit: int | None = 20) -> tuple[int, list[ProviderRoute]]:
    """One page of routes and the count of all."""
    actor.require(Permission.MANAGE_SETTINGS)
    field_name = sort if sort in SORTABLE else 'channel'
    page = ProviderRoute.all().order_by(f'{"-" if descending else ""}{field_name}', 'name').offset(offset)
    return await ProviderRoute.all().count(), await (page.limit(limit) if limit else page)


async def get_route(actor: Actor, route_id: int) -> ProviderRoute:
    actor.require(Permission.MANAGE_SETTINGS)
    return await _get(route_id)


async def _get(route_id: int, lock: bool = False) -> ProviderRoute:
    query = ProviderRoute.filter(id=route_id)
    route = await (query.select_for_update() if lock else query).first()
    if route is None:
        raise NotFound('This route no longer exists.')
    return route


async def create_route(actor: Actor, data: RouteData) -> ProviderRoute:
    actor.require(Permission.MANAGE_SETTINGS)
    values = check(data)
    async with in_transaction():
        await _require_unique(values['name'])
        values['backup_id'] = await _backup_id(data, values['channel'], None)
        try:
            route = await ProviderRoute.create(**values)
        except IntegrityError as error:  # the same name saved at the same moment
            raise _taken(values['name']) from error
        await audit.record(actor, 'create', ENTITY, route.id, f'Created route "{route.name}": {_describe(route)}',
                           _diff({}, await _state(route)))
        await _unset_other_defaults(actor, route)
    _changed(route.name)
    return route


async def update_route(actor: Actor, route_id: int, data: RouteData) -> ProviderRoute:
    actor.require(Permission.MANAGE_SETTINGS)
    async with in_transaction():
        route = await _get(route_id, lock=True)
        values = check(data, route)
        if values['name'] != route.name:
            await _require_unique(values['name'])
        values['backup_id'] = await _backup_id(data, values['channel'], route)
        before = await _state(route)
        old_name = route.name
        route.update_from_dict(values)
        changes = _diff(before, await _state(route))
        if not changes:
            return route
        try:
            await route.save()
        except IntegrityError as error:
            raise _taken(route.name) from error
        await audit.record(actor, 'update', ENTITY, route.id, f'Changed route "{route.name}": {_describe(route)}',
                           changes)
        await _unset_other_defaults(actor, route)
    _changed(old_name, route.name)
    return route


async def put_route(actor: Actor, data: RouteData) -> ProviderRoute:
    """Create the route named `data.name`, or update it (the configuration file's routes)."""
    actor.require(Permission.MANAGE_SETTINGS)
    route = await ProviderRoute.get_or_none(name=(data.name or '').strip())
    return await update_route(actor, route.id, data) if route else await create_route(actor, data)


async def delete_route(actor: Actor, route_id: int) -> None:
    """Delete a route; its past messages keep their provider name. Disabling it (`enabled`) keeps it for later."""
    actor.require(Permission.MANAGE_SETTINGS)
    async with in_transaction():
        route = await _get(route_id, lock=True)
        state = await _state(route)
        await route.delete()
        await audit.record(actor, 'delete', ENTITY, route_id, f'Deleted route "{route.name}": {_describe(route)}',
                           _diff(state, dict.fromkeys(state)))
    _changed(route.name)


async def _require_unique(name: str) -> None:
    if await ProviderRoute.filter(name=name).exists():
        raise _taken(name)


def _taken(name: str) -> ValidationError:
    return ValidationError({'name': f'There is already a route named "{name}".'})


async def _unset_other_defaults(actor: Actor, route: ProviderRoute) -> None:
    """One default route per channel: this one's becoming the default makes the others of its channel not."""
    if not route.is_default:
        return
    others = await ProviderRoute.filter(channel=route.channel, is_default=True).exclude(id=route.id) \
        .select_for_update()
    for other in others:
        other.is_default = False
        await other.save(update_fields=['is_default', 'updated_at'])
        await audit.record(actor, 'update', ENTITY, other.id,
                           f'Route "{other.name}" is no longer the {route.channel.label} default: '
                           f'"{route.name}" is', {'is_default': [True, False]})


def _describe(route: ProviderRoute) -> str:
    flags = ', '.join(flag for flag, on in (('default', route.is_default), ('disabled', not route.enabled)) if on)
    return f'{route.channel.label} via {route.provider}' + (f' ({flags})' if flags else '')


def _changed(*names: str) -> None:
    events.publish_routes(events.RoutesChanged(tuple(dict.fromkeys(names))))
