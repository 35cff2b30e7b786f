"""Herald: a self-hosted, multi-channel notification center.

    python main.py [--role all|web|worker]                serve (HERALD_HOST:HERALD_PORT)
    python main.py create-admin --email E --password P    add an administrator
    python main.py create-api-key --name N                print a new API key on the last line
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from domain.config import ROLES, Settings, reload_settings
from domain.errors import HeraldError

try:
    settings = reload_settings()
except HeraldError as error:  # a bad setting (HERALD_ROLE, …): say which, without a traceback
    sys.exit(f'error: {error}')
os.environ.setdefault('NICEGUI_STORAGE_PATH', str(settings.data_dir / 'sessions'))

from nicegui import app, ui  # noqa: E402  (the storage path must be set before NiceGUI is imported)

from api import auth as api_auth  # noqa: E402
from api import monitoring  # noqa: E402
from api import routes as api_routes  # noqa: E402
from domain import auth, cluster, event_bridge, hlr, messages, phones, seed  # noqa: E402
from domain.db import close_database, open_database  # noqa: E402
from scheduler.engine import Engine  # noqa: E402
from ui import pages, session  # noqa: E402

log = logging.getLogger('herald')


def build_app(settings: Settings) -> None:
    """Wire database, pages and routes into NiceGUI's app (called once per process, and per test)."""
    config = seed.read_config(settings.config_file) if settings.config_file else None

    engine = Engine(dispatching=settings.dispatches)

    async def start() -> None:
        await open_database(settings.database_url)
        if not settings.is_sqlite:
            await cluster.share_secrets(settings)
        await event_bridge.start(settings.database_url)
        if config:
            await seed.apply_config(config, settings.currency)
        await engine.start()

    async def stop() -> None:
        await engine.stop()
        await hlr.close_hlr_provider()
        await messages.close_uploads()
        phones.stop_workers()
        await event_bridge.stop()
        await close_database()

    app.on_startup(start)
    app.on_shutdown(stop)
    app.include_router(monitoring.router(engine))
    if settings.serves_web:
        session.reset_user_cache()
        app.add_middleware(session.PageGuard)
        app.add_middleware(api_auth.ApiGuard)
        api_routes.create(app, engine.routes)
        pages.create()


async def _with_database(coroutine_factory) -> None:
    await open_database(settings.database_url)
    try:
        await coroutine_factory()
    finally:
        await close_database()


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog='main.py', description='Herald, a self-hosted notification center. '
                                     'Without a command it serves the web interface and API.')
    role_help = 'what this process does: ' + '; '.join(f'{name}: {what}' for name, what in ROLES.items())
    parser.add_argument('--role', choices=ROLES, help=role_help + ' (default: HERALD_ROLE, else all)')
    commands = parser.add_subparsers(dest='command')
    serve_command = commands.add_parser('serve', help='serve the web interface and API (the default)')
    serve_command.add_argument('--role', choices=ROLES, dest='serve_role', help=role_help)
    admin = commands.add_parser('create-admin', help='create an administrator account')
    admin.add_argument('--email', required=True)
    admin.add_argument('--password', required=True)
    admin.add_argument('--name', default='')
    key = commands.add_parser('create-api-key', help='create an API key and print it on the last line')
    key.add_argument('--name', required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == 'create-admin':
            async def create_admin() -> None:
                user = await auth.create_user(args.email, args.password, auth.Role.ADMIN, args.name)
                print(f'Created administrator {user.email}')
            asyncio.run(_with_database(create_admin))
        elif args.command == 'create-api-key':
            async def create_key() -> None:
                key_record, secret = await auth.create_api_key(args.name)
                print(f'Created API key "{key_record.name}". It is shown only now:')
                print(secret)
            asyncio.run(_with_database(create_key))
        else:
            role = getattr(args, 'serve_role', None) or args.role
            if role:
                os.environ['HERALD_ROLE'] = role
            serve()
    except HeraldError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    return 0


def serve() -> None:
    settings = reload_settings()
    cluster.claim_sqlite_database(settings.database_url)
    build_app(settings)
    ui.run(host=settings.host, port=settings.port, title='Herald', storage_secret=settings.secret,
           reload=False, show=False, favicon='📣')


def _under_nicegui_test() -> bool:
    return bool(os.environ.get('NICEGUI_USER_SIMULATION') or os.environ.get('NICEGUI_SCREEN_TEST_PORT'))


if __name__ == '__main__':  # not '__mp_main__': worker processes (spawned) import this module and must not serve
    if _under_nicegui_test():
        serve()
    else:
        sys.exit(cli(sys.argv[1:]))
