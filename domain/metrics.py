"""Prometheus metrics (`GET /metrics`): counters of what this process's dispatcher did, and gauges of the whole
queue read from the database when scraped.

The gauges describe the cluster (every process reports the same queue); the counters and histograms describe this
process only, so sum them over processes. The database is read with three small queries at most once every
`SNAPSHOT_SECONDS`, however many scrapers ask."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections import Counter as Tally
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from . import auth, sql
from .auth import Scope
from .channels import Channel
from .config import settings
from .providers import DeliveryReport, SendResult
from .statuses import MessageStatus

log = logging.getLogger(__name__)
disable_created_metrics()  # no `_created` series beside each counter and histogram: Prometheus needs none
_S = MessageStatus
QUEUE_STATUSES = (_S.CREATED, _S.QUEUED, _S.DELAYED, _S.PAUSED, _S.SENT, _S.PENDING)  # not yet final
SNAPSHOT_SECONDS = 2.0
DATABASE_TIMEOUT_SECONDS = 5
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

_IN_QUEUE = ', '.join(f"'{status.value}'" for status in QUEUE_STATUSES)
DEPTH_SQL = f'SELECT status, count(*) AS n FROM messages WHERE status IN ({_IN_QUEUE}) GROUP BY status'
# One index probe per channel (the partial index of QUEUED messages leads with the channel): a min over them all
# would read the whole queue.
OLDEST_SQL = ' UNION ALL '.join(
    f"SELECT '{channel.value}' AS channel, (SELECT min(due_at) FROM messages WHERE status = '{_S.QUEUED.value}' "
    f"AND channel = '{channel.value}' AND due_at <= ?) AS due_at" for channel in Channel)
CALLBACKS_SQL = 'SELECT failed, count(*) AS n FROM callback_deliveries WHERE delivered_at IS NULL GROUP BY failed'


@dataclass(frozen=True)
class Snapshot:
    """The queue as the database holds it."""
    depth: dict[MessageStatus, int]
    oldest_seconds: dict[Channel, float]  # age of the oldest due QUEUED message, 0 when none waits
    callbacks: dict[str, int]  # 'pending' / 'failed' client callbacks


async def read_snapshot() -> Snapshot:
    now = datetime.now(timezone.utc)
    depth = {MessageStatus(row['status']): row['n'] for row in await sql.execute(DEPTH_SQL)}
    oldest = {}
    for row in await sql.execute(OLDEST_SQL, [now] * len(Channel)):
        due = sql.parse_time(row['due_at'])
        oldest[Channel(row['channel'])] = max(0.0, (now - due).total_seconds()) if due else 0.0
    callbacks = {'failed' if row['failed'] else 'pending': row['n'] for row in await sql.execute(CALLBACKS_SQL)}
    return Snapshot(depth, oldest, callbacks)


Jobs = Callable[[], Mapping[str, bool]]  # singleton job name → held by this process


@dataclass
class Metrics:
    """One process's metrics in a registry of Herald's own: a fresh set per app (see `install`)."""
    role: str = 'all'
    jobs: Jobs = dict
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        channel_provider = ['channel', 'provider']
        self.sent = Counter('herald_messages_sent', 'Messages a provider accepted, by this process',
                            channel_provider, registry=self.registry)
        self.errors = Counter('herald_send_errors', 'Messages a provider did not accept, by this process; kind: '
                              'refused (ended ERROR), retried (tried again later), in_doubt (outcome unknown)',
                              [*channel_provider, 'kind'], registry=self.registry)
        self.latency = Histogram('herald_dispatch_latency_seconds', 'From a message\'s due time to its provider\'s '
                                 'answer', ['channel'], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.provider_call = Histogram('herald_provider_call_seconds', 'How long a provider takes to answer a call '
                                       '(one slice of a batch)', channel_provider, buckets=CALL_BUCKETS,
                                       registry=self.registry)
        self.reports = Counter('herald_delivery_reports', 'Delivery reports received from providers, by this '
                               'process', ['provider', 'status'], registry=self.registry)
        self.registry.register(_Scraped(self))
        self.snapshot: Snapshot | None = None
        self._read_at = -SNAPSHOT_SECONDS
        self._lock = asyncio.Lock()

    async def exposition(self) -> bytes:
        """The text exposition, with the queue read from the database when the last read is stale."""
        async with self._lock:  # concurrent scrapes wait for one read
            if time.monotonic() - self._read_at >= SNAPSHOT_SECONDS:
                try:
                    self.snapshot = await asyncio.wait_for(read_snapshot(), DATABASE_TIMEOUT_SECONDS)
                except Exception as error:  # noqa: BLE001 - the scrape still answers, with herald_database_up 0
                    log.warning('Reading the queue for /metrics failed: %s', error)
                    self.snapshot = None
                self._read_at = time.monotonic()
        return generate_latest(self.registry)


class _Scraped:
    """The gauges computed at scrape time (a custom collector: prometheus_client calls `collect`)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # nothing to check for clashes at registration: these names are not registered elsewhere

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily('herald_process_info', 'This Herald process (always 1)', labels=['role', 'pid'])
        info.add_metric([self.metrics.role, str(os.getpid())], 1)
        yield info
        jobs = GaugeMetricFamily('herald_singleton_jobs', 'Cluster-wide jobs: 1 where this process runs the job '
                                 '(summed over processes: 1 per job)', labels=['job'])
        for job, held in sorted(self.metrics.jobs().items()):
            jobs.add_metric([job], int(held))
        yield jobs
        snapshot = self.metrics.snapshot
        yield GaugeMetricFamily('herald_database_up', 'Whether this scrape could read the queue from the database',
                                value=int(snapshot is not None))
        if snapshot is not None:
            yield from _queue_gauges(snapshot)


def _queue_gauges(snapshot: Snapshot) -> Iterator[Metric]:
    depth = GaugeMetricFamily('herald_messages', 'Messages not yet in a final status, by status (the whole '
                              'database)', labels=['status'])
    for status in QUEUE_STATUSES:
        depth.add_metric([status.value.lower()], snapshot.depth.get(status, 0))
    yield depth
    oldest = GaugeMetricFamily('herald_queue_oldest_seconds', 'Age of the oldest QUEUED message that is due '
                               '(0 when none waits)', labels=['channel'])
    for channel, seconds in snapshot.oldest_seconds.items():
        oldest.add_metric([channel.value], seconds)
    yield oldest
    callbacks = GaugeMetricFamily('herald_callbacks', 'Client callbacks not delivered: pending (to be tried) or '
                                  'failed (given up)', labels=['state'])
    for state in ('pending', 'failed'):
        callbacks.add_metric([state], snapshot.callbacks.get(state, 0))
    yield callbacks


_current = Metrics()


def install(role: str, jobs: Jobs) -> Metrics:
    """Start this process's metrics afresh (once per app; tests build one app after another)."""
    global _current  # noqa: PLW0603
    _current = Metrics(role, jobs)
    return _current


def settled(channel: Channel | str, provider: str, results: list[SendResult], retried: Collection[str],
            due_at: Callable[[str], Any]) -> None:
    """Count a provider's results; `retried`: the ids tried again later, `due_at(id)`: when a message was due."""
    metrics, now = _current, time.time()
    channel = Channel(channel).value
    kinds = Tally('in_doubt' if result.in_doubt else 'retried' if result.message_id in retried else 'refused'
                  for result in results if not result.accepted)
    accepted = len(results) - sum(kinds.values())
    if accepted:
        metrics.sent.labels(channel, provider).inc(accepted)
    for kind, count in kinds.items():
        metrics.errors.labels(channel, provider, kind).inc(count)
    latency = metrics.latency.labels(channel)
    for due, count in Tally(due_at(result.message_id) for result in results).items():  # a batch shares its times
        seconds = max(0.0, now - sql.parse_time(due).timestamp())
        for _ in range(count):
            latency.observe(seconds)


def provider_called(channel: Channel | str, provider: str, seconds: float) -> None:
    _current.provider_call.labels(Channel(channel).value, provider).observe(seconds)


def reports_received(provider: str, reports: list[DeliveryReport]) -> None:
    for status, count in Tally(report.status for report in reports).items():
        _current.reports.labels(provider, status.value.lower()).inc(count)


def current() -> Metrics:
    return _current


async def refusal(client_host: str | None, authorization: str) -> str | None:
    """Why this client may not read the metrics, or None when it may: clients in HERALD_METRICS_ALLOW may, others
    need an API key (or a user's token) with the `metrics:read` scope, as `Authorization: Bearer <key>`."""
    if _allowed(client_host):
        return None
    scheme, _, token = authorization.partition(' ')
    if scheme.lower() != 'bearer' or not token.strip():
        return (f'{client_host or "This client"} is not in HERALD_METRICS_ALLOW: send an API key with the scope '
                f'"{Scope.METRICS_READ.value}" as "Authorization: Bearer <key>".')
    actor = await auth.actor_for_token(token.strip())
    if actor is None:
        return 'The API key is invalid, expired or revoked.'
    if not actor.has_scope(Scope.METRICS_READ):
        return f'This API key lacks the scope "{Scope.METRICS_READ.value}".'
    return None


def _allowed(client_host: str | None) -> bool:
    try:
        address = ipaddress.ip_address(client_host or '')
    except ValueError:  # no address (a test client, a Unix socket): only a key lets it in
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:  # a dual-stack listener's IPv4 client
        address = address.ipv4_mapped
    return any(address in network for network in settings().metrics_allow)
