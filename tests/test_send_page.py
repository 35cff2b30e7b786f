"""The Send notification page: template, recipients (typed and pasted), variables, checks, confirmation, sending."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from helpers import eventually, make_actor, sign_in_as, table_rows
from nicegui import ui
from nicegui.testing import User

from domain import sending, templates
from domain.channels import Channel
from domain.models import Message, Notification, Role, SenderName, SenderStatus, Tariff, Template
from domain.statuses import MessageStatus
from ui import send_page

SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Hi {{name}}, order {{order}} is ready'}


async def make_template(name: str, *steps: dict[str, Any]) -> Template:
    await SenderName.get_or_create(name='MyShop', channel=Channel.SMS, defaults={'status': SenderStatus.APPROVED})
    actor = await make_actor(Role.OPERATOR, f'author-{name.replace(" ", "-").lower()}@example.com')
    return await templates.create_template(actor, templates.TemplateInput(
        name=name, allowed_time_ranges=[('00:00', '24:00')], steps=list(steps)))


async def open_send(user: User, template: Template) -> None:
    await user.open(f'/send?template={template.id}')
    await user.should_see(content=templates.cascade_label(template.steps), marker='template-info')


async def add_recipients(user: User, *phones: str) -> None:
    for _ in phones:
        user.find(marker='new-recipient').click()
    for i, phone in enumerate(phones):
        await user.should_see(marker=f'phone-{i}')
        user.find(marker=f'phone-{i}').type(phone)


async def fill_variables(user: User, **values: str) -> None:
    for name, value in values.items():
        await user.should_see(marker=f'variable-{name}')
        user.find(marker=f'variable-{name}').type(value)


async def test_variables_appear_only_for_templates_that_use_them(user: User) -> None:
    plain = await make_template('Plain', {'channel': 'sms', 'from': 'MyShop', 'text': 'Your order is ready'})
    await make_template('Order ready', SMS)
    await make_template('Mail', {'channel': 'email', 'fromEmail': 'shop@example.com', 'subject': 'Order {{order}}',
                                 'text': 'Ready'})
    await sign_in_as(user, Role.OPERATOR)
    await open_send(user, plain)
    await user.should_see('each recipient needs a phone (SMS)')
    await user.should_not_see(marker='variables')

    user.find(marker='template').click()
    user.find('Order ready').click()
    await user.should_see(marker='variable-name')
    await user.should_see(marker='variable-order')
    user.find(marker='template').click()
    user.find('Mail').click()  # enqueue fills variables in every channel's texts, so an email's are asked for too
    await user.should_see(marker='variable-order')
    await user.should_not_see(marker='variable-name')
    await user.should_see('each recipient needs an email (Email)')
    user.find(marker='template').click()
    user.find('Plain').click()
    await user.should_not_see(marker='variables')


async def test_a_missing_variable_stops_the_send(user: User) -> None:
    template = await make_template('Order ready', SMS)
    await sign_in_as(user, Role.OPERATOR)
    await open_send(user, template)
    await add_recipients(user, '+79123456789')
    await fill_variables(user, name='Ann')
    user.find(marker='send').click()
    await user.should_see('Enter a value for {{order}}.')
    await user.should_not_see(marker='confirm')
    assert not await Message.exists()


async def test_an_invalid_phone_is_shown_on_its_row_and_nothing_is_sent(user: User) -> None:
    template = await make_template('Order ready', SMS)
    await sign_in_as(user, Role.OPERATOR)
    await open_send(user, template)
    await add_recipients(user, '+79123456789', '+7912', '')
    await fill_variables(user, name='Ann', order='42')
    user.find(marker='send').click()
    await user.should_see('2 recipients cannot be sent to: fix or remove them. Nothing was sent.')
    assert user.find(marker='phone-1').elements.pop().error == 'Phone: too short'
    assert user.find(marker='phone-2').elements.pop().error == 'Enter a phone (SMS).'
    assert user.find(marker='phone-0').elements.pop().error is None
    await user.should_not_see(marker='confirm')
    assert not await Message.exists()

    user.find(marker='remove-2').click()
    await user.should_see(content='2 recipients', marker='recipient-count')
    user.find(marker='phone-1').type('3456780')
    assert user.find(marker='phone-1').elements.pop().error is None
    user.find(marker='send').click()
    await user.should_see(marker='confirm')
    await user.should_see('SMS: 2 messages')


async def test_confirmation_shows_messages_and_cost_and_cancel_sends_nothing(user: User) -> None:
    await Tariff.create(channel=Channel.SMS, country='RU', price_per_part=Decimal('2.5'), currency='RUB')
    await Tariff.create(channel=Channel.EMAIL, country='*', price_per_part=Decimal('0.01'), currency='EUR')
    template = await make_template('Order ready', SMS, {'channel': 'email', 'fromEmail': 'shop@example.com',
                                                        'subject': 'Order', 'text': 'Ready'})
    await sign_in_as(user, Role.OPERATOR)
    await open_send(user, template)
    await add_recipients(user, '+79123456789', '+79123456780', '+79123456781')
    user.find(marker='email-0').type('ann@example.com')
    await fill_variables(user, name='Ann', order='42')
    user.find(marker='send').click()
    await user.should_see(marker='confirm')
    await user.should_see('Send “Order ready” to 3 recipients?')
    await user.should_see('SMS: 3 messages — 7.50 RUB')
    await user.should_see('Email: 1 message — 0.01 EUR')
    await user.should_see('Estimated cost: 7.50 RUB, up to 0.01 EUR more with every fallback')
    user.find(marker='cancel-send').click()
    await user.should_not_see(marker='confirm')
    assert not await Message.exists()


async def test_send_creates_the_messages_and_links_to_their_history(user: User) -> None:
    template = await make_template('Order ready', SMS)
    await sign_in_as(user, Role.OPERATOR)
    await open_send(user, template)
    await add_recipients(user, '+79123456789', '8 912 345-67-80', '+49 30 1234567')
    user.find(marker='external_id-0').type('CRM-1')
    await fill_variables(user, name='Ann', order='42')
    user.find(marker='send').click()
    await user.should_see(marker='confirm')
    await user.should_see('SMS: 3 messages — no tariff')
    await user.should_see('without a tariff')
    user.find(marker='confirm-send').click()
    await user.should_see('Sent: 3 messages to 3 recipients are on their way.')

    messages = await Message.all()
    assert sorted(m.recipient for m in messages) == ['+49301234567', '+79123456780', '+79123456789']
    assert all(m.status is not MessageStatus.CREATED for m in messages)  # queued, or already further on
    assert {m.text for m in messages} == {'Hi Ann, order 42 is ready'}
    assert len({m.bulk_id for m in messages}) == 1
    link = user.find(marker='history-link').elements.pop()
    assert link.props['href'] == f'/history?bulk={messages[0].bulk_id}'
    notification = await Notification.get(phone='+79123456789')
    assert (notification.external_id, notification.template_id) == ('CRM-1', template.id)
    assert notification.variables == {'name': 'Ann', 'order': '42'}
    await user.should_see(content='No recipients yet', marker='recipient-count')


async def test_paste_many_recipients(user: User) -> None:
    template = await make_template('Order ready', SMS)
    await sign_in_as(user, Role.OPERATOR)
    await open_send(user, template)
    user.find(marker='paste-many').click()
    await user.should_see('Paste many recipients')
    user.find(marker='paste-text').type('a@example.com;b@example.com\n+79123456789')
    user.find(marker='paste-add').click()
    await user.should_see('Line 1: two emails')
    await user.should_see(content='No recipients yet', marker='recipient-count')

    lines = [f'CRM-{i};+7912{i:07d}' for i in range(300)] + ['CRM-bad;+7912']
    element = user.find(marker='paste-text').elements.pop()
    element.value = '\n'.join(lines)
    user.find(marker='paste-add').click()
    await user.should_see(content='301 recipients', marker='recipient-count')
    await eventually(lambda: len(table_rows(user)) == 10)
    table = user.find(ui.table).elements.pop()
    assert table.pagination['rowsNumber'] == 301
    assert table_rows(user)[0] | {'id': None} == {
        'id': None, 'number': 1, 'external_id': 'CRM-0', 'phone': '+79120000000', 'email': '',
        'messenger_user_id': '', 'problem': '', 'problem_field': ''}

    await fill_variables(user, name='Ann', order='42')
    user.find(marker='send').click()
    await user.should_see('1 recipient cannot be sent to: fix or remove it. Nothing was sent.')
    await eventually(lambda: [row['external_id'] for row in table_rows(user)] == ['CRM-bad'])
    assert table_rows(user)[0]['problem'] == 'Phone: too short'
    user.find(marker='remove-problems').click()
    await user.should_see(content='300 recipients', marker='recipient-count')
    await eventually(lambda: len(table_rows(user)) == 10)
    user.find(ui.table).trigger('remove', {'id': table_rows(user)[0]['id']})
    await user.should_see(content='299 recipients', marker='recipient-count')

    user.find(marker='send').click()
    await user.should_see('Send “Order ready” to 299 recipients?')
    user.find(marker='confirm-send').click()
    await user.should_see('Sent: 299 messages to 299 recipients are on their way.')
    assert await Message.all().count() == 299
    assert not await Message.filter(recipient='+79120000000').exists()


async def test_an_unknown_template_in_the_link_is_reported(user: User) -> None:
    await sign_in_as(user, Role.OPERATOR)
    await user.open('/send?template=not-a-template')
    await user.should_see('There is no template with id “not-a-template”.')
    user.find(marker='send').click()
    await user.should_see('Choose a template first.')


async def test_viewer_has_no_access(user: User) -> None:
    await sign_in_as(user, Role.VIEWER)
    await user.open('/send')
    await user.should_see('Your role (viewer) has no access to this page.')
    await user.should_not_see(marker='send')


async def test_a_telegram_template_asks_for_the_chat_id(user: User) -> None:
    template = await make_template('Chat', {'channel': 'telegram', 'text': 'Your order is ready'})
    await sign_in_as(user, Role.OPERATOR)
    await open_send(user, template)
    await user.should_see('each recipient needs a Telegram chat ID (Telegram)')
    user.find(marker='new-recipient').click()
    await user.should_see(marker='messenger_user_id-0')
    user.find(marker='messenger_user_id-0').type('123456789')
    user.find(marker='send').click()
    await user.should_see('Telegram: 1 message — no tariff')
    user.find(marker='confirm-send').click()
    await user.should_see(marker='sent')
    assert [m.recipient for m in await Message.all()] == ['123456789']


async def test_typing_searches_templates_beyond_the_list(user: User, monkeypatch) -> None:
    monkeypatch.setattr(send_page, 'OPTION_LIMIT', 1)
    await make_template('Birthday', SMS)
    await make_template('Order ready', SMS)
    await sign_in_as(user, Role.OPERATOR)
    await user.open('/send')
    select = user.find(marker='template').elements.pop()
    await eventually(lambda: list(select.options.values()) == ['Birthday'])
    user.find(marker='template').trigger('inputValue', 'order')
    await eventually(lambda: list(select.options.values()) == ['Order ready'])
    user.find(marker='template').click()
    user.find('Order ready').click()
    await user.should_see(marker='variable-order')


async def test_a_paste_larger_than_a_send_is_refused(user: User, monkeypatch) -> None:
    monkeypatch.setattr(sending, 'MAX_RECIPIENTS', 2)
    template = await make_template('Order ready', SMS)
    await sign_in_as(user, Role.OPERATOR)
    await open_send(user, template)
    user.find(marker='paste-many').click()
    await user.should_see(marker='paste-text')
    user.find(marker='paste-text').type('+79123456789\n+79123456780\n+79123456781')
    user.find(marker='paste-add').click()
    await user.should_see('That makes 3 recipients; at most 2 can be sent from this page.')
    await user.should_see(content='No recipients yet', marker='recipient-count')
