"""Every test gets its own data dir and a fresh, migrated database: SQLite by default, or a database in a
throwaway PostgreSQL cluster when HERALD_TEST_DATABASE=postgres (`make test` runs both)."""
from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nicegui import app
from nicegui.testing import User

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'tests'))

from pgcluster import PostgresCluster  # noqa: E402

from domain.config import reload_settings  # noqa: E402
from domain.db import close_database, open_database  # noqa: E402

BACKEND = os.environ.get('HERALD_TEST_DATABASE', 'sqlite')
# Browser tests use Debian's chromium + chromium-driver; Selenium Manager must never go online for a driver.
os.environ.setdefault('SE_OFFLINE', 'true')
if shutil.which('chromedriver'):
    os.environ.setdefault('SE_CHROMEDRIVER', shutil.which('chromedriver'))
if shutil.which('chromium'):
    os.environ.setdefault('CHROME_BINARY_LOCATION', shutil.which('chromium'))
TEMPLATE_DB = 'herald_template'
_numbers = itertools.count()


def _in_thread(coroutine_factory) -> None:
    """Run async set-up work on its own loop (the test's loop may not exist yet, or may be running)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine_factory())
        except BaseException as error:  # noqa: BLE001 - re-raised below
            errors.append(error)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


async def _migrate(url: str) -> None:
    await open_database(url)
    await close_database()


@pytest.fixture(scope='session')
def nicegui_chrome_options(nicegui_chrome_options):
    """NiceGUI's options, with a desktop-sized window and no background traffic off this machine."""
    for argument in ('window-size=1400,1000', 'disable-background-networking', 'disable-component-update',
                     'disable-sync', 'no-first-run', 'disable-quic', 'disable-gpu'):
        nicegui_chrome_options.add_argument(argument)
    return nicegui_chrome_options


@pytest.fixture(scope='session')
def database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Returns a function that makes a fresh migrated database and gives its URL."""
    if BACKEND == 'postgres':
        with PostgresCluster() as cluster:
            _in_thread(lambda: _migrate(cluster.create_database(TEMPLATE_DB)))
            yield lambda: cluster.create_database(f'herald_test_{next(_numbers)}', template=TEMPLATE_DB)
    else:
        template = tmp_path_factory.mktemp('template') / 'herald.sqlite3'
        _in_thread(lambda: _migrate(f'sqlite://{template}'))
        directory = tmp_path_factory.mktemp('databases')

        def make() -> str:
            path = directory / f'herald_{next(_numbers)}.sqlite3'
            shutil.copy(template, path)
            return f'sqlite://{path}'
        yield make


@pytest.fixture(autouse=True)
def herald_env(tmp_path: Path, database_factory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The environment main.py reads: each test has its own data dir and database."""
    data_dir = tmp_path / 'data'
    monkeypatch.setenv('HERALD_DATA_DIR', str(data_dir))
    monkeypatch.setenv('HERALD_DATABASE_URL', database_factory())
    monkeypatch.setenv('HERALD_SECRET', 'test-secret')
    monkeypatch.delenv('HERALD_CONFIG', raising=False)
    reload_settings()
    return data_dir


@pytest.fixture
async def db() -> AsyncIterator[None]:
    """The test's database, open for service-level tests (page tests get it from main.py's start-up)."""
    await open_database(os.environ['HERALD_DATABASE_URL'])
    yield
    await close_database()


@pytest.fixture(autouse=True)
def unnested_lifespan() -> Iterator[None]:
    """FastAPI merges each included router's lifespan into the app's, and NiceGUI's reset between tests keeps it:
    restore it after each test, or main.py's routers would nest it one level deeper per test until recursion fails."""
    lifespan = app.router.lifespan_context
    yield
    app.router.lifespan_context = lifespan


@pytest.fixture(autouse=True)
def patient_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """`User.should_see` gives up after 0.3 s; this machine is shared and noisy, so wait up to 5 s."""
    original = User.should_see

    async def should_see(self: User, *args, retries: int = 50, **kwargs) -> None:
        await original(self, *args, retries=retries, **kwargs)
    monkeypatch.setattr(User, 'should_see', should_see)
