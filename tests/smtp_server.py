"""A real SMTP server on loopback (aiosmtpd in its own thread) that records what it receives, for provider tests."""
from __future__ import annotations

import email
import email.policy
import socket
import ssl
import subprocess
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOST = '127.0.0.1'


@dataclass(frozen=True)
class Received:
    mail_from: str
    recipients: list[str]
    content: bytes
    tls: bool
    login: bytes | None

    @property
    def email(self) -> EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)

    @property
    def message_id(self) -> str:
        return self.email['Message-ID']


@dataclass
class RecordingHandler:
    """Records every message; `replies` answers RCPT for chosen addresses (e.g. '550 5.1.1 No such user').

    `cut_at_rcpt`: addresses whose RCPT cuts the connection once, unanswered.
    `cut_after_data`: addresses whose message is recorded, then the connection is cut before the reply.
    `go_away_after`: after that many messages the server stops listening and cuts every connection.
    """
    replies: dict[str, str] = field(default_factory=dict)
    cut_at_rcpt: set[str] = field(default_factory=set)
    cut_after_data: set[str] = field(default_factory=set)
    go_away_after: int | None = None
    messages: list[Received] = field(default_factory=list)
    server: SmtpServer | None = None

    async def handle_RCPT(self, server: SMTP, session, envelope, address: str, rcpt_options) -> str:
        if address in self.cut_at_rcpt:
            self.cut_at_rcpt.discard(address)
            server.transport.abort()
            return '250 OK'
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        return '250 OK'

    async def handle_DATA(self, server: SMTP, session, envelope) -> str:
        tls = server.transport.get_extra_info('cipher') is not None
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content, tls,
                                      session.auth_data.login if session.auth_data else None))
        if set(envelope.rcpt_tos) & self.cut_after_data:
            server.transport.abort()
        elif self.go_away_after is not None and len(self.messages) >= self.go_away_after:
            self.server.go_away()
        return '250 Message accepted for delivery'

    @property
    def message_ids(self) -> list[str]:
        return [message.message_id for message in self.messages]


class SmtpServer(Controller):
    """aiosmtpd on a free loopback port; `sessions` counts the connections clients made."""

    def __init__(self, handler: RecordingHandler, **smtp_options: Any) -> None:
        super().__init__(handler, hostname=HOST, port=free_port(), server_hostname='localhost', **smtp_options)
        handler.server = self
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        session = super().factory()
        self.sessions.append(session)
        return session

    def start(self) -> None:
        super().start()
        self.sessions.clear()  # the controller's own readiness probe is not a client

    def go_away(self) -> None:
        """Stop listening and cut every connection, as a crashed server would (call on the server's loop)."""
        self.server.close()
        self.cut_connections()

    def cut_connections(self) -> None:
        """Cut every open connection, as an idle timeout or a restart would (call on the server's loop)."""
        for session in self.sessions:
            if session.transport is not None:
                session.transport.abort()


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1, made with the openssl command line."""
    cert, key = directory / 'cert.pem', directory / 'key.pem'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
                    '-nodes', '-keyout', str(key), '-out', str(cert), '-days', '2', '-subj', '/CN=localhost',
                    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], check=True, capture_output=True)
    return cert, key


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def authenticator(username: str, password: str):
    """An aiosmtpd authenticator accepting one user; it records the mechanisms clients used."""
    mechanisms: list[str] = []

    def authenticate(server, session, envelope, mechanism: str, auth_data) -> AuthResult:
        mechanisms.append(mechanism)
        ok = isinstance(auth_data, LoginPassword) and auth_data == (username.encode(), password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data)
    authenticate.mechanisms = mechanisms
    return authenticate


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]
