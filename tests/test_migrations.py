"""The committed migrations are the schema: they must match the models and apply to an empty database."""
from __future__ import annotations

import os

from tortoise.cli.cli import tortoise_cli_context
from tortoise.migrations.autodetector import MigrationAutodetector

from domain.db import tortoise_config


async def test_committed_migrations_match_the_models() -> None:
    config = tortoise_config(os.environ['HERALD_DATABASE_URL'])
    async with tortoise_cli_context(config) as context:
        changes = await MigrationAutodetector(context.apps, config['apps']).changes()
    assert not changes, 'models changed without a migration: run `make migration NAME=...`'
