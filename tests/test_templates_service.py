import os
import uuid
from decimal import Decimal
from typing import Any

import pytest

from domain import templates
from domain.auth import Actor
from domain.channels import Channel
from domain.db import close_database, open_database
from domain.errors import NotFound, PermissionDenied, ValidationError
from domain.models import AuditEvent, Role, SenderName, SenderStatus, Tariff, Template, TimeZoneMode
from domain.templates import TemplateInput

OPERATOR = Actor(label='operator@example.com', role=Role.OPERATOR)
VIEWER = Actor(label='viewer@example.com', role=Role.VIEWER)


def sms_step(**overrides: Any) -> dict[str, Any]:
    return {'channel': 'sms', 'from': 'MyShop', 'text': 'Hello {{name}}, your code is {{code}}',
            'validityPeriod': 30, 'required': False, **overrides}


def email_step(**overrides: Any) -> dict[str, Any]:
    return {'channel': 'email', 'fromName': 'My Shop', 'fromEmail': 'shop@example.com', 'subject': 'Hi {{name}}',
            'text': 'Your order {{order}} is ready', 'validityPeriod': None, 'required': True, **overrides}


def make_input(**overrides: Any) -> TemplateInput:
    values: dict[str, Any] = {
        'name': 'Order ready', 'allowed_time_ranges': [('14:00', '18:00'), ('09:00', '12:00')],
        'time_zone_mode': TimeZoneMode.FIXED, 'time_zone': 'Europe/Moscow', 'steps': [sms_step(), email_step()]}
    return TemplateInput(**{**values, **overrides})


@pytest.fixture
async def senders(db) -> None:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    await SenderName.create(name='ShopViber', channel=Channel.VIBER, status=SenderStatus.APPROVED)
    await SenderName.create(name='Pending', channel=Channel.SMS, status=SenderStatus.REQUESTED)


async def test_create_stores_every_field_and_audits(senders) -> None:
    template = await templates.create_template(OPERATOR, make_input(name='  Order ready  '))
    stored = await Template.get(id=template.id)
    assert stored.name == 'Order ready'
    assert stored.allowed_time_ranges == [['09:00', '12:00'], ['14:00', '18:00']]
    assert stored.time_zone_mode is TimeZoneMode.FIXED and stored.time_zone == 'Europe/Moscow'
    assert stored.steps == [sms_step(), {**email_step(), 'validityPeriod': None}]
    event = await AuditEvent.get(entity_type='template', entity_id=str(template.id))
    assert (event.action, event.actor_label) == ('create', OPERATOR.label)


async def test_empty_optional_fields_are_dropped_and_validity_normalised(senders) -> None:
    step = sms_step(validityPeriod='', required=None, text='  Hi  ')
    viber = {'channel': 'viber', 'from': 'ShopViber', 'text': 'Hi', 'imageUrl': '', 'validityPeriod': 60.0}
    template = await templates.create_template(OPERATOR, make_input(steps=[step, viber]))
    assert template.steps == [
        {'channel': 'sms', 'from': 'MyShop', 'text': 'Hi', 'validityPeriod': None, 'required': False},
        {'channel': 'viber', 'from': 'ShopViber', 'text': 'Hi', 'validityPeriod': 60, 'required': False}]


INVALID: dict[str, tuple[dict[str, Any], str, str]] = {
    'empty name': ({'name': '  '}, 'name', 'Enter a template name.'),
    'long name': ({'name': 'x' * 201}, 'name', 'Use at most 200 characters.'),
    'no time range': ({'allowed_time_ranges': []}, 'time_ranges', 'Add at least one time range.'),
    'bad time': ({'allowed_time_ranges': [('9am', '12:00')]}, 'time_ranges.0', 'Enter times as HH:MM'),
    'start 24:00': ({'allowed_time_ranges': [('24:00', '24:00')]}, 'time_ranges.0', 'Enter times as HH:MM'),
    'minutes 60': ({'allowed_time_ranges': [('09:60', '12:00')]}, 'time_ranges.0', 'Enter times as HH:MM'),
    'start after end': ({'allowed_time_ranges': [('18:00', '09:00')]}, 'time_ranges.0', 'The start must be'),
    'empty range': ({'allowed_time_ranges': [('09:00', '09:00')]}, 'time_ranges.0', 'The start must be'),
    'overlap': ({'allowed_time_ranges': [('09:00', '12:00'), ('11:00', '13:00')]}, 'time_ranges.1', 'overlaps'),
    'unknown zone': ({'time_zone': 'Mars/Olympus'}, 'time_zone', '“Mars/Olympus” is not a known time zone.'),
    'no zone': ({'time_zone': ''}, 'time_zone', 'Choose a time zone.'),
    'bad zone mode': ({'time_zone_mode': 'moon'}, 'time_zone', 'Choose a fixed time zone'),
    'no steps': ({'steps': []}, 'steps', 'Add at least one channel.'),
    'unknown channel': ({'steps': [{'channel': 'fax'}]}, 'steps.0.channel', 'Unknown channel “fax”.'),
    'channel twice': ({'steps': [sms_step(), sms_step()]}, 'steps.1.channel', 'SMS is used twice'),
    'missing text': ({'steps': [sms_step(text='')]}, 'steps.0.text', 'Enter the text.'),
    'missing sender': ({'steps': [sms_step(**{'from': ''})]}, 'steps.0.from', 'Enter the sender name.'),
    'text too long': ({'steps': [sms_step(text='a' * 4001)]}, 'steps.0.text', 'Use at most 4000 characters.'),
    'unapproved sender': ({'steps': [sms_step(**{'from': 'Foo'})]}, 'steps.0.from',
                          '“Foo” is not an approved sender name for SMS.'),
    'requested sender': ({'steps': [sms_step(**{'from': 'Pending'})]}, 'steps.0.from', 'not an approved sender'),
    'sender of another channel': ({'steps': [sms_step(**{'from': 'ShopViber'})]}, 'steps.0.from',
                                  'not an approved sender name for SMS'),
    'sms sender syntax': ({'steps': [sms_step(**{'from': 'My Shop!'})]}, 'steps.0.from', 'up to 11 Latin letters'),
    'sms sender 12 letters': ({'steps': [sms_step(**{'from': 'ABCDEFGHIJKL'})]}, 'steps.0.from', 'up to 11'),
    'sms sender 16 digits': ({'steps': [sms_step(**{'from': '1' * 16})]}, 'steps.0.from', 'Use at most 15'),
    'validity 0': ({'steps': [sms_step(validityPeriod=0)]}, 'steps.0.validityPeriod', 'whole minutes from 1'),
    'validity 2881': ({'steps': [sms_step(validityPeriod=2881)]}, 'steps.0.validityPeriod', 'to 2880'),
    'validity fraction': ({'steps': [sms_step(validityPeriod=1.5)]}, 'steps.0.validityPeriod', 'whole minutes'),
    'validity text': ({'steps': [sms_step(validityPeriod='soon')]}, 'steps.0.validityPeriod', 'whole minutes'),
    'bad variable': ({'steps': [sms_step(text='Hi {{first name}}')]}, 'steps.0.text',
                     '“{{first name}}” is not a valid variable'),
    'unbalanced braces': ({'steps': [sms_step(text='Hi {{name')]}, 'steps.0.text', 'Unbalanced braces'),
    'unbalanced closing': ({'steps': [sms_step(text='Hi name}}')]}, 'steps.0.text', 'Unbalanced braces'),
    'bad subject variable': ({'steps': [email_step(subject='{{1st}}')]}, 'steps.0.subject', 'not a valid variable'),
    'email without body': ({'steps': [email_step(text='', html='  ')]}, 'steps.0.text', 'text body or an HTML'),
    'bad email': ({'steps': [email_step(fromEmail='shop.example.com')]}, 'steps.0.fromEmail', 'valid email'),
    'bad reply-to': ({'steps': [email_step(replyTo='x@')]}, 'steps.0.replyTo', 'valid email'),
    'bad url': ({'steps': [{'channel': 'viber', 'from': 'ShopViber', 'text': 'Hi', 'imageUrl': 'ftp://x/y.png'}]},
                'steps.0.imageUrl', 'starting with http:// or https://'),
    'url without host': ({'steps': [{'channel': 'viber', 'from': 'ShopViber', 'text': 'Hi', 'buttonUrl': 'https://'}]},
                         'steps.0.buttonUrl', 'http://'),
    'whatsapp template name': ({'steps': [{'channel': 'whatsapp', 'text': 'Hi'}]}, 'steps.0.templateName',
                               'Enter the template name.'),
}


@pytest.mark.parametrize('overrides, key, message', INVALID.values(), ids=INVALID.keys())
async def test_invalid_input_is_rejected_and_nothing_saved(senders, overrides, key, message) -> None:
    with pytest.raises(ValidationError) as raised:
        await templates.create_template(OPERATOR, make_input(**overrides))
    assert message in raised.value.errors[key]
    assert await Template.all().count() == 0
    assert await AuditEvent.all().count() == 0


async def test_duplicate_name_is_rejected_case_insensitively(senders) -> None:
    await templates.create_template(OPERATOR, make_input(name='Order ready'))
    with pytest.raises(ValidationError) as raised:
        await templates.create_template(OPERATOR, make_input(name='ORDER READY'))
    assert raised.value.errors == {'name': 'A template named “ORDER READY” already exists.'}
    assert await Template.all().count() == 1


async def test_limits_that_are_allowed(senders) -> None:
    await SenderName.create(name='123456789012345', channel=Channel.SMS, status=SenderStatus.APPROVED)
    template = await templates.create_template(OPERATOR, make_input(
        name='x' * 200, allowed_time_ranges=[('12:00', '24:00'), ('00:00', '12:00')],
        time_zone_mode=TimeZoneMode.RECIPIENT, time_zone='',
        steps=[sms_step(**{'from': '123456789012345'}, validityPeriod=2880, text='{{ a_1 }} {x} {{_b}}')]))
    assert template.allowed_time_ranges == [['00:00', '12:00'], ['12:00', '24:00']]
    assert (template.time_zone_mode, template.time_zone) == (TimeZoneMode.RECIPIENT, 'UTC')
    await SenderName.create(name='My Shop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    spaced = await templates.create_template(OPERATOR, make_input(name='Spaced', steps=[sms_step(**{'from': 'My Shop'})]))
    assert spaced.steps[0]['from'] == 'My Shop'


async def test_variables() -> None:
    assert templates.variables_in('Hi {{name}}, {{ code }} for {{name}} {{bad name}} {{x') == ['name', 'code']
    assert templates.variables_in('') == []
    steps = [sms_step(), email_step(html='<p>{{name}} {{extra}} {{order}}</p>')]
    assert templates.template_variables(steps) == ['name', 'code', 'order', 'extra']


async def test_search_by_full_id_and_part_of_name(senders) -> None:
    first = await templates.create_template(OPERATOR, make_input(name='Order ready'))
    await templates.create_template(OPERATOR, make_input(name='Order shipped'))
    await templates.create_template(OPERATOR, make_input(name='Birthday'))
    total, found = await templates.search_templates(OPERATOR, str(first.id))
    assert (total, [t.id for t in found]) == (1, [first.id])
    total, found = await templates.search_templates(VIEWER, 'ORDER')
    assert (total, sorted(t.name for t in found)) == (2, ['Order ready', 'Order shipped'])
    assert (await templates.search_templates(OPERATOR, str(uuid.uuid4())))[0] == 0
    assert (await templates.search_templates(OPERATOR, 'nothing like it'))[0] == 0


async def test_sort_and_paging(senders) -> None:
    for name in ('Charlie', 'Alpha', 'Echo', 'Bravo', 'Delta'):
        await templates.create_template(OPERATOR, make_input(name=name))
    total, page = await templates.search_templates(OPERATOR, sort='name', descending=False, offset=0, limit=2)
    assert (total, [t.name for t in page]) == (5, ['Alpha', 'Bravo'])
    _, page = await templates.search_templates(OPERATOR, sort='name', descending=False, offset=4, limit=2)
    assert [t.name for t in page] == ['Echo']
    _, page = await templates.search_templates(OPERATOR, sort='name', descending=True, limit=3)
    assert [t.name for t in page] == ['Echo', 'Delta', 'Charlie']
    _, page = await templates.search_templates(OPERATOR, sort='created_at', descending=True, limit=1)
    assert [t.name for t in page] == ['Delta']
    _, page = await templates.search_templates(OPERATOR, sort='password_hash; drop', descending=False, limit=1)
    assert [t.name for t in page] == ['Charlie']


async def test_update_writes_a_diff_to_the_audit_log(senders) -> None:
    template = await templates.create_template(OPERATOR, make_input())
    changed = make_input(name='Order ready (v2)', steps=[sms_step(text='Ready, {{name}}')])
    await templates.update_template(OPERATOR, str(template.id), changed)
    stored = await Template.get(id=template.id)
    assert stored.name == 'Order ready (v2)'
    assert stored.steps == [sms_step(text='Ready, {{name}}')]
    event = await AuditEvent.get(entity_type='template', action='update')
    assert event.changes['name'] == ['Order ready', 'Order ready (v2)']
    assert event.changes['steps'][1] == [sms_step(text='Ready, {{name}}')]
    assert set(event.changes) == {'name', 'steps'}


async def test_update_keeps_its_own_name_and_rejects_another(senders) -> None:
    template = await templates.create_template(OPERATOR, make_input(name='Order ready'))
    await templates.create_template(OPERATOR, make_input(name='Birthday'))
    await templates.update_template(OPERATOR, template.id, make_input(name='order READY'))
    with pytest.raises(ValidationError) as raised:
        await templates.update_template(OPERATOR, template.id, make_input(name='birthday'))
    assert 'already exists' in raised.value.errors['name']
    assert (await Template.get(id=template.id)).name == 'order READY'


async def test_unchanged_update_writes_no_audit_record(senders) -> None:
    template = await templates.create_template(OPERATOR, make_input())
    await templates.update_template(OPERATOR, template.id, make_input())
    assert await AuditEvent.filter(action='update').count() == 0


async def test_delete_and_not_found(senders) -> None:
    template = await templates.create_template(OPERATOR, make_input())
    await templates.delete_template(OPERATOR, template.id)
    assert not await Template.exists(id=template.id)
    assert await AuditEvent.filter(action='delete', entity_id=str(template.id)).exists()
    for missing in (template.id, str(uuid.uuid4()), 'not-an-id', ''):
        with pytest.raises(NotFound):
            await templates.get_template(OPERATOR, missing)
    with pytest.raises(NotFound):
        await templates.delete_template(OPERATOR, template.id)
    with pytest.raises(NotFound):
        await templates.update_template(OPERATOR, 'nope', make_input())


async def test_a_viewer_may_read_but_not_change(senders) -> None:
    template = await templates.create_template(OPERATOR, make_input())
    assert (await templates.get_template(VIEWER, template.id)).id == template.id
    with pytest.raises(PermissionDenied):
        await templates.create_template(VIEWER, make_input(name='Other'))
    with pytest.raises(PermissionDenied):
        await templates.update_template(VIEWER, template.id, make_input(name='Other'))
    with pytest.raises(PermissionDenied):
        await templates.delete_template(VIEWER, template.id)
    assert [t.name for t in await Template.all()] == ['Order ready']
    assert await AuditEvent.all().count() == 1


async def test_preview_of_sms_parts_and_cost(db) -> None:
    await Tariff.create(channel=Channel.SMS, country='*', price_per_part=Decimal('0.05'), currency='EUR')
    await Tariff.create(channel=Channel.SMS, country='RU', price_per_part=Decimal('2.15'), currency='RUB')
    short = await templates.preview({'channel': 'sms', 'text': 'Hi {{name}}'})  # braces take two septets each
    assert short == {'variables': ['name'], 'encoding': 'GSM-7', 'parts': 1, 'remaining': 160 - 15,
                     'cost': Decimal('0.05'), 'currency': 'EUR', 'cost_text': '0.05 EUR'}
    gsm = await templates.preview({'channel': 'sms', 'text': 'a' * 161})
    assert (gsm['encoding'], gsm['parts'], gsm['remaining'], gsm['cost']) == ('GSM-7', 2, 153 - 8, Decimal('0.10'))
    ucs = await templates.preview({'channel': 'sms', 'text': 'Привет' * 12}, country='ru')
    assert (ucs['encoding'], ucs['parts'], ucs['remaining']) == ('UCS-2', 2, 67 - 5)
    assert (ucs['cost'], ucs['cost_text']) == (Decimal('4.30'), '4.3 RUB')
    fallback = await templates.preview({'channel': 'sms', 'text': 'Привет'}, country='DE')
    assert (fallback['encoding'], fallback['parts'], fallback['cost']) == ('UCS-2', 1, Decimal('0.05'))


async def test_preview_of_viber_and_without_tariff(db) -> None:
    no_tariff = await templates.preview({'channel': 'viber', 'text': 'Hello {{name}}'})
    assert no_tariff == {'variables': ['name'], 'encoding': None, 'parts': 1, 'remaining': 1000 - 14,
                         'cost': None, 'currency': '', 'cost_text': 'no tariff'}
    await Tariff.create(channel=Channel.VIBER, country='*', price_per_part=Decimal('0.0300'), currency='EUR')
    viber = await templates.preview({'channel': 'viber', 'text': 'x' * 900})
    assert (viber['parts'], viber['cost'], viber['cost_text']) == (1, Decimal('0.03'), '0.03 EUR')
    email = await templates.preview(email_step(subject='{{order}} for {{name}}', text='{{name}}', html='{{x}}'))
    assert (email['variables'], email['cost_text']) == (['order', 'name', 'x'], 'no tariff')


async def test_labels_and_api_shape(senders) -> None:
    template = await templates.create_template(OPERATOR, make_input())
    assert templates.cascade_label(template.steps) == 'SMS → Email'
    assert templates.schedule_label(template) == '09:00–12:00, 14:00–18:00 (Europe/Moscow)'
    shape = templates.template_to_api(await Template.get(id=template.id))
    assert shape['id'] == str(template.id) and shape['name'] == 'Order ready'
    assert list(shape['channels']) == ['sms', 'email']
    assert shape['channels']['sms'] == {'from': 'MyShop', 'text': 'Hello {{name}}, your code is {{code}}',
                                        'validityPeriod': 30, 'required': False}
    assert shape['allowedTimeRanges'] == [['09:00:00', '12:00:00'], ['14:00:00', '18:00:00']]
    assert (shape['timeZoneMode'], shape['timeZone']) == ('fixed', 'Europe/Moscow')
    assert shape['createdAt'].startswith(str(template.created_at.date()))


async def test_template_survives_a_restart(senders) -> None:
    created = await templates.create_template(OPERATOR, make_input())
    before = await Template.get(id=created.id)
    await close_database()
    await open_database(os.environ['HERALD_DATABASE_URL'])
    after = await Template.get(id=created.id)
    for name in Template._meta.fields_db_projection:
        assert getattr(after, name) == getattr(before, name), name
    assert after.allowed_time_ranges == [['09:00', '12:00'], ['14:00', '18:00']]
    assert templates.cascade_label(after.steps) == 'SMS → Email'
    assert templates.template_to_api(after) == templates.template_to_api(before)
