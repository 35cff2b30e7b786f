"""Small helpers shared by the forms of every page."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from nicegui import ui

from domain import tariffs
from domain.errors import HeraldError, ValidationError
from domain.sending import Tally

CENT = Decimal('0.01')


def show_errors(error: ValidationError, inputs: Mapping[str, ui.element]) -> None:
    """Show each message next to its field; messages for fields without an input go to a notification."""
    for element in inputs.values():
        element.props(remove='error error-message')
        if hasattr(element, 'error'):
            element.error = None
    rest = []
    for field, message in error.errors.items():
        element = inputs.get(field)
        if element is not None and hasattr(element, 'error'):
            element.error = message
        else:
            rest.append(message)
    if rest:
        ui.notify('\n'.join(rest), type='negative', multi_line=True)


async def confirm(question: str, action: str) -> bool:
    """Ask before something that cannot be undone."""
    with ui.dialog() as dialog, ui.card():
        ui.label(question)
        with ui.row().classes('w-full justify-end'):
            ui.button('Cancel', on_click=lambda: dialog.submit(False)).props('flat')
            ui.button(action, color='negative', on_click=lambda: dialog.submit(True))
    confirmed = await dialog
    dialog.delete()
    return bool(confirmed)


async def attempt(action: Awaitable[Any], inputs: dict[str, ui.element] | None = None) -> bool:
    """Run a service call; show what went wrong (next to the inputs where it can) and say whether it worked."""
    try:
        await action
    except ValidationError as error:
        show_errors(error, inputs or {})
        return False
    except HeraldError as error:
        ui.notify(str(error), type='negative')
        return False
    return True


class FormDialog:
    """A dialog with a title, the fields added inside `with`, and Cancel / submit buttons.

    `await run(action, inputs)` shows it until `action()` succeeds (errors appear next to `inputs`) or the user
    cancels, and says whether it succeeded."""

    def __init__(self, title: str, submit_label: str, *, note: str = '', submit_color: str = 'primary') -> None:
        self.submit_label = submit_label
        self.submit_color = submit_color
        self.dialog = ui.dialog()
        with self.dialog:
            self.card = ui.card().classes('w-96')
        with self.card:
            ui.label(title).classes('text-h6')
            if note:
                ui.label(note).classes('text-grey-7')

    def __enter__(self) -> FormDialog:
        self.card.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.card.__exit__(*exc_info)

    async def run(self, action: Callable[[], Awaitable[Any]], inputs: Mapping[str, ui.element]) -> bool:
        async def submit() -> None:
            if await attempt(action(), inputs):
                self.dialog.submit(True)
        with self.card, ui.row().classes('w-full justify-end'):
            ui.button('Cancel', on_click=self.dialog.close).props('flat')
            ui.button(self.submit_label, color=self.submit_color, on_click=submit)
        succeeded = await self.dialog
        self.dialog.delete()
        return bool(succeeded)


def plural(count: int, noun: str) -> str:
    return f'{count:,} {noun}' if count == 1 else f'{count:,} {noun}s'


def amount(value: Decimal) -> str:
    """Cents always, more decimals only where a tariff has them: 1.3 → '1.30', 0.0125 → '0.0125'."""
    return f'{value:.2f}' if value == value.quantize(CENT) else tariffs.plain(value)


def money(tally: Tally) -> str:
    """A tally's cost in each currency, e.g. '1.20 EUR + 3.00 USD'."""
    if tally.cost:
        return ' + '.join(f'{amount(value)} {currency}' for currency, value in sorted(tally.cost.items()))
    return 'no tariff' if tally.unpriced else '0'


def icon_button(icon: str, tip: str, on_click: Callable[..., Any], marker: str) -> ui.button:
    return ui.button(icon=icon, on_click=on_click).props(f'flat round dense aria-label="{tip}"').tooltip(tip) \
        .mark(marker)


class TimeRangesEditor:
    """Allowed sending time ranges (a template's "Message sent time", a task's time limiter): From/To pickers, add
    and remove, at least `minimum` ranges. Errors keyed 'time_ranges.<i>' show at `inputs`."""

    def __init__(self, ranges: Iterable[Sequence[str]], editable: bool, minimum: int = 1) -> None:
        self.ranges = [{'start': start, 'end': end} for start, end in ranges]
        self.editable, self.minimum = editable, minimum
        self.inputs: dict[str, ui.element] = {}
        self.section()

    @property
    def values(self) -> list[tuple[str, str]]:
        return [(r['start'] or '', r['end'] or '') for r in self.ranges]

    @ui.refreshable_method
    def section(self) -> None:
        self.inputs = {}
        for i, time_range in enumerate(self.ranges):
            with ui.row().classes('items-start gap-2'):
                start = self._time_input('From', time_range, 'start').mark(f'range-start-{i}')
                self._time_input('To', time_range, 'end').mark(f'range-end-{i}')
                if self.editable and len(self.ranges) > self.minimum:
                    icon_button('remove_circle_outline', 'Remove this time range', lambda i=i: self._remove(i),
                                f'remove-range-{i}').classes('mt-4')
            self.inputs[f'time_ranges.{i}'] = start
        if self.editable:
            icon_button('add', 'Add a time range', self._add, 'add-range')

    def _time_input(self, label: str, target: dict[str, str], key: str) -> ui.input:
        field = ui.input(label).bind_value(target, key).classes('w-32')
        if not self.editable:
            return field.props('readonly')
        with ui.menu().props('no-parent-event') as menu:
            ui.time().bind_value(field)
        with field.add_slot('append'):
            ui.icon('schedule').on('click', menu.open).classes('cursor-pointer')
        return field

    def _add(self) -> None:
        self.ranges.append({'start': '', 'end': ''})
        self.section.refresh()

    def _remove(self, index: int) -> None:
        del self.ranges[index]
        self.section.refresh()
