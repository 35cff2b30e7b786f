"""Database connection and schema migrations (Tortoise's built-in migrations, applied at start)."""
from __future__ import annotations

import os
from typing import Any

from tortoise import Tortoise
from tortoise.connection import get_connection
from tortoise.migrations.executor import MigrationExecutor

from . import cluster

APP = 'models'


def tortoise_config(database_url: str) -> dict[str, Any]:
    connection: str | dict[str, Any] = database_url
    if database_url.startswith('sqlite'):
        path = database_url.split('://', 1)[1]
        connection = {
            'engine': 'tortoise.backends.sqlite',
            'credentials': {'file_path': path, 'journal_mode': 'WAL', 'synchronous': 'NORMAL',
                            'busy_timeout': 10000, 'foreign_keys': 'ON',
                            'cache_size': -65536},  # KiB: the hot indexes of a large outbox stay in memory
        }
    return {
        'connections': {'default': connection},
        'apps': {APP: {'models': ['domain.models'], 'migrations': 'domain.migrations',
                       'default_connection': 'default'}},
        'use_tz': True,
        'timezone': 'UTC',
    }


# Used by the `tortoise` command line for `makemigrations` (see README, "Changing the schema").
TORTOISE_ORM = tortoise_config(os.environ.get('HERALD_DATABASE_URL', 'sqlite://data/herald.sqlite3'))


async def open_database(database_url: str) -> None:
    """Connect and bring the schema up to date."""
    config = tortoise_config(database_url)
    await Tortoise.init(config=config, _enable_global_fallback=True)
    async with cluster.exclusive(database_url, 'migrations'):  # processes started together migrate one by one
        await MigrationExecutor(get_connection('default'), config['apps']).migrate(None)


async def close_database() -> None:
    await Tortoise.close_connections()
