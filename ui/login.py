"""Sign-in and the first-run page that creates the first admin."""
from __future__ import annotations

from nicegui import ui

from domain import auth
from domain.errors import HeraldError, ValidationError

from . import session
from .forms import show_errors


def create() -> None:
    @ui.page('/login')
    async def login_page(redirect_to: str = '/') -> None:
        if not await session.herald_has_users():
            ui.navigate.to('/setup')
            return
        if await session.current_user() is not None:
            ui.navigate.to(session.safe_redirect(redirect_to))
            return
        ui.page_title('Sign in · Herald')
        ui.add_head_html(session.ZONE_SCRIPT)

        async def try_sign_in() -> None:
            try:
                user = await auth.authenticate(email.value or '', password.value or '')
            except HeraldError as error:
                password.value = ''
                password.error = str(error)
                return
            session.sign_in(user)
            ui.navigate.to(session.safe_redirect(redirect_to))

        with ui.card().classes('absolute-center w-96'):
            ui.label('Herald').classes('text-h6')
            ui.label('Notification center').classes('text-grey-7')
            email = ui.input('Email').props('autofocus autocomplete=username').classes('w-full')
            password = ui.input('Password', password=True).props('autocomplete=current-password').classes('w-full')
            password.on('keydown.enter', try_sign_in)
            ui.button('Sign in', on_click=try_sign_in).classes('w-full')

    @ui.page('/setup')
    async def setup_page() -> None:
        if await session.herald_has_users():
            ui.navigate.to('/login')
            return
        ui.page_title('Welcome · Herald')

        async def create_admin() -> None:
            if password.value != repeat.value:
                repeat.error = 'The passwords differ.'
                return
            try:
                user = await auth.create_first_admin(email.value or '', password.value or '', name.value or '')
            except ValidationError as error:
                show_errors(error, {'email': email, 'password': password})
                return
            except HeraldError as error:
                ui.notify(str(error), type='negative')
                return
            session.sign_in(user)
            ui.navigate.to('/')

        with ui.card().classes('absolute-center w-96'):
            ui.label('Welcome to Herald').classes('text-h6')
            ui.label('Create the first administrator account.').classes('text-grey-7')
            name = ui.input('Name').classes('w-full')
            email = ui.input('Email').props('autocomplete=username').classes('w-full')
            password = ui.input('Password', password=True).props('autocomplete=new-password').classes('w-full')
            repeat = ui.input('Repeat password', password=True).props('autocomplete=new-password').classes('w-full')
            ui.button('Create administrator', on_click=create_admin).classes('w-full')
