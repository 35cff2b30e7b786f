"""domain/sending.py: the estimate agrees with what enqueue creates, names each recipient's problem, and pasted
recipient lists are read sensibly."""
from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from helpers import make_actor

from domain import enqueue, phones, sending, templates
from domain.auth import Actor
from domain.channels import Channel
from domain.enqueue import Destination, SendRequest
from domain.errors import PermissionDenied, ValidationError
from domain.models import Message, Role, SenderName, SenderStatus, Suppression, SuppressionKind, Tariff
from domain.sending import Problem
from domain.statuses import MessageStatus

SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Hi {{name}}'}
EMAIL = {'channel': 'email', 'fromEmail': 'shop@example.com', 'subject': 'Order {{order}}', 'text': 'Ready'}


@pytest.fixture
async def operator(db) -> Actor:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    await Tariff.create(channel=Channel.SMS, country='RU', price_per_part=Decimal('2.5'), currency='RUB')
    await Tariff.create(channel=Channel.EMAIL, country='*', price_per_part=Decimal('0.01'), currency='EUR')
    return await make_actor(Role.OPERATOR)


VARIABLES = {'name': 'Ann', 'order': '42'}


async def test_estimate_counts_what_enqueue_creates(operator: Actor) -> None:
    request = SendRequest(steps=[SMS, EMAIL], destinations=[
        Destination(phone='+79123456789', email='a@example.com', variables=VARIABLES),
        Destination(phone='8 912 345-67-80', variables=VARIABLES),
        Destination(email='c@example.com', external_id='CRM-3', variables=VARIABLES),
    ])
    estimate = await sending.estimate(operator, request)
    assert (estimate.recipients, estimate.problems) == (3, [])
    sms, email = estimate.channels
    assert (sms.channel, sms.first.messages, sms.first.parts, sms.fallback.messages) == (Channel.SMS, 2, 2, 0)
    assert sms.first.cost == {'RUB': Decimal('5.0')}
    assert (email.first.messages, email.fallback.messages) == (1, 1)  # c has only an email; a's email is a fallback
    assert estimate.total('first').cost == {'RUB': Decimal('5.0'), 'EUR': Decimal('0.01')}
    assert estimate.total('fallback').cost == {'EUR': Decimal('0.01')}

    await enqueue.enqueue(operator, request)
    created = Counter((m.channel, m.status) for m in await Message.all())
    assert created == {(Channel.SMS, MessageStatus.QUEUED): 2, (Channel.EMAIL, MessageStatus.QUEUED): 1,
                       (Channel.EMAIL, MessageStatus.CREATED): 1}


async def test_parts_count_the_rendered_text_and_required_steps_count_as_sent(operator: Actor) -> None:
    steps = [SMS, {**EMAIL, 'required': True}]
    estimate = await sending.estimate(operator, SendRequest(steps=steps, destinations=[
        Destination(phone='+79123456789', email='a@example.com', variables={'name': 'x' * 200, 'order': 1})]))
    sms, email = estimate.channels
    assert (sms.first.messages, sms.first.parts, sms.first.cost) == (1, 2, {'RUB': Decimal('5.0')})
    assert (email.first.messages, email.fallback.messages) == (1, 0)


async def test_template_messages_without_tariff_and_opted_out_recipients(operator: Actor) -> None:
    template = await templates.create_template(operator, templates.TemplateInput(
        name='Order', allowed_time_ranges=[('09:00', '21:00')], steps=[SMS]))
    await Suppression.create(kind=SuppressionKind.PHONE, value='+79123456780')
    estimate = await sending.estimate(operator, SendRequest(template_id=template.id, destinations=[
        Destination(phone='+49 30 1234567', variables=VARIABLES),
        Destination(phone='+79123456780', variables=VARIABLES)]))
    sms, = estimate.channels
    assert (sms.first.messages, sms.first.unpriced, sms.first.cost, sms.skipped) == (1, 1, {}, 1)
    assert estimate.skipped == 1


async def test_each_recipient_problem_names_its_field(operator: Actor) -> None:
    estimate = await sending.estimate(operator, SendRequest(steps=[SMS, EMAIL], destinations=[
        Destination(phone='+7912', variables=VARIABLES),
        Destination(phone='+79123456789', email='not an email', variables=VARIABLES),
        Destination(external_id='CRM-1', variables=VARIABLES),
        Destination(phone='+79123456789', variables=VARIABLES),
        Destination(phone='89123456789', variables=VARIABLES),
        Destination(phone='+79123456781', variables={'name': 'Ann'}),
    ]))
    assert estimate.problems == [
        Problem(0, 'phone', 'Phone: too short'),
        Problem(1, 'email', 'Email: not an email address: it needs a name, “@” and a domain'),
        Problem(2, 'phone', 'Enter a phone (SMS) or an email (Email).'),
        Problem(4, 'phone', 'The same phone as recipient 4.'),
        Problem(5, 'variables', 'Missing variable(s): order.'),
    ]
    assert estimate.recipients == 1
    assert estimate.channels[0].first.messages == 1


async def test_a_channel_needs_its_own_contact(operator: Actor) -> None:
    estimate = await sending.estimate(operator, SendRequest(steps=[EMAIL], destinations=[
        Destination(phone='+79123456789', variables=VARIABLES),
        Destination(email='a@example.com', variables=VARIABLES),
        Destination(email='a@EXAMPLE.com', variables=VARIABLES)]))
    assert estimate.problems == [Problem(0, 'email', 'Enter an email (Email).'),
                                 Problem(2, 'email', 'The same email as recipient 2.')]


async def test_a_large_list_is_checked_in_worker_processes(operator: Actor) -> None:
    destinations = [Destination(phone=f'+7912{i:07d}', variables=VARIABLES) for i in range(phones.PARALLEL_FROM)]
    destinations[1500].phone = '+7912'
    try:
        estimate = await sending.estimate(operator, SendRequest(steps=[SMS], destinations=destinations))
    finally:
        phones.stop_workers()
    assert estimate.problems == [Problem(1500, 'phone', 'Phone: too short')]
    assert estimate.channels[0].first.messages == phones.PARALLEL_FROM - 1


async def test_estimate_writes_nothing_and_needs_the_send_permission(operator: Actor) -> None:
    request = SendRequest(steps=[SMS], destinations=[Destination(phone='+79123456789', variables=VARIABLES)])
    await sending.estimate(operator, request)
    assert request.template_id is None and not await Message.exists()
    viewer = await make_actor(Role.VIEWER)
    with pytest.raises(PermissionDenied):
        await sending.estimate(viewer, request)


async def test_unapproved_sender_is_refused_before_the_estimate(operator: Actor) -> None:
    with pytest.raises(ValidationError, match='approved'):
        await sending.estimate(operator, SendRequest(steps=[{**SMS, 'from': 'Nobody'}], destinations=[
            Destination(phone='+79123456789', variables=VARIABLES)]))


def test_check_variables_names_every_missing_one() -> None:
    sending.check_variables([SMS, EMAIL], {'name': 'Ann', 'order': 7})
    with pytest.raises(ValidationError) as error:
        sending.check_variables([SMS, EMAIL], {'name': '  '})
    assert error.value.errors == {'variables.name': 'Enter a value for {{name}}.',
                                  'variables.order': 'Enter a value for {{order}}.'}


def test_contact_hints() -> None:
    steps = [{'channel': 'viber'}, SMS, EMAIL, {'channel': 'telegram'}]
    assert sending.contact_fields(steps) == ['phone', 'email', 'messenger_user_id']
    assert sending.contact_hint(steps) == 'a phone (Viber, SMS) or an email (Email) or a Telegram chat ID (Telegram)'


def fields(destination: Destination) -> dict[str, str]:
    return {name: value for name, value in vars(destination).items() if value and name != 'variables'}


def test_pasted_cells_are_recognised_in_any_order_and_separator() -> None:
    pasted = sending.parse_recipients(
        '+7 912 345-67-89\n'
        'ann@example.com; CRM-2\n'
        '\n'
        'CRM-3\t89123456780\tbob@example.com\n'
        '1042, 79123456781\n'
        'tg:12345;CRM-5\n'
        '100200300400, +7912\n', 'RU')
    assert pasted.errors == []
    assert [fields(d) for d in pasted.destinations] == [
        {'phone': '+7 912 345-67-89'},
        {'email': 'ann@example.com', 'external_id': 'CRM-2'},
        {'external_id': 'CRM-3', 'phone': '89123456780', 'email': 'bob@example.com'},
        {'external_id': '1042', 'phone': '79123456781'},
        {'messenger_user_id': '12345', 'external_id': 'CRM-5'},
        {'phone': '+7912', 'external_id': '100200300400'},  # written like a phone, so it is one (and gets checked)
    ]


def test_a_valid_number_wins_over_a_numeric_id() -> None:
    pasted = sending.parse_recipients('100200300400;79123456789\n', 'RU')
    assert [fields(d) for d in pasted.destinations] == [{'external_id': '100200300400', 'phone': '79123456789'}]


def test_a_header_line_names_the_columns() -> None:
    pasted = sending.parse_recipients('External ID,Phone,Email\n79123456789,12345,\nA-2,,a@example.com\n', 'RU')
    assert pasted.errors == []
    assert [fields(d) for d in pasted.destinations] == [
        {'external_id': '79123456789', 'phone': '12345'}, {'external_id': 'A-2', 'email': 'a@example.com'}]


def test_unreadable_lines_are_reported_with_their_numbers() -> None:
    pasted = sending.parse_recipients('a@example.com;b@example.com\nCRM-1;Ann;+79123456789\nok@example.com', 'RU')
    assert pasted.errors == [
        'Line 1: two emails (“a@example.com” and “b@example.com”).',
        'Line 2: cannot tell which of “CRM-1”, “Ann” is the external ID: give one phone, one email and one external '
        'ID a line, or start with a header line.']
    assert [fields(d) for d in pasted.destinations] == [{'email': 'ok@example.com'}]
    header = sending.parse_recipients('Phone;Name\n+79123456789;Ann', 'RU')
    assert header.errors == ['Line 1: unknown column “Name”: columns are Phone, Email, External ID and Telegram.']
    extra = sending.parse_recipients('Phone\n+79123456789;Ann', 'RU')
    assert extra.errors == ['Line 2: more cells than the header has columns (1).']
