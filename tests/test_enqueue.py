"""The enqueue service: one transaction of notifications and messages, rejected destinations, idempotency."""
from __future__ import annotations

from decimal import Decimal

import pytest
from helpers import make_actor

from domain import auth, enqueue, templates
from domain.auth import Actor
from domain.channels import Channel
from domain.enqueue import Destination, SendRequest
from domain.errors import PermissionDenied, ValidationError
from domain.models import (
    Message,
    MessageEvent,
    Notification,
    Role,
    SenderName,
    SenderStatus,
    Suppression,
    SuppressionKind,
    Tariff,
    TimeZoneMode,
)
from domain.statuses import MessageStatus

SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Hi {{name}}'}
EMAIL = {'channel': 'email', 'fromEmail': 'shop@example.com', 'subject': 'Order {{order}}', 'text': 'Ready'}


@pytest.fixture
async def operator(db) -> Actor:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    return await make_actor(Role.OPERATOR)


async def test_cascade_first_step_queued_the_next_waits(operator: Actor) -> None:
    await Tariff.create(channel=Channel.SMS, country='RU', price_per_part=Decimal('2.5'), currency='RUB')
    result = await enqueue.enqueue(operator, SendRequest(
        steps=[SMS, EMAIL], destinations=[Destination(phone='8 (912) 345-67-89', email='A@Example.com',
                                                      variables={'name': 'Ann', 'order': 42})]))
    assert not result.rejected
    sms, email = sorted(await Message.all(), key=lambda m: m.step_index)
    assert (sms.status, sms.recipient, sms.text, sms.parts) == (MessageStatus.QUEUED, '+79123456789', 'Hi Ann', 1)
    assert (sms.cost, sms.currency) == (Decimal('2.5'), 'RUB')
    assert (email.status, email.recipient, email.subject) == (MessageStatus.CREATED, 'A@example.com', 'Order 42')
    assert sms.due_at is not None and email.due_at is None
    assert await MessageEvent.filter(message_id=sms.id, status=MessageStatus.QUEUED).exists()
    notification = await Notification.get()
    assert (notification.phone, notification.variables) == ('+79123456789', {'name': 'Ann', 'order': 42})


async def test_invalid_destinations_are_rejected_with_reasons(operator: Actor) -> None:
    result = await enqueue.enqueue(operator, SendRequest(steps=[SMS], destinations=[
        Destination(phone='not a phone', variables={'name': 'A'}),
        Destination(phone='+79123456789'),
        Destination(email='only@example.com', variables={'name': 'C'}),
        Destination(phone='+79123456780', variables={'name': 'D'}),
    ]))
    reasons = {r.index: r.reason for r in result.rejected}
    assert set(reasons) == {0, 1, 2}
    assert 'name' in reasons[1]
    assert [m.destination_index for m in result.messages] == [3]
    assert await Message.all().count() == 1


async def test_same_bulk_id_never_creates_twice(operator: Actor) -> None:
    request = lambda: SendRequest(bulk_id='retry-1', steps=[SMS], destinations=[  # noqa: E731
        Destination(phone='+79123456789', variables={'name': 'A'})])
    first = await enqueue.enqueue(operator, request())
    second = await enqueue.enqueue(operator, request())
    assert [m.id for m in first.messages] == [m.id for m in second.messages]
    assert await Message.all().count() == 1 and await Notification.all().count() == 1


async def test_suppressed_recipient_is_skipped(operator: Actor) -> None:
    await Suppression.create(kind=SuppressionKind.PHONE, value='+79123456789')
    result = await enqueue.enqueue(operator, SendRequest(steps=[SMS], destinations=[
        Destination(phone='+79123456789', variables={'name': 'A'})]))
    assert result.messages[0].status is MessageStatus.SKIPPED


async def test_unapproved_sender_refuses_the_whole_request(operator: Actor) -> None:
    with pytest.raises(ValidationError, match='approved'):
        await enqueue.enqueue(operator, SendRequest(steps=[{**SMS, 'from': 'Nobody'}], destinations=[
            Destination(phone='+79123456789', variables={'name': 'A'})]))
    assert not await Message.exists()


async def test_template_gives_steps_windows_and_recipient_zone(operator: Actor) -> None:
    template = await templates.create_template(operator, templates.TemplateInput(
        name='Order', allowed_time_ranges=[('09:00', '21:00')], time_zone_mode=TimeZoneMode.RECIPIENT,
        steps=[SMS]))
    await enqueue.enqueue(operator, SendRequest(template_id=template.id, destinations=[
        Destination(phone='+49 30 1234567', variables={'name': 'A'}),
        Destination(phone='+79123456789', variables={'name': 'B'})]))
    berlin, russia = await Notification.all().order_by('phone')
    assert berlin.allowed_time_ranges == [['09:00', '21:00']]
    assert berlin.time_zone == 'Europe/Berlin'
    assert russia.time_zone == 'UTC'  # a Russian mobile spans eleven zones: the template's zone applies


async def test_viewer_cannot_send(db) -> None:
    viewer = Actor.of(await auth.create_user('v@example.com', 'long enough', Role.VIEWER))
    with pytest.raises(PermissionDenied):
        await enqueue.enqueue(viewer, SendRequest(steps=[SMS], destinations=[]))


async def test_a_recipient_repeated_in_one_request_is_rejected_not_sent_twice(operator: Actor) -> None:
    result = await enqueue.enqueue(operator, SendRequest(steps=[SMS], destinations=[
        Destination(phone='+79123456789', variables={'name': 'A'}),
        Destination(phone='8 912 345-67-89', variables={'name': 'B'}),
    ]))
    assert [(r.index, r.reason, r.field) for r in result.rejected] == [(1, 'the same phone as recipient 1', 'phone')]
    assert await Message.all().count() == 1


async def test_an_opted_out_first_channel_hands_over_to_the_next_at_once(operator: Actor) -> None:
    await Suppression.create(kind=SuppressionKind.PHONE, value='+79123456789')
    await enqueue.enqueue(operator, SendRequest(steps=[SMS, EMAIL], destinations=[
        Destination(phone='+79123456789', email='a@example.com', variables={'name': 'A', 'order': 1})]))
    sms, email = sorted(await Message.all(), key=lambda m: m.step_index)
    assert (sms.status, email.status) == (MessageStatus.SKIPPED, MessageStatus.QUEUED)
    assert email.due_at is not None
