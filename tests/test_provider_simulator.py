"""The provider registry and the simulator: settings, rates, failing channels, batched signed reports, speed."""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter

import pytest

import providers.simulator as simulator_module
from domain.channels import Channel
from domain.provider_settings import InvalidSettings, validate_settings
from domain.providers import DeliveryReport, OutgoingMessage, ProviderConfigError, WebhookRejected, WebhookRequest
from domain.statuses import MessageStatus
from providers.registry import PROVIDERS, create_provider, provider_class
from providers.simulator import SIGNATURE_HEADER, SimulatorProvider
from providers.smtp import SmtpProvider

CHAT = (Channel.VIBER, Channel.WHATSAPP, Channel.TELEGRAM)
IDS = itertools.count()


class Sink:
    """A report sink that keeps what it gets."""

    def __init__(self) -> None:
        self.calls: list[list[DeliveryReport]] = []
        self.reports: list[DeliveryReport] = []
        self.times: list[float] = []

    async def __call__(self, reports: list[DeliveryReport]) -> None:
        self.calls.append(reports)
        self.times.append(time.monotonic())
        self.reports.extend(reports)


@pytest.fixture
async def simulator():
    """Builds simulators through the registry (with a parsing sink unless `sink=None`); closes them after."""
    made: list[SimulatorProvider] = []

    def make(sink: Sink | None = None, **settings) -> SimulatorProvider:
        provider = create_provider('simulator', 'sim', settings, sink)
        made.append(provider)
        return provider
    yield make
    for provider in made:
        await provider.close()


def messages(count: int, channels: tuple[Channel, ...] = tuple(Channel)) -> list[OutgoingMessage]:
    return [OutgoingMessage(f'm{next(IDS)}', channels[i % len(channels)], f'+7912{i:07d}', text='Hello')
            for i in range(count)]


async def send_all(provider: SimulatorProvider, batch: list[OutgoingMessage], size: int = 500) -> list:
    results = []
    for start in range(0, len(batch), size):
        results += await provider.send(batch[start:start + size])
    return results


async def settle(provider: SimulatorProvider) -> None:
    """Waits until every scheduled report has been posted."""
    while provider._reports.tasks:
        await asyncio.sleep(0.005)


def test_the_registry_knows_the_providers_by_name() -> None:
    assert PROVIDERS['simulator'] is SimulatorProvider and PROVIDERS['smtp'] is SmtpProvider
    assert provider_class('smtp') is SmtpProvider
    known = 'http-json, kannel, simulator, smpp, smtp, telegram, twilio, viber, whatsapp'
    with pytest.raises(ProviderConfigError, match=f"Unknown provider 'nosuch'; known providers: {known}"):
        provider_class('nosuch')


def test_settings_get_defaults_and_strings_are_coerced() -> None:
    assert validate_settings(SimulatorProvider, {}) == {
        'latency_ms': 0, 'delivery_rate': 0.95, 'failure_rate': 0.0, 'transient_failure_rate': 0.0,
        'send_reports': True, 'report_delay_ms': 500, 'read_rate': 0.0, 'fail_channels': '', 'seed': None}
    settings = validate_settings(SimulatorProvider, {'latency_ms': '20', 'delivery_rate': '0.5', 'seed': '7',
                                                     'read_rate': 1, 'fail_channels': 'Viber, sms'})
    assert (settings['latency_ms'], settings['delivery_rate'], settings['seed'], settings['read_rate']) == \
        (20, 0.5, 7, 1.0)


@pytest.mark.parametrize(('raw', 'key', 'message'), [
    ({'latency_ms': 'fast'}, 'latency_ms', "expected a whole number, got 'fast'"),
    ({'latency_ms': True}, 'latency_ms', 'expected a whole number, got True'),
    ({'delivery_rate': 'most'}, 'delivery_rate', "expected a number, got 'most'"),
    ({'delivery_rate': '1.5'}, 'delivery_rate', 'must be between 0 and 1'),
    ({'read_rate': -0.1}, 'read_rate', 'must be between 0 and 1'),
    ({'failure_rate': 0.7, 'transient_failure_rate': 0.5}, 'transient_failure_rate', 'must not exceed 1'),
    ({'report_delay_ms': -1}, 'report_delay_ms', 'must not be negative'),
    ({'fail_channels': 'viber, fax'}, 'fail_channels', 'unknown channel(s): fax'),
    ({'fail_channels': ['viber']}, 'fail_channels', "expected text, got ['viber']"),
    ({'speed': 'ludicrous'}, 'speed', 'unknown setting (known: delivery_rate, fail_channels,'),
])
def test_validation_errors_name_the_key(raw, key, message) -> None:
    with pytest.raises(InvalidSettings) as caught:
        create_provider('simulator', 'sim', raw, None)
    assert list(caught.value.errors) == [key]
    assert message in caught.value.errors[key]
    assert f"Invalid settings for provider 'simulator': {key}: " in str(caught.value)


async def test_rates_are_respected_with_a_seed(simulator) -> None:
    sink = Sink()
    provider = simulator(sink, failure_rate=0.1, transient_failure_rate=0.05, delivery_rate=0.8, read_rate=0.5,
                         report_delay_ms=0, seed=42)
    batch = messages(20_000)
    results = await send_all(provider, batch)
    await settle(provider)

    assert len(results) == 20_000 and {r.message_id for r in results} == {m.id for m in batch}
    failed = [r for r in results if not r.accepted]
    assert len(failed) / 20_000 == pytest.approx(0.15, abs=0.01)
    assert sum(r.transient for r in failed) / 20_000 == pytest.approx(0.05, abs=0.01)
    accepted = {r.provider_message_id: r.message_id for r in results if r.accepted}
    assert all(pid.startswith('sim-') for pid in accepted) and len(accepted) == len(results) - len(failed)
    final = {r.provider_message_id: r.status for r in sink.reports if r.status is not MessageStatus.READ}
    assert final.keys() == accepted.keys(), 'one delivery report per accepted message'
    delivered = [pid for pid, status in final.items() if status is MessageStatus.DELIVERED]
    assert len(delivered) / len(final) == pytest.approx(0.8, abs=0.015)
    channel_of = {m.id: m.channel for m in batch}
    read = {r.provider_message_id for r in sink.reports if r.status is MessageStatus.READ}
    assert read <= set(delivered)
    assert {channel_of[accepted[pid]] for pid in read} == set(CHAT), 'only chat channels are read'
    delivered_chat = [pid for pid in delivered if channel_of[accepted[pid]] in CHAT]
    assert len(read) / len(delivered_chat) == pytest.approx(0.5, abs=0.03)


async def test_the_same_seed_gives_the_same_outcomes(simulator) -> None:
    batch = messages(2_000)
    outcomes = []
    for _ in range(2):
        results = await send_all(simulator(failure_rate=0.3, transient_failure_rate=0.2, seed=7), batch)
        outcomes.append([(r.message_id, r.accepted, r.transient) for r in results])
    assert outcomes[0] == outcomes[1]


async def test_failing_channels_always_fail_permanently(simulator) -> None:
    sink = Sink()
    provider = simulator(sink, fail_channels='viber', delivery_rate=1, report_delay_ms=0)
    batch = messages(100, (Channel.VIBER, Channel.SMS))
    results = {r.message_id: r for r in await provider.send(batch)}
    await settle(provider)

    viber = [results[m.id] for m in batch if m.channel is Channel.VIBER]
    sms = [results[m.id] for m in batch if m.channel is Channel.SMS]
    assert all(not r.accepted and not r.transient and r.error == 'Viber is failing (simulated)' for r in viber)
    assert all(r.accepted for r in sms)
    assert Counter(r.status for r in sink.reports) == {MessageStatus.DELIVERED: 50}


async def test_reports_come_batched_after_the_delay_and_parse_back(simulator) -> None:
    sink = Sink()
    provider = simulator(sink, delivery_rate=0.5, read_rate=1, report_delay_ms=100, seed=3)
    started = time.monotonic()
    results = await provider.send(messages(500, (Channel.VIBER, Channel.SMS)))
    assert sink.calls == [], 'reports wait for the delay'
    await settle(provider)

    assert len(sink.calls) == 2, 'one webhook for the batch, then one for its reads'
    assert sink.times[0] - started >= 0.09 and sink.times[1] - sink.times[0] >= 0.09
    first = sink.reports[:500]
    assert {r.provider_message_id for r in first} == {r.provider_message_id for r in results}
    assert {r.status for r in first} == {MessageStatus.DELIVERED, MessageStatus.UNDELIVERED}
    assert all(r.network == 'Simulator' and r.at is not None and r.description for r in first)
    reads = sink.reports[500:]
    assert reads and all(r.status is MessageStatus.READ for r in reads)


async def test_latency_is_paid_once_per_batch(simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """One wait of the latency per batch, not one per message (counted, not timed: this machine is shared)."""
    waits: list[float] = []
    original_sleep = asyncio.sleep

    async def sleep(seconds: float, *args) -> None:
        waits.append(seconds)
        await original_sleep(0)
    monkeypatch.setattr(simulator_module.asyncio, 'sleep', sleep)
    provider = simulator(latency_ms=100)
    results = await provider.send(messages(1_000))
    assert len(results) == 1_000
    assert waits.count(0.1) == 1


async def test_no_sink_no_reports(simulator) -> None:
    provider = simulator(report_delay_ms=0)
    assert await provider.send([]) == []
    assert len(await provider.send(messages(10))) == 10
    assert not provider._reports.tasks


async def test_close_cancels_pending_reports(simulator) -> None:
    sink = Sink()
    provider = simulator(sink, report_delay_ms=10_000)
    for _ in range(3):
        await provider.send(messages(100))
    tasks = set(provider._reports.tasks)
    assert len(tasks) == 3

    await asyncio.wait_for(provider.close(), 1)
    assert all(task.cancelled() for task in tasks) and not provider._reports.tasks
    assert sink.calls == []


async def test_a_failing_sink_is_logged_and_does_not_stop_later_reports(simulator, caplog) -> None:
    calls = []

    async def flaky(reports: list[DeliveryReport]) -> None:
        calls.append(reports)
        if len(calls) == 1:
            raise RuntimeError('database is locked')
    provider = simulator(flaky, report_delay_ms=0)
    with caplog.at_level(logging.ERROR):
        await provider.send(messages(5))
        await settle(provider)
        await provider.send(messages(5))
        await settle(provider)
    assert len(calls) == 2
    assert 'the report sink failed on 5 simulated reports' in caplog.text


def signed(provider: SimulatorProvider, body: bytes) -> dict[str, str]:
    return {SIGNATURE_HEADER.upper(): provider.sign(body)}


@pytest.mark.parametrize('body', [
    b'not json',
    b'\xff\xfe',
    b'[]',
    b'{"reports": {"id": "sim-1"}}',
    b'{"reports": [{"status": "DELIVERED"}]}',
    b'{"reports": [{"id": "", "status": "DELIVERED"}]}',
    b'{"reports": [{"id": 5, "status": "DELIVERED"}]}',
    b'{"reports": [{"id": "sim-1", "status": "LOST"}]}',
    b'{"reports": [{"id": "sim-1", "status": "SENT"}]}',
    b'{"reports": [{"id": "sim-1", "status": "DELIVERED", "at": "yesterday"}]}',
])
async def test_malformed_reports_are_rejected(simulator, body) -> None:
    provider = simulator()
    with pytest.raises(WebhookRejected, match='malformed'):
        provider.parse_webhook(WebhookRequest(body, signed(provider, body)))


async def test_reports_must_carry_the_route_signature(simulator) -> None:
    provider, other = simulator(), simulator()
    body = b'{"reports": [{"id": "sim-1", "status": "DELIVERED"}]}'
    assert provider.parse_webhook(WebhookRequest(body, signed(provider, body))) == [DeliveryReport('sim-1', MessageStatus.DELIVERED)]
    for headers in ({}, signed(other, body), {SIGNATURE_HEADER: 'é'}):
        with pytest.raises(WebhookRejected, match='signature'):
            provider.parse_webhook(WebhookRequest(body, headers))


async def test_a_simulator_that_sends_no_reports_leaves_messages_sent() -> None:
    received: list[bytes] = []

    async def sink(body: bytes, headers: dict) -> None:
        received.append(body)
    provider = SimulatorProvider('sim', validate_settings(SimulatorProvider, {'send_reports': False,
                                                                             'report_delay_ms': 0}), sink)
    results = await provider.send([OutgoingMessage('m1', Channel.SMS, '+79123456789', 'Hi')])
    await asyncio.sleep(0.05)
    assert [r.accepted for r in results] == [True] and received == []
