"""What the providers that speak HTTP share: one pooled client per route, one request per message sent concurrently,
and what a failed request means for the message.

A request that never reached the provider (refused connection, connect timeout) is retried; one that broke after it
was sent (read timeout, dropped connection) leaves the message in doubt, since the provider may have taken it; an
answer of 408, 429 or 5xx is retried; any other error answer is the provider's refusal of that message.
"""
from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from domain.channels import Channel
from domain.providers import OutgoingMessage, ReportSink, SendFailed, SendResult, SettingField

TIMEOUT = SettingField('timeout_s', 'Timeout (seconds)', 'float', default=15.0,
                       help='How long to wait for the provider to answer one request.')
RETRIED_STATUSES = frozenset({408, 425, 429})
ADDRESS = re.compile(r'https?://[^\s/]+(/\S*)?')
ADDRESS_KEYS = ('base_url', 'url')


def check_http_settings(settings: Mapping[str, Any]) -> dict[str, str]:
    """What every HTTP provider's settings must be: its address (`base_url` or `url`) an http:// or https:// one,
    its timeout above 0."""
    errors = {key: 'must be an http:// or https:// address' for key in ADDRESS_KEYS
              if key in settings and not ADDRESS.fullmatch(settings[key].strip())}
    if 'timeout_s' in settings and not settings['timeout_s'] > 0:
        errors['timeout_s'] = 'must be more than 0'
    return errors


class HttpProvider:
    """Subclasses declare `name`, `channels` and `settings_schema` (with TIMEOUT among them), and implement
    `request` (the HTTP request for one message) and `accepted` (the provider message id in a success answer)."""
    name: ClassVar[str]
    channels: ClassVar[frozenset[Channel]]
    settings_schema: ClassVar[tuple[SettingField, ...]]
    concurrent_requests: ClassVar[int] = 50

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict[str, str]:
        """A subclass with rules of its own adds them to these."""
        return check_http_settings(settings)

    def __init__(self, route_name: str, settings: Mapping[str, Any], report_sink: ReportSink | None) -> None:
        self.route_name = route_name
        self.settings = dict(settings)
        self._sink = report_sink
        self._client: httpx.AsyncClient | None = None
        self._requests = asyncio.Semaphore(self.concurrent_requests)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=self.concurrent_requests)
            self._client = httpx.AsyncClient(timeout=self.settings.get('timeout_s', 15.0), limits=limits)
        return self._client

    def endpoint(self, path: str) -> str:
        """`path` under the provider's `base_url` setting."""
        return f'{self.settings["base_url"].rstrip("/")}/{path}'

    def request(self, message: OutgoingMessage) -> httpx.Request:
        """The request that sends `message` (built with `self.client.build_request`); raises SendFailed for a message
        this provider cannot send."""
        raise NotImplementedError

    def accepted(self, message: OutgoingMessage, response: httpx.Response) -> SendResult:
        """The result of a 2xx answer; raises SendFailed when its body says the provider did not take the message."""
        raise NotImplementedError

    def refusal(self, response: httpx.Response) -> str:
        """What an error answer says, for the message's status description."""
        return f'HTTP {response.status_code}: {response.text[:300]}'

    def transient(self, response: httpx.Response) -> bool:
        """Whether an error answer is worth retrying (a provider may say so in its body, not its status)."""
        return response.status_code in RETRIED_STATUSES or response.status_code >= 500

    async def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        return list(await asyncio.gather(*(self._send_one(message) for message in batch)))

    async def _send_one(self, message: OutgoingMessage) -> SendResult:
        try:
            request = self.request(message)
        except SendFailed as failure:
            return failure.result(message)
        async with self._requests:
            try:
                response = await self.client.send(request)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
                return SendResult(message.id, False, error=f'{self.name} is unreachable: {_describe(error)}',
                                  transient=True)
            except httpx.HTTPError as error:
                return SendResult(message.id, False, in_doubt=True,
                                  error=f'No answer from {self.name} after sending: {_describe(error)}')
        if response.is_success:
            try:
                return self.accepted(message, response)
            except SendFailed as failure:
                return failure.result(message)
            except (ValueError, KeyError, TypeError, IndexError) as error:
                return SendResult(message.id, False, in_doubt=True,
                                  error=f'{self.name} answered {response.status_code} with a body Herald cannot '
                                        f'read ({_describe(error)}): it may have taken the message')
        return SendResult(message.id, False, error=self.refusal(response)[:500], transient=self.transient(response))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _describe(error: BaseException) -> str:
    """An error without the request URL (it may carry a token, as Telegram's does)."""
    return f'{type(error).__name__}: {error}' if str(error) else type(error).__name__
