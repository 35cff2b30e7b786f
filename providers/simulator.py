"""A provider that sends nothing: realistic latency, failures and delivery reports, for demos and benchmarks.

Its delivery reports travel the path real ones take: a signed JSON webhook body, parsed back through `parse_webhook`
and handed to the route's report sink.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import random
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

from domain.background import Background
from domain.channels import Channel
from domain.providers import (
    DeliveryReport,
    OutgoingMessage,
    ReportSink,
    SendResult,
    SettingField,
    WebhookRejected,
    WebhookRequest,
)
from domain.statuses import MessageStatus

log = logging.getLogger(__name__)

SIGNATURE_HEADER = 'x-simulator-signature'
READ_CHANNELS = frozenset({Channel.VIBER, Channel.WHATSAPP, Channel.TELEGRAM})
REPORT_STATUSES = frozenset({MessageStatus.DELIVERED, MessageStatus.UNDELIVERED, MessageStatus.READ})
UNDELIVERED_REASONS = ('Subscriber unavailable', 'Absent subscriber', 'Blocked by the recipient',
                       'Message expired in the network')
RATES = ('delivery_rate', 'failure_rate', 'transient_failure_rate', 'read_rate')

NETWORKS = {channel: 'Simulator' if channel.uses_phone else '' for channel in Channel}

Report = tuple[str, str, str, str]  # provider message id, status, description, network


class SimulatorProvider:
    name: ClassVar[str] = 'simulator'
    channels: ClassVar[frozenset[Channel]] = frozenset(Channel)
    settings_schema: ClassVar[tuple[SettingField, ...]] = (
        SettingField('latency_ms', 'Latency per batch (ms)', 'int', default=0),
        SettingField('delivery_rate', 'Delivery rate (0–1)', 'float', default=0.95,
                     help='Share of accepted messages later reported DELIVERED; the rest end UNDELIVERED.'),
        SettingField('failure_rate', 'Failure rate (0–1)', 'float', default=0.0,
                     help='Share of sends that fail with a permanent error.'),
        SettingField('transient_failure_rate', 'Transient failure rate (0–1)', 'float', default=0.0,
                     help='Share of sends that fail with an error worth retrying.'),
        SettingField('send_reports', 'Send delivery reports', 'bool', default=True,
                     help='Off: messages stay SENT, as with a provider that reports nothing.'),
        SettingField('report_delay_ms', 'Delivery report delay (ms)', 'int', default=500),
        SettingField('read_rate', 'Read rate (0–1)', 'float', default=0.0,
                     help='Share of delivered Viber, WhatsApp and Telegram messages that are then read.'),
        SettingField('fail_channels', 'Failing channels', default='',
                     help='Comma-separated channels whose sends always fail permanently, e.g. "viber".'),
        SettingField('seed', 'Random seed', 'int', help='Makes outcomes repeatable.'),
    )

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict[str, str]:
        errors = {key: 'must be between 0 and 1' for key in RATES if not 0 <= settings[key] <= 1}
        if settings['failure_rate'] + settings['transient_failure_rate'] > 1:
            errors['transient_failure_rate'] = 'failure_rate + transient_failure_rate must not exceed 1'
        errors |= {key: 'must not be negative' for key in ('latency_ms', 'report_delay_ms') if settings[key] < 0}
        unknown = _channel_names(settings['fail_channels']) - {channel.value for channel in Channel}
        if unknown:
            errors['fail_channels'] = f'unknown channel(s): {", ".join(sorted(unknown))}'
        return errors

    def __init__(self, route_name: str, settings: Mapping[str, Any], report_sink: ReportSink | None) -> None:
        self.route_name = route_name
        self.settings = dict(settings)
        self._sink = report_sink
        self._random = random.Random(settings['seed'])
        self._fail_channels = frozenset(Channel(name) for name in _channel_names(settings['fail_channels']))
        self._key = os.urandom(32)
        self._reports = Background()

    async def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        """Decides every message's fate at once; its reports follow in one task per batch, not per message."""
        s = self.settings
        if s['latency_ms']:
            await asyncio.sleep(s['latency_ms'] / 1000)
        draw, choice, fail_channels = self._random.random, self._random.choice, self._fail_channels
        failure, transient = s['failure_rate'], s['failure_rate'] + s['transient_failure_rate']
        delivery, read = s['delivery_rate'], s['read_rate']
        ids = os.urandom(16 * len(batch)).hex()
        results: list[SendResult] = []
        reports: list[Report] = []
        reads: list[Report] = []
        for i, message in enumerate(batch):
            channel = message.channel
            if channel in fail_channels:
                results.append(SendResult(message.id, False, error=f'{channel.label} is failing (simulated)'))
                continue
            outcome = draw()
            if outcome < failure:
                results.append(SendResult(message.id, False, error='Rejected by the provider (simulated)'))
                continue
            if outcome < transient:
                results.append(SendResult(message.id, False, error='Provider busy (simulated)', transient=True))
                continue
            provider_id = 'sim-' + ids[32 * i:32 * i + 32]
            results.append(SendResult(message.id, True, provider_id))
            network = NETWORKS[channel]
            if draw() < delivery:
                reports.append((provider_id, 'DELIVERED', 'Delivered', network))
                if channel in READ_CHANNELS and draw() < read:
                    reads.append((provider_id, 'READ', 'Read by the recipient', network))
            else:
                reports.append((provider_id, 'UNDELIVERED', choice(UNDELIVERED_REASONS), network))
        if self._sink and reports and s['send_reports']:
            self._reports.start(self._report(reports, reads), name=f'simulator reports {self.route_name}')
        return results

    async def _report(self, reports: list[Report], reads: list[Report]) -> None:
        """Posts the batch's delivery reports after the delay, then its read reports one delay later."""
        delay = self.settings['report_delay_ms'] / 1000
        for group in (reports, reads):
            if not group:
                continue
            await self._reports.pause(delay)
            at = datetime.now(timezone.utc).isoformat()
            body = json.dumps({'reports': [
                {'id': provider_id, 'status': status, 'description': description, 'network': network, 'at': at}
                for provider_id, status, description, network in group
            ]}).encode()
            try:
                headers = {'Content-Type': 'application/json', SIGNATURE_HEADER: self.sign(body)}
                await self._sink(self.parse_webhook(WebhookRequest(body, headers)))
            except Exception:
                log.exception('Route %s: the report sink failed on %d simulated reports', self.route_name, len(group))

    def parse_webhook(self, request: WebhookRequest) -> list[DeliveryReport]:
        if not hmac.compare_digest(request.header(SIGNATURE_HEADER).encode(), self.sign(request.body).encode()):
            raise WebhookRejected('bad or missing signature')
        try:
            items = json.loads(request.body)['reports']
            return [_report(item) for item in items]
        except (ValueError, KeyError, TypeError) as error:
            raise WebhookRejected(f'malformed simulator report: {error}') from None

    async def close(self) -> None:
        """Reports still waiting for their delay are dropped; those being delivered finish."""
        await self._reports.close()

    def sign(self, body: bytes) -> str:
        """HMAC-SHA256 of a webhook body with this route's key: only reports it made itself are taken."""
        return hmac.new(self._key, body, hashlib.sha256).hexdigest()


def _report(item: Mapping[str, Any]) -> DeliveryReport:
    provider_id, status = item['id'], MessageStatus(item['status'])
    if not isinstance(provider_id, str) or not provider_id:
        raise ValueError('report without an id')
    if status not in REPORT_STATUSES:
        raise ValueError(f'status {status.value} is not a delivery report')
    at = datetime.fromisoformat(item['at']) if item.get('at') else None
    return DeliveryReport(provider_id, status, str(item.get('description', '')), str(item.get('network', '')), at)


def _channel_names(value: str) -> set[str]:
    return {name.strip().lower() for name in value.split(',') if name.strip()}
