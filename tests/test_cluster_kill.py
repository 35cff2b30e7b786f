"""Issue 8: three Herald processes on one PostgreSQL database send 50,000 emails to an SMTP server (aiosmtpd in a
process of its own) and the one that holds the in-doubt sweep is killed with SIGKILL mid-run. Every message ends,
the server takes none twice, and the ones the dead process was handing over are flagged in doubt by the sweep that
moved to a survivor; the ones it had claimed but not handed over are sent by the survivors once its lease ends."""
from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import smtp_recorder
from conftest import BACKEND
from herald_process import HeraldProcess, herald_processes
from test_crash_safety import ROUTE, SETTLED, STEP

from domain import enqueue
from domain.auth import SYSTEM
from domain.enqueue import Destination, SendRequest
from domain.models import Message
from domain.statuses import MessageStatus

pytestmark = pytest.mark.skipif(BACKEND != 'postgres', reason='several Herald processes need PostgreSQL: a SQLite '
                                                              'database serves one process by design')
COUNT = 50_000
CHUNK = 10_000  # destinations per enqueue call, as a task import or an API batch sends them
KILL_AT = 15_000  # messages the server has taken when one process is killed
LEASE_SECONDS = 10
SETTLE_SECONDS = 900  # a generous deadline on a shared two-core machine; the run takes a few minutes at most
SWEEP = 'recover_in_doubt'
# The processes share the route's rate (400/s each of three) and it is below the 1,000 messages a claim takes, so a
# process holds claimed messages that wait for their slice's hand-over: a kill leaves both kinds, handed over (in
# doubt) and only claimed (sent by a survivor once the lease ends).
RATE = 1200


def received(record: Path) -> list[str]:
    """The ids of the messages the SMTP server took, in order, from their Message-ID `<id@herald>`."""
    text = record.read_text() if record.exists() else ''
    return [line.removeprefix('<').removesuffix('@herald>') for line in text.split()]


def count_received(record: Path) -> int:
    return record.read_bytes().count(b'\n') if record.exists() else 0


async def wait_for(condition: Callable[[], Awaitable[bool]], heralds: list[HeraldProcess], what: str,
                   seconds: float) -> None:
    """Poll until `condition`; fail with the logs when a Herald process exits or the deadline passes."""
    deadline = time.monotonic() + seconds
    while not await condition():
        dead = [herald for herald in heralds if herald.process.poll() is not None]
        if dead or time.monotonic() > deadline:
            logs = '\n'.join(f'--- {h.log}:\n{h.log.read_text()[-2000:]}' for h in heralds)
            raise AssertionError(f'Herald processes did not {what} ({len(dead)} exited):\n{logs}')
        await asyncio.sleep(0.2)


async def held_by(heralds: list[HeraldProcess]) -> HeraldProcess:
    """The process that runs the in-doubt sweep, once one does (after a kill, a survivor takes it within a run)."""
    holders: list[HeraldProcess] = []

    async def one_holds() -> bool:
        holders[:] = [herald for herald in heralds if SWEEP in (herald.healthz() or {}).get('jobs', [])]
        assert len(holders) <= 1, f'{SWEEP} runs in {len(holders)} processes at once'
        return bool(holders)
    await wait_for(one_holds, heralds, f'take {SWEEP}', 60)
    return holders[0]


async def in_hand(pid: int) -> list[dict]:
    """The messages a process has claimed and not yet settled (its dispatcher's worker id holds its pid)."""
    return await Message.filter(status=MessageStatus.QUEUED, claimed_by__contains=f':{pid}:').values(
        'id', 'send_started_at')


async def test_killing_one_of_three_processes_mid_run_sends_nothing_twice_and_flags_the_unknown(
        db, tmp_path: Path) -> None:
    record = tmp_path / 'received.txt'
    config = tmp_path / 'herald.toml'
    started = time.monotonic()
    with smtp_recorder.running(record) as server:
        config.write_text(ROUTE.format(port=server.port, rate=RATE))
        with herald_processes(os.environ['HERALD_DATABASE_URL'], tmp_path, roles=('all', 'all', 'all'), config=config,
                              environment={'HERALD_DISPATCH_LEASE_SECONDS': str(LEASE_SECONDS)}) as heralds:
            for start in range(0, COUNT, CHUNK):
                await enqueue.enqueue(SYSTEM, SendRequest(steps=[STEP], destinations=[
                    Destination(email=f'user{i}@example.com', variables={'n': i})
                    for i in range(start, start + CHUNK)]))

            async def server_took_enough() -> bool:
                return count_received(record) >= KILL_AT
            await wait_for(server_took_enough, heralds, f'send {KILL_AT} emails', SETTLE_SECONDS)
            victim = await held_by(heralds)
            victim_pid = victim.healthz()['pid']

            async def victim_is_handing_over() -> bool:
                return any(m['send_started_at'] for m in await in_hand(victim_pid))
            await wait_for(victim_is_handing_over, heralds, 'hand messages over in the sweep holder', SETTLE_SECONDS)
            victim.kill()
            killed_at = time.monotonic()
            await asyncio.sleep(1)  # a commit the victim sent just before it died lands
            seen_at_kill = count_received(record)
            held = await in_hand(victim_pid)
            handing_over = {str(m['id']) for m in held if m['send_started_at']}
            only_claimed = {str(m['id']) for m in held if not m['send_started_at']}

            survivors = [herald for herald in heralds if herald is not victim]
            await held_by(survivors)

            async def all_settled() -> bool:
                return not await Message.exclude(status__in=SETTLED).exists()
            await wait_for(all_settled, survivors, 'settle every message after the kill', SETTLE_SECONDS)
            settled_at = time.monotonic()
    errors = {str(herald.log): text[text.index('Traceback'):][:3000]
              for herald in heralds if 'Traceback' in (text := herald.log.read_text())}

    ids = received(record)
    reached = set(ids)
    messages = await Message.all().values('id', 'status', 'in_doubt', 'status_description')
    status = {str(m['id']): m['status'] for m in messages}
    in_doubt = {str(m['id']) for m in messages if m['in_doubt']}
    sent = {i for i, s in status.items() if s is MessageStatus.SENT}
    print(f'\n{len(sent)} sent, {len(in_doubt)} in doubt ({len(in_doubt & reached)} of them reached the server); '
          f'at the kill the sweep holder had {len(handing_over)} handed over and {len(only_claimed)} only claimed, '
          f'the server had taken {seen_at_kill}; {settled_at - killed_at:.0f} s from the kill to the last message '
          f'settled, {settled_at - started:.0f} s in all')
    for log, error in errors.items():
        print(f'--- the first error in {log}:\n{error}')

    assert len(messages) == COUNT and all(s in SETTLED for s in status.values()), 'a message did not end'
    assert [i for i, n in Counter(ids).items() if n > 1] == [], 'a message reached the SMTP server twice'
    assert reached <= set(status), 'the server took a message Herald does not have'
    assert handing_over and only_claimed, 'the victim did not have both handed-over and claimed messages in hand'
    assert in_doubt == handing_over, 'exactly the messages the victim had handed over without an outcome are in doubt'
    assert all(status[i] is MessageStatus.ERROR for i in in_doubt)
    assert all(m['status_description'].startswith('Outcome unknown') for m in messages if m['in_doubt'])
    assert only_claimed <= sent, 'a message the victim claimed but never handed over was not sent by a survivor'
    assert reached <= sent | in_doubt, 'a message the server took is neither SENT nor flagged in doubt'
    assert sent <= reached, 'a message recorded SENT never reached the server'
    other_errors = [m for m in messages if m['status'] is MessageStatus.ERROR and not m['in_doubt']]
    assert other_errors == [], 'a message ended ERROR without being in doubt'
    assert len(sent) + len(in_doubt) == COUNT
    assert errors == {}, 'a Herald process logged an error'
