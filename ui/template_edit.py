"""Create and edit a notification template: name, sending time, time zone and the cascade of channel steps."""
from __future__ import annotations

from typing import Any

from nicegui import ui

from domain import senders, templates
from domain.auth import Actor, Permission
from domain.channels import SENDER_CHANNELS, STEP_FIELDS, Channel, StepField
from domain.errors import HeraldError, NotFound, ValidationError
from domain.models import Template, TimeZoneMode
from domain.templates import TemplateInput

from .forms import TimeRangesEditor, icon_button, show_errors
from .frame import page_frame

TIME_ZONE_MODES = {TimeZoneMode.FIXED.value: 'Fixed time zone',
                   TimeZoneMode.RECIPIENT.value: "Recipient's local time (from the phone number)"}
DEFAULT_RANGE = ('09:00', '21:00')
FULL_PREVIEW = (Channel.SMS, Channel.VIBER)


def create() -> None:
    @ui.page('/templates/new')
    async def new_template_page() -> None:
        actor = await page_frame('New template', Permission.MANAGE_TEMPLATES)
        if actor:
            await TemplateForm(actor, None).build()

    @ui.page('/templates/{template_id}')
    async def edit_template_page(template_id: str) -> None:
        actor = await page_frame('Edit template')
        if not actor:
            return
        try:
            template = await templates.get_template(actor, template_id)
        except NotFound:
            ui.label('Template not found: it may have been deleted, or the link is wrong.').classes('text-lg')
            ui.link('Back to the templates', '/templates')
            return
        await TemplateForm(actor, template).build()


def _form_step(step: dict[str, Any]) -> dict[str, Any]:
    """A step with every key the form binds to (an empty sender is None: a select has no '' option)."""
    channel = Channel(step['channel'])
    blank = {f.key: None if f.kind == 'sender' else '' for f in STEP_FIELDS[channel]}
    values = {key: value for key, value in step.items() if value != ''}
    return {**blank, 'validityPeriod': None, 'required': False, **values, 'channel': channel.value}


def _preview_text(channel: Channel, info: dict[str, Any]) -> str:
    variables = 'Variables: ' + (', '.join(info['variables']) or 'none')
    if channel not in FULL_PREVIEW:
        return variables
    size = f'{info["remaining"]} characters left'
    if info['encoding']:
        size = f'{info["encoding"]} · {info["parts"]} part(s) · {info["remaining"]} characters left in this part'
    return f'{variables} · {size} · cost per recipient: {info["cost_text"]}'


class TemplateForm:
    """The form's state lives in plain values and dicts the inputs bind to; sections redraw from them."""

    def __init__(self, actor: Actor, template: Template | None) -> None:
        self.actor = actor
        self.template = template
        self.editable = actor.can(Permission.MANAGE_TEMPLATES)
        data = TemplateInput.of(template) if template else TemplateInput('', [DEFAULT_RANGE])
        self.name = data.name
        self.initial_ranges = data.allowed_time_ranges
        self.mode = TimeZoneMode(data.time_zone_mode).value
        self.zone = data.time_zone
        self.use_short_links = data.use_short_links
        self.steps = [_form_step(step) for step in data.steps]
        self.sender_names: dict[Channel, list[str]] = {}
        self.inputs: dict[str, ui.element] = {}
        self.time_ranges: TimeRangesEditor | None = None
        self.step_inputs: dict[str, ui.element] = {}

    async def build(self) -> None:
        self.sender_names = {channel: await senders.approved_names(channel) for channel in SENDER_CHANNELS}
        with ui.column().classes('w-full max-w-4xl gap-4'):
            name = self._editable(ui.input('Template name').bind_value(self, 'name').classes('w-full'))
            self.inputs['name'] = name.mark('template-name')
            ui.label('Message sent time').classes('text-h6')
            self.time_ranges = TimeRangesEditor(self.initial_ranges, self.editable)
            self._time_zone()
            ui.label('Message templates by channel').classes('text-h6')
            short_links = ui.checkbox('Shorten links (SMS, Viber)').bind_value(self, 'use_short_links') \
                .mark('use-short-links')
            if not self.editable:
                short_links.disable()
            await self.steps_section()
            self._buttons()

    def _editable(self, element: ui.element) -> Any:
        """The element, read-only for someone who may not change templates."""
        if not self.editable:
            element.props('readonly')
        return element

    # --- sending time ---

    def _time_zone(self) -> None:
        mode = ui.radio(TIME_ZONE_MODES).bind_value(self, 'mode').props('inline')
        zone = ui.select(templates.time_zones(), label='Time zone', with_input=True).bind_value(self, 'zone') \
            .bind_visibility_from(self, 'mode', value=TimeZoneMode.FIXED.value).classes('w-80')
        if not self.editable:
            mode.disable()
            zone.props('readonly')
        self.inputs['time_zone'] = zone

    # --- channel steps ---

    @ui.refreshable_method
    async def steps_section(self) -> None:
        self.step_inputs = {}
        for i, step in enumerate(self.steps):
            await self._step_card(i, step)
        if not self.steps:
            ui.label('No channels yet: choose one and click Add.').classes('text-grey-7')
        unused = {c.value: c.label for c in Channel if c.value not in {s['channel'] for s in self.steps}}
        if self.editable and unused:
            with ui.row().classes('items-center gap-2'):
                choice = ui.select(unused, label='Channel', value=next(iter(unused))).classes('w-48').mark('channel')
                ui.button('Add', icon='add', on_click=lambda: self._add_step(choice.value)).props('outline') \
                    .mark('add-step')

    async def _step_card(self, index: int, step: dict[str, Any]) -> None:
        channel = Channel(step['channel'])
        with ui.card().classes('w-full'):
            with ui.row().classes('w-full items-center'):
                ui.label(f'{index + 1}. {channel.label}').classes('text-subtitle1 text-bold')
                ui.space()
                if self.editable:
                    self._step_buttons(index)
            texts = []
            for step_field in STEP_FIELDS[channel]:
                element = self._step_field(channel, step, step_field)
                self.step_inputs[f'steps.{index}.{step_field.key}'] = element.mark(f'{channel.value}-{step_field.key}')
                if step_field.has_variables:
                    texts.append(element)
            with ui.row().classes('items-center gap-4'):
                validity = ui.number('Validity period, minutes', min=1, max=templates.MAX_VALIDITY_MINUTES,
                                     precision=0).bind_value(step, 'validityPeriod').classes('w-56')
                self.step_inputs[f'steps.{index}.validityPeriod'] = self._editable(validity).mark(
                    f'{channel.value}-validityPeriod').tooltip('How long to wait for delivery before the next channel')
                required = ui.checkbox('Required').bind_value(step, 'required') \
                    .tooltip('Send this step whatever happened to the ones before it')
                required.set_enabled(self.editable)
            await self._preview(channel, step, texts)

    def _step_buttons(self, index: int) -> None:
        if index > 0:
            icon_button('arrow_upward', 'Move up', lambda: self._move_step(index, -1), f'move-up-{index}')
        if index < len(self.steps) - 1:
            icon_button('arrow_downward', 'Move down', lambda: self._move_step(index, 1), f'move-down-{index}')
        icon_button('delete', 'Remove this channel', lambda: self._remove_step(index), f'remove-step-{index}')

    def _step_field(self, channel: Channel, step: dict[str, Any], step_field: StepField) -> ui.element:
        if step_field.kind == 'sender':
            return self._sender_select(channel, step, step_field)
        kind = ui.textarea if step_field.kind == 'textarea' else ui.input
        element = kind(step_field.label).bind_value(step, step_field.key).classes('w-full')
        if step_field.kind == 'textarea':
            element.props('autogrow')
        return self._editable(element)

    def _sender_select(self, channel: Channel, step: dict[str, Any], step_field: StepField) -> ui.select:
        names = self.sender_names[channel]
        current = step[step_field.key]
        options = names + [current] if current and current not in names else names
        select = self._editable(ui.select(options, label=step_field.label).bind_value(step, step_field.key))
        if not names:
            with ui.row().classes('items-center gap-1 text-caption'):
                ui.label(f'There is no approved sender name for {channel.label} yet:')
                ui.link('request one in Settings → Sender names', '/settings/senders')
        return select.classes('w-64')

    @staticmethod
    async def _preview(channel: Channel, step: dict[str, Any], texts: list[ui.input]) -> None:
        """A line under the step that follows its text fields as you type."""
        label = ui.label().classes('text-caption text-grey-8').mark(f'{channel.value}-preview')

        async def update() -> None:
            label.text = _preview_text(channel, await templates.preview(step))
        for text in texts:
            text.on_value_change(update)
        await update()

    def _add_step(self, channel: str | None) -> None:
        if channel:
            names = self.sender_names.get(Channel(channel), [])
            sender = {f.key: names[0] for f in STEP_FIELDS[Channel(channel)] if f.kind == 'sender' and names}
            self.steps.append(_form_step({'channel': channel, **sender}))
            self.steps_section.refresh()

    def _move_step(self, index: int, offset: int) -> None:
        self.steps[index], self.steps[index + offset] = self.steps[index + offset], self.steps[index]
        self.steps_section.refresh()

    def _remove_step(self, index: int) -> None:
        del self.steps[index]
        self.steps_section.refresh()

    # --- saving ---

    def _buttons(self) -> None:
        with ui.row().classes('gap-2'):
            if self.editable:
                ui.button('Save' if self.template else 'Create', on_click=self.save).mark('save')
            else:
                ui.label(f'Your role ({self.actor.role.value}) can view templates but not change them.') \
                    .classes('text-grey-7')
            ui.button('Cancel', on_click=lambda: ui.navigate.to('/templates')).props('flat')

    async def save(self) -> None:
        data = TemplateInput(self.name, self.time_ranges.values, self.mode, self.zone or '',
                             self.steps, self.use_short_links)
        try:
            if self.template:
                saved = await templates.update_template(self.actor, self.template.id, data)
            else:
                saved = await templates.create_template(self.actor, data)
        except ValidationError as error:
            show_errors(error, {**self.inputs, **self.time_ranges.inputs, **self.step_inputs})
            return
        except HeraldError as error:
            ui.notify(str(error), type='negative')
            return
        ui.notify(f'Template “{saved.name}” {"saved" if self.template else "created"}.', type='positive')
        ui.navigate.to('/templates')
