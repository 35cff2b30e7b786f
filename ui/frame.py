"""The shared frame of every signed-in page: header, side menu, dark mode, user and sign-out."""
from __future__ import annotations

from dataclasses import dataclass

from nicegui import app, ui

from domain.auth import Actor, Permission

from . import session


@dataclass(frozen=True)
class MenuItem:
    label: str
    path: str
    icon: str
    permission: Permission = Permission.VIEW


MENU: dict[str, list[MenuItem]] = {
    'Notifications': [
        MenuItem('Dashboard', '/', 'dashboard'),
        MenuItem('Templates', '/templates', 'description'),
        MenuItem('Send notification', '/send', 'send'),
        MenuItem('Tasks for notifications', '/tasks', 'playlist_play'),
        MenuItem('Check phones (HLR)', '/hlr', 'phone_in_talk'),
        MenuItem('Notification history', '/history', 'history'),
    ],
    'Settings': [
        MenuItem('Sender names', '/settings/senders', 'badge'),
        MenuItem('Channels & providers', '/settings/channels', 'hub', Permission.MANAGE_SETTINGS),
        MenuItem('Tariffs', '/settings/tariffs', 'payments'),
        MenuItem('Users', '/settings/users', 'group', Permission.MANAGE_USERS),
        MenuItem('API keys', '/settings/api-keys', 'key', Permission.MANAGE_SETTINGS),
        MenuItem('Audit log', '/settings/audit', 'fact_check', Permission.MANAGE_USERS),
    ],
}


async def page_frame(title: str, permission: Permission = Permission.VIEW) -> Actor | None:
    """Draw the frame and return the signed-in actor, or None (after saying so) when they may not see this page."""
    actor = await session.current_actor()
    if actor is None:
        ui.navigate.to('/login')
        return None
    ui.page_title(f'{title} · Herald')
    ui.add_head_html(session.ZONE_SCRIPT)
    dark = ui.dark_mode().bind_value(app.storage.user, 'dark_mode')
    with ui.header(elevated=True).classes('items-center gap-2 px-4 py-2'):
        ui.button(icon='menu', on_click=lambda: drawer.toggle()).props('flat round color=white aria-label="Menu"')
        ui.link('Herald', '/').classes('text-xl font-bold text-white no-underline')
        ui.label(title).classes('text-lg opacity-80 ml-4')
        ui.space()
        ui.button(icon='dark_mode', on_click=lambda: dark.set_value(not dark.value)) \
            .props('flat round color=white aria-label="Dark mode"').tooltip('Dark mode')
        with ui.button(icon='account_circle').props('flat no-caps color=white').classes('user-menu'):
            ui.label(actor.label).classes('ml-1')
            with ui.menu():
                ui.item(f'Role: {actor.role.value}').props('disable')
                ui.menu_item('Sign out', on_click=sign_out).mark('sign-out')
    with ui.left_drawer(value=True, bordered=True).classes('px-0') as drawer:
        _menu(actor)
    if not actor.can(permission):
        ui.label(f'Your role ({actor.role.value}) has no access to this page.').classes('text-negative text-lg')
        return None
    return actor


def _menu(actor: Actor) -> None:
    with ui.list().classes('w-full'):
        for section, items in MENU.items():
            ui.item_label(section).props('header').classes('text-bold')
            for item in items:
                if actor.can(item.permission):
                    with ui.item(on_click=lambda path=item.path: ui.navigate.to(path)).props('clickable'):
                        with ui.item_section().props('avatar'):
                            ui.icon(item.icon)
                        ui.item_section(item.label)


def sign_out() -> None:
    session.sign_out()
    ui.navigate.to('/login')

