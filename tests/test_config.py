"""Environment settings and the TOML configuration file."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from domain import seed
from domain.channels import Channel
from domain.config import load_settings
from domain.errors import ValidationError
from domain.models import AuditEvent, ProviderRoute, SenderName, SenderStatus, Tariff

CONFIG = '''
[[sender_names]]
name = "MyShop"
channel = "sms"

[[tariffs]]
channel = "sms"
country = "ru"
price_per_part = 2.15
currency = "RUB"

[[providers]]
name = "sms-main"
channel = "sms"
provider = "simulator"
rate_per_second = 50
default = true
settings = { latency_ms = 200 }
'''


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ('HERALD_DATABASE_URL', 'HERALD_HOST', 'HERALD_PORT', 'HERALD_SECRET', 'HERALD_PUBLIC_URL'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('HERALD_DATA_DIR', str(tmp_path / 'data'))
    settings = load_settings()
    assert settings.host == '127.0.0.1' and settings.port == 8080
    assert settings.database_url == f'sqlite://{tmp_path / "data" / "herald.sqlite3"}'
    assert settings.public_url == 'http://127.0.0.1:8080'


def test_secret_is_generated_once_and_kept_private(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv('HERALD_SECRET')
    monkeypatch.setenv('HERALD_DATA_DIR', str(tmp_path))
    first = load_settings().secret
    assert len(first) >= 32
    assert load_settings().secret == first
    assert (tmp_path / 'secret.key').stat().st_mode & 0o077 == 0
    monkeypatch.setenv('HERALD_SECRET', 'from the environment')
    assert load_settings().secret == 'from the environment'


def test_postgres_url_is_taken_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('HERALD_DATABASE_URL', 'postgres://herald:pw@db.internal:5432/herald')
    settings = load_settings()
    assert settings.database_url == 'postgres://herald:pw@db.internal:5432/herald' and not settings.is_sqlite


async def test_config_file_seeds_senders_tariffs_and_routes_idempotently(db, tmp_path: Path) -> None:
    path = tmp_path / 'herald.toml'
    path.write_text(CONFIG)
    config = seed.read_config(path)
    await seed.apply_config(config, 'EUR')
    await seed.apply_config(config, 'EUR')
    sender = await SenderName.get(name='MyShop', channel=Channel.SMS)
    assert sender.status is SenderStatus.APPROVED
    tariff = await Tariff.get(channel=Channel.SMS, country='RU')
    assert tariff.price_per_part == Decimal('2.15') and tariff.currency == 'RUB'
    route = await ProviderRoute.get(name='sms-main')
    assert route.provider == 'simulator' and route.is_default and route.settings == {'latency_ms': 200}
    assert await SenderName.all().count() == 1 and await Tariff.all().count() == 1


async def test_a_route_names_its_backup_even_one_declared_after_it(db, tmp_path: Path) -> None:
    path = tmp_path / 'herald.toml'
    path.write_text('[[providers]]\nname = "sms-main"\nchannel = "sms"\nprovider = "simulator"\nbackup = "sms-spare"\n'
                    '[[providers]]\nname = "sms-spare"\nchannel = "sms"\nprovider = "simulator"\n')
    config = seed.read_config(path)
    await seed.apply_config(config, 'EUR')
    await seed.apply_config(config, 'EUR')
    spare = await ProviderRoute.get(name='sms-spare')
    assert (await ProviderRoute.get(name='sms-main')).backup_id == spare.id and spare.backup_id is None
    assert await AuditEvent.filter(entity_type='provider_route', action='update').count() == 1, 'set once'


@pytest.mark.parametrize(('text', 'message'), [
    ('not = [valid', 'not valid TOML'),
    ('[[printers]]\nname = "x"', 'unknown section'),
    ('[[sender_names]]\nname = "X"\nchannel = "fax"', 'channel must be one of'),
    ('[[tariffs]]\nchannel = "sms"\ncountry = "Russia"\nprice_per_part = 1', 'ISO 3166'),
    ('[[tariffs]]\nchannel = "sms"\ncountry = "RU"\nprice_per_part = "cheap"', 'must be a number'),
    ('[[providers]]\nchannel = "sms"', 'name and provider are required'),
])
def test_bad_config_file_is_refused_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / 'herald.toml'
    path.write_text(text)
    with pytest.raises(ValidationError, match=message):
        seed.read_config(path)
