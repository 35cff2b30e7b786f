"""The provider routes in use: one provider instance per enabled route, behind its concurrency and rate limits."""
from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable

from domain import delivery, failover, metrics
from domain.background import Background
from domain.channels import Channel
from domain.events import RoutesChanged
from domain.models import ProviderRoute
from domain.providers import DeliveryReport, OutgoingMessage, Provider, SendResult, WebhookRejected, WebhookRequest
from providers.registry import create_provider

log = logging.getLogger(__name__)
HandOver = Callable[['Route', list[OutgoingMessage]], Awaitable[list[OutgoingMessage]]]  # returns those to send
Settle = Callable[[list[SendResult]], Awaitable[None]]
UNMATCHED_REPORT_RETRIES = (0.2, 1, 3, 10, 30)


class TokenBucket:
    """At most `rate` messages a second on average, bursts up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.tokens = 0.0
        self.set_rate(rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def set_rate(self, rate: float) -> None:
        self.rate = max(rate, 0.001)
        self.capacity = max(self.rate, 1.0)
        self.tokens = min(self.tokens, self.capacity)

    async def take(self, count: int) -> None:
        while not self.take_now(count):
            await asyncio.sleep((count - self.tokens) / self.rate)

    def take_now(self, count: int) -> bool:
        """Take `count` tokens if there are that many now."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < count:
            return False
        self.tokens -= count
        return True


class InFlight:
    """The sends in progress on one provider instance, which routes of successive reloads may share. `closed` once a
    reload replaced the provider and it was closed: a send that still comes closes it again when done."""

    def __init__(self) -> None:
        self.count = 0
        self.closed = False
        self.idle = asyncio.Event()
        self.idle.set()

    def __enter__(self) -> None:
        self.count += 1
        self.idle.clear()

    def __exit__(self, *exc_info: object) -> None:
        self.count -= 1
        if not self.count:
            self.idle.set()


class Route:
    def __init__(self, record: ProviderRoute, provider: Provider, in_flight: InFlight, share: float = 1.0) -> None:
        self.id = record.id
        self.name = record.name
        self.backup_id = record.backup_id
        self.health = failover.health(record.name)
        self.channel = record.channel
        self.provider_name = record.provider
        self.is_default = record.is_default
        self.provider = provider
        self.in_flight = in_flight
        self.key = _provider_key(record)
        self.slots = asyncio.Semaphore(max(1, record.concurrency))
        self.rate_per_second = record.rate_per_second
        self.bucket = TokenBucket(record.rate_per_second * share)

    async def send(self, messages: list[OutgoingMessage], hand_over: HandOver, settle: Settle) -> None:
        """Send in slices the rate limit allows, at most `concurrency` slices in flight. Each slice is handed over
        (recorded as with the provider) right before its provider call and settled right after it, so a crash
        leaves in doubt only the slices that were with the provider at that moment."""
        size = max(1, int(self.bucket.capacity))
        slices = [messages[i:i + size] for i in range(0, len(messages), size)]
        with self.in_flight:
            outcomes = await asyncio.gather(*(self._send_slice(part, hand_over, settle) for part in slices),
                                            return_exceptions=True)  # a failed slice must not leave others unwatched
        await self._close_if_retired()
        if failure := next((outcome for outcome in outcomes if isinstance(outcome, BaseException)), None):
            raise failure

    async def reserve(self, count: int) -> bool:
        """Take the rate limit's tokens and a concurrency slot for `count` messages if both are free now: the
        caller may then record the hand-over with its claim and must `send_reserved` them."""
        if count > self.bucket.capacity or self.slots.locked() or not self.bucket.take_now(count):
            return False
        await self.slots.acquire()  # free, so this does not wait
        return True

    async def send_reserved(self, messages: list[OutgoingMessage], settle: Settle) -> None:
        """Send messages `reserve` made room for, already recorded as handed over."""
        with self.in_flight:
            try:
                results = await self._call(messages)
            finally:
                self.slots.release()
        await settle(results)
        await self._close_if_retired()

    async def _send_slice(self, messages: list[OutgoingMessage], hand_over: HandOver, settle: Settle) -> None:
        await self.bucket.take(len(messages))
        async with self.slots:
            messages = await hand_over(self, messages)
            if not messages:
                return
            results = await self._call(messages)
        await settle(results)

    async def _call(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        """The provider's results, judged for failover: failures for the provider's sake count against it."""
        started = time.monotonic()
        try:
            results = await self.provider.send(messages)
        except Exception as error:  # noqa: BLE001 - a provider bug: what it sent before failing is unknown
            log.exception('Provider %s failed on a batch', self.name)
            results = [SendResult(m.id, accepted=False, error=f'Provider failure: {error}', in_doubt=True)
                       for m in messages]
        seconds = time.monotonic() - started
        failed = [result for result in results if not result.accepted and (result.transient or result.in_doubt)]
        self.health.record(len(results), len(failed), seconds, failed[0].error if failed else '')
        metrics.provider_called(self.channel, self.provider_name, seconds)
        return results

    async def _close_if_retired(self) -> None:
        if self.in_flight.closed and not self.in_flight.count:  # it came after a reload retired the provider
            await self.provider.close()


def _provider_key(record: ProviderRoute) -> str:
    """What a provider instance is built from: a route whose key is unchanged keeps its provider across reloads."""
    return json.dumps([record.name, record.provider, record.settings], sort_keys=True, default=str)


class RouteTable:
    """The enabled routes by name (the default route of a channel before its others). `load` swaps in a new table
    while the old one may still be sending: replaced providers are closed once their sends are done."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self._retries = Background()
        self._retiring: dict[asyncio.Task, Route] = {}
        self._lock = asyncio.Lock()
        self._reloader: asyncio.Task | None = None
        self._stale = False
        self.share = 1.0  # of each route's rate limit, for this process: 1 / the processes dispatching

    def share_rates(self, dispatchers: int) -> None:
        """Several processes dispatch: each sends through a route at its part of the route's rate limit, so that
        together they keep to the limit the provider set."""
        self.share = 1 / max(1, dispatchers)
        for route in self.routes.values():
            route.bucket.set_rate(route.rate_per_second * self.share)

    async def load(self) -> None:
        """Build the providers of the enabled routes first, then swap them in; nothing changes when one cannot be
        built. Routes whose provider, name and settings are unchanged keep their provider instance."""
        async with self._lock:
            records = await ProviderRoute.filter(enabled=True).order_by('-is_default', 'id')
            reusable = {route.key: route for route in self.routes.values()}
            created: list[Provider] = []
            routes: dict[str, Route] = {}
            try:
                for record in records:
                    if previous := reusable.pop(_provider_key(record), None):
                        routes[record.name] = Route(record, previous.provider, previous.in_flight, self.share)
                        continue
                    created.append(self._create(record))
                    routes[record.name] = Route(record, created[-1], InFlight(), self.share)
            except Exception:
                await _close_all(created)
                raise
            old, self.routes = self.routes, routes
            failover.forget(set(routes))
            kept = {id(route.provider) for route in routes.values()}
            for route in old.values():
                if id(route.provider) not in kept:
                    self._retire(route)

    def on_routes_changed(self, _event: RoutesChanged) -> None:
        """The domain event's listener: reload soon. Changes that come during a reload lead to one more."""
        self._stale = True
        if self._reloader is None or self._reloader.done():
            # A fresh context: the change may be published inside its transaction (a configuration applied at
            # start), whose connection the reload must not share.
            self._reloader = asyncio.create_task(self._reload(), name='herald-route-reload',
                                                 context=contextvars.Context())

    async def _reload(self) -> None:
        while self._stale:
            self._stale = False
            try:
                await self.load()
            except Exception:  # noqa: BLE001 - keep sending through the routes in use
                log.exception('Reloading the provider routes failed; the previous routes stay in use')

    async def reloaded(self) -> None:
        """Wait for a reload in progress (tests, and callers that need the new routes at once)."""
        if self._reloader:
            await asyncio.shield(self._reloader)

    def _create(self, record: ProviderRoute) -> Provider:
        """A provider whose own delivery reports (SMPP's, the simulator's) are applied even after it is replaced."""
        async def receive(reports: list[DeliveryReport]) -> None:
            await self._apply_reports(record.provider, reports)
        return create_provider(record.provider, record.name, record.settings, receive)

    def _retire(self, route: Route) -> None:
        async def close_when_idle() -> None:
            while route.in_flight.count:
                await route.in_flight.idle.wait()
            route.in_flight.closed = True
            await _close_all([route.provider])
        task = asyncio.create_task(close_when_idle(), name=f'herald-retire-{route.name}')
        self._retiring[task] = route
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

    def for_channel(self, channel: Channel) -> Route | None:
        """The channel's default route, else its first enabled one; or, while that fails, its backup (see
        domain.failover: each route of the chain keeps its current share of what reaches it)."""
        route = next((route for route in self.routes.values() if route.channel is channel), None)
        chain: set[str] = set()
        while route is not None and route.name not in chain:
            chain.add(route.name)
            backup = self.backup_of(route)
            if backup is None or random.random() < route.health.current_share():
                return route
            route = backup
        return route

    def backup_of(self, route: Route) -> Route | None:
        """The route's backup, when it is enabled and sends the same channel."""
        backup = self.by_id(route.backup_id) if route.backup_id is not None else None
        return backup if backup is not None and backup.channel is route.channel else None

    def by_id(self, route_id: int) -> Route | None:
        """An enabled route by its id."""
        return next((route for route in self.routes.values() if route.id == route_id), None)

    async def receive_webhook(self, route_name: str, request: WebhookRequest) -> int:
        """A provider's delivery reports from a webhook request: returns how many moved a message."""
        route = self.routes.get(route_name)
        if route is None:
            raise WebhookRejected(f'There is no enabled route "{route_name}".')
        return await self._apply_reports(route.provider_name, route.provider.parse_webhook(request))

    async def _apply_reports(self, provider_name: str, reports: list[DeliveryReport]) -> int:
        metrics.reports_received(provider_name, reports)
        moved, unmatched = await delivery.apply_reports(provider_name, reports)
        if unmatched:
            self._retry(provider_name, unmatched)
        return len(moved)

    def _retry(self, provider_name: str, reports: list[DeliveryReport]) -> None:
        """Reports that overtook the record of their send are tried again a few times before they are dropped."""
        async def retry() -> None:
            pending = reports
            for delay in UNMATCHED_REPORT_RETRIES:
                await self._retries.pause(delay)
                _, pending = await delivery.apply_reports(provider_name, pending)
                if not pending:
                    return
            log.warning('%d delivery report(s) from %s matched no message and were dropped', len(pending),
                        provider_name)
        self._retries.start(retry(), name=f'herald-report-retry-{provider_name}')

    async def close(self) -> None:
        """Stop: every provider is closed, those still sending too (the dispatcher is stopped first)."""
        retiring = list(self._retiring.values())
        await self._retries.close()
        await self.reloaded()  # it reads the database: waited for, never cancelled (see domain.background)
        for task in self._retiring:
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        async with self._lock:
            providers = {id(route.provider): route.provider for route in [*self.routes.values(), *retiring]}
            self.routes = {}
            await _close_all(list(providers.values()))


async def _close_all(providers: list[Provider]) -> None:
    for provider in providers:
        try:
            await provider.close()
        except Exception:  # noqa: BLE001 - closing the others matters more
            log.exception('Closing provider %s failed', type(provider).__name__)
