"""Crash safety (issue 3): a Herald process killed with SIGKILL in the middle of a bulk email send, then restarted,
ends every message, hands none to the SMTP server twice and flags the ones whose outcome it cannot know."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import smtp_recorder
from smtp_server import free_port
from test_cli import ROOT, process_env

from domain import enqueue
from domain.auth import SYSTEM
from domain.enqueue import Destination, SendRequest
from domain.models import Message
from domain.statuses import TERMINAL, MessageStatus

COUNT = 5000  # more than the dispatcher has in hand at once, so the restarted Herald has some left to send
HOLD_AT = 700  # the server stops answering after this many messages: Herald is killed while waiting for replies
LEASE_SECONDS = 2
SETTLED = TERMINAL | {MessageStatus.SENT}  # SMTP has no delivery reports: SENT is where an accepted email stays
STEP = {'channel': 'email', 'fromEmail': 'shop@example.com', 'subject': 'Order {{n}}',
        'text': 'Your order {{n}} has shipped.'}
ROUTE = '''[[providers]]
name = "mail"
channel = "email"
provider = "smtp"
concurrency = 4
rate_per_second = {rate}
default = true
settings = {{ host = "127.0.0.1", port = {port}, security = "none", pool_size = 4, timeout_s = 10 }}
'''


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[smtp_recorder.Running]:
    with smtp_recorder.running(tmp_path / 'received.txt', hold_at=HOLD_AT) as running:
        yield running


def received(tmp_path: Path) -> list[str]:
    """The ids of the messages the SMTP server took, in order, from their Message-ID `<id@herald>`."""
    lines = (tmp_path / 'received.txt').read_text().split()
    return [line.removeprefix('<').removesuffix('@herald>') for line in lines]


def start_herald(tmp_path: Path, smtp_port: int) -> subprocess.Popen:
    config = tmp_path / 'herald.toml'
    config.write_text(ROUTE.format(port=smtp_port, rate=100_000))
    env = process_env(HERALD_PORT=str(free_port()), HERALD_CONFIG=str(config),
                      HERALD_DISPATCH_LEASE_SECONDS=str(LEASE_SECONDS))
    with open(tmp_path / 'herald.log', 'a') as log:
        return subprocess.Popen([sys.executable, 'main.py'], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


async def wait_for(condition, process: subprocess.Popen, tmp_path: Path, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if process.poll() is not None or time.monotonic() > deadline:
            log = (tmp_path / 'herald.log').read_text()[-3000:]
            raise AssertionError(f'Herald did not {what} (exit code {process.poll()}):\n{log}')
        await asyncio.sleep(0.05)


async def test_sigkill_mid_dispatch_then_restart_sends_nothing_twice_and_flags_the_unknown(
        db, tmp_path: Path, recorder: smtp_recorder.Running) -> None:
    result = await enqueue.enqueue(SYSTEM, SendRequest(steps=[STEP], destinations=[
        Destination(email=f'user{i}@example.com', variables={'n': i}) for i in range(COUNT)]))
    assert len(result.messages) == COUNT

    herald = start_herald(tmp_path, recorder.port)
    try:
        async def server_is_holding() -> bool:
            return len(received(tmp_path)) >= HOLD_AT
        await wait_for(server_is_holding, herald, tmp_path, 'send to the SMTP server')
        await asyncio.sleep(0.3)  # every pooled connection gets stuck waiting for its reply
    finally:
        herald.kill()
        await asyncio.to_thread(herald.wait)
    seen_at_kill = set(received(tmp_path))
    handing_over = {str(m.id) for m in await Message.filter(status=MessageStatus.QUEUED, send_started_at__isnull=False)}
    recorder.release()
    await asyncio.sleep(2 * LEASE_SECONDS + 1)  # start-up recovery takes hand-overs whose lease ended a lease ago

    herald = start_herald(tmp_path, recorder.port)
    try:
        async def all_settled() -> bool:
            return not await Message.exclude(status__in=SETTLED).exists()
        await wait_for(all_settled, herald, tmp_path, 'settle every message after the restart')
    finally:
        herald.terminate()
        await asyncio.to_thread(herald.wait, 20)

    ids = received(tmp_path)
    reached = set(ids)
    messages = await Message.all().values('id', 'status', 'in_doubt', 'status_description')
    status = {str(m['id']): m['status'] for m in messages}
    in_doubt = {str(m['id']) for m in messages if m['in_doubt']}
    sent = {i for i, s in status.items() if s is MessageStatus.SENT}

    assert len(messages) == COUNT and all(s in SETTLED for s in status.values())
    assert [i for i, n in Counter(ids).items() if n > 1] == [], 'a message reached the SMTP server twice'
    assert 0 < len(seen_at_kill) < COUNT, 'the kill did not land in the middle of the send'
    assert reached - seen_at_kill, 'the restarted Herald sent nothing'
    assert handing_over and handing_over & reached, 'the kill did not land in the middle of a hand-over'
    assert in_doubt == handing_over, 'exactly the messages handed over without a recorded outcome are in doubt'
    assert all(status[i] is MessageStatus.ERROR for i in in_doubt)
    assert all(m['status_description'].startswith('Outcome unknown') for m in messages if m['in_doubt'])
    assert reached <= sent | in_doubt, 'a message the server took is neither SENT nor flagged'
    assert sent <= reached, 'a message recorded SENT never reached the server'
    other_errors = [m for m in messages if m['status'] is MessageStatus.ERROR and not m['in_doubt']]
    assert other_errors == []
    assert len(sent) + len(in_doubt) == COUNT
