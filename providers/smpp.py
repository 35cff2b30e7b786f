"""SMS over SMPP 3.4 (SMPP v3.4 Issue 1.2): one long-lived bind_transceiver session per route, opened on the first
send and reopened after a drop (at once, then with exponential backoff while it fails). Outstanding submit_sm are
limited to the window, their rate to the throughput setting; enquire_link is sent when the link is idle and answered
when the SMSC asks. Delivery receipts come as deliver_sm over the same session and go to the route's report sink.

A long text goes as concatenated parts with a user data header (IE 0x00, 8-bit reference; esm_class 0x40), split
by `domain.sms.split`, so the parts sent are the parts counted and billed. GSM 03.38 texts go unpacked with
data_coding 0, others as UCS-2 (UTF-16BE) with data_coding 8. The send's provider message id is the SMSC's id of
the first part; receipts of every part resolve to it, and the message's status is reported once all its parts'
receipts came: DELIVERED when all were delivered, else the worst of them. The part map is in memory (bounded): a
receipt whose id it does not hold (sent before a restart, or to another bind of the same account) is handed over
as it is, so the receipt of a single-part message still matches; the engine ignores ids it does not know.

No SMPP library: the PDU codec is `providers/smpp_pdu.py` (six PDUs). smpp34 (Rust-backed, maintained) exposes
neither the enquire_link interval nor the response timeout to Python, answers deliver_sm itself and reports every
failure as one SmppError string, so "refused before sending" cannot be told from "lost after sending" (in doubt).
aiosmpplib is a queue-and-hook design (fire and forget, its own segmentation) that does not fit a send that
returns one result per message; the others (smpplib, naz, aiosmpp) are thread-based or unmaintained.
"""
from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from domain.background import Background
from domain.channels import Channel
from domain.providers import (
    DeliveryReport,
    OutgoingMessage,
    ReportSink,
    SendFailed,
    SendResult,
    SettingField,
    WebhookRejected,
    WebhookRequest,
)
from domain.sms import is_gsm7, split
from domain.statuses import MessageStatus

from . import smpp_pdu as pdu
from .smpp_pdu import Pdu, PduError, ShortMessage

log = logging.getLogger(__name__)

IN_DOUBT = 'In doubt'
TRANSIENT = frozenset({pdu.ESME_RTHROTTLED, pdu.ESME_RMSGQFUL})
BAD_CREDENTIALS = frozenset({pdu.ESME_RINVPASWD, pdu.ESME_RINVSYSID, pdu.ESME_RINVSYSTYP})
THROTTLE_PAUSE_S = 1.0  # no submit_sm for this long after the SMSC said it is throttling
PART_RETRIES_S = (0.5, 1.0, 2.0)  # a later part refused as throttled is tried again: its message cannot be resent
MAX_TRACKED_PARTS = 200_000
UNBIND_TIMEOUT_S = 2.0

# message_state (SMPP 3.4 section 5.2.28) as the receipt text's stat names
STATES = {0: 'SCHEDULED', 1: 'ENROUTE', 2: 'DELIVRD', 3: 'EXPIRED', 4: 'DELETED', 5: 'UNDELIV', 6: 'ACCEPTD',
          7: 'UNKNOWN', 8: 'REJECTD'}
_S = MessageStatus
FINAL = {'DELIVRD': _S.DELIVERED, 'EXPIRED': _S.EXPIRED, 'DELETED': _S.UNDELIVERED, 'UNDELIV': _S.UNDELIVERED,
         'REJECTD': _S.UNDELIVERED, 'UNKNOWN': _S.UNDELIVERED}
WORSE = {_S.DELIVERED: 0, _S.EXPIRED: 1, _S.UNDELIVERED: 2}  # a message's status is its worst part's
RECEIPT_FIELD = re.compile(r'(?:^|\s)(id|sub|dlvrd|submit date|done date|stat|err):(\S*)', re.IGNORECASE)


class _NotSent(Exception):
    """The session closed before the PDU was written: the SMSC cannot have it."""


class _Lost(Exception):
    """The session closed after the PDU was written, before its response."""


@dataclass(frozen=True)
class Receipt:
    part_id: str
    stat: str
    error: str = ''


@dataclass
class _Tracked:
    """A sent message's parts, until every part's final receipt came."""
    total: int
    first_id: str = ''
    part_ids: tuple[str, ...] = ()
    finals: dict[str, tuple[MessageStatus, str]] = field(default_factory=dict)
    pending_reported: bool = False


class _Session:
    """One bound connection: a reader task dispatching the SMSC's PDUs, and a keepalive task."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, provider: SmppProvider) -> None:
        self._reader, self._writer, self._provider = reader, writer, provider
        self.window = asyncio.Semaphore(provider.settings['window_size'])
        self.closed = asyncio.Event()
        self.reason = ''
        self._sequence = 0
        self._pending: dict[int, tuple[asyncio.Future[Pdu], Callable[[Pdu], None] | None]] = {}
        self._last_received = asyncio.get_running_loop().time()
        self._tasks = [asyncio.create_task(self._read(), name='herald-smpp-reader')]

    async def request(self, command_id: int, body: bytes = b'', timeout: float | None = None,
                      on_response: Callable[[Pdu], None] | None = None) -> Pdu:
        """Writes a request and waits for its response; `on_response` runs in the reader as it comes, before any
        later PDU is read. Raises _NotSent, _Lost or TimeoutError."""
        if self.closed.is_set():
            raise _NotSent(self.reason)
        self._sequence = self._sequence % 0x7FFFFFFF + 1
        sequence = self._sequence
        future = asyncio.get_running_loop().create_future()
        self._pending[sequence] = (future, on_response)
        try:
            self._write(Pdu(command_id, sequence, body=body))
            async with asyncio.timeout(timeout or self._provider.settings['response_timeout_s']):
                return await future
        finally:
            self._pending.pop(sequence, None)

    def keep_alive(self) -> None:
        self._tasks.append(asyncio.create_task(self._keep_alive(), name='herald-smpp-enquire-link'))

    async def unbind(self) -> None:
        try:
            await self.request(pdu.UNBIND, timeout=UNBIND_TIMEOUT_S)
        except (_NotSent, _Lost, TimeoutError):
            pass
        self.abort('unbound')
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def abort(self, reason: str) -> None:
        if self.closed.is_set():
            return
        self.reason = reason
        self.closed.set()
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(_Lost(reason))
        self._pending.clear()
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._writer.transport.abort()
        self._provider.lost(self)

    def _write(self, message: Pdu) -> None:
        self._writer.write(message.encode())

    async def _read(self) -> None:
        reason = 'closed by the SMSC'
        try:
            while True:
                length, command_id, status, sequence = pdu.parse_header(await self._reader.readexactly(16))
                body = await self._reader.readexactly(length - 16)
                self._last_received = asyncio.get_running_loop().time()
                self._dispatch(Pdu(command_id, sequence, status, body))
                if command_id == pdu.UNBIND:
                    reason = 'unbound by the SMSC'
                    return
        except asyncio.IncompleteReadError:
            pass
        except (OSError, PduError) as error:
            reason = f'{type(error).__name__}: {error}'
        finally:
            self.abort(reason)

    def _dispatch(self, message: Pdu) -> None:
        if message.is_response:
            future, on_response = self._pending.pop(message.sequence, (None, None))
            if future is not None and not future.done():
                if on_response:
                    on_response(message)
                future.set_result(message)
        elif message.command_id == pdu.DELIVER_SM:
            self._write(Pdu(pdu.DELIVER_SM | pdu.RESPONSE, message.sequence, body=b'\0'))
            self._provider.delivered(message.body)
        elif message.command_id in (pdu.ENQUIRE_LINK, pdu.UNBIND):
            self._write(Pdu(message.command_id | pdu.RESPONSE, message.sequence))
        else:
            self._write(Pdu(pdu.GENERIC_NACK, message.sequence, pdu.ESME_RINVCMDID))

    async def _keep_alive(self) -> None:
        """An enquire_link whenever nothing came from the SMSC for the interval; no answer closes the session."""
        interval = self._provider.settings['enquire_link_s']
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.0, self._last_received + interval - loop.time()))
            if loop.time() - self._last_received < interval:
                continue
            try:
                await self.request(pdu.ENQUIRE_LINK)
            except (_NotSent, _Lost):
                return
            except TimeoutError:
                self.abort('no answer to enquire_link')
                return


class SmppProvider:
    name: ClassVar[str] = 'smpp'
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS})
    settings_schema: ClassVar[tuple[SettingField, ...]] = (
        SettingField('host', 'SMSC host', required=True),
        SettingField('port', 'Port', 'int', default=2775),
        SettingField('system_id', 'System ID', required=True, help='The account name the SMSC gave you.'),
        SettingField('password', 'Password', 'secret', default=''),
        SettingField('system_type', 'System type', default='', help='Only when the SMSC asks for one.'),
        SettingField('source_addr', 'Default sender', default='', help='Used when a message names no sender.'),
        SettingField('source_ton', 'Sender TON', default='auto',
                     help='auto: 5 (alphanumeric) for a sender with letters, 1 (international) for digits.'),
        SettingField('source_npi', 'Sender NPI', default='auto',
                     help='auto: 0 for an alphanumeric sender, 1 (E.164) for digits.'),
        SettingField('dest_ton', 'Recipient TON', 'int', default=1, help='1: international (E.164 without +).'),
        SettingField('dest_npi', 'Recipient NPI', 'int', default=1, help='1: ISDN (E.164).'),
        SettingField('registered_delivery', 'Ask for delivery receipts', 'bool', default=True),
        SettingField('window_size', 'Window', 'int', default=10,
                     help='At most this many submit_sm waiting for their answer.'),
        SettingField('throughput_per_second', 'Throughput (parts per second)', 'float', default=0.0,
                     help="The SMSC's limit for this account; 0: no limit."),
        SettingField('enquire_link_s', 'enquire_link interval (s)', 'float', default=30.0,
                     help='Sent when nothing came from the SMSC for this long.'),
        SettingField('response_timeout_s', 'Response timeout (s)', 'float', default=10.0),
        SettingField('connect_timeout_s', 'Connect timeout (s)', 'float', default=10.0),
        SettingField('reconnect_min_s', 'First reconnect delay (s)', 'float', default=1.0,
                     help='After a failed connection; doubled after each failure.'),
        SettingField('reconnect_max_s', 'Longest reconnect delay (s)', 'float', default=60.0),
        SettingField('tls', 'TLS', 'bool', default=False),
        SettingField('verify_certificate', 'Verify the SMSC certificate', 'bool', default=True),
    )

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict[str, str]:
        errors = {}
        if not 0 < settings['port'] < 65536:
            errors['port'] = 'must be between 1 and 65535'
        for key, longest in (('system_id', 15), ('password', 8), ('system_type', 12), ('source_addr', 20)):
            if len(settings[key]) > longest or not settings[key].isascii():
                errors[key] = f'at most {longest} ASCII characters'
        for key in ('source_ton', 'source_npi'):
            value = settings[key]
            if value != 'auto' and not (value.isdigit() and int(value) < 256):
                errors[key] = 'auto or a number from 0 to 255'
        errors |= {key: 'must be from 0 to 255' for key in ('dest_ton', 'dest_npi') if not 0 <= settings[key] < 256}
        if not 1 <= settings['window_size'] <= 1000:
            errors['window_size'] = 'must be between 1 and 1000'
        if settings['throughput_per_second'] < 0:
            errors['throughput_per_second'] = 'must not be negative'
        errors |= {key: 'must be more than 0' for key in ('enquire_link_s', 'response_timeout_s', 'connect_timeout_s',
                                                          'reconnect_min_s') if not settings[key] > 0}
        if settings['reconnect_max_s'] < settings['reconnect_min_s']:
            errors['reconnect_max_s'] = 'must not be less than the first reconnect delay'
        return errors

    def __init__(self, route_name: str, settings: Mapping[str, Any], report_sink: ReportSink | None) -> None:
        self.route_name = route_name
        self.settings = dict(settings)
        self._sink = report_sink
        self._session: _Session | None = None
        self._attempt: asyncio.Future[_Session | SendFailed] | None = None
        self._keeper: asyncio.Task | None = None
        self._next_slot = 0.0
        self._reference = random.randrange(256)  # concatenation references do not restart at each start
        self._parts: OrderedDict[str, _Tracked] = OrderedDict()
        self._outbox: list[DeliveryReport] = []
        self._flusher: asyncio.Task | None = None
        self._reports = Background()

    async def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        return list(await asyncio.gather(*(self._send_one(message) for message in batch)))

    def parse_webhook(self, request: WebhookRequest) -> list[DeliveryReport]:
        raise WebhookRejected('SMPP delivery receipts come over the SMPP session, not by HTTP')

    async def close(self) -> None:
        """Unbinds; a later send binds again."""
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
        if self._session is not None:
            await self._session.unbind()
        await self._reports.close()

    # Sending

    async def _send_one(self, message: OutgoingMessage) -> SendResult:
        try:
            bodies = self._bodies(message)
        except ValueError as error:
            return SendResult(message.id, False, error=f'Cannot build the SMS: {error}')
        tracked = _Tracked(len(bodies))
        for number, body in enumerate(bodies, 1):
            try:
                answer = await self._submit(body, tracked, retry_throttled=number > 1)
            except SendFailed as error:
                failure = error.result(message)
            except _NotSent as error:
                failure = SendResult(message.id, False, error=f'The SMPP connection was lost: {error}', transient=True)
            except (_Lost, TimeoutError) as error:
                why = f'the connection was lost ({error})' if isinstance(error, _Lost) else 'no submit_sm_resp came'
                return SendResult(message.id, False, tracked.first_id or None, in_doubt=True,
                                  error=f'{IN_DOUBT}: {why} after part {number} of {len(bodies)} was handed over, '
                                        'the SMSC may have accepted it')
            else:
                if answer.status == pdu.ESME_ROK:
                    continue
                failure = _refused(message, answer)
            if number == 1:
                return failure
            return SendResult(message.id, False, tracked.first_id, in_doubt=True,
                              error=f'{IN_DOUBT}: part {number} of {len(bodies)} was not sent ({failure.error}) '
                                    f'after the SMSC accepted parts 1–{number - 1}')
        return SendResult(message.id, True, tracked.first_id)

    async def _submit(self, body: bytes, tracked: _Tracked, retry_throttled: bool) -> Pdu:
        for delay in (*PART_RETRIES_S, None) if retry_throttled else (None,):
            session = await self._connected()
            async with session.window:
                await self._pace()
                answer = await session.request(pdu.SUBMIT_SM, body, on_response=lambda a: self._track(tracked, a))
            if answer.status not in TRANSIENT:
                return answer
            self._next_slot = max(self._next_slot, asyncio.get_running_loop().time() + THROTTLE_PAUSE_S)
            if delay is not None:
                await asyncio.sleep(delay)
        return answer

    async def _pace(self) -> None:
        """Spaces submit_sm to the throughput setting, and holds them back after a throttling answer."""
        now = asyncio.get_running_loop().time()
        slot = max(now, self._next_slot)
        if rate := self.settings['throughput_per_second']:
            self._next_slot = slot + 1 / rate
        if slot > now:
            await asyncio.sleep(slot - now)

    def _bodies(self, message: OutgoingMessage) -> list[bytes]:
        """The submit_sm bodies of the message's parts."""
        if not message.text:
            raise ValueError('no text')
        gsm = is_gsm7(message.text)
        encode, coding = (pdu.gsm_encode, pdu.CODING_GSM) if gsm else (pdu.ucs2_encode, pdu.CODING_UCS2)
        texts = split(message.text)
        if len(texts) > 255:
            raise ValueError(f'{len(texts)} parts: at most 255 can be concatenated')
        if len(texts) == 1:
            payloads = [(0, encode(texts[0]))]
        else:
            self._reference = (self._reference + 1) % 256
            payloads = [(pdu.ESM_CLASS_UDHI, pdu.udh(self._reference, len(texts), number) + encode(text))
                        for number, text in enumerate(texts, 1)]
        s = self.settings
        source = message.sender or s['source_addr']
        numeric = source.lstrip('+').isdigit()
        source_ton = (1 if numeric else 5) if s['source_ton'] == 'auto' else int(s['source_ton'])
        source_npi = (1 if numeric else 0) if s['source_npi'] == 'auto' else int(s['source_npi'])
        return [ShortMessage(
            source.lstrip('+') if numeric else source, message.recipient.lstrip('+'), payload, source_ton, source_npi,
            s['dest_ton'], s['dest_npi'], esm_class, int(s['registered_delivery']), coding).encode()
            for esm_class, payload in payloads]

    # The session

    async def _connected(self) -> _Session:
        """The bound session, binding first when there is none; raises SendFailed."""
        session = self._session
        if session is not None and not session.closed.is_set():
            return session
        if self._keeper is None or self._keeper.done():
            self._attempt = asyncio.get_running_loop().create_future()
            self._keeper = asyncio.create_task(self._keep_connected(), name=f'herald-smpp-{self.route_name}')
        outcome = await asyncio.shield(self._attempt)
        if isinstance(outcome, SendFailed):
            raise outcome
        return outcome

    async def _keep_connected(self) -> None:
        """Binds, and binds again when the session drops: at once, then with growing delays while it fails. A refused
        bind (wrong credentials) ends it until the next send."""
        s, failures = self.settings, 0
        try:
            while True:
                try:
                    session = await self._open()
                except SendFailed as error:
                    self._attempt.set_result(error)
                    if not error.transient:
                        return
                    failures += 1
                    await asyncio.sleep(min(s['reconnect_max_s'], s['reconnect_min_s'] * 2 ** (failures - 1)))
                    self._attempt = asyncio.get_running_loop().create_future()
                    continue
                failures = 0
                self._session = session
                self._attempt.set_result(session)
                await session.closed.wait()  # `lost` has put a new attempt in place
                log.warning('Route %s: SMPP session closed (%s); binding again', self.route_name, session.reason)
        finally:
            if not self._attempt.done():
                self._attempt.set_result(SendFailed('The SMPP session was stopped', transient=True))

    def lost(self, session: _Session) -> None:
        """A session closed: sends from now on wait for the next bind."""
        if self._session is session:
            self._session = None
            if self._keeper is not None and not self._keeper.done():
                self._attempt = asyncio.get_running_loop().create_future()

    async def _open(self) -> _Session:
        s = self.settings
        where = f'{s["host"]}:{s["port"]}'
        try:
            async with asyncio.timeout(s['connect_timeout_s']):
                reader, writer = await asyncio.open_connection(s['host'], s['port'], ssl=self._tls_context())
        except (OSError, TimeoutError) as error:
            raise SendFailed(f'Cannot connect to the SMSC at {where}: {str(error) or type(error).__name__}',
                               transient=True) from error
        session = _Session(reader, writer, self)
        try:
            answer = await session.request(pdu.BIND_TRANSCEIVER,
                                           pdu.bind_transceiver(s['system_id'], s['password'], s['system_type']))
        except (_NotSent, _Lost, TimeoutError) as error:
            session.abort('bind failed')
            raise SendFailed(f'The SMSC at {where} did not answer bind_transceiver ({error or "timeout"})',
                               transient=True) from error
        except BaseException:
            session.abort('bind cancelled')
            raise
        if answer.status != pdu.ESME_ROK:
            session.abort('bind refused')
            raise SendFailed(f'The SMSC at {where} refused bind_transceiver for system_id "{s["system_id"]}": '
                               f'{pdu.status_name(answer.status)}', transient=answer.status not in BAD_CREDENTIALS)
        session.keep_alive()
        return session

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.settings['tls']:
            return None
        context = ssl.create_default_context()
        if not self.settings['verify_certificate']:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    # Receipts

    def _track(self, tracked: _Tracked, answer: Pdu) -> None:
        """Maps an accepted part's SMSC id to its message (in the reader: before any receipt of it can be read)."""
        if answer.status != pdu.ESME_ROK:
            return
        part_id = pdu.message_id(answer.body)
        tracked.first_id = tracked.first_id or part_id
        tracked.part_ids += (part_id,)
        self._parts[part_id] = tracked
        while len(self._parts) > MAX_TRACKED_PARTS:
            self._parts.popitem(last=False)

    def delivered(self, body: bytes) -> None:
        """A deliver_sm (already answered): a delivery receipt updates its message; anything else is ignored."""
        try:
            receipt = parse_receipt(ShortMessage.decode(body))
        except PduError as error:
            log.warning('Route %s: undecodable deliver_sm ignored: %s', self.route_name, error)
            return
        if receipt is None:
            return
        tracked = self._parts.get(receipt.part_id)
        status = FINAL.get(receipt.stat)
        if tracked is None:
            self._report(DeliveryReport(receipt.part_id, status or _S.PENDING, _describe(receipt)))
        elif status is None:
            if not tracked.pending_reported and not tracked.finals:
                tracked.pending_reported = True
                self._report(DeliveryReport(tracked.first_id, _S.PENDING, _describe(receipt)))
        else:
            self._part_ended(tracked, receipt, status)

    def _part_ended(self, tracked: _Tracked, receipt: Receipt, status: MessageStatus) -> None:
        tracked.finals[receipt.part_id] = (status, _describe(receipt))
        if len(tracked.finals) < tracked.total:
            return
        for part_id in tracked.part_ids:
            self._parts.pop(part_id, None)
        part_id, (worst, description) = max(tracked.finals.items(), key=lambda item: WORSE[item[1][0]])
        if worst is not _S.DELIVERED and tracked.total > 1:
            description += f' (part {tracked.part_ids.index(part_id) + 1} of {tracked.total})'
        self._report(DeliveryReport(tracked.first_id, worst, description))

    def _report(self, report: DeliveryReport) -> None:
        """Reports go to the sink in batches, from a background task: the reader never waits for the database."""
        if self._sink is None:
            return
        self._outbox.append(report)
        if self._flusher is None or self._flusher.done():
            self._flusher = self._reports.start(self._flush(), name=f'herald-smpp-reports-{self.route_name}')

    async def _flush(self) -> None:
        while self._outbox:
            await asyncio.sleep(0)  # gathers the receipts read meanwhile
            reports, self._outbox = self._outbox, []
            try:
                await self._sink(reports)
            except Exception:  # noqa: BLE001 - the next receipts still go
                log.exception('Route %s: the report sink failed on %d SMPP receipts', self.route_name, len(reports))


def parse_receipt(message: ShortMessage) -> Receipt | None:
    """A delivery receipt (SMPP 3.4 Appendix B text, and the receipted_message_id / message_state TLVs, which win
    when present); None for a deliver_sm that is not one."""
    if message.esm_class & 0x3C != pdu.ESM_CLASS_RECEIPT:
        return None
    head = re.split(r'\btext:', message.short_message.decode('latin-1'), maxsplit=1, flags=re.IGNORECASE)[0]
    fields = {name.lower(): value for name, value in RECEIPT_FIELD.findall(head)}
    tlvs = message.tlvs
    part_id = tlvs[pdu.TLV_RECEIPTED_MESSAGE_ID].rstrip(b'\0').decode('latin-1') \
        if pdu.TLV_RECEIPTED_MESSAGE_ID in tlvs else fields.get('id', '')
    state = tlvs.get(pdu.TLV_MESSAGE_STATE, b'')
    stat = STATES.get(state[0], '') if len(state) == 1 else fields.get('stat', '').upper()
    error = fields.get('err', '')
    if not error and len(network := tlvs.get(pdu.TLV_NETWORK_ERROR_CODE, b'')) == 3:
        error = str(int.from_bytes(network[1:], 'big'))
    return Receipt(part_id, stat, error) if part_id and stat else None


def _describe(receipt: Receipt) -> str:
    return receipt.stat + (f' err:{receipt.error}' if receipt.error and receipt.error.strip('0') else '')


def _refused(message: OutgoingMessage, answer: Pdu) -> SendResult:
    name = pdu.status_name(answer.status)
    return SendResult(message.id, False, error=f'The SMSC refused the message: {name}',
                      transient=answer.status in TRANSIENT)
