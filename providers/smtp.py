"""Email over SMTP (aiosmtplib) through a pool of persistent connections.

A message is never handed over twice: a send is retried on a fresh connection only when a reused connection
failed before the DATA command, so the server cannot have taken it. A connection lost after DATA leaves the
outcome unknown: the result is a permanent error starting with IN_DOUBT, never a retry.

Messages are composed with the stdlib's encoders (email.header, email.charset, base64) rather than built as
EmailMessage objects: on this machine EmailMessage costs 0.8–3 ms of CPU per message against 30–130 µs here, which
would make composing, not the network, the limit of a bulk send.
"""
from __future__ import annotations

import asyncio
import base64
import os
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.charset import Charset
from email.header import Header
from email.utils import format_datetime
from typing import Any, ClassVar

import aiosmtplib

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

IN_DOUBT = 'In doubt'
ADDRESS = re.compile(r'[^\s,;<>()"@]+@[^\s,;<>()"@]+')
MAX_LINE = 998  # RFC 5322 2.1.1
LINE_BREAK = re.compile(r'\r\n|\r|\n')
UTF8 = Charset('utf-8')


@dataclass(frozen=True)
class _Envelope:
    header_id: str
    sender: str
    recipient: str
    content: bytes
    utf8: bool

    @property
    def encoding(self) -> str:
        return 'utf-8' if self.utf8 else 'ascii'


class _Connection:
    """One slot of the pool: an SMTP session opened on first use and reopened after it drops."""

    def __init__(self, provider: SmtpProvider) -> None:
        self._provider = provider
        self.smtp: aiosmtplib.SMTP | None = None

    @property
    def is_open(self) -> bool:
        return self.smtp is not None and self.smtp.is_connected

    async def open(self) -> aiosmtplib.SMTP:
        if self.is_open:
            return self.smtp
        self.drop()
        smtp = self._provider.client()
        try:
            await smtp.connect()
        except aiosmtplib.SMTPResponseException as error:  # greeting, EHLO, STARTTLS or AUTH refused
            raise SendFailed(f'The SMTP server refused the session: {error.code} {error.message}',
                               transient=error.code < 500) from error
        except (aiosmtplib.SMTPException, OSError) as error:
            raise SendFailed(f'Cannot connect to the SMTP server: {_describe(error)}', transient=True) from error
        self.smtp = smtp
        return smtp

    async def reset(self) -> None:
        """Clears the envelope after a refusal; a session that cannot take RSET is dropped."""
        if not self.is_open:
            return self.drop()
        try:
            await self.smtp.rset()
        except (aiosmtplib.SMTPException, OSError):
            self.drop()

    def drop(self) -> None:
        if self.smtp is not None:
            self.smtp.close()
            self.smtp = None

    async def quit(self) -> None:
        if self.is_open:
            try:
                await self.smtp.quit(timeout=2)
            except (aiosmtplib.SMTPException, OSError):
                pass
        self.drop()


class SmtpProvider:
    name: ClassVar[str] = 'smtp'
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.EMAIL})
    settings_schema: ClassVar[tuple[SettingField, ...]] = (
        SettingField('host', 'Server', required=True),
        SettingField('port', 'Port', 'int', default=587, help='Usually 587 for STARTTLS, 465 for TLS, 25 for none.'),
        SettingField('security', 'Security', 'choice', default='starttls', choices=('starttls', 'tls', 'none')),
        SettingField('username', 'User name', default=''),
        SettingField('password', 'Password', 'secret', default=''),
        SettingField('verify_certificate', 'Verify the server certificate', 'bool', default=True),
        SettingField('pool_size', 'Connections', 'int', default=4, help='Persistent connections sending at once.'),
        SettingField('timeout_s', 'Timeout (s)', 'float', default=30.0),
        SettingField('from_email', 'Default sender address', default='',
                     help='Used when a message names no sender.'),
        SettingField('from_name', 'Default sender name', default=''),
    )

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> dict[str, str]:
        errors = {}
        if not 0 < settings['port'] < 65536:
            errors['port'] = 'must be between 1 and 65535'
        if not 1 <= settings['pool_size'] <= 100:
            errors['pool_size'] = 'must be between 1 and 100'
        if not settings['timeout_s'] > 0:
            errors['timeout_s'] = 'must be more than 0'
        if settings['password'] and not settings['username']:
            errors['username'] = 'required with a password'
        return errors

    def __init__(self, route_name: str, settings: Mapping[str, Any], report_sink: ReportSink | None) -> None:
        self.route_name = route_name
        self.settings = dict(settings)
        self._pool: asyncio.Queue[_Connection] = asyncio.Queue()
        for _ in range(settings['pool_size']):
            self._pool.put_nowait(_Connection(self))

    def client(self) -> aiosmtplib.SMTP:
        s = self.settings
        return aiosmtplib.SMTP(
            hostname=s['host'], port=s['port'], timeout=s['timeout_s'],
            use_tls=s['security'] == 'tls', start_tls=s['security'] == 'starttls',
            validate_certs=s['verify_certificate'],
            username=s['username'] or None, password=s['password'] or None,
        )

    async def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        """Spreads the batch over the pool's connections; each takes the next message when it is done."""
        pending = deque(batch)
        results: list[SendResult] = []
        unreachable: list[SendFailed] = []

        async def worker() -> None:
            connection = await self._pool.get()
            try:
                while pending:
                    message = pending.popleft()
                    try:
                        results.append(await self._send_one(connection, message))
                    except SendFailed as error:
                        unreachable.append(error)
                        results.append(error.result(message))
                        return
            except BaseException:
                connection.drop()
                raise
            finally:
                self._pool.put_nowait(connection)

        await asyncio.gather(*(worker() for _ in range(min(len(batch), self.settings['pool_size']))))
        results.extend(unreachable[-1].result(message) for message in pending)
        return results

    async def _send_one(self, connection: _Connection, message: OutgoingMessage) -> SendResult:
        try:
            envelope = self._envelope(message)
        except ValueError as error:
            return SendResult(message.id, False, error=f'Cannot build the email: {error}')
        for attempt in (1, 2):
            reused = connection.is_open
            smtp = await connection.open()
            try:
                await smtp.mail(envelope.sender, options=['SMTPUTF8'] if envelope.utf8 else [],
                                encoding=envelope.encoding)
                await smtp.rcpt(envelope.recipient, encoding=envelope.encoding)
                break
            except aiosmtplib.SMTPResponseException as error:
                await connection.reset()
                return _refused(message, error)
            except ValueError as error:
                await connection.reset()
                return SendResult(message.id, False, error=f'Invalid address: {error}')
            except (aiosmtplib.SMTPException, OSError) as error:
                connection.drop()
                if not (reused and attempt == 1):  # a kept-open connection may have gone stale: one fresh try
                    return SendResult(message.id, False, error=f'SMTP connection lost: {_describe(error)}',
                                      transient=True)
        try:
            await smtp.data(envelope.content)
        except aiosmtplib.SMTPResponseException as error:
            await connection.reset()
            return _refused(message, error)
        except (aiosmtplib.SMTPException, OSError) as error:
            connection.drop()
            return SendResult(message.id, False, envelope.header_id,
                              f'{IN_DOUBT}: the connection failed after the message was handed over, '
                              f'the server may have accepted it ({_describe(error)})', in_doubt=True)
        return SendResult(message.id, True, envelope.header_id)

    def _envelope(self, message: OutgoingMessage) -> _Envelope:
        """The RFC 5322 message and its SMTP envelope; ValueError for a message that cannot be sent as it is."""
        params = message.params
        sender = message.sender or params.get('fromEmail') or self.settings['from_email']
        if not sender:
            raise ValueError("no sender address: set the step's From address or the route's from_email")
        reply_to = params.get('replyTo') or ''
        name = params.get('fromName') or self.settings['from_name']
        for address in filter(None, (sender, message.recipient, reply_to)):
            if not ADDRESS.fullmatch(address):
                raise ValueError(f'invalid address {address!r}')
        if '\r' in name or '\n' in name:
            raise ValueError('line break in the sender name')
        header_id = f'<{message.id}@herald>'
        headers = [f'From: {_mailbox(sender, name)}', f'To: {message.recipient}']
        if reply_to:
            headers.append(f'Reply-To: {reply_to}')
        headers += [_header('Subject', message.subject), f'Date: {format_datetime(datetime.now(timezone.utc))}',
                    f'Message-ID: {header_id}', 'MIME-Version: 1.0']
        content = '\r\n'.join(headers).encode() + b'\r\n' + _body(message.text, message.html)
        utf8 = not (sender + message.recipient + reply_to).isascii()
        return _Envelope(header_id, sender, message.recipient, content, utf8)

    def parse_webhook(self, request: WebhookRequest) -> list[DeliveryReport]:
        raise WebhookRejected('SMTP has no delivery reports')

    async def close(self) -> None:
        connections = [self._pool.get_nowait() for _ in range(self._pool.qsize())]
        await asyncio.gather(*(connection.quit() for connection in connections))
        for connection in connections:
            self._pool.put_nowait(connection)


def _refused(message: OutgoingMessage, error: aiosmtplib.SMTPResponseException) -> SendResult:
    """The server answered no: 4xx is worth retrying, 5xx is final."""
    return SendResult(message.id, False, error=f'{error.code} {error.message}', transient=error.code < 500)


def _mailbox(address: str, name: str) -> str:
    """`"Name" <address>`: the name quoted, or one RFC 2047 word when not ASCII (as formataddr does: parsers
    may put a space between the words of a folded name); the address as it is."""
    if not name:
        return address
    if name.isascii():
        quoted = name.replace('\\', '\\\\').replace('"', '\\"')
        return f'"{quoted}" <{address}>'
    return f'{UTF8.header_encode(name)} <{address}>'


def _header(name: str, value: str) -> str:
    """A header line, RFC 2047-encoded when not ASCII and folded when long."""
    if '\r' in value or '\n' in value:
        raise ValueError(f'line break in the {name}')
    if value.isascii() and len(value) < 70:
        return f'{name}: {value}'
    charset = 'us-ascii' if value.isascii() else 'utf-8'
    return f'{name}: ' + Header(value, charset, header_name=name).encode(linesep='\r\n')


def _body(text: str, html: str) -> bytes:
    """Content headers and body: one text part, or multipart/alternative when there is text and HTML."""
    if not (text and html):
        return _part(html, 'html') if html else _part(text, 'plain')
    boundary = f'=_herald_{os.urandom(16).hex()}'  # random: no part can contain it
    return b''.join((
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'.encode(),
        _part(text, 'plain'), f'\r\n--{boundary}\r\n'.encode(), _part(html, 'html'),
        f'\r\n--{boundary}--\r\n'.encode(),
    ))


def _part(content: str, subtype: str) -> bytes:
    """7bit when ASCII with short lines, else base64 of UTF-8; line breaks are CRLF either way (RFC 2045 6.8)."""
    lines = LINE_BREAK.split(content)
    if content.isascii() and max(map(len, lines)) <= MAX_LINE:
        cte, payload = '7bit', '\r\n'.join(lines).encode()
    else:
        cte, payload = 'base64', base64.encodebytes('\r\n'.join(lines).encode())
    headers = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
    return headers.encode() + payload


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
