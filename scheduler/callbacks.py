"""The client callback worker: POSTs the `callback_deliveries` outbox to clients' callbackUrls, signed, retried.

Rows are claimed like the dispatcher claims messages: in a transaction (PostgreSQL: `FOR UPDATE SKIP LOCKED`),
leased by pushing `next_attempt_at` past the time the batch can take, so several Herald processes never POST the
same row at once. Delivery is at least once: a process that dies between a POST and its record POSTs it again
when the lease ends; `X-Herald-Delivery` (the row id, the same on every try) lets a receiver drop such repeats.

Every answer but a 2xx is a failure and is retried on `BACKOFF_SECONDS`, 4xx included: a receiver's 404 or 401 is
most often a deploy or configuration slip mended within hours, and the schedule is bounded (about 20 h) before a
row ends `failed`. Redirects are not followed (a 3xx is a failure). Timeouts and connection errors are failures.

Callbacks of one notification go out one after another in claim order; when one fails, the later ones of that
notification in the batch are held back to retry with it, so a receiver does not hear DELIVERED before SENT.
Across batches of several processes the order is not guaranteed: the signed body's `changedAt` tells."""
from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from tortoise.transactions import in_transaction

from domain import sql
from domain.background import Background
from domain.callbacks import DELIVERY_HEADER, SIGNATURE_HEADER, sign
from domain.config import settings

log = logging.getLogger(__name__)
BACKOFF_SECONDS = (10, 60, 300, 1800, 7200, 21600, 43200)  # wait after the 1st, 2nd, … failure; then `failed`
USER_AGENT = 'Herald'
HELD_BACK = 'Held back: an earlier callback of this notification failed'
_LEASE_MARGIN_SECONDS = 30

Row = dict[str, Any]
NotDelivered = tuple[int, str, datetime, bool, int]  # attempts, last_error, next_attempt_at, failed, id


def _now() -> datetime:
    return datetime.now(timezone.utc)


class CallbackSender:
    def __init__(self, secret: str | None = None, batch_size: int = 100, concurrency: int = 20,
                 timeout: float = 10.0, backoff: Sequence[float] = BACKOFF_SECONDS, poll_seconds: float = 1.0) -> None:
        self._secret = secret
        self.batch_size = batch_size
        self.timeout = timeout
        self.backoff = tuple(backoff)
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._client: httpx.AsyncClient | None = None
        self._background = Background()

    @property
    def secret(self) -> str:
        """Read when signing: on PostgreSQL the key shared by every process is known only once the database is."""
        return self._secret or settings().callback_secret

    @property
    def max_attempts(self) -> int:
        return len(self.backoff) + 1

    def start(self) -> None:
        self._background = Background()
        self._background.start(self._run(), name='herald-callbacks')

    async def stop(self) -> None:
        """Stop once the batch in hand is delivered and recorded."""
        await self._background.close()
        if self._client:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while not self._background.closing:
            try:
                handled = await self.deliver_once()
            except Exception:  # noqa: BLE001 - keep delivering; the failed batch's leases expire and it is retried
                log.exception('Delivering a batch of callbacks failed')
                handled = 0
            if handled < self.batch_size:
                await self._background.pause(self.poll_seconds)

    async def deliver_once(self) -> int:
        """Claim one batch, POST it and record the outcomes; returns how many rows were claimed."""
        groups = await self._claim()
        outcomes = await asyncio.gather(*(self._post_in_order(group) for group in groups))
        delivered = [row_id for ids, _ in outcomes for row_id in ids]
        not_delivered = [row for _, rows in outcomes for row in rows]
        for chunk in sql.chunks(delivered):
            await sql.execute('UPDATE callback_deliveries SET delivered_at = ?, attempts = attempts + 1 '
                              f'WHERE id IN {sql.in_list(len(chunk))}', [_now(), *chunk])
        await sql.execute_many('UPDATE callback_deliveries SET attempts = ?, last_error = ?, next_attempt_at = ?, '
                               'failed = ? WHERE id = ?', not_delivered)
        return len(delivered) + len(not_delivered)

    async def _claim(self) -> list[list[Row]]:
        """Due rows in the outbox index's order, grouped by notification (each group in claim order)."""
        now = _now()
        async with in_transaction():
            rows = await sql.execute(
                'SELECT c.id, c.url, c.body, c.attempts, m.notification_id FROM callback_deliveries c '
                'JOIN messages m ON m.id = c.message_id '
                'WHERE c.delivered_at IS NULL AND c.failed = ? AND c.next_attempt_at <= ? '
                f"ORDER BY c.next_attempt_at, c.id LIMIT ?{sql.skip_locked('c')}", [False, now, self.batch_size])
            groups: dict[str, list[Row]] = defaultdict(list)
            for row in rows:
                groups[str(row['notification_id'])].append(row)
            if rows:
                ids = [row['id'] for row in rows]
                lease_until = now + self._lease(len(rows), max(map(len, groups.values())))
                await sql.execute('UPDATE callback_deliveries SET next_attempt_at = ? '
                                  f'WHERE id IN {sql.in_list(len(ids))}', [lease_until, *ids])
        return list(groups.values())

    def _lease(self, rows: int, longest_group: int) -> timedelta:
        """Longer than the batch can take: its POSTs spread over the slots, plus the longest one-after-another run."""
        return timedelta(seconds=self.timeout * (math.ceil(rows / self.concurrency) + longest_group)
                         + _LEASE_MARGIN_SECONDS)

    async def _post_in_order(self, group: list[Row]) -> tuple[list[int], list[NotDelivered]]:
        """POST one notification's callbacks one after another; the ids delivered, and the rows to update."""
        delivered: list[int] = []
        for index, row in enumerate(group):
            error = await self._post(row)
            if not error:
                delivered.append(row['id'])
                continue
            attempts = row['attempts'] + 1
            failed = attempts >= self.max_attempts
            retry_at = _now() + timedelta(seconds=0 if failed else self.backoff[attempts - 1])
            return delivered, [(attempts, error[:500], retry_at, failed, row['id'])] + [
                (later['attempts'], HELD_BACK, retry_at, False, later['id']) for later in group[index + 1:]]
        return delivered, []

    async def _post(self, row: Row) -> str:
        """'' when the receiver answered 2xx, else why not."""
        body = row['body'].encode()
        headers = {'Content-Type': 'application/json', 'User-Agent': USER_AGENT,
                   SIGNATURE_HEADER: sign(body, self.secret), DELIVERY_HEADER: str(row['id'])}
        async with self._slots:
            try:
                async with asyncio.timeout(self.timeout), \
                        self._http().stream('POST', row['url'], content=body, headers=headers) as response:
                    status, reason = response.status_code, response.reason_phrase
            except (TimeoutError, httpx.TimeoutException):
                return f'No answer within {self.timeout:g} s'
            except Exception as error:  # noqa: BLE001 - whatever breaks one POST is that row's failure, retried
                return type(error).__name__ + (f': {error}' if str(error) else '')
        return '' if 200 <= status < 300 else f'HTTP {status} {reason}'.strip()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                             limits=httpx.Limits(max_connections=self.concurrency))
        return self._client
