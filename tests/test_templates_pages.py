
from helpers import eventually, sign_in_as, table_rows
from nicegui import ui
from nicegui.testing import User
from test_templates_service import OPERATOR, make_input

from domain import templates
from domain.channels import Channel
from domain.models import AuditEvent, Role, SenderName, SenderStatus, Template, TimeZoneMode


async def approve_sender() -> None:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)


async def fill(user: User, marker: str, text: str) -> None:
    """Replace the value of the input with this marker (once it is there)."""
    await user.should_see(marker=marker)
    element = user.find(marker=marker).elements.pop()
    element.value = ''
    user.find(marker=marker).type(text)


async def names_listed(user: User, expected: list[str]) -> None:
    await eventually(lambda: [row['name'] for row in table_rows(user)] == expected)


async def test_create_search_edit_and_delete_through_the_pages(user: User) -> None:
    await approve_sender()
    await sign_in_as(user, Role.OPERATOR)
    await user.open('/templates')
    await user.should_see('There are no templates yet.')
    user.find('Create a notification template').click()
    await user.should_see('Message sent time')
    user.find(marker='template-name').type('Order ready')
    await fill(user, 'range-end-0', '12:00')
    user.find(marker='add-range').click()
    await fill(user, 'range-start-1', '14:00')
    await fill(user, 'range-end-1', '18:00')
    user.find('Fixed time zone').click()
    user.find(marker='add-step').click()
    await user.should_see(marker='sms-text')
    user.find(marker='sms-text').type('Hi {{name}}, order {{order}} is ready')
    user.find(marker='sms-validityPeriod').type('30')
    await user.should_see('Variables: name, order · GSM-7 · 1 part(s)')
    user.find(marker='channel').click()
    user.find('Email').click()
    user.find(marker='add-step').click()
    await user.should_see(marker='email-subject')
    await fill(user, 'email-fromEmail', 'shop@example.com')
    await fill(user, 'email-subject', 'Order {{order}}')
    await fill(user, 'email-html', '<p>Hello {{name}}</p>')
    await user.should_see('Variables: order, name')
    user.find(marker='save').click()
    await user.should_see('Create a notification template')

    template = await Template.get(name='Order ready')
    assert template.allowed_time_ranges == [['09:00', '12:00'], ['14:00', '18:00']]
    assert (template.time_zone_mode, template.time_zone) == (TimeZoneMode.FIXED, 'UTC')
    assert template.steps == [
        {'channel': 'sms', 'from': 'MyShop', 'text': 'Hi {{name}}, order {{order}} is ready',
         'validityPeriod': 30, 'required': False},
        {'channel': 'email', 'fromEmail': 'shop@example.com', 'subject': 'Order {{order}}',
         'html': '<p>Hello {{name}}</p>', 'validityPeriod': None, 'required': False}]
    await names_listed(user, ['Order ready'])
    row = table_rows(user)[0]
    assert (row['channels'], row['schedule']) == ('SMS → Email', '09:00–12:00, 14:00–18:00 (UTC)')

    await templates.create_template(OPERATOR, make_input(name='Birthday'))
    await user.open('/templates')
    await names_listed(user, ['Birthday', 'Order ready'])
    user.find(marker='search').type('READY')
    await names_listed(user, ['Order ready'])
    await fill(user, 'search', str(template.id))
    await names_listed(user, ['Order ready'])
    await fill(user, 'search', 'no such template')
    await names_listed(user, [])
    await user.should_see('No templates match your search.')
    user.find('Clear').click()
    await names_listed(user, ['Birthday', 'Order ready'])

    await user.open(f'/templates/{template.id}')
    await user.should_see(marker='email-subject')
    await fill(user, 'template-name', 'Order ready (v2)')
    user.find('Recipient\'s local time (from the phone number)').click()
    user.find(marker='save').click()
    await user.should_see('Create a notification template')
    template = await Template.get(id=template.id)
    assert (template.name, template.time_zone_mode) == ('Order ready (v2)', TimeZoneMode.RECIPIENT)
    event = await AuditEvent.get(action='update', entity_id=str(template.id))
    assert event.changes['name'] == ['Order ready', 'Order ready (v2)']

    await names_listed(user, ['Birthday', 'Order ready (v2)'])
    user.find(ui.table).trigger('delete', table_rows(user)[1])
    await user.should_see('Delete the template “Order ready (v2)”? This cannot be undone.')
    user.find(kind=ui.button, content='Delete').click()
    await names_listed(user, ['Birthday'])
    assert not await Template.exists(id=template.id)


async def test_reorder_and_remove_steps_and_ranges(user: User) -> None:
    await approve_sender()
    template = await templates.create_template(OPERATOR, make_input())
    await sign_in_as(user, Role.OPERATOR)
    await user.open(f'/templates/{template.id}')
    await user.should_see(marker='email-subject')
    user.find(marker='move-up-1').click()
    user.find(marker='remove-range-0').click()
    user.find(marker='save').click()
    await user.should_see('Create a notification template')
    stored = await Template.get(id=template.id)
    assert [step['channel'] for step in stored.steps] == ['email', 'sms']
    assert stored.allowed_time_ranges == [['14:00', '18:00']]


async def test_invalid_input_shows_errors_and_saves_nothing(user: User) -> None:
    await approve_sender()
    await sign_in_as(user, Role.OPERATOR)
    await user.open('/templates/new')
    await fill(user, 'range-start-0', '22:00')
    user.find(marker='add-step').click()
    await user.should_see(marker='sms-text')
    user.find(marker='sms-text').type('Hi {{first name}}')
    user.find(marker='save').click()
    await eventually(lambda: user.find(marker='template-name').elements.pop().error == 'Enter a template name.')
    assert user.find(marker='range-start-0').elements.pop().error == 'The start must be before the end.'
    assert 'is not a valid variable' in user.find(marker='sms-text').elements.pop().error
    assert await Template.all().count() == 0

    user.find(marker='remove-step-0').click()
    user.find(marker='save').click()
    await user.should_see('Add at least one channel.')
    assert await Template.all().count() == 0


async def test_paging_sorting_and_filters_in_the_url(user: User) -> None:
    await approve_sender()
    for number in range(25):
        await templates.create_template(OPERATOR, make_input(name=f'Template {number:02d}'))
    await sign_in_as(user, Role.VIEWER)
    await user.open('/templates?sort=name&desc=false&page=2')
    await names_listed(user, [f'Template {n}' for n in range(20, 25)])
    table = user.find(ui.table).elements.pop()
    assert table.pagination['rowsNumber'] == 25
    table_interaction = user.find(ui.table)
    table_interaction.trigger('request', {'pagination': {'sortBy': 'name', 'descending': True, 'page': 1,
                                                         'rowsPerPage': 20}})
    await eventually(lambda: table.rows[0]['name'] == 'Template 24' and len(table.rows) == 20)
    await user.open('/templates?search=Template%201')
    await eventually(lambda: len(table_rows(user)) == 10)
    assert user.find(marker='search').elements.pop().value == 'Template 1'


async def test_a_viewer_sees_but_cannot_change(user: User) -> None:
    await approve_sender()
    template = await templates.create_template(OPERATOR, make_input())
    await sign_in_as(user, Role.VIEWER)
    await user.open('/templates')
    await names_listed(user, ['Order ready'])
    await user.should_not_see('Create a notification template')
    await user.open(f'/templates/{template.id}')
    await user.should_see('can view templates but not change them')
    await user.should_not_see(marker='save')
    await user.should_not_see(marker='add-step')
    assert user.find(marker='template-name').elements.pop().props.get('readonly') is True
    await user.open('/templates/new')
    await user.should_see('has no access to this page')


async def test_unknown_template(user: User) -> None:
    await sign_in_as(user, Role.OPERATOR)
    for template_id in ('not-an-id', '00000000-0000-0000-0000-000000000000'):
        await user.open(f'/templates/{template_id}')
        await user.should_see('Template not found')
