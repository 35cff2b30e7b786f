"""The SMTP provider against a real aiosmtpd server on loopback: TLS, auth, content, refusals, outages, pooling."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from smtp_server import RecordingHandler, SmtpServer, authenticator, free_port, make_certificate, server_tls_context

from domain.channels import Channel
from domain.provider_settings import InvalidSettings
from domain.providers import OutgoingMessage, ProviderConfigError, SendResult, WebhookRejected, WebhookRequest
from providers.registry import create_provider
from providers.smtp import IN_DOUBT, SmtpProvider


@pytest.fixture(scope='session')
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp('tls'))


@pytest.fixture
def start_server() -> Iterator:
    """Starts an SMTP server with a recording handler; stops them all after the test."""
    servers: list[SmtpServer] = []

    def start(handler: RecordingHandler | None = None, **options) -> SmtpServer:
        server = SmtpServer(handler or RecordingHandler(), **options)
        server.start()
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


@pytest.fixture
async def make_provider():
    """Builds SMTP providers through the registry; closes them after the test."""
    providers: list[SmtpProvider] = []

    def make(server: SmtpServer | None = None, **settings) -> SmtpProvider:
        settings = {'security': 'none', 'timeout_s': 5, **settings}
        if server is not None:
            settings.update(host=server.hostname, port=server.port)
        provider = create_provider('smtp', 'mail', settings, None)
        providers.append(provider)
        return provider
    yield make
    for provider in providers:
        await provider.close()


def email(n: int = 0, **fields) -> OutgoingMessage:
    values = {'id': str(uuid.uuid4()), 'channel': Channel.EMAIL, 'recipient': f'user{n}@example.com',
              'sender': 'shop@example.com', 'subject': f'Order {n}', 'text': f'Your order {n} has shipped.'}
    return OutgoingMessage(**(values | fields))


def by_id(results: list[SendResult]) -> dict[str, SendResult]:
    return {result.message_id: result for result in results}


def header_id(message: OutgoingMessage) -> str:
    return f'<{message.id}@herald>'


async def test_a_text_message_is_an_rfc5322_email_with_our_message_id(start_server, make_provider) -> None:
    server = start_server()
    message = email(1)
    [result] = await make_provider(server).send([message])

    assert result == SendResult(message.id, True, header_id(message))
    [received] = server.handler.messages
    assert (received.mail_from, received.recipients) == ('shop@example.com', ['user1@example.com'])
    mail = received.email
    assert mail['Message-ID'] == header_id(message)
    assert (mail['From'], mail['To'], mail['Subject']) == ('shop@example.com', 'user1@example.com', 'Order 1')
    assert mail['Date'].datetime.tzinfo is not None
    assert mail.get_content_type() == 'text/plain'
    assert mail.get_content().strip() == 'Your order 1 has shipped.'
    assert not received.tls


@pytest.mark.parametrize(('text', 'html', 'content_type', 'parts'), [
    ('Plain words', '', 'text/plain', ['text/plain']),
    ('', '<p>Rich <b>words</b></p>', 'text/html', ['text/html']),
    ('Plain words', '<p>Rich <b>words</b></p>', 'multipart/alternative', ['text/plain', 'text/html']),
])
async def test_text_html_or_both(start_server, make_provider, text, html, content_type, parts) -> None:
    server = start_server()
    [result] = await make_provider(server).send([email(text=text, html=html)])

    assert result.accepted
    mail = server.handler.messages[0].email
    assert mail.get_content_type() == content_type
    leaves = list(mail.walk())[1:] if mail.is_multipart() else [mail]
    assert [part.get_content_type() for part in leaves] == parts
    bodies = {part.get_content_type(): part.get_content().strip() for part in leaves}
    assert bodies == {k: v for k, v in {'text/plain': text, 'text/html': html}.items() if v}


async def test_from_name_reply_to_and_unicode(start_server, make_provider) -> None:
    server = start_server()
    message = email(sender='', subject='Заказ №5 отправлен', text='Ваш заказ в пути.',
                    params={'fromEmail': 'shop@example.com', 'fromName': 'Магазин «Ромашка»',
                            'replyTo': 'help@example.com'})
    [result] = await make_provider(server).send([message])

    assert result.accepted
    mail = server.handler.messages[0].email
    assert mail['From'].addresses[0].display_name == 'Магазин «Ромашка»'
    assert mail['From'].addresses[0].addr_spec == 'shop@example.com'
    assert mail['Reply-To'] == 'help@example.com'
    assert mail['Subject'] == 'Заказ №5 отправлен'
    assert mail.get_content().strip() == 'Ваш заказ в пути.'


async def test_route_defaults_fill_a_message_without_sender(start_server, make_provider) -> None:
    server = start_server()
    provider = make_provider(server, from_email='noreply@example.com', from_name='Herald')
    [result] = await provider.send([email(sender='')])

    assert result.accepted
    received = server.handler.messages[0]
    assert received.mail_from == 'noreply@example.com'
    assert received.email['From'] == 'Herald <noreply@example.com>'


LONG_WORDS = ' '.join(['Supercalifragilistic'] * 30)


@pytest.mark.parametrize(('field', 'value'), [
    ('subject', LONG_WORDS),
    ('subject', 'Ваш заказ №12345 собран, оплачен и передан в службу доставки. ' * 4),
    ('subject', 'Ünïcödé and emoji 🎉'),
    ('text', 'A line\n.\n.starts with a dot\n..two dots\nend'),
    ('text', 'x' * 5000),
    ('text', 'Smörgåsbord 🎉\n' * 50),
    ('html', '<p>' + 'y' * 3000 + '</p>'),
    ('fromName', 'Shop "Best" \\ Co.'),
    ('fromName', 'Магазин «Ромашка» — лучшие цветы в городе и области, доставка круглосуточно'),
])
async def test_tricky_content_arrives_intact(start_server, make_provider, field, value) -> None:
    server = start_server()
    fields = {'params': {'fromName': value}} if field == 'fromName' else {field: value}
    [result] = await make_provider(server).send([email(**fields)])

    assert result.accepted
    received = server.handler.messages[0]
    assert all(len(line) <= 998 for line in received.content.split(b'\r\n'))
    mail = received.email
    if field == 'fromName':
        assert mail['From'].addresses[0].display_name == value
    elif field == 'subject':
        assert mail['Subject'] == value
    else:
        body = mail.get_body(('plain',) if field == 'text' else ('html',)).get_content()
        assert body.replace('\r\n', '\n').rstrip('\n') == value.rstrip('\n')


async def test_an_unbuildable_message_fails_alone_and_permanently(start_server, make_provider) -> None:
    server = start_server()
    bad = [email(1, sender=''), email(2, subject='Hi\r\nBcc: all@example.com'),
           email(3, params={'fromName': 'Shop\nBcc: all@example.com'}),
           email(4, recipient='a@example.com, b@example.com'), email(5, recipient='nobody'),
           email(6, params={'replyTo': 'help@example.com>\r\nBcc: x@example.com'})]
    good = email(7)
    results = by_id(await make_provider(server).send(bad + [good]))

    errors = [results[m.id].error for m in bad]
    assert errors == [
        "Cannot build the email: no sender address: set the step's From address or the route's from_email",
        'Cannot build the email: line break in the Subject',
        'Cannot build the email: line break in the sender name',
        "Cannot build the email: invalid address 'a@example.com, b@example.com'",
        "Cannot build the email: invalid address 'nobody'",
        "Cannot build the email: invalid address 'help@example.com>\\r\\nBcc: x@example.com'",
    ]
    assert not any(results[m.id].transient for m in bad)
    assert results[good.id].accepted
    assert server.handler.message_ids == [header_id(good)]


async def test_internationalized_addresses_go_with_smtputf8(start_server, make_provider) -> None:
    server = start_server()
    message = email(sender='магазин@пример.рф', recipient='покупатель@пример.рф',
                    params={'fromName': 'Магазин', 'replyTo': 'помощь@пример.рф'})
    [result] = await make_provider(server).send([message])

    assert result.accepted
    received = server.handler.messages[0]
    assert (received.mail_from, received.recipients) == ('магазин@пример.рф', ['покупатель@пример.рф'])
    mail = received.email
    assert str(mail['From']) == 'Магазин <магазин@пример.рф>'
    assert (mail['To'], mail['Reply-To']) == ('покупатель@пример.рф', 'помощь@пример.рф')


async def test_starttls_with_a_self_signed_certificate(start_server, make_provider, certificate) -> None:
    server = start_server(tls_context=server_tls_context(*certificate), require_starttls=True)
    [result] = await make_provider(server, security='starttls', verify_certificate=False).send([email()])

    assert result.accepted
    assert server.handler.messages[0].tls


async def test_an_unverifiable_certificate_is_refused(start_server, make_provider, certificate) -> None:
    server = start_server(tls_context=server_tls_context(*certificate), require_starttls=True)
    results = await make_provider(server, security='starttls').send([email(1), email(2)])

    assert all(not r.accepted and r.transient and 'CERTIFICATE_VERIFY_FAILED' in r.error for r in results)
    assert server.handler.messages == []


async def test_implicit_tls(start_server, make_provider, certificate) -> None:
    server = start_server(ssl_context=server_tls_context(*certificate))
    [result] = await make_provider(server, security='tls', verify_certificate=False).send([email()])

    assert result.accepted
    assert server.handler.messages[0].tls


@pytest.mark.filterwarnings('ignore:Requiring AUTH while not requiring TLS')
@pytest.mark.parametrize(('mechanism', 'security'), [('LOGIN', 'starttls'), ('PLAIN', 'none')])
async def test_auth_required(start_server, make_provider, certificate, mechanism, security) -> None:
    check = authenticator('mailer', 's3cret')
    other = {'LOGIN': 'PLAIN', 'PLAIN': 'LOGIN'}[mechanism]
    tls = {'tls_context': server_tls_context(*certificate), 'require_starttls': True} if security == 'starttls' else {}
    server = start_server(auth_required=True, auth_require_tls=security == 'starttls', authenticator=check,
                          auth_exclude_mechanism=[other], **tls)
    provider = make_provider(server, security=security, verify_certificate=False,
                             username='mailer', password='s3cret')
    results = await provider.send([email(1), email(2)])

    assert all(result.accepted for result in results)
    assert [m.login for m in server.handler.messages] == [b'mailer', b'mailer']
    assert set(check.mechanisms) == {mechanism}


@pytest.mark.filterwarnings('ignore:Requiring AUTH while not requiring TLS')
async def test_a_wrong_password_fails_the_batch_permanently_with_one_attempt_per_connection(
        start_server, make_provider) -> None:
    server = start_server(auth_required=True, auth_require_tls=False, authenticator=authenticator('mailer', 's3cret'))
    provider = make_provider(server, username='mailer', password='wrong', pool_size=2)
    results = await provider.send([email(n) for n in range(20)])

    assert len(results) == 20
    assert all(not r.accepted and not r.transient and '535' in r.error for r in results)
    assert len(server.sessions) == 2
    assert server.handler.messages == []


async def test_refusals_are_classified_by_reply_code(start_server, make_provider) -> None:
    handler = RecordingHandler(replies={'gone@example.com': '550 5.1.1 No such user',
                                        'busy@example.com': '451 4.3.0 Try again later'})
    server = start_server(handler)
    gone, busy, fine = email(recipient='gone@example.com'), email(recipient='busy@example.com'), email(3)
    results = by_id(await make_provider(server, pool_size=1).send([gone, busy, fine]))

    assert results[gone.id] == SendResult(gone.id, False, error='550 5.1.1 No such user', transient=False)
    assert results[busy.id] == SendResult(busy.id, False, error='451 4.3.0 Try again later', transient=True)
    assert results[fine.id].accepted
    assert server.handler.message_ids == [header_id(fine)]
    assert len(server.sessions) == 1, 'a refusal resets the envelope and keeps the connection'


async def test_a_connection_lost_before_data_is_retried_once_on_a_fresh_connection(start_server, make_provider) -> None:
    handler = RecordingHandler(cut_at_rcpt={'user2@example.com'})
    server = start_server(handler)
    batch = [email(1), email(2), email(3)]
    results = await make_provider(server, pool_size=1).send(batch)

    assert all(result.accepted for result in results)
    assert sorted(handler.message_ids) == sorted(header_id(m) for m in batch)
    assert len(server.sessions) == 2


async def test_connections_dropped_between_batches_are_reopened(start_server, make_provider) -> None:
    server = start_server()
    provider = make_provider(server, pool_size=2)
    assert all(r.accepted for r in await provider.send([email(n) for n in range(10)]))
    server.loop.call_soon_threadsafe(server.cut_connections)
    await asyncio.sleep(0.05)

    assert all(r.accepted for r in await provider.send([email(n) for n in range(10, 20)]))
    assert len(set(server.handler.message_ids)) == 20
    assert len(server.sessions) == 4


async def test_a_connection_lost_after_data_is_in_doubt_and_never_resent(start_server, make_provider) -> None:
    handler = RecordingHandler(cut_after_data={'user2@example.com'})
    server = start_server(handler)
    first, doubtful, last = email(1), email(2), email(3)
    results = by_id(await make_provider(server, pool_size=1).send([first, doubtful, last]))

    assert results[first.id].accepted and results[last.id].accepted
    in_doubt = results[doubtful.id]
    assert not in_doubt.accepted and not in_doubt.transient and in_doubt.in_doubt
    assert in_doubt.error.startswith(IN_DOUBT)
    assert in_doubt.provider_message_id == header_id(doubtful)
    assert Counter(handler.message_ids) == Counter({header_id(m): 1 for m in (first, doubtful, last)})


async def test_a_server_going_away_mid_batch(start_server, make_provider) -> None:
    handler = RecordingHandler(go_away_after=50)
    server = start_server(handler)
    batch = [email(n) for n in range(200)]
    started = time.monotonic()
    results = by_id(await make_provider(server, pool_size=4).send(batch))

    assert time.monotonic() - started < 5
    assert len(results) == 200
    received = Counter(handler.message_ids)
    assert all(count == 1 for count in received.values()), 'a message reached the server twice'
    accepted = {header_id(m) for m in batch if results[m.id].accepted}
    transient = {header_id(m) for m in batch if results[m.id].transient}
    in_doubt = {header_id(m) for m in batch if results[m.id].error.startswith(IN_DOUBT)}
    assert len(accepted) >= 49 and transient
    assert accepted <= set(received), 'accepted means the server has it'
    assert not transient & set(received), 'a transient failure must be safe to retry'
    assert set(received) <= accepted | in_doubt
    assert len(accepted) + len(transient) + len(in_doubt) == 200


async def test_no_server_fails_the_batch_transiently_and_fast(make_provider) -> None:
    provider = make_provider(host='127.0.0.1', port=free_port())
    started = time.monotonic()
    results = await provider.send([email(n) for n in range(500)])

    assert time.monotonic() - started < 2
    assert len(results) == 500
    assert all(not r.accepted and r.transient and 'Cannot connect' in r.error for r in results)


async def test_connections_are_pooled_and_reused(start_server, make_provider) -> None:
    server = start_server()
    provider = make_provider(server, pool_size=4)
    assert await provider.send([]) == []
    first = await provider.send([email(n) for n in range(200)])
    second = await provider.send([email(n) for n in range(200, 400)])

    assert all(result.accepted for result in first + second)
    assert len(server.handler.messages) == 400
    assert len(server.sessions) == 4


async def test_concurrent_batches_share_the_pool(start_server, make_provider) -> None:
    server = start_server()
    provider = make_provider(server, pool_size=3)
    batches = await asyncio.gather(*(provider.send([email(n) for n in range(k * 50, k * 50 + 50)]) for k in range(4)))

    assert all(result.accepted for results in batches for result in results)
    assert len(set(server.handler.message_ids)) == 200
    assert len(server.sessions) <= 3


async def test_close_quits_and_a_later_send_reconnects(start_server, make_provider) -> None:
    server = start_server()
    provider = make_provider(server, pool_size=2)
    await provider.send([email(n) for n in range(4)])
    await provider.close()
    [result] = await provider.send([email(9)])

    assert result.accepted
    assert len(server.sessions) == 3


def test_smtp_settings_are_validated() -> None:
    with pytest.raises(InvalidSettings) as caught:
        create_provider('smtp', 'mail', {'port': 'abc', 'security': 'ssl', 'pool_size': '0'}, None)
    assert set(caught.value.errors) == {'host', 'port', 'security'}
    assert "port: expected a whole number, got 'abc'" in str(caught.value)
    with pytest.raises(InvalidSettings, match='pool_size: must be between 1 and 100'):
        create_provider('smtp', 'mail', {'host': 'mx', 'pool_size': '0'}, None)
    with pytest.raises(ProviderConfigError, match='username: required with a password'):
        create_provider('smtp', 'mail', {'host': 'mx', 'password': 'x'}, None)
    provider = create_provider('smtp', 'mail', {'host': 'mx', 'port': '465', 'security': 'tls',
                                                'verify_certificate': 'false'}, None)
    assert (provider.settings['port'], provider.settings['verify_certificate'], provider.settings['pool_size']) \
        == (465, False, 4)


def test_smtp_has_no_webhooks() -> None:
    provider = create_provider('smtp', 'mail', {'host': 'mx'}, None)
    with pytest.raises(WebhookRejected):
        provider.parse_webhook(WebhookRequest(b'{}'))
