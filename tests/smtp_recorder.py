"""An SMTP server in its own process (aiosmtpd) that appends the Message-ID of every message it accepts to a file.

    python tests/smtp_recorder.py [--record FILE] [--hold-at N]

It listens on a free loopback port and prints `port N` on stdout once it accepts connections. Each Message-ID
line is written and flushed before the 250 reply, so a message whose sender never heard the reply is on record.
`--hold-at N`: from the Nth message on, replies wait until the process gets SIGUSR1, which leaves a client
stuck in the middle of handing messages over (where a crash hurts most)."""
from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aiosmtpd.smtp import SMTP

HOST = '127.0.0.1'
MESSAGE_ID = re.compile(rb'^Message-ID:\s*(\S+)', re.IGNORECASE | re.MULTILINE)


class Recorder:
    def __init__(self, record: IO[str] | None, hold_at: int | None, released: asyncio.Event) -> None:
        self.record = record
        self.hold_at = hold_at
        self.released = released
        self.count = 0

    async def handle_DATA(self, server: SMTP, session, envelope) -> str:
        self.count += 1
        if self.record is not None:
            headers = envelope.original_content.split(b'\r\n\r\n', 1)[0]
            found = MESSAGE_ID.search(headers)
            self.record.write((found.group(1).decode() if found else '-') + '\n')
            self.record.flush()
        if self.hold_at is not None and self.count >= self.hold_at:
            await self.released.wait()
        return '250 Message accepted for delivery'


async def serve(record: IO[str] | None, hold_at: int | None) -> None:
    loop = asyncio.get_running_loop()
    released, stop = asyncio.Event(), asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, released.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    handler = Recorder(record, hold_at, released)
    server = await loop.create_server(lambda: SMTP(handler, hostname='localhost'), HOST, 0)
    print(f'port {server.sockets[0].getsockname()[1]}', flush=True)
    async with server:
        await stop.wait()


@dataclass(frozen=True)
class Running:
    port: int
    process: subprocess.Popen

    def release(self) -> None:
        """Replies held by `hold_at` go out, and later ones are no longer held."""
        self.process.send_signal(signal.SIGUSR1)


@contextmanager
def running(record: Path | None = None, hold_at: int | None = None) -> Iterator[Running]:
    """Runs the recorder in a child process for the block."""
    command = [sys.executable, __file__]
    command += ['--record', str(record)] if record else []
    command += ['--hold-at', str(hold_at)] if hold_at else []
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        if not line.startswith('port '):
            raise RuntimeError(f'The SMTP recorder did not start (exit code {process.wait(10)})')
        yield Running(int(line.split()[1]), process)
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--record', help='append each Message-ID to this file (default: record nothing)')
    parser.add_argument('--hold-at', type=int)
    args = parser.parse_args()
    record = open(args.record, 'a', encoding='ascii') if args.record else None  # noqa: SIM115 - open while serving
    try:
        asyncio.run(serve(record, args.hold_at))
    finally:
        if record is not None:
            record.close()


if __name__ == '__main__':
    main()
