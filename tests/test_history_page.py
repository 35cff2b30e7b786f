"""The Notification history page: filters from and into the URL, live status changes, details and cancelling."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from helpers import eventually, sign_in_as
from nicegui.testing import User
from nicegui.testing.user_interaction import UserInteraction

from domain import enqueue
from domain.auth import SYSTEM
from domain.channels import Channel
from domain.delivery import StatusChange, change_status
from domain.enqueue import Destination, SendRequest
from domain.models import Message, Role, SenderName, SenderStatus
from domain.statuses import MessageStatus as S

SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Hi {{name}}'}
EMAIL = {'channel': 'email', 'fromEmail': 'shop@example.com', 'subject': 'Hello', 'text': 'Hi {{name}}'}


async def send(*phones: str, steps: list | None = None) -> list[str]:
    """Messages queued for tomorrow: the running engine leaves them alone."""
    await SenderName.get_or_create(name='MyShop', channel=Channel.SMS, defaults={'status': SenderStatus.APPROVED})
    result = await enqueue.enqueue(SYSTEM, SendRequest(
        steps=steps or [SMS], send_at=datetime.now(timezone.utc) + timedelta(days=1),
        destinations=[Destination(phone=phone, email=f'{i}@example.com', variables={'name': 'Ann'})
                      for i, phone in enumerate(phones)]))
    return [message.id for message in result.messages]


def table_rows(user: User) -> list[dict]:
    """The history's rows (not those of a detail dialog's timeline)."""
    return user.find(marker='messages').elements.pop().rows


def recipients(user: User) -> list[str]:
    return [row['recipient'] for row in table_rows(user)]


async def test_lists_filters_and_keeps_filters_in_the_url(user: User) -> None:
    await sign_in_as(user, Role.VIEWER)
    await send('+79123456789', '+79001112233')
    await user.open('/history')
    await user.should_see('Notification history')
    await eventually(lambda: sorted(recipients(user)) == ['+79001112233', '+79123456789'])
    await user.should_see('2 messages')
    user.find('Search by phone').type('3456')
    await eventually(lambda: recipients(user) == ['+79123456789'])
    await user.open('/history?search=1112&status=QUEUED&channel=sms')
    await eventually(lambda: recipients(user) == ['+79001112233'])
    await user.open('/history?status=DELIVERED')
    await user.should_see('No messages match the filters.')


async def test_a_status_change_appears_without_reload(user: User) -> None:
    await sign_in_as(user, Role.VIEWER)
    [message_id] = await send('+79123456789')
    await user.open('/history')
    await eventually(lambda: [row['status'] for row in table_rows(user)] == ['QUEUED'])
    await change_status([StatusChange(message_id, S.SENT)])
    await eventually(lambda: table_rows(user)[0]['status'] == 'SENT')  # within the page's one-second refresh
    assert table_rows(user)[0]['sent_at'] is not None


async def test_new_messages_appear_on_the_first_page(user: User) -> None:
    await sign_in_as(user, Role.VIEWER)
    await send('+79123456789')
    await user.open('/history')
    await eventually(lambda: len(table_rows(user)) == 1)
    await send('+79001112233')
    await eventually(lambda: len(table_rows(user)) == 2)


async def test_details_show_the_text_and_timeline_and_cancel_a_queued_message(user: User) -> None:
    await sign_in_as(user, Role.OPERATOR)
    sms_id, email_id = await send('+79123456789', steps=[SMS, EMAIL])
    await user.open('/history')
    await eventually(lambda: len(table_rows(user)) == 2)
    user.find(marker='messages').trigger('details', {'id': sms_id})
    await user.should_see('Status timeline')
    await user.should_see('Hi Ann')
    await user.should_see('Other steps of this cascade')
    user.find('Cancel message').click()
    await user.should_see('Cancel this message? It will not be sent.')
    newest = max(user.find('Cancel message').elements, key=lambda element: element.id)  # the confirmation's button
    UserInteraction(user, {newest}, 'Cancel message').click()
    await user.should_see('Message canceled.')
    statuses = {str(m.id): m.status for m in await Message.all()}
    assert statuses == {sms_id: S.CANCELED, email_id: S.CANCELED}
    await eventually(lambda: {row['status'] for row in table_rows(user)} == {'CANCELED'})


async def test_a_viewer_sees_details_without_a_cancel_button(user: User) -> None:
    await sign_in_as(user, Role.VIEWER)
    [message_id] = await send('+79123456789')
    await user.open('/history')
    await eventually(lambda: len(table_rows(user)) == 1)
    user.find(marker='messages').trigger('details', {'id': message_id})
    await user.should_see('Status timeline')
    await user.should_not_see('Cancel message')
