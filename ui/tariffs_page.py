"""Settings → Tariffs: the price of one message part per channel and country; admins edit them."""
from __future__ import annotations

from typing import Any

from nicegui import ui

from domain import tariffs
from domain.auth import Actor, Permission
from domain.channels import Channel
from domain.config import settings
from domain.models import Tariff

from .forms import FormDialog, attempt, confirm
from .frame import page_frame
from .tables import EDIT_DELETE_CELL, column, enum_or_none, iso, set_query, time_column

_CHANNELS = {c.value: c.label for c in Channel}


def _row(tariff: Tariff) -> dict[str, Any]:
    return {'id': tariff.id, 'channel': tariff.channel.value, 'channel_label': tariff.channel.label,
            'country': tariff.country, 'country_name': tariffs.country_name(tariff.country),
            'price_per_part': tariffs.plain(tariff.price_per_part), 'currency': tariff.currency,
            'updated_at': iso(tariff.updated_at)}


class TariffsPage:
    def __init__(self, actor: Actor, channel: str) -> None:
        self.actor = actor
        self.channel = enum_or_none(Channel, channel)
        with ui.row().classes('w-full items-center gap-4'):
            ui.select({None: 'Every channel', **_CHANNELS}, label='Channel',
                      value=self.channel.value if self.channel else None,
                      on_change=lambda e: self.set_channel(e.value)).classes('w-40')
            ui.space()
            if actor.can(Permission.MANAGE_SETTINGS):
                ui.button('Add tariff', icon='add', on_click=lambda: self.edit(None))
        ui.label('The price of one message part: an SMS of three parts costs three times as much. '
                 '"Any other country" applies where a country has no price of its own.').classes('text-grey-7')
        columns = [column('channel_label', 'Channel', True), column('country_name', 'Country', True),
                   column('country', 'Code', True), {**column('price_per_part', 'Price per part'), 'align': 'right'},
                   column('currency', 'Currency'), time_column('updated_at', 'Updated')]
        if actor.can(Permission.MANAGE_SETTINGS):
            columns.append({**column('actions', ''), 'align': 'right'})
        self.table = ui.table(columns=columns, rows=[], row_key='id', pagination=20).classes('w-full')
        if actor.can(Permission.MANAGE_SETTINGS):
            self.table.add_slot('body-cell-actions', EDIT_DELETE_CELL)
            self.table.on('edit', lambda e: self.edit(e.args))
            self.table.on('delete', lambda e: self.delete(e.args))

    async def load(self) -> None:
        self.table.rows = [_row(tariff) for tariff in await tariffs.list_tariffs(self.actor, self.channel)]

    async def set_channel(self, value: str | None) -> None:
        self.channel = enum_or_none(Channel, value)
        set_query('/settings/tariffs', {'channel': value})
        await self.load()

    async def edit(self, row: dict[str, Any] | None) -> None:
        """Add a tariff (row None) or change the price of one."""
        with FormDialog('Change the tariff' if row else 'Add a tariff', 'Save tariff') as form:
            channel = ui.select(_CHANNELS, label='Channel', value=row['channel'] if row else Channel.SMS.value) \
                .classes('w-full')
            country = ui.select({code: f'{name} ({code})' for code, name in tariffs.countries().items()},
                                label='Country', value=row['country'] if row else None, with_input=True) \
                .classes('w-full')
            channel.set_enabled(row is None)
            country.set_enabled(row is None)
            price = ui.input('Price per part', value=row['price_per_part'] if row else '') \
                .props('inputmode=decimal').classes('w-full')
            currency = ui.input('Currency', value=row['currency'] if row else settings().currency).classes('w-full')
        if await form.run(lambda: tariffs.set_tariff(self.actor, channel.value, country.value or '',
                                                     price.value or '', currency.value or ''),
                          {'channel': channel, 'country': country, 'price_per_part': price, 'currency': currency}):
            ui.notify('Tariff saved.', type='positive')
            await self.load()

    async def delete(self, row: dict[str, Any]) -> None:
        if await confirm(f'Delete the {row["channel_label"]} tariff to {row["country_name"]}?', 'Delete'):
            if await attempt(tariffs.delete_tariff(self.actor, row['id'])):
                ui.notify('Tariff deleted.', type='positive')
            await self.load()


def create() -> None:
    @ui.page('/settings/tariffs')
    async def tariffs_page(channel: str = '') -> None:
        actor = await page_frame('Tariffs')
        if not actor:
            return
        page = TariffsPage(actor, channel)
        await page.load()
