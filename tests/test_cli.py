"""The command line and a real server process, as a self-hoster uses them."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from domain import auth
from domain.models import Role, User

ROOT = Path(__file__).resolve().parent.parent


def process_env(**extra: str) -> dict[str, str]:
    """The test's environment without pytest's markers (NiceGUI treats a process that has them as a test)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith('PYTEST_')}, **extra}


def run_main(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, 'main.py', *args], cwd=ROOT, env=process_env(),
                          capture_output=True, text=True, timeout=60)


def test_help_lists_the_commands() -> None:
    result = run_main('--help')
    assert result.returncode == 0
    for command in ('serve', 'create-admin', 'create-api-key'):
        assert command in result.stdout


async def test_create_admin(db) -> None:
    result = run_main('create-admin', '--email', 'Root@Example.com', '--password', 'long enough pw')
    assert result.returncode == 0, result.stderr
    created = await User.get(email='root@example.com')
    assert created.role is Role.ADMIN
    assert (await auth.authenticate('root@example.com', 'long enough pw')).id == created.id


async def test_create_admin_refuses_bad_input_and_creates_nothing(db) -> None:
    result = run_main('create-admin', '--email', 'not-an-email', '--password', 'short')
    assert result.returncode == 2
    assert 'valid email' in result.stderr
    assert not await User.exists()


async def test_create_api_key_prints_the_key_alone_on_the_last_line(db) -> None:
    result = run_main('create-api-key', '--name', 'crm')
    assert result.returncode == 0, result.stderr
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith(auth.API_KEY_PREFIX) and ' ' not in secret
    actor = await auth.actor_for_api_key(secret)
    assert actor is not None and actor.label == 'API key crm'


def test_bad_configuration_file_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / 'herald.toml'
    config.write_text('[[tariffs]]\nchannel = "fax"\ncountry = "RU"\nprice_per_part = 1\n')
    result = subprocess.run([sys.executable, 'main.py'], cwd=ROOT, env=process_env(HERALD_CONFIG=str(config)),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert 'channel must be one of' in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def server() -> str:
    port = _free_port()
    process = subprocess.Popen([sys.executable, 'main.py'], cwd=ROOT, env=process_env(HERALD_PORT=str(port)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f'http://127.0.0.1:{port}'
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f'{url}/login', timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    raise RuntimeError(f"Herald did not start: {process.communicate()[1][-2000:]}") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_served_api_needs_a_key_and_accepts_one_from_the_command_line(server: str) -> None:
    assert httpx.get(f'{server}/api/v1/templates').status_code == 401
    secret = run_main('create-api-key', '--name', 'crm').stdout.strip().splitlines()[-1]
    response = httpx.get(f'{server}/api/v1/templates', headers={'Authorization': f'Bearer {secret}'})
    assert response.status_code == 200
    assert response.json()['count'] == 0


def test_served_pages_lead_to_first_run_setup(server: str) -> None:
    response = httpx.get(f'{server}/templates', follow_redirects=False)
    assert response.status_code in (302, 307)
    assert response.headers['location'].endswith('/setup')
