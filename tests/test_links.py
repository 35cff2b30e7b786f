"""Short links in SMS and Viber texts (shortened before parts and cost, counted at `/s/{code}`, listed by
`GET /api/v1/shortLinks`, shown in the history and its report) and open and click tracking of HTML emails."""
from __future__ import annotations

import asyncio
import html
import re
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import openpyxl
import pytest
from helpers import make_actor, sign_in_as
from nicegui import app
from nicegui.testing import User
from test_tasks import sms_file
from test_tasks_page import upload, workbook

from domain import auth, enqueue, history, links, reports, tasks, templates
from domain.auth import SYSTEM, Actor
from domain.channels import Channel
from domain.config import reload_settings, settings
from domain.enqueue import Destination, SendRequest
from domain.history import HistoryFilter
from domain.models import Message, Role, SenderName, SenderStatus, ShortLink, Tariff, Task, TaskKind
from domain.task_import import check_file

LONG_URL = 'https://shop.example.com/orders/2026/11/28/' + 'a' * 90 + '?utm_source=sms&utm_campaign=autumn'
SMS = {'channel': 'sms', 'from': 'MyShop', 'text': 'Your order is ready: {{url}}. Thank you!'}
PAGE = ('<html><body><p>Hi</p><a href="https://shop.example/x?a=1&amp;b=2">Order</a> '
        '<a href="mailto:help@shop.example">Help</a></body></html>')
EMAIL = {'channel': 'email', 'fromEmail': 'shop@example.com', 'subject': 'Your order', 'text': 'Plain', 'html': PAGE}


async def setup_shop(role: Role | None = Role.OPERATOR) -> Actor | None:
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    await Tariff.create(channel=Channel.SMS, country='RU', price_per_part=Decimal('2.5'), currency='RUB')
    return await make_actor(role) if role else None


@pytest.fixture
async def operator(db) -> Actor:
    return await setup_shop()


async def send(actor: Actor, steps: list[dict], short: bool, phone: str = '+79123456789') -> Message:
    result = await enqueue.enqueue(actor, SendRequest(
        steps=steps, use_short_links=short,
        destinations=[Destination(phone=phone, email='ann@example.com', variables={'url': LONG_URL})]))
    assert not result.rejected
    return await Message.get(id=result.messages[0].id)


def client(secret: str | None = None) -> httpx.AsyncClient:
    headers = {'Authorization': f'Bearer {secret}'} if secret else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url='http://herald.test', headers=headers)


# --- finding URLs -------------------------------------------------------------------------------------------------

def urls(text: str) -> list[str]:
    return [text[start:end] for start, end in links.find_urls(text)]


def test_urls_end_before_sentence_punctuation_and_unopened_brackets() -> None:
    assert urls('Pay at https://ex.com/pay.') == ['https://ex.com/pay']
    assert urls('See https://ex.com/a?b=1, then HTTP://Ex.com/c!') == ['https://ex.com/a?b=1', 'HTTP://Ex.com/c']
    assert urls('(details: https://ex.com/x)') == ['https://ex.com/x']
    assert urls('https://en.wikipedia.org/wiki/Foo_(bar);') == ['https://en.wikipedia.org/wiki/Foo_(bar)']
    assert urls('"https://ex.com/q?x=1"') == ['https://ex.com/q?x=1']


def test_several_links_no_links_and_other_schemes() -> None:
    assert urls('a http://a.example b https://b.example/p c') == ['http://a.example', 'https://b.example/p']
    assert urls('No links here, just www.example.com and 3.14.') == []
    assert urls('ftp://files.example javascript:alert(1) mailto:a@b.example data:text/html,x https://') == []


def test_shortening_replaces_each_url_and_repeats_share_a_code() -> None:
    linker = links.Linker('https://go.example', 'secret', True)
    text, rows = linker.shorten('A https://a.example/1, B https://a.example/1 and ftp://x', 'm-1', None, None)
    assert len(rows) == 1 and rows[0][1:4] == ('https://a.example/1', 'm-1', None)
    code = rows[0][0]
    assert re.fullmatch(r'[A-Za-z0-9_-]{8,12}', code)
    assert text == f'A https://go.example/s/{code}, B https://go.example/s/{code} and ftp://x'
    assert linker.shorten('no links', 'm-1', None, None) == ('no links', [])


def test_tracking_tokens_cannot_be_forged() -> None:
    linker = links.Linker('https://go.example', 'secret', True)
    message_id = '0190c4a2-7b1e-7cc0-8d2c-1a2b3c4d5e6f'
    token = linker.token(message_id, 'https://shop.example/x')
    assert linker.verified(token, 'https://shop.example/x') == message_id
    assert linker.verified(token, 'https://evil.example/') is None
    assert linker.verified(token, '') is None
    assert links.Linker('https://go.example', 'other secret', True).verified(token, 'https://shop.example/x') is None
    assert linker.verified(token[:-1] + ('A' if token[-1] != 'A' else 'B'), 'https://shop.example/x') is None
    assert linker.verified('garbage', '') is None


# --- enqueue ------------------------------------------------------------------------------------------------------

async def test_an_sms_is_shortened_before_its_parts_and_cost(operator: Actor) -> None:
    plain = await send(operator, [SMS], short=False)
    assert (plain.parts, plain.cost) == (2, Decimal('5.0'))
    assert LONG_URL in plain.text and not await ShortLink.filter(message_id=plain.id).exists()

    short = await send(operator, [SMS], short=True, phone='+79123456780')
    link = await ShortLink.get(message_id=short.id)
    assert short.text == f'Your order is ready: {settings().public_url}/s/{link.code}. Thank you!'
    assert (short.parts, short.cost) == (1, Decimal('2.5'))
    assert (link.target, link.clicks, link.task_id) == (LONG_URL, 0, None)


async def test_a_templates_setting_shortens_its_messages(operator: Actor) -> None:
    template = await templates.create_template(SYSTEM, templates.TemplateInput(
        'Orders', [('00:00', '23:59')], steps=[SMS], use_short_links=True))
    assert templates.template_to_api(template)['useShortLinks'] is True
    result = await enqueue.enqueue(operator, SendRequest(
        destinations=[Destination(phone='+79123456789', variables={'url': LONG_URL})], template_id=template.id))
    message = await Message.get(id=result.messages[0].id)
    assert '/s/' in message.text and message.parts == 1


async def test_html_emails_get_a_pixel_and_tracked_links_plain_ones_stay(operator: Actor,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    message = await send(operator, [EMAIL], short=True)
    assert message.text == 'Plain'
    public = settings().public_url
    assert re.search(rf'<img src="{re.escape(public)}/t/o/{message.id}\.[\w-]+\.gif" width="1" height="1" alt="">'
                     '</body>', message.html)
    assert 'href="mailto:help@shop.example"' in message.html and 'shop.example/x?a=1&amp;b=2"' not in message.html
    plain = await send(operator, [{**EMAIL, 'html': ''}], short=True, phone='+79123456780')
    assert plain.html == ''
    monkeypatch.setenv('HERALD_EMAIL_TRACKING', 'off')
    reload_settings()
    untracked = await send(operator, [EMAIL], short=True, phone='+79123456781')
    assert untracked.html == PAGE


# --- task imports -------------------------------------------------------------------------------------------------

async def test_a_task_import_with_short_links_shortens_and_copies_its_links(operator: Actor, tmp_path: Path) -> None:
    rows = [{'phone': f'+7912345000{i}', 'sender': 'MyShop', 'text': f'Track {LONG_URL}&n={i} now'} for i in range(3)]
    check = await check_file(operator, TaskKind.SMS, sms_file(tmp_path / 'a.xlsx', rows), 'a.xlsx',
                             use_short_links=True)
    assert check.valid == 3 and {row.parts for row in check.preview} == {1}
    task = await tasks.create_task(operator, check, 'Links', [], 'UTC')
    assert (await Task.get(id=task.id)).use_short_links
    messages = await Message.filter(task_id=task.id).order_by('recipient')
    short_links = {str(link.message_id): link for link in await ShortLink.filter(task_id=task.id)}
    assert len(short_links) == 3
    for i, message in enumerate(messages):
        link = short_links[str(message.id)]
        assert message.text == f'Track {settings().public_url}/s/{link.code} now' and message.parts == 1
        assert link.target == f'{LONG_URL}&n={i}'

    added = await check_file(operator, TaskKind.SMS, sms_file(tmp_path / 'b.xlsx', [
        {'phone': '+79123450009', 'sender': 'MyShop', 'text': f'Also {LONG_URL}'}]), 'b.xlsx', task_id=task.id)
    await tasks.add_rows(operator, task.id, added)  # the task's setting holds for rows added later
    assert await ShortLink.filter(task_id=task.id).count() == 4

    plain = await check_file(operator, TaskKind.SMS, sms_file(tmp_path / 'c.xlsx', rows), 'c.xlsx')
    assert {row.parts for row in plain.preview} == {2}
    plain.discard()


# --- visits over HTTP ---------------------------------------------------------------------------------------------

async def history_row(actor: Actor, message_id: str) -> dict:
    page = await history.list_messages(actor, HistoryFilter())
    return next(row for row in page.rows if row['id'] == message_id)


async def test_a_short_link_redirects_and_counts_everywhere(user: User, tmp_path: Path) -> None:
    actor = await setup_shop()
    message = await send(actor, [SMS], short=True)
    link = await ShortLink.get(message_id=message.id)
    _, secret = await auth.create_api_key('links', scopes=['messages:read'])
    async with client() as public:
        for _ in range(2):
            response = await public.get(f'/s/{link.code}')
            assert (response.status_code, response.headers['location']) == (302, LONG_URL)
            assert 'no-store' in response.headers['cache-control']
        missing = await public.get('/s/nope12345')
        assert missing.status_code == 404 and missing.headers['content-type'].startswith('text/plain')
        assert (await public.get('/s/' + 'x' * 40)).status_code == 404
    assert (await history_row(actor, str(message.id)))['short_link_clicks'] == 2
    link = await ShortLink.get(id=link.id)
    assert link.clicks == 2 and link.first_visit_at <= link.last_visit_at

    async with client(secret) as api:
        listed = (await api.get('/api/v1/shortLinks', params={'messageId': str(message.id)})).json()
        assert listed['count'] == 1
        item = listed['items'][0]
        assert item | {'createdAt': None, 'updatedAt': None, 'firstVisitedAt': None, 'lastVisitedAt': None} == {
            'id': link.id, 'messageId': str(message.id), 'taskId': None, 'content': LONG_URL,
            'shortcut': f'{settings().public_url}/s/{link.code}', 'clicks': 2, 'createdAt': None,
            'updatedAt': None, 'firstVisitedAt': None, 'lastVisitedAt': None}
        assert item['lastVisitedAt'].endswith('+00:00') and item['createdAt'].endswith('+00:00')
        assert (await api.get('/api/v1/shortLinks', params={'taskId': str(message.id)})).json() == \
            {'count': 0, 'items': []}
        assert (await api.get('/api/v1/shortLinks', params={'messageId': 'not-an-id'})).json()['count'] == 0
        upper = await api.get('/api/v1/shortLinks', params={'messageId': str(message.id).upper()})
        assert upper.json()['count'] == 1
        far = (await api.get('/api/v1/shortLinks', params={'offset': 10 ** 6})).json()
        assert far == {'count': 1, 'items': []}
        assert (await api.get('/api/v1/shortLinks', params={'offset': 10 ** 20})).status_code == 422
        assert (await api.get('/api/v1/shortLinks', params={'limit': 0})).status_code == 422
    async with client() as anonymous:
        assert (await anonymous.get('/api/v1/shortLinks')).status_code == 401

    path = tmp_path / 'report.xlsx'
    await reports.export_history(actor, HistoryFilter(), path, 'en', lambda *_: None)
    sheet = list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    row = dict(zip(sheet[0], sheet[1]))
    assert (row['Short link'], row['Number of clicks on the link']) == (f'{settings().public_url}/s/{link.code}', 2)


async def test_email_opens_and_clicks_count_and_forged_tokens_do_not(user: User, tmp_path: Path) -> None:
    actor = await setup_shop()
    message = await send(actor, [EMAIL], short=False)
    pixel = urlsplit(re.search(r'<img src="([^"]+)"', message.html)[1])
    click = urlsplit(html.unescape(re.search(r'<a href="([^"]+)">Order', message.html)[1]))
    assert click.path.startswith('/t/c/') and parse_qs(click.query)['u'] == ['https://shop.example/x?a=1&b=2']
    async with client() as public:
        opened = await public.get(pixel.path)
        assert (opened.status_code, opened.headers['content-type']) == (200, 'image/gif')
        assert opened.content.startswith(b'GIF89a') and 'no-store' in opened.headers['cache-control']
        clicked = await public.get(f'{click.path}?{click.query}')
        assert (clicked.status_code, clicked.headers['location']) == (302, 'https://shop.example/x?a=1&b=2')

        token = click.path.removeprefix('/t/c/')
        assert (await public.get(f'/t/c/{token}', params={'u': 'https://evil.example/'})).status_code == 404
        assert (await public.get(f'/t/c/{token}', params={'u': 'javascript:alert(1)'})).status_code == 404
        assert (await public.get(f'/t/c/{token}')).status_code == 404
        forged = f'{message.id}.{"A" * 22}'
        assert (await public.get(f'/t/o/{forged}.gif')).status_code == 404
        assert (await public.get(f'/t/c/{forged}', params={'u': 'https://shop.example/x?a=1&b=2'})).status_code == 404
        open_token = pixel.path.removeprefix('/t/o/').removesuffix('.gif')
        assert (await public.get(f'/t/c/{open_token}', params={'u': ''})).status_code == 404
    row = await history_row(actor, str(message.id))
    assert (row['email_opens'], row['email_clicks'], row['tracks']) == (1, 1, '1 / 1')
    path = tmp_path / 'report.xlsx'
    await reports.export_history(actor, HistoryFilter(), path, 'en', lambda *_: None)
    sheet = list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))
    assert dict(zip(sheet[0], sheet[1]))['Number of views and clicks Email'] == '1 / 1'


async def test_the_template_page_saves_the_short_links_switch(user: User) -> None:
    await sign_in_as(user, Role.ADMIN)
    await SenderName.create(name='MyShop', channel=Channel.SMS, status=SenderStatus.APPROVED)
    template = await templates.create_template(SYSTEM, templates.TemplateInput('Orders', [('09:00', '21:00')],
                                                                               steps=[SMS]))
    await user.open(f'/templates/{template.id}')
    await user.should_see('Shorten links (SMS, Viber)')
    user.find(marker='use-short-links').click()
    user.find(marker='save').click()
    await user.should_see('Template “Orders” saved.')
    assert (await templates.get_template(SYSTEM, template.id)).use_short_links


async def test_the_new_task_dialog_shortens_links_when_asked(user: User) -> None:
    await setup_shop(None)
    await sign_in_as(user, Role.OPERATOR)
    await user.open('/tasks')
    user.find(marker='add-task').click()
    await user.should_see(marker='task-dialog')
    user.find(marker='task-name').type('Links')
    user.find(marker='use-short-links').click()
    await upload(user, workbook([['+79001230001', 'MyShop', f'Track {LONG_URL}', 'o-1']]))
    await user.should_see('Rows in the file: 1 · valid: 1 · invalid: 0', marker='file-summary',
                          retries=600)  # the first check starts the worker processes: slow on a busy machine
    assert user.find(marker='preview').elements.pop().rows[0]['parts'] == 1
    user.find(marker='create-task').click()
    task = await _eventually_task('Links')
    assert task.use_short_links and await ShortLink.filter(task_id=task.id).count() == 1


async def _eventually_task(name: str) -> Task:
    for _ in range(100):
        if task := await Task.get_or_none(name=name):
            return task
        await asyncio.sleep(0.1)
    raise AssertionError(f'no task {name}')
