"""Herald as the operator runs it: `python main.py --role …` in a child process of its own, on a database the test
gives it, ready once its `/healthz` answers.

    with herald_processes(database_url, tmp_path, roles=('all', 'all', 'worker'), config=toml_path) as heralds:
        heralds[0].url          # http://127.0.0.1:PORT
        heralds[1].kill()       # SIGKILL, as a crash
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from loopback import free_port

ROOT = Path(__file__).resolve().parent.parent
START_SECONDS = 60


@dataclass
class HeraldProcess:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.port}'

    def healthz(self) -> dict | None:
        try:
            answer = httpx.get(f'{self.url}/healthz', timeout=2)
        except httpx.HTTPError:
            return None
        return answer.json() if answer.status_code == 200 else None

    def wait_ready(self, seconds: float = START_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f'Herald exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}')
            if self.healthz() is not None:
                return
            time.sleep(0.2)
        raise TimeoutError(f'Herald did not answer /healthz in {seconds} s:\n{self.log.read_text()[-3000:]}')

    def kill(self) -> None:
        """Die at once, as a crash or an OOM kill would: no shutdown, no settling."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_herald(database_url: str, data_dir: Path, role: str = 'all', config: Path | None = None,
                 environment: dict[str, str] | None = None) -> HeraldProcess:
    """Start one Herald process (not yet ready: call `wait_ready`). Its output goes to `data_dir/herald.log`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(('HERALD_', 'NICEGUI_', 'PYTEST_'))}
    env.update({'HERALD_DATABASE_URL': database_url, 'HERALD_DATA_DIR': str(data_dir), 'HERALD_PORT': str(port),
                'HERALD_SECRET': 'test-secret', 'HERALD_PUBLIC_URL': f'http://127.0.0.1:{port}'})
    if config is not None:
        env['HERALD_CONFIG'] = str(config)
    env.update(environment or {})
    log = data_dir / 'herald.log'
    with log.open('ab') as output:
        process = subprocess.Popen([sys.executable, str(ROOT / 'main.py'), '--role', role], cwd=ROOT, env=env,
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    return HeraldProcess(process, port, log)


@contextmanager
def herald_processes(database_url: str, directory: Path, roles: Sequence[str] = ('all',), config: Path | None = None,
                     environment: dict[str, str] | None = None) -> Iterator[list[HeraldProcess]]:
    """Several Herald processes on one database, each with its own data dir; all stopped after the block."""
    with ExitStack() as stack:
        heralds = []
        for number, role in enumerate(roles):
            herald = start_herald(database_url, directory / f'herald-{number}', role, config, environment)
            stack.callback(herald.stop)
            heralds.append(herald)
        for herald in heralds:
            herald.wait_ready()
        yield heralds
