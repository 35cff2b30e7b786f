"""Settings → Channels & providers: the "Phone checks (HLR)" card, which chooses the provider Check phones uses, sets
its settings (a form drawn from its schema; secrets never sent to the browser) and looks a number up to test it."""
from __future__ import annotations

from nicegui import ui

from domain import hlr, tariffs
from domain.auth import Actor, Permission
from domain.errors import HeraldError, ValidationError

from .forms import attempt, show_errors
from .settings_fields import SettingsFields


def describe(result: hlr.HlrResult) -> str:
    """'+41793026727: VALID · Sunrise (ported) · roaming · cost 0.005 EUR', or the status and why."""
    parts = [f'{result.phone}: {result.status.value}']
    if why := hlr.reason(result.status_code):
        parts[0] += f' ({why})'
    if result.network:
        parts.append(f'{result.network} (ported)' if result.ported else result.network)
    if result.roaming:
        parts.append('roaming')
    parts.append(f'cost {tariffs.plain(result.cost)} {result.currency}'.strip())
    return ' · '.join(parts)


class HlrCard:
    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        with ui.card().classes('w-full max-w-3xl'):
            ui.label('Phone checks (HLR)').classes('text-h6')
            ui.label('Which provider Check phones uses: the offline checker reads phone-number data and costs '
                     'nothing; an HLR lookup asks the network whether a number is in service, ported or roaming, '
                     'and each lookup costs.').classes('text-grey-7')
            self.body = ui.column().classes('w-full gap-2')
        self.inputs: dict[str, ui.element] = {}

    async def load(self) -> None:
        stored = await hlr.hlr_settings(self.actor)
        self.body.clear()
        with self.body:
            self.provider = ui.select(hlr.provider_labels(), label='Phone-check provider', value=stored.provider) \
                .classes('w-full').mark('hlr-provider')
            container = ui.column().classes('w-full gap-2')
            ui.button('Save', icon='save', on_click=self.save).mark('hlr-save')
            ui.separator()
            ui.label('Test the saved provider: look one number up (the lookup may cost).').classes('text-grey-7')
            with ui.row().classes('w-full items-start gap-2'):
                self.number = ui.input('Number to look up').classes('w-64').mark('hlr-test-number')
                self.test_button = ui.button('Check a number', icon='phone_in_talk', on_click=self.test) \
                    .props('outline').mark('hlr-test')
            self.result = ui.label().classes('text-body1').mark('hlr-test-result')
        self.inputs = {'provider': self.provider, 'number': self.number}
        self.fields = SettingsFields(container, self.inputs, hlr.settings_schema, stored)
        self.fields.build(stored.provider)
        self.provider.on_value_change(lambda e: self.fields.build(e.value))

    async def save(self) -> None:
        if await attempt(hlr.set_hlr_provider(self.actor, self.provider.value or '', self.fields.values(),
                                              self.fields.cleared()), self.inputs):
            self.fields.stored = await hlr.hlr_settings(self.actor)
            self.fields.build(self.fields.stored.provider)  # secret inputs empty again: "leave empty to keep"
            ui.notify(f'Phone checks now use {hlr.provider_labels()[self.fields.stored.provider]}.', type='positive')

    async def test(self) -> None:
        self.test_button.disable()
        self.result.classes(remove='text-negative')
        self.result.text = 'Checking…'
        try:
            result = await hlr.check_number(self.actor, self.number.value or '')
        except ValidationError as error:
            show_errors(error, self.inputs)
            self.result.text = ''
            return
        except HeraldError as error:
            self.result.classes(add='text-negative')
            self.result.text = str(error)
            return
        finally:
            self.test_button.enable()
        self.number.error = None
        self.result.text = describe(result)


async def hlr_card(actor: Actor) -> None:
    """The "Phone checks (HLR)" card for administrators."""
    if actor.can(Permission.MANAGE_SETTINGS):
        await HlrCard(actor).load()
