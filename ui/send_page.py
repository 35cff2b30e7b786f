"""Send notification (the manual's "Sending notifications"): choose a template, add recipients one by one or paste many,
fill in the template's variables, check the estimate and send."""
from __future__ import annotations

import itertools
import uuid
from typing import Any

from nicegui import events, ui

from domain import enqueue, sending, templates
from domain.auth import Actor, Permission
from domain.channels import Channel
from domain.config import settings
from domain.enqueue import Destination, EnqueueResult, SendRequest
from domain.errors import HeraldError, NotFound, ValidationError
from domain.models import Template

from .forms import money, plural, show_errors
from .frame import page_frame
from .tables import ServerTable, column

OPTION_LIMIT = 200  # templates offered at once; typing searches the rest
SHOWN_REJECTS = 50
FIELD_LABELS = {'external_id': 'External ID', 'phone': 'Phone', 'email': 'Email',
                'messenger_user_id': 'Telegram chat ID'}
REMOVE_CELL = '''
<q-td :props="props" auto-width>
  <q-btn flat dense round icon="close" aria-label="Remove recipient"
         @click="() => $parent.$emit('remove', props.row)" />
</q-td>
'''
PASTE_HELP = '''
One recipient a line; separate the cells of a line with tabs (as copied from a spreadsheet), commas or semicolons:

- a cell with **@** is the **email**;
- the cell that is a phone number is the **phone**: with its country code (`+49 30 1234567`), or without it for
  a number of {region};
- what else is on the line is the **external ID**;
- a cell starting with **tg:** is a **Telegram chat ID** (`tg:123456789`).

Or start with a header line naming the columns: `Phone`, `Email`, `External ID`, `Telegram`.
At most {limit:,} recipients per send: larger lists are tasks.
'''


def create() -> None:
    @ui.page('/send')
    async def send_page(template: str = '') -> None:
        actor = await page_frame('Send notification', Permission.SEND)
        if actor:
            await SendForm(actor).build(template)


def _tally_text(channel: Channel, tally: sending.Tally) -> str:
    parts = f', {plural(tally.parts, "part")}' if tally.parts != tally.messages else ''
    return f'{channel.label}: {plural(tally.messages, "message")}{parts} — {money(tally)}'


def _blank_row(number: int) -> dict[str, Any]:
    return {'id': number, **dict.fromkeys(FIELD_LABELS, ''), 'problem': '', 'problem_field': ''}


def _row_of(number: int, destination: Destination) -> dict[str, Any]:
    return {**_blank_row(number), **{name: getattr(destination, name) or '' for name in FIELD_LABELS}}


def _who(row: dict[str, Any]) -> str:
    return next((row[name] for name in ('phone', 'email', 'messenger_user_id', 'external_id') if row[name]), '')


class SendForm:
    """Recipients typed one by one are rows of inputs; pasted ones (often hundreds) are rows of a paged table."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.template: Template | None = None
        self.typed: list[dict[str, Any]] = []
        self.pasted: list[dict[str, Any]] = []
        self.values: dict[str, str] = {}
        self.variable_inputs: dict[str, ui.input] = {}
        self.numbers = itertools.count(1)
        self.more_templates = False
        self.only_problems = False

    async def build(self, template_id: str) -> None:
        with ui.column().classes('w-full max-w-5xl gap-3'):
            self.select = ui.select({}, label='Select template', with_input=True, on_change=self._on_template) \
                .classes('w-96').mark('template')
            self.select.on('input-value', self._search_templates)
            self.template_info = ui.label().classes('text-caption text-grey-8').mark('template-info')
            ui.label('Recipients').classes('text-h6')
            with ui.row().classes('items-center gap-2'):
                ui.button('New recipient', icon='person_add', on_click=self._add_row).mark('new-recipient')
                ui.button('Paste many', icon='content_paste', on_click=self._paste).props('outline') \
                    .mark('paste-many')
                self.count_label = ui.label().classes('ml-2 text-grey-8').mark('recipient-count')
            self.typed_section()
            self._pasted_table()
            self.variables_section()
            with ui.row().classes('items-center gap-3'):
                self.send_button = ui.button('Send', icon='send', on_click=self.send).mark('send')
                self.spinner = ui.spinner()
                self.problem_label = ui.label().classes('text-negative').mark('problems')
            self.spinner.set_visibility(False)
            self.result = ui.column().classes('w-full')
        self._update_count()
        await self._load_templates(template_id)

    # --- template ---

    async def _template_options(self, query: str) -> dict[str, str]:
        total, found = await templates.search_templates(self.actor, query, 'name', False, 0, OPTION_LIMIT)
        self.more_templates = self.more_templates or total > len(found)
        return {str(template.id): template.name for template in found}

    async def _load_templates(self, template_id: str) -> None:
        options = await self._template_options('')
        if not template_id:
            self.select.set_options(options)
            return
        try:
            template = await templates.get_template(self.actor, template_id)
        except NotFound as error:
            self.select.set_options(options)
            ui.notify(str(error), type='warning')
            return
        self.select.set_options({**options, str(template.id): template.name}, value=str(template.id))

    async def _search_templates(self, event: events.GenericEventArguments) -> None:
        """With more templates than the list holds, typing asks the server (by name, or a full id)."""
        if not self.more_templates:
            return
        chosen = {str(self.template.id): self.template.name} if self.template else {}
        self.select.set_options({**chosen, **await self._template_options(str(event.args or ''))},
                                value=self.select.value)

    async def _on_template(self) -> None:
        try:
            self.template = await templates.get_template(self.actor, self.select.value) if self.select.value else None
        except NotFound as error:
            self.template = None
            ui.notify(str(error), type='warning')
        steps = self.template.steps if self.template else []
        self.template_info.text = (f'{templates.cascade_label(steps)} · sending time '
                                   f'{templates.schedule_label(self.template)} · each recipient needs '
                                   f'{sending.contact_hint(steps)}') if self.template else ''
        self.result.clear()
        self.pasted_table.table.columns = self._table_columns()
        await self._show_problems([])
        self.variables_section.refresh()

    def _contact_columns(self) -> list[str]:
        """External ID, phone and email; a Telegram chat ID too when the template sends through Telegram."""
        telegram = self.template and any(step['channel'] == Channel.TELEGRAM.value for step in self.template.steps)
        return [name for name in FIELD_LABELS if name != 'messenger_user_id' or telegram]

    # --- recipients ---

    def _update_count(self) -> None:
        count = len(self.typed) + len(self.pasted)
        self.count_label.text = plural(count, 'recipient') if count else 'No recipients yet'

    async def _add_row(self) -> None:
        self.typed.append(_blank_row(next(self.numbers)))
        await self._typed_changed()

    async def _remove_row(self, row: dict[str, Any]) -> None:
        self.typed.remove(row)
        await self._typed_changed()

    async def _typed_changed(self) -> None:
        self.typed_section.refresh()
        self._update_count()
        if self.pasted:
            await self.pasted_table.load()  # the numbers of the pasted rows follow the typed ones

    @ui.refreshable_method
    def typed_section(self) -> None:
        for i, row in enumerate(self.typed):
            with ui.row().classes('items-start gap-2 w-full no-wrap'):
                ui.label(f'{i + 1}.').classes('mt-4 w-8 text-right')
                inputs = {name: ui.input(FIELD_LABELS[name]).bind_value(row, name).classes('w-56')
                          .mark(f'{name}-{i}') for name in self._contact_columns()}
                if row['problem']:
                    (inputs.get(row['problem_field']) or inputs['phone']).error = row['problem']
                for element in inputs.values():
                    element.on_value_change(lambda _, row=row, inputs=inputs: self._clear_problem(row, inputs))
                ui.button(icon='close', on_click=lambda row=row: self._remove_row(row)) \
                    .props('flat round dense aria-label="Remove recipient"').classes('mt-3').mark(f'remove-{i}')

    @staticmethod
    def _clear_problem(row: dict[str, Any], inputs: dict[str, ui.input]) -> None:
        if row['problem']:
            row['problem'] = ''
            for element in inputs.values():
                element.error = None

    def _table_columns(self) -> list[dict[str, Any]]:
        return [column('number', '#'), *(column(name, FIELD_LABELS[name]) for name in self._contact_columns()),
                {**column('problem', 'Problem'), 'classes': 'text-negative'}, column('remove', '')]

    def _pasted_table(self) -> None:
        with ui.column().classes('w-full gap-1') as self.pasted_section:
            with ui.row().classes('w-full items-center gap-2'):
                ui.label('Pasted recipients').classes('text-subtitle1')
                ui.space()
                self.problems_switch = ui.switch('Only recipients with problems', on_change=self._filter_problems)
                self.remove_problems = ui.button('Remove recipients with problems', icon='delete_sweep',
                                                 on_click=self._remove_with_problems).props('flat color=negative') \
                    .mark('remove-problems')
                ui.button('Remove all', icon='clear_all', on_click=self._remove_all_pasted).props('flat') \
                    .mark('remove-pasted')
            self.pasted_table = ServerTable(self._table_columns(), self._fetch_pasted, rows_per_page=10)
            self.pasted_table.table.add_slot('body-cell-remove', REMOVE_CELL)
            self.pasted_table.table.on('remove', self._remove_pasted)
        self._show_pasted()

    def _show_pasted(self) -> None:
        self.pasted_section.set_visibility(bool(self.pasted))
        with_problems = any(row['problem'] for row in self.pasted)
        self.problems_switch.set_visibility(with_problems)
        self.remove_problems.set_visibility(with_problems)
        if not with_problems:
            self.only_problems = False
            self.problems_switch.value = False

    async def _fetch_pasted(self, offset: int, limit: int, _sort: str | None, _descending: bool
                            ) -> tuple[int, list[dict[str, Any]]]:
        first = len(self.typed) + 1
        shown = [(i, row) for i, row in enumerate(self.pasted) if row['problem'] or not self.only_problems]
        return len(shown), [{**row, 'number': first + i} for i, row in shown[offset:offset + limit]]

    async def _reload_pasted(self) -> None:
        self._show_pasted()
        self._update_count()
        await self.pasted_table.load()

    async def _filter_problems(self, event: events.ValueChangeEventArguments) -> None:
        self.only_problems = bool(event.value)
        await self.pasted_table.load({'page': 1})

    async def _remove_pasted(self, event: events.GenericEventArguments) -> None:
        self.pasted = [row for row in self.pasted if row['id'] != event.args['id']]
        await self._reload_pasted()

    async def _remove_with_problems(self) -> None:
        count = len(self.pasted)
        self.pasted = [row for row in self.pasted if not row['problem']]
        ui.notify(f'Removed {plural(count - len(self.pasted), "recipient")} with problems.')
        await self._reload_pasted()
        self._update_problem_label()

    async def _remove_all_pasted(self) -> None:
        self.pasted = []
        await self._reload_pasted()
        self._update_problem_label()

    async def _paste(self) -> None:
        region = settings().default_region
        with ui.dialog() as dialog, ui.card().classes('w-[44rem] max-w-full'):
            ui.label('Paste many recipients').classes('text-h6')
            ui.markdown(PASTE_HELP.format(region=f'the default region ({region})', limit=sending.MAX_RECIPIENTS))
            area = ui.textarea('Recipients', placeholder='+49 30 1234567; ann@example.com; CRM-1042') \
                .props('outlined rows=10 input-style="font-family: monospace"').classes('w-full').mark('paste-text')
            errors = ui.label().classes('text-negative whitespace-pre-line').mark('paste-errors')

            def add() -> None:
                text = area.value or ''
                if text.count('\n') > sending.MAX_RECIPIENTS:  # before reading a huge paste line by line
                    errors.text = f'More than {sending.MAX_RECIPIENTS:,} lines: create a task for larger lists.'
                    return
                pasted = sending.parse_recipients(text, region)
                total = len(self.typed) + len(self.pasted) + len(pasted.destinations)
                if pasted.errors:
                    more = len(pasted.errors) - 10
                    errors.text = '\n'.join(pasted.errors[:10]) + (f'\n… and {more} more.' if more > 0 else '')
                elif not pasted.destinations:
                    errors.text = 'Paste at least one recipient.'
                elif total > sending.MAX_RECIPIENTS:
                    errors.text = (f'That makes {total:,} recipients; at most {sending.MAX_RECIPIENTS:,} can be sent '
                                   f'from this page. Create a task for larger lists.')
                else:
                    self.pasted += [_row_of(next(self.numbers), d) for d in pasted.destinations]
                    dialog.submit(len(pasted.destinations))
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=dialog.close).props('flat')
                ui.button('Add recipients', icon='playlist_add', on_click=add).mark('paste-add')
        added = await dialog
        dialog.delete()
        if added:
            ui.notify(f'Added {plural(added, "recipient")}.', type='positive')
            await self._reload_pasted()

    # --- variables ---

    @property
    def variables(self) -> list[str]:
        return templates.template_variables(self.template.steps) if self.template else []

    @ui.refreshable_method
    def variables_section(self) -> None:
        self.variable_inputs = {}
        if not self.variables:
            return
        with ui.card().classes('w-full').mark('variables'):
            ui.label('Variables').classes('text-h6')
            ui.label('Values of the template’s variables, the same for every recipient.') \
                .classes('text-caption text-grey-8')
            with ui.row().classes('gap-2'):
                for name in self.variables:
                    self.values.setdefault(name, '')
                    self.variable_inputs[f'variables.{name}'] = ui.input(name).bind_value(self.values, name) \
                        .classes('w-56').mark(f'variable-{name}')

    # --- sending ---

    def _busy(self, busy: bool) -> None:
        self.spinner.set_visibility(busy)
        self.send_button.set_enabled(not busy)

    def _destinations(self, values: dict[str, str]) -> list[Destination]:
        return [Destination(phone=row['phone'] or None, email=row['email'] or None,
                            external_id=row['external_id'] or None, messenger_user_id=row['messenger_user_id'] or None,
                            variables=values) for row in self.typed + self.pasted]

    async def send(self) -> None:
        self.result.clear()
        if self.template is None:
            ui.notify('Choose a template first.', type='warning')
            return
        if not self.typed and not self.pasted:
            ui.notify('Add at least one recipient: click New recipient or Paste many.', type='warning')
            return
        values = {name: str(self.values.get(name) or '').strip() for name in self.variables}
        try:
            sending.check_variables(self.template.steps, values)
        except ValidationError as error:
            show_errors(error, self.variable_inputs)
            return
        show_errors(ValidationError({}), self.variable_inputs)
        request = SendRequest(self._destinations(values), template_id=self.template.id, bulk_id=str(uuid.uuid4()))
        estimate = await self._run(sending.estimate(self.actor, request))
        if estimate is None:
            return
        await self._show_problems(estimate.problems)
        if estimate.problems or not await self._confirm(estimate):
            return
        result = await self._run(enqueue.enqueue(self.actor, request))
        if result is not None:
            await self._show_result(result, self.typed + self.pasted)

    async def _run(self, action: Any) -> Any:
        """A service call with the Send button disabled meanwhile; None (after saying why) when it fails."""
        self._busy(True)
        try:
            return await action
        except ValidationError as error:
            ui.notify(f'This template cannot be sent now: {" ".join(error.errors.values())} '
                      f'Fix it on the Templates page.', type='negative', multi_line=True)
        except HeraldError as error:
            ui.notify(str(error), type='negative')
        finally:
            self._busy(False)
        return None

    async def _show_problems(self, problems: list[sending.Problem]) -> None:
        rows = self.typed + self.pasted
        for row in rows:
            row['problem'] = row['problem_field'] = ''
        for problem in problems:
            rows[problem.index].update(problem=problem.reason, problem_field=problem.field)
        self.typed_section.refresh()
        self.only_problems = any(row['problem'] for row in self.pasted)  # among hundreds, show the few to fix
        self.problems_switch.value = self.only_problems
        await self._reload_pasted()
        self._update_problem_label()

    def _update_problem_label(self) -> None:
        count = sum(bool(row['problem']) for row in self.typed + self.pasted)
        self.problem_label.text = (f'{plural(count, "recipient")} cannot be sent to: fix or remove '
                                   f'{"it" if count == 1 else "them"}. Nothing was sent.') if count else ''

    async def _confirm(self, estimate: sending.Estimate) -> bool:
        assert self.template is not None
        with ui.dialog() as dialog, ui.card().classes('w-[32rem] max-w-full').mark('confirm'):
            ui.label(f'Send “{self.template.name}” to {plural(estimate.recipients, "recipient")}?') \
                .classes('text-h6')
            for text, classes in self._estimate_lines(estimate):
                ui.label(text).classes(classes)
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=lambda: dialog.submit(False)).props('flat').mark('cancel-send')
                ui.button('Confirm and send', icon='send', on_click=lambda: dialog.submit(True)).mark('confirm-send')
        confirmed = await dialog
        dialog.delete()
        return bool(confirmed)

    def _estimate_lines(self, estimate: sending.Estimate) -> list[tuple[str, str]]:
        """(text, classes) lines: messages per channel sent now and as fallbacks, cost, and what to know."""
        assert self.template is not None
        first, fallback = estimate.total('first'), estimate.total('fallback')
        heading, item = 'text-subtitle2 mt-2', 'ml-4'
        lines = [('Will be sent', heading),
                 *((_tally_text(c.channel, c.first), item) for c in estimate.channels if c.first.messages)]
        if fallback.messages:
            lines += [('Fallback, sent only when the channel before does not deliver', heading),
                      *((_tally_text(c.channel, c.fallback), item) for c in estimate.channels if c.fallback.messages)]
        cost = f'Estimated cost: {money(first)}'
        if fallback.messages:
            cost += f', up to {money(fallback)} more with every fallback'
        lines.append((cost, 'text-subtitle1 mt-2'))
        notes = []
        if unpriced := first.unpriced + fallback.unpriced:
            notes.append(f'{plural(unpriced, "message")} without a tariff: not included in the cost.')
        if estimate.skipped:
            notes.append(f'{plural(estimate.skipped, "message")} to opted-out recipients will be skipped.')
        notes.append(f'Sending time: {templates.schedule_label(self.template)}; messages outside it wait.')
        return lines + [(note, 'text-caption text-grey-8') for note in notes]

    async def _show_result(self, result: EnqueueResult, rows: list[dict[str, Any]]) -> None:
        recipients = len({message.destination_index for message in result.messages})
        with self.result, ui.card().classes('w-full').mark('result'):
            ui.label(f'Sent: {plural(len(result.messages), "message")} to {plural(recipients, "recipient")} '
                     f'are on their way.').classes('text-positive text-subtitle1').mark('sent')
            ui.link('Open the history of these messages', f'/history?bulk={result.bulk_id}').mark('history-link')
            if result.rejected:
                ui.label(f'{plural(len(result.rejected), "recipient")} could not be sent to:').classes('text-negative')
                for rejected in result.rejected[:SHOWN_REJECTS]:
                    ui.label(f'Recipient {rejected.index + 1} ({_who(rows[rejected.index])}): {rejected.reason}') \
                        .classes('text-negative text-caption')
                if len(result.rejected) > SHOWN_REJECTS:
                    ui.label(f'… and {len(result.rejected) - SHOWN_REJECTS:,} more.').classes('text-caption')
        self.typed, self.pasted = [], []
        self.typed_section.refresh()
        await self._reload_pasted()
