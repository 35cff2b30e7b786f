"""The provider routes in use: one provider instance per enabled route, behind its concurrency and rate limits."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from domain import delivery
from domain.channels import Channel
from domain.models import ProviderRoute
from domain.providers import DeliveryReport, OutgoingMessage, Provider, SendResult, WebhookRejected
from providers.registry import create_provider

log = logging.getLogger(__name__)
UNMATCHED_REPORT_RETRIES = (0.2, 1, 3, 10, 30)


class TokenBucket:
    """At most `rate` messages a second on average, bursts up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = max(rate, 0.001)
        self.capacity = max(self.rate, 1.0)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    async def take(self, count: int) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= count:
                self.tokens -= count
                return
            await asyncio.sleep((count - self.tokens) / self.rate)


class Route:
    def __init__(self, record: ProviderRoute, provider: Provider) -> None:
        self.name = record.name
        self.channel = record.channel
        self.provider_name = record.provider
        self.is_default = record.is_default
        self.provider = provider
        self.slots = asyncio.Semaphore(max(1, record.concurrency))
        self.bucket = TokenBucket(record.rate_per_second)

    async def send(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        """Send in slices the rate limit allows, at most `concurrency` slices in flight."""
        size = max(1, int(self.bucket.capacity))
        slices = [messages[i:i + size] for i in range(0, len(messages), size)]
        results = await asyncio.gather(*(self._send_slice(part) for part in slices))
        return [result for part in results for result in part]

    async def _send_slice(self, messages: list[OutgoingMessage]) -> list[SendResult]:
        await self.bucket.take(len(messages))
        async with self.slots:
            try:
                return await self.provider.send(messages)
            except Exception as error:  # noqa: BLE001 - a provider bug must not lose the batch: retry it later
                log.exception('Provider %s failed on a batch', self.name)
                return [SendResult(m.id, accepted=False, error=f'Provider failure: {error}', transient=True)
                        for m in messages]


class RouteTable:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self._retries: set[asyncio.Task] = set()

    async def load(self) -> None:
        await self.close()
        for record in await ProviderRoute.filter(enabled=True).order_by('-is_default', 'id'):
            provider = create_provider(record.provider, record.name, record.settings, self._sink(record.name))
            self.routes[record.name] = Route(record, provider)

    def _sink(self, route_name: str):
        async def receive(body: bytes, headers: Mapping[str, str]) -> None:
            await self.receive_webhook(route_name, body, headers)
        return receive

    def for_channel(self, channel: Channel) -> Route | None:
        """The channel's default route, else its first enabled one."""
        return next((route for route in self.routes.values() if route.channel is channel), None)

    async def receive_webhook(self, route_name: str, body: bytes, headers: Mapping[str, str]) -> int:
        """A provider's delivery reports (a real webhook or the simulator's): returns how many moved a message."""
        route = self.routes.get(route_name)
        if route is None:
            raise WebhookRejected(f'There is no enabled route "{route_name}".')
        reports = route.provider.parse_webhook(body, headers)
        moved, unmatched = await delivery.apply_reports(route.provider_name, reports)
        if unmatched:
            self._retry(route.provider_name, unmatched)
        return len(moved)

    def _retry(self, provider_name: str, reports: list[DeliveryReport]) -> None:
        """Reports that overtook the record of their send are tried again a few times before they are dropped."""
        async def retry() -> None:
            pending = reports
            for delay in UNMATCHED_REPORT_RETRIES:
                await asyncio.sleep(delay)
                _, pending = await delivery.apply_reports(provider_name, pending)
                if not pending:
                    return
            log.warning('%d delivery report(s) from %s matched no message and were dropped', len(pending),
                        provider_name)
        task = asyncio.create_task(retry())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def close(self) -> None:
        for task in list(self._retries):
            task.cancel()
        await asyncio.gather(*self._retries, return_exceptions=True)
        for route in self.routes.values():
            await route.provider.close()
        self.routes = {}
