"""Settings → Channels & providers: the provider routes, with settings forms drawn from each provider's schema
(admins only). Secret settings are never sent to the browser: their inputs start empty and keep the stored value."""
from __future__ import annotations

from typing import Any

from nicegui import ui

from domain import routes
from domain.auth import Actor, Permission
from domain.channels import Channel
from domain.errors import NotFound
from domain.models import ProviderRoute
from domain.providers import SettingField

from .forms import FormDialog, attempt, confirm
from .frame import page_frame
from .tables import EDIT_DELETE_CELL, ServerTable, column

_CHANNELS = {c.value: c.label for c in Channel}
_CHECK_CELL = '''
<q-td :props="props">
  <q-icon v-if="props.value" name="check_circle" color="positive" size="sm" :aria-label="props.col.label" />
</q-td>
'''


def _plain(number: float) -> str:
    """2000.0 → '2000', 0.5 → '0.5' (no exponent)."""
    return f'{number:f}'.rstrip('0').rstrip('.')


def _row(route: ProviderRoute) -> dict[str, Any]:
    """What the browser gets: no settings at all (they may hold secrets)."""
    return {'id': route.id, 'name': route.name, 'channel': route.channel.label, 'provider': route.provider,
            'is_default': route.is_default, 'enabled': route.enabled, 'concurrency': route.concurrency,
            'rate_per_second': _plain(route.rate_per_second)}


class SettingsFields:
    """The inputs of one provider's settings, drawn again when the dialog's provider changes. Their inputs are
    kept in `inputs` under `settings.<key>`, where the service's errors name them."""

    def __init__(self, container: ui.element, inputs: dict[str, ui.element], route: ProviderRoute | None) -> None:
        self.container = container
        self.inputs = inputs
        self.route = route
        self.fields: dict[str, ui.element] = {}
        self.removals: dict[str, ui.checkbox] = {}

    def build(self, provider: str | None) -> None:
        self.container.clear()
        for key in [key for key in self.inputs if key.startswith('settings.')]:
            del self.inputs[key]
        self.fields, self.removals = {}, {}
        stored = self.route is not None and self.route.provider == provider
        values = routes.public_settings(self.route) if stored else {}
        secrets = routes.stored_secrets(self.route) if stored else frozenset()
        with self.container:
            schema = routes.settings_schema(provider or '')
            if not schema:
                ui.label('This provider has no settings.').classes('text-grey-7')
            for field in schema:
                element = self._input(field, values.get(field.key, field.default), field.key in secrets)
                self.fields[field.key] = self.inputs[f'settings.{field.key}'] = element

    def _input(self, field: SettingField, value: Any, has_secret: bool) -> ui.element:
        label = f'{field.label} *' if field.required else field.label
        if field.kind == 'bool':
            element = ui.switch(label, value=bool(value))
            if field.help:
                ui.label(field.help).classes('text-caption text-grey-7 -mt-2')
            return element
        if field.kind == 'choice':
            element = ui.select(list(field.choices), label=label, value=value)
        elif field.kind == 'secret':
            element = ui.input(label, password=True, password_toggle_button=True)
            if has_secret:
                element.props['placeholder'] = 'Leave empty to keep'
                self.removals[field.key] = ui.checkbox(f'Remove the stored {field.label.lower()}')
        elif field.kind == 'multiline':
            element = ui.textarea(label, value='' if value is None else str(value)).props('autogrow')
        else:
            element = ui.input(label, value='' if value is None else str(value))
            if field.kind in ('int', 'float'):
                element.props['inputmode'] = 'numeric' if field.kind == 'int' else 'decimal'
        if field.help:
            element.props['hint'] = field.help
        return element.classes('w-full')

    def values(self) -> dict[str, Any]:
        return {key: element.value for key, element in self.fields.items()}

    def cleared(self) -> frozenset[str]:
        return frozenset(key for key, checkbox in self.removals.items() if checkbox.value)


class ChannelsPage:
    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        with ui.row().classes('w-full items-center gap-4'):
            ui.label('Which provider sends each channel. A channel sends through its default route, else through '
                     'its first enabled one. Changes take effect at once.').classes('text-grey-7')
            ui.space()
            ui.button('Add route', icon='add', on_click=lambda: self.edit(None))
        columns = [column('name', 'Name', True), column('channel', 'Channel', True),
                   column('provider', 'Provider', True), column('is_default', 'Default', True),
                   column('enabled', 'Enabled', True),
                   *({**column(name, label, True), 'align': 'right'}
                     for name, label in (('concurrency', 'Concurrency'), ('rate_per_second', 'Rate/s'))),
                   {**column('actions', ''), 'align': 'right'}]
        self.table = ServerTable(columns, self.fetch, sort_by='channel')
        for name in ('is_default', 'enabled'):
            self.table.table.add_slot(f'body-cell-{name}', _CHECK_CELL)
        self.table.table.add_slot('body-cell-actions', EDIT_DELETE_CELL)
        self.table.table.on('edit', lambda e: self.edit(e.args['id']))
        self.table.table.on('delete', lambda e: self.delete(e.args))

    async def fetch(self, offset: int, limit: int, sort: str | None, descending: bool
                    ) -> tuple[int, list[dict[str, Any]]]:
        total, rows = await routes.list_routes(self.actor, sort, descending, offset, limit)
        return total, [_row(route) for route in rows]

    async def edit(self, route_id: int | None) -> None:
        """Add a route (route_id None) or change one."""
        route = None
        if route_id is not None:
            try:
                route = await routes.get_route(self.actor, route_id)
            except NotFound as error:
                ui.notify(str(error), type='negative')
                await self.table.load()
                return
        with FormDialog(f'Change the route "{route.name}"' if route else 'Add a route', 'Save route') as form:
            form.card.classes(remove='w-96', add='w-[32rem]')
            name = ui.input('Name', value=route.name if route else '').classes('w-full')
            channel = ui.select(_CHANNELS, label='Channel', value=route.channel.value if route else Channel.SMS.value) \
                .classes('w-full')
            names = routes.provider_names(channel.value)
            provider = ui.select(names, label='Provider', value=route.provider if route else names[0]) \
                .classes('w-full')
            with ui.row().classes('w-full no-wrap'):
                concurrency = ui.input('Concurrency', value=str(route.concurrency if route else 10)) \
                    .props('inputmode=numeric hint="Batches sent at once"').classes('grow')
                rate = ui.input('Rate per second', value=_plain(route.rate_per_second if route else 100)) \
                    .props('inputmode=decimal hint="Messages a second, at most"').classes('grow')
            is_default = ui.switch('Default route of its channel', value=route.is_default if route else False)
            enabled = ui.switch('Enabled', value=route.enabled if route else True)
            ui.label('Provider settings').classes('text-subtitle1 mt-2')
            container = ui.column().classes('w-full gap-2')
        inputs: dict[str, ui.element] = {'name': name, 'channel': channel, 'provider': provider,
                                         'concurrency': concurrency, 'rate_per_second': rate}
        settings = SettingsFields(container, inputs, route)
        settings.build(provider.value)
        provider.on_value_change(lambda e: settings.build(e.value))
        channel.on_value_change(lambda e: _offer_providers(provider, e.value))

        def data() -> routes.RouteData:
            return routes.RouteData(name=name.value or '', channel=channel.value or '', provider=provider.value or '',
                                    settings=settings.values(), concurrency=concurrency.value,
                                    rate_per_second=rate.value, is_default=is_default.value, enabled=enabled.value,
                                    clear_secrets=settings.cleared())

        async def save() -> None:
            if route:
                await routes.update_route(self.actor, route.id, data())
            else:
                await routes.create_route(self.actor, data())

        if await form.run(save, inputs):
            ui.notify(f'Route "{(name.value or "").strip()}" saved.', type='positive')
            await self.table.load()

    async def delete(self, row: dict[str, Any]) -> None:
        if not await confirm(f'Delete the route "{row["name"]}"? {row["channel"]} then sends through another '
                             f'enabled route, if there is one.', 'Delete'):
            return
        if await attempt(routes.delete_route(self.actor, row['id'])):
            ui.notify(f'Route "{row["name"]}" deleted.', type='positive')
        await self.table.load()


def _offer_providers(provider: ui.select, channel: str | None) -> None:
    """The providers that serve the channel; the one chosen stays if it can."""
    names = routes.provider_names(channel)
    provider.set_options(names, value=provider.value if provider.value in names else (names[0] if names else None))


def create() -> None:
    @ui.page('/settings/channels')
    async def channels_page() -> None:
        actor = await page_frame('Channels & providers', Permission.MANAGE_SETTINGS)
        if not actor:
            return
        page = ChannelsPage(actor)
        await page.table.load()
