"""How each provider route is doing (Settings → Channels & providers): what it sent in the last day, delivered and
failed, how long delivery took, and its failover state in this process; and test messages sent through one route."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from . import failover, sql
from .auth import Actor, Permission
from .channels import STEP_FIELDS, Channel
from .enqueue import Destination, EnqueueResult, SendRequest, contact_field, enqueue
from .errors import NotFound, ValidationError
from .models import Message, ProviderRoute
from .statuses import MessageStatus

PERIOD = timedelta(hours=24)
FIGURES_SECONDS = 15.0
DELIVERED = (MessageStatus.DELIVERED, MessageStatus.READ)


@dataclass(frozen=True)
class RouteOverview:
    name: str
    sent: int = 0
    delivered: int = 0
    errors: int = 0
    delivery_seconds: float | None = None  # from sent to delivered, on average
    state: failover.RouteState = failover.RouteState.HEALTHY
    share: float = 1.0  # of its channel's traffic, while it has a backup
    call_seconds: float | None = None  # a provider call's duration, smoothed
    error: str = ''  # why it is failing


async def route_health(actor: Actor) -> dict[int, RouteOverview]:
    """Every route's figures for the last 24 hours (by route id), with its failover state in this process."""
    actor.require(Permission.MANAGE_SETTINGS)
    figures = await _figures()
    health: dict[int, RouteOverview] = {}
    for route_id, name in await ProviderRoute.all().values_list('id', 'name'):
        row = figures.get(route_id, {})
        live = failover.health(name)
        delivery_seconds = row.get('delivery_seconds')
        health[route_id] = RouteOverview(
            name, int(row.get('sent') or 0), int(row.get('delivered') or 0), int(row.get('errors') or 0),
            float(delivery_seconds) if delivery_seconds is not None else None, live.state, live.share, live.latency,
            live.error)
    return health


_cache: tuple[float, dict[int, dict]] = (0.0, {})


async def _figures() -> dict[int, dict]:
    """The day's figures by route id: one query over the day's messages, shared by every open page for
    FIGURES_SECONDS (a busy day has millions of messages; the failover state is read live)."""
    global _cache  # noqa: PLW0603
    taken, figures = _cache
    if time.monotonic() - taken < FIGURES_SECONDS:
        return figures
    rows = await sql.execute(
        'SELECT route_id, COUNT(sent_at) AS sent, '
        f"SUM(CASE WHEN status IN ('{DELIVERED[0].value}', '{DELIVERED[1].value}') THEN 1 ELSE 0 END) AS delivered, "
        f"SUM(CASE WHEN status = '{MessageStatus.ERROR.value}' THEN 1 ELSE 0 END) AS errors, "
        f'AVG({_seconds_between("sent_at", "delivered_at")}) AS delivery_seconds '
        'FROM messages WHERE created_at >= ? AND route_id IS NOT NULL GROUP BY route_id',
        [datetime.now(timezone.utc) - PERIOD])
    _cache = time.monotonic(), {row['route_id']: row for row in rows}
    return _cache[1]


def _seconds_between(start: str, end: str) -> str:
    if sql.is_postgres():
        return f'EXTRACT(EPOCH FROM {end} - {start})'
    return f'(julianday({end}) - julianday({start})) * 86400.0'


@dataclass(frozen=True)
class TestMessage:
    recipient: str
    fields: dict[str, str]  # the channel step's fields (domain.channels.STEP_FIELDS keys)


async def send_test_message(actor: Actor, route_id: int, message: TestMessage) -> EnqueueResult:
    """A message sent through this route only (no failover), recorded in the history like any other. Raises
    ValidationError naming `recipient` or a step field."""
    actor.require(Permission.MANAGE_SETTINGS)
    route = await ProviderRoute.get_or_none(id=route_id)
    if route is None:
        raise NotFound('This route no longer exists.')
    if not route.enabled:
        raise ValidationError({'route': f'The route "{route.name}" is disabled: enable it to send through it.'})
    recipient = message.recipient.strip()
    if not recipient:
        raise ValidationError({'recipient': f'Enter the {recipient_label(route.channel).lower()} to send to.'})
    contact = contact_field(route.channel)
    step = {'channel': route.channel.value, **{key: value for key, value in message.fields.items()
                                               if key in {field.key for field in STEP_FIELDS[route.channel]}}}
    try:
        result = await enqueue(actor, SendRequest([Destination(**{contact: recipient})], [step], route_id=route.id))
    except ValidationError as error:
        raise ValidationError({key.removeprefix('steps.0.'): text for key, text in error.errors.items()}) from None
    if not result.messages:
        raise ValidationError({'recipient': result.rejected[0].reason if result.rejected else 'Cannot send to it.'})
    return result


def recipient_label(channel: Channel) -> str:
    return {Channel.EMAIL: 'Email address', Channel.TELEGRAM: 'Telegram chat ID'}.get(channel, 'Phone number')


async def test_message_status(actor: Actor, message_id: str) -> tuple[MessageStatus, str]:
    actor.require(Permission.MANAGE_SETTINGS)
    message = await Message.get_or_none(id=message_id).only('status', 'status_description')
    if message is None:
        raise NotFound('The test message no longer exists.')
    return message.status, message.status_description
