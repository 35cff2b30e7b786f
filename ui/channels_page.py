"""Settings → Channels & providers: the provider routes, with settings forms drawn from each provider's schema, each
route's health (refreshed every few seconds) and a test message through it (admins only). Secret settings are never
sent to the browser: their inputs start empty and keep the stored value."""
from __future__ import annotations

from typing import Any

from nicegui import ui

from domain import route_health, routes, senders
from domain.auth import Actor, Permission
from domain.channels import STEP_FIELDS, Channel
from domain.errors import NotFound
from domain.failover import RouteState
from domain.models import ProviderRoute
from domain.statuses import MessageStatus

from .forms import FormDialog, attempt, confirm
from .frame import page_frame
from .hlr_settings import hlr_card
from .settings_fields import SettingsFields
from .tables import ServerTable, column

_CHANNELS = {c.value: c.label for c in Channel}
_CHECK_CELL = '''
<q-td :props="props">
  <q-icon v-if="props.value" name="check_circle" color="positive" size="sm" :aria-label="props.col.label" />
</q-td>
'''


def _plain(number: float) -> str:
    """2000.0 → '2000', 0.5 → '0.5' (no exponent)."""
    return f'{number:f}'.rstrip('0').rstrip('.')


_ACTIONS_CELL = '''
<q-td :props="props" auto-width>
  <q-btn flat dense round icon="send" aria-label="Send test message"
         @click="() => $parent.$emit('test', props.row)"><q-tooltip>Send test message</q-tooltip></q-btn>
  <q-btn flat dense round icon="edit" aria-label="Edit" @click="() => $parent.$emit('edit', props.row)" />
  <q-btn flat dense round color="grey-7" icon="delete" aria-label="Delete"
         @click="() => $parent.$emit('delete', props.row)" />
</q-td>
'''
_STATE_CELL = '''
<q-td :props="props">
  <q-badge :color="{healthy: 'positive', failing: 'negative', recovering: 'warning'}[props.row.state]"
           :label="props.value" />
  <q-tooltip v-if="props.row.error">{{ props.row.error }}</q-tooltip>
</q-td>
'''
_STATE_LABELS = {RouteState.HEALTHY: 'Healthy', RouteState.FAILING: 'Failing', RouteState.RECOVERING: 'Recovering'}
_HEALTH_COLUMNS = (('sent', 'Sent 24 h'), ('delivered', 'Delivered'), ('errors', 'Errors'), ('latency', 'Latency'))
FOLLOW_SECONDS = 60
HEALTH_REFRESH_SECONDS = 5
TEST_DEFAULTS = {'text': 'A test message from Herald.', 'subject': 'A test message from Herald',
                 'templateName': 'hello_world', 'language': 'en_US'}


def _plain(number: float) -> str:
    """2000.0 → '2000', 0.5 → '0.5' (no exponent)."""
    return f'{number:f}'.rstrip('0').rstrip('.')


def _seconds(value: float | None) -> str:
    if value is None:
        return '—'
    return f'{value * 1000:.0f} ms' if value < 1 else f'{value:.1f} s'


def _state(health: route_health.RouteOverview, backup: str | None) -> str:
    label = _STATE_LABELS[health.state]
    if health.state is RouteState.RECOVERING:
        return f'{label} ({health.share:.0%})'
    if health.state is RouteState.FAILING and backup:
        return f'{label}: {backup} carries it'
    return label


def _outcome(status: MessageStatus) -> str:
    """How a test message's last status reads: delivered, still sent (no report yet) or failed."""
    if status in route_health.DELIVERED:
        return 'positive'
    return 'info' if status is MessageStatus.SENT else 'negative'


def _row(route: ProviderRoute, health: route_health.RouteOverview, backup: str | None) -> dict[str, Any]:
    """What the browser gets: no settings at all (they may hold secrets). The limits are in the edit dialog."""
    return {'id': route.id, 'name': route.name, 'channel': route.channel.label, 'provider': route.provider,
            'is_default': route.is_default, 'enabled': route.enabled, 'concurrency': route.concurrency,
            'rate_per_second': _plain(route.rate_per_second), 'backup': backup or '',
            'state': health.state.value, 'state_label': _state(health, backup), 'error': health.error,
            'sent': health.sent, 'delivered': health.delivered, 'errors': health.errors,
            'latency': _seconds(health.delivery_seconds)}


class ChannelsPage:
    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        with ui.row().classes('w-full items-center gap-4'):
            ui.label('Which provider sends each channel. A channel sends through its default route, else through '
                     'its first enabled one; while a route fails, its backup carries its traffic until it recovers. '
                     'Changes take effect at once.').classes('text-grey-7')
            ui.space()
            ui.button('Add route', icon='add', on_click=lambda: self.edit(None))
        columns = [column('name', 'Name', True), column('channel', 'Channel', True),
                   column('provider', 'Provider', True), column('is_default', 'Default', True),
                   column('enabled', 'Enabled', True), column('backup', 'Backup'), column('state_label', 'State'),
                   *({**column(name, label), 'align': 'right'} for name, label in _HEALTH_COLUMNS),
                   {**column('actions', ''), 'align': 'right'}]
        self.table = ServerTable(columns, self.fetch, sort_by='channel')
        self.table.table.props('dense')
        for name in ('is_default', 'enabled'):
            self.table.table.add_slot(f'body-cell-{name}', _CHECK_CELL)
        self.table.table.add_slot('body-cell-state_label', _STATE_CELL)
        self.table.table.add_slot('body-cell-actions', _ACTIONS_CELL)
        self.table.table.on('edit', lambda e: self.edit(e.args['id']))
        self.table.table.on('delete', lambda e: self.delete(e.args))
        self.table.table.on('test', lambda e: self.send_test(e.args))

    async def fetch(self, offset: int, limit: int, sort: str | None, descending: bool
                    ) -> tuple[int, list[dict[str, Any]]]:
        total, rows = await routes.list_routes(self.actor, sort, descending, offset, limit)
        health = await route_health.route_health(self.actor)
        return total, [_row(route, health[route.id], health[route.backup_id].name if route.backup_id else None)
                       for route in rows]

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
            backups = await routes.backup_choices(channel.value, route.id if route else None)
            current = (await ProviderRoute.get(id=route.backup_id)).name if route and route.backup_id else None
            backup = ui.select(backups, label='Backup route', value=current, clearable=True) \
                .props('hint="Carries the traffic while this route fails"').classes('w-full')
            is_default = ui.switch('Default route of its channel', value=route.is_default if route else False)
            enabled = ui.switch('Enabled', value=route.enabled if route else True)
            ui.label('Provider settings').classes('text-subtitle1 mt-2')
            container = ui.column().classes('w-full gap-2')
        inputs: dict[str, ui.element] = {'name': name, 'channel': channel, 'provider': provider,
                                         'concurrency': concurrency, 'rate_per_second': rate, 'backup': backup}
        settings = SettingsFields(container, inputs, routes.settings_schema, routes.stored_settings(route))
        settings.build(provider.value)
        provider.on_value_change(lambda e: settings.build(e.value))

        async def offer_backups(value: str | None) -> None:
            names = await routes.backup_choices(value or '', route.id if route else None)
            backup.set_options(names, value=backup.value if backup.value in names else None)
        channel.on_value_change(lambda e: _offer_providers(provider, e.value))
        channel.on_value_change(lambda e: offer_backups(e.value))

        def data() -> routes.RouteData:
            return routes.RouteData(name=name.value or '', channel=channel.value or '', provider=provider.value or '',
                                    settings=settings.values(), concurrency=concurrency.value,
                                    rate_per_second=rate.value, is_default=is_default.value, enabled=enabled.value,
                                    clear_secrets=settings.cleared(), backup=backup.value or '')

        async def save() -> None:
            if route:
                await routes.update_route(self.actor, route.id, data())
            else:
                await routes.create_route(self.actor, data())

        if await form.run(save, inputs):
            ui.notify(f'Route "{(name.value or "").strip()}" saved.', type='positive')
            await self.table.load()

    async def send_test(self, row: dict[str, Any]) -> None:
        """A message through this route only; the dialog follows its status until it is delivered or fails."""
        try:
            route = await routes.get_route(self.actor, row['id'])
        except NotFound as error:
            ui.notify(str(error), type='negative')
            return
        with FormDialog(f'Send a test message through "{route.name}"', 'Send') as form:
            form.card.classes(remove='w-96', add='w-[32rem]')
            recipient = ui.input(route_health.recipient_label(route.channel)).classes('w-full')
            inputs: dict[str, ui.element] = {'recipient': recipient}
            for step_field in STEP_FIELDS[route.channel]:
                if step_field.kind == 'sender':
                    names = await senders.approved_names(route.channel)
                    element = ui.select(names, label=step_field.label, value=names[0] if names else None)
                else:
                    kind = ui.textarea if step_field.kind == 'textarea' else ui.input
                    element = kind(step_field.label, value=TEST_DEFAULTS.get(step_field.key, ''))
                inputs[step_field.key] = element.classes('w-full')
        sent: list[str] = []

        async def send() -> None:
            fields = {key: element.value or '' for key, element in inputs.items() if key != 'recipient'}
            result = await route_health.send_test_message(
                self.actor, route.id, route_health.TestMessage(recipient.value or '', fields))
            sent.append(result.messages[0].id)
        if await form.run(send, inputs):
            await self._follow(sent[0])

    async def _follow(self, message_id: str) -> None:
        """A notification that follows the test message's status for up to a minute."""
        progress = ui.notification('Test message queued', spinner=True, timeout=None, close_button=True)
        ticks = iter(range(FOLLOW_SECONDS))

        async def update() -> None:
            status, description = await route_health.test_message_status(self.actor, message_id)
            progress.message = f'Test message: {status.value}' + (f' — {description}' if description else '')
            if status.is_terminal or next(ticks, None) is None:
                progress.spinner = False
                progress.type = _outcome(status)
                timer.cancel()
        timer = ui.timer(1, update)

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
        await hlr_card(actor)
        ui.timer(HEALTH_REFRESH_SECONDS, page.table.load)  # made once the page is built: a timer waits for the browser
