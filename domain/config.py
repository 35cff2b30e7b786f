"""Settings from the environment (and the data dir), read once at start-up."""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from .errors import HeraldError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_METRICS_ALLOW = '127.0.0.0/8,::1/128'

ROLES = {
    'all': 'pages, API and dispatching (the default)',
    'web': 'pages, API and provider webhooks; no dispatching',
    'worker': 'dispatching, sweeps and callbacks; only /healthz and /metrics over HTTP',
}


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    host: str
    port: int
    secret: str
    public_url: str
    config_file: Path | None
    default_region: str
    currency: str
    dispatch_lease_seconds: int
    callback_secret: str  # signs client callbacks (domain/callbacks.py)
    email_tracking: bool = True  # HTML emails get an open pixel and counted links (domain/links.py)
    role: str = 'all'  # 'web' serves pages and API, 'worker' dispatches, 'all' does both (see ROLES)
    metrics_allow: tuple[Network, ...] = ()  # clients that may read GET /metrics without an API key

    @property
    def serves_web(self) -> bool:
        return self.role in ('all', 'web')

    @property
    def dispatches(self) -> bool:
        return self.role in ('all', 'worker')

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith('sqlite')


def _secret(data_dir: Path, variable: str, filename: str) -> str:
    """The environment variable, or a secret generated on first start and kept in the data dir."""
    if value := os.environ.get(variable):
        return value
    path = data_dir / filename
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def load_settings() -> Settings:
    data_dir = Path(os.environ.get('HERALD_DATA_DIR', './data')).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    host = os.environ.get('HERALD_HOST', '127.0.0.1')
    port = int(os.environ.get('HERALD_PORT', '8080'))
    config_file = os.environ.get('HERALD_CONFIG')
    return Settings(
        data_dir=data_dir,
        database_url=os.environ.get('HERALD_DATABASE_URL') or f'sqlite://{data_dir / "herald.sqlite3"}',
        host=host,
        port=port,
        secret=_secret(data_dir, 'HERALD_SECRET', 'secret.key'),
        public_url=os.environ.get('HERALD_PUBLIC_URL', f'http://{host}:{port}').rstrip('/'),
        config_file=Path(config_file) if config_file else None,
        default_region=os.environ.get('HERALD_DEFAULT_REGION', 'RU').upper(),
        currency=os.environ.get('HERALD_CURRENCY', 'EUR').upper(),
        dispatch_lease_seconds=int(os.environ.get('HERALD_DISPATCH_LEASE_SECONDS', '60')),
        callback_secret=_secret(data_dir, 'HERALD_CALLBACK_SECRET', 'callback.key'),
        email_tracking=os.environ.get('HERALD_EMAIL_TRACKING', 'on').strip().lower() not in ('off', 'false', '0', 'no'),
        role=checked_role(os.environ.get('HERALD_ROLE', 'all')),
        metrics_allow=networks(os.environ.get('HERALD_METRICS_ALLOW', DEFAULT_METRICS_ALLOW)),
    )


def checked_role(role: str) -> str:
    role = role.strip().lower()
    if role not in ROLES:
        raise HeraldError(f'Unknown role "{role}": use one of {", ".join(ROLES)}')
    return role


def networks(value: str) -> tuple[Network, ...]:
    """Comma-separated CIDRs (`10.0.0.0/8, 2001:db8::/32`; a bare address is one host)."""
    try:
        return tuple(ipaddress.ip_network(item.strip()) for item in value.split(',') if item.strip())
    except ValueError as error:
        raise HeraldError(f'HERALD_METRICS_ALLOW: {error} (give networks as 10.0.0.0/8, comma-separated)') from None


_settings: Settings | None = None


def settings() -> Settings:
    """The process-wide settings (loaded on first use)."""
    global _settings  # noqa: PLW0603
    if _settings is None:
        _settings = load_settings()
    return _settings


def reload_settings() -> Settings:
    """Re-read the environment (used at start-up and by tests that change it)."""
    global _settings  # noqa: PLW0603
    _settings = load_settings()
    return _settings


def replace_settings(**changes: object) -> Settings:
    """The process-wide settings with some values changed (secrets shared through the database)."""
    global _settings  # noqa: PLW0603
    _settings = dataclasses.replace(settings(), **changes)
    return _settings
