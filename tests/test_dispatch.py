"""The delivery engine end to end on the simulator: dispatch, reports, cascades, windows, retries, crash recovery."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from helpers import make_actor

from domain import enqueue
from domain.auth import Actor
from domain.channels import Channel
from domain.enqueue import Destination, SendRequest
from domain.models import Message, MessageEvent, ProviderRoute, Role, SenderName, SenderStatus
from domain.providers import WebhookRequest
from domain.statuses import MessageStatus
from scheduler.dispatcher import Dispatcher, recover_in_doubt, release_delayed
from scheduler.routes import RouteTable

SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Your code is 1234'}
VIBER = {'channel': 'viber', 'from': 'MyShop', 'text': 'Your code is 1234'}
INSTANT = {'report_delay_ms': 0, 'delivery_rate': 1.0, 'seed': 1}


@pytest.fixture
async def operator(db) -> Actor:
    for channel in (Channel.SMS, Channel.VIBER):
        await SenderName.create(name='MyShop', channel=channel, status=SenderStatus.APPROVED)
    return await make_actor(Role.OPERATOR)


async def engine(**settings_by_channel: dict) -> tuple[RouteTable, Dispatcher]:
    for channel, settings in settings_by_channel.items():
        await ProviderRoute.create(name=f'sim-{channel}', channel=Channel(channel), provider='simulator',
                                   settings=settings, rate_per_second=10_000, is_default=True)
    routes = RouteTable()
    await routes.load()
    return routes, Dispatcher(routes)


async def settle(dispatcher: Dispatcher, done) -> None:
    """Dispatch until `done()` holds (reports arrive in the background)."""
    for _ in range(200):
        await dispatcher.dispatch_once()
        if await done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError('the engine did not settle')


def count_is(status: MessageStatus, expected: int):
    async def check() -> bool:
        return await Message.filter(status=status).count() == expected
    return check


async def statuses() -> list[MessageStatus]:
    return [m.status for m in await Message.all().order_by('step_index')]


async def test_messages_reach_delivered_through_the_simulators_webhook_path(operator: Actor) -> None:
    routes, dispatcher = await engine(sms=INSTANT)
    await enqueue.enqueue(operator, SendRequest(steps=[SMS], destinations=[
        Destination(phone=f'+7912345670{i}') for i in range(5)]))
    await settle(dispatcher, count_is(MessageStatus.DELIVERED, 5))
    message = await Message.first()
    assert message.provider == 'simulator' and message.provider_message_id and message.sent_at and message.delivered_at
    timeline = [e.status for e in await MessageEvent.filter(message_id=message.id).order_by('id')]
    assert timeline == [MessageStatus.QUEUED, MessageStatus.SENT, MessageStatus.DELIVERED]
    await routes.close()


async def test_viber_failing_hands_over_to_sms(operator: Actor) -> None:
    routes, dispatcher = await engine(viber={**INSTANT, 'fail_channels': 'viber'}, sms=INSTANT)
    await enqueue.enqueue(operator, SendRequest(steps=[VIBER, SMS], destinations=[Destination(phone='+79123456789')]))

    async def sms_delivered() -> bool:
        return await statuses() == [MessageStatus.ERROR, MessageStatus.DELIVERED]
    await settle(dispatcher, sms_delivered)
    viber = await Message.get(channel=Channel.VIBER)
    assert viber.handed_over
    await routes.close()


async def test_delivery_makes_later_steps_needless_unless_required(operator: Actor) -> None:
    routes, dispatcher = await engine(viber=INSTANT, sms=INSTANT)
    email = {'channel': 'email', 'fromEmail': 'shop@example.com', 'subject': 'Code', 'text': 'Code', 'required': True}
    await ProviderRoute.create(name='sim-email', channel=Channel.EMAIL, provider='simulator', settings=INSTANT)
    await routes.load()
    await enqueue.enqueue(operator, SendRequest(steps=[VIBER, SMS, email], destinations=[
        Destination(phone='+79123456789', email='a@example.com')]))

    async def done() -> bool:
        return await statuses() == [MessageStatus.DELIVERED, MessageStatus.SKIPPED, MessageStatus.DELIVERED]
    await settle(dispatcher, done)
    await routes.close()


def _zone_where_it_is_23h() -> str:
    """An Etc/GMT zone whose local hour is 23 now (Etc/GMT-N is UTC+N)."""
    offset = (23 - datetime.now(timezone.utc).hour + 12) % 24 - 12
    return f'Etc/GMT{-offset:+d}' if offset else 'UTC'


async def test_outside_the_window_a_message_is_delayed_until_it_opens(operator: Actor) -> None:
    routes, dispatcher = await engine(sms=INSTANT)
    zone = _zone_where_it_is_23h()
    await enqueue.enqueue(operator, SendRequest(steps=[SMS], allowed_time_ranges=[['09:00', '21:00']],
                                                time_zone=zone, destinations=[Destination(phone='+79123456789')]))
    await dispatcher.dispatch_once()
    message = await Message.get()
    assert message.status is MessageStatus.DELAYED
    local = message.due_at.astimezone(ZoneInfo(zone))
    assert (local.hour, local.minute) == (9, 0) and local.date() > datetime.now(ZoneInfo(zone)).date()
    assert await release_delayed() == 0
    await Message.filter(id=message.id).update(due_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    assert await release_delayed() == 1
    assert (await Message.get()).status is MessageStatus.QUEUED
    await routes.close()


async def test_transient_errors_retry_with_backoff(operator: Actor) -> None:
    routes, dispatcher = await engine(sms={**INSTANT, 'transient_failure_rate': 1.0})
    await enqueue.enqueue(operator, SendRequest(steps=[SMS], destinations=[Destination(phone='+79123456789')]))
    await dispatcher.dispatch_once()
    message = await Message.get()
    assert message.status is MessageStatus.QUEUED and message.attempt == 1 and message.send_started_at is None
    assert message.due_at > datetime.now(timezone.utc)
    assert await dispatcher.dispatch_once() == 0  # not due yet
    await routes.close()


async def test_a_message_handed_over_before_a_crash_is_flagged_never_resent(operator: Actor) -> None:
    routes, dispatcher = await engine(sms=INSTANT)
    await enqueue.enqueue(operator, SendRequest(steps=[SMS], destinations=[Destination(phone='+79123456789')]))
    past = datetime.now(timezone.utc) - timedelta(minutes=5)
    await Message.all().update(send_started_at=past, lease_until=past, attempt=1)  # died inside provider.send
    assert await dispatcher.dispatch_once() == 0
    assert await recover_in_doubt() == 1
    message = await Message.get()
    assert message.status is MessageStatus.ERROR and message.in_doubt
    await routes.close()


async def test_duplicate_and_late_reports_change_nothing(operator: Actor) -> None:
    routes, dispatcher = await engine(sms=INSTANT)
    await enqueue.enqueue(operator, SendRequest(steps=[SMS], destinations=[Destination(phone='+79123456789')]))
    await settle(dispatcher, count_is(MessageStatus.DELIVERED, 1))
    message = await Message.get()
    late = (b'{"reports": [{"id": "%s", "status": "UNDELIVERED"}, {"id": "%s", "status": "DELIVERED"}]}'
            % (message.provider_message_id.encode(), message.provider_message_id.encode()))
    signature = {'X-Simulator-Signature': routes.routes['sim-sms'].provider.sign(late)}
    assert await routes.receive_webhook('sim-sms', WebhookRequest(late, signature)) == 0
    assert (await Message.get()).status is MessageStatus.DELIVERED
    await routes.close()

