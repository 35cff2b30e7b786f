"""Short links in SMS and Viber texts, and open and click tracking of HTML emails.

Both are applied when a message is built (enqueue's `_Batch`): there its id is known, its parts and cost are not
yet worked out, and the rows written in the same transaction as the message include its short links. A visit
counts in one transaction of atomic UPDATEs and is published like a status change, so live pages show it."""
from __future__ import annotations

import base64
import hashlib
import hmac
import html
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from tortoise.transactions import in_transaction

from . import events, sql, templates
from .auth import Actor, Permission
from .channels import Channel
from .config import Settings
from .statuses import MessageStatus

SHORTENED = frozenset({Channel.SMS, Channel.VIBER})
MAX_TARGET = 2000  # ShortLink.target's length: a longer URL stays as it is
CODE_BYTES = 7  # 10 URL-safe characters (56 bits): codes of millions of links do not collide in practice
LINK_COLUMNS = ('code', 'target', 'message_id', 'task_id', 'clicks', 'created_at', 'updated_at')

_URL = re.compile(r'\bhttps?://[^\s<>"\'`]+', re.IGNORECASE)
_TRAILING = '.,;:!?\'"*'
_PAIRS = {')': '(', ']': '[', '}': '{'}
_HREF = re.compile(r'(<a\b[^>]*?\bhref\s*=\s*)(["\'])(\s*https?://[^"\']*)\2', re.IGNORECASE)
_BODY_END = re.compile(r'</body\s*>', re.IGNORECASE)
_CODE = re.compile(r'[A-Za-z0-9_-]{1,32}')
_TOKEN = re.compile(r'([0-9a-fA-F-]{36})\.([A-Za-z0-9_-]{22})')


def find_urls(text: str) -> list[tuple[int, int]]:
    """The (start, end) of each http(s) URL in `text`, without the punctuation that ends a sentence or closes a
    bracket opened before the URL."""
    found = []
    for match in _URL.finditer(text):
        url = match.group()
        while url:
            last = url[-1]
            if last in _TRAILING or (last in _PAIRS and url.count(_PAIRS[last]) < url.count(last)):
                url = url[:-1]
            else:
                break
        if '://' in url and not url.endswith('://'):
            found.append((match.start(), match.start() + len(url)))
    return found


def is_web_url(value: str) -> bool:
    """An absolute http(s) URL: the only kind Herald ever redirects to."""
    return bool(_URL.match(value or '')) and len(value) <= MAX_TARGET and not any(c.isspace() for c in value)


def new_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


@dataclass(frozen=True)
class Linker:
    """What links need from the settings, built once per request (a task import ships it to its workers, whose
    settings may be older than the server's)."""
    public_url: str
    secret: str
    email_tracking: bool

    @classmethod
    def of(cls, settings: Settings) -> Linker:
        return cls(settings.public_url, settings.secret, settings.email_tracking)

    def shorten(self, text: str, message_id: str, task_id: str | None, now: datetime
                ) -> tuple[str, list[tuple[Any, ...]]]:
        """The text with each URL replaced by a short link, and the short_links rows (LINK_COLUMNS) to insert.
        A URL repeated in the text gets one link."""
        spans = [(start, end) for start, end in find_urls(text) if end - start <= MAX_TARGET]
        if not spans:
            return text, []
        codes: dict[str, str] = {}
        pieces, previous = [], 0
        for start, end in spans:
            url = text[start:end]
            if url not in codes:
                codes[url] = new_code()
            pieces += [text[previous:start], f'{self.public_url}/s/{codes[url]}']
            previous = end
        pieces.append(text[previous:])
        rows = [(code, url, message_id, task_id, 0, now, now) for url, code in codes.items()]
        return ''.join(pieces), rows

    def track(self, page: str, message_id: str) -> str:
        """An HTML email with an open pixel and its http(s) links going through the click counter."""
        def tracked(match: re.Match) -> str:
            url = html.unescape(match.group(3)).strip()
            redirect = f'{self.public_url}/t/c/{self.token(message_id, url)}?u={quote(url, safe="")}'
            return f'{match.group(1)}{match.group(2)}{html.escape(redirect)}{match.group(2)}'

        page = _HREF.sub(tracked, page)
        pixel = (f'<img src="{self.public_url}/t/o/{self.token(message_id, "")}.gif" width="1" height="1" '
                 'alt="">')
        ends = list(_BODY_END.finditer(page))
        if ends:
            return page[:ends[-1].start()] + pixel + page[ends[-1].start():]
        return page + pixel

    def token(self, message_id: str, url: str) -> str:
        """The message id and a signature of it with the URL (empty for the open pixel): nobody can make Herald
        redirect elsewhere, nor count opens of a message they did not receive."""
        return f'{message_id}.{self._signature(message_id, url)}'

    def _signature(self, message_id: str, url: str) -> str:
        digest = hmac.new(self.secret.encode(), f'{message_id}\n{url}'.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:16]).decode().rstrip('=')

    def verified(self, token: str, url: str) -> str | None:
        """The message id of a genuine token for `url`; None for anything else."""
        match = _TOKEN.fullmatch(token or '')
        if match is None or not hmac.compare_digest(match.group(2), self._signature(match.group(1), url)):
            return None
        return match.group(1)


# --- visits -----------------------------------------------------------------------------------------------------

async def visit_short_link(code: str) -> str | None:
    """Count a visit of a short link; its target, or None when there is no such link."""
    if not _CODE.fullmatch(code or ''):
        return None
    now = datetime.now(timezone.utc)
    async with in_transaction():
        rows = await sql.execute(
            'UPDATE short_links SET clicks = clicks + 1, first_visit_at = COALESCE(first_visit_at, ?), '
            'last_visit_at = ?, updated_at = ? WHERE code = ? RETURNING target, message_id', [now, now, now, code])
        if not rows:
            return None
        changed = await _count(rows[0]['message_id'], 'short_link_clicks') if rows[0]['message_id'] else []
    _publish(changed, now)
    return rows[0]['target']


async def count_email(message_id: str, column: str) -> None:
    """An open ('email_opens') or a click ('email_clicks') of a tracked email."""
    changed = await _count(message_id, column)
    _publish(changed, datetime.now(timezone.utc))


_COUNTERS = frozenset({'short_link_clicks', 'email_opens', 'email_clicks'})


async def _count(message_id: Any, column: str) -> list[dict[str, Any]]:
    assert column in _COUNTERS
    return await sql.execute(f'UPDATE messages SET {column} = {column} + 1 WHERE id = ? '
                             'RETURNING id, notification_id, channel, status', [str(message_id)])


def _publish(rows: list[dict[str, Any]], now: datetime) -> None:
    events.publish([events.MessageChanged(str(row['id']), str(row['notification_id']), Channel(row['channel']),
                                          MessageStatus(row['status']), now) for row in rows])


# --- the API's list ---------------------------------------------------------------------------------------------

MAX_PAGE = 1000
MAX_OFFSET = 2 ** 31  # a larger one finds nothing anyway, and would overflow the database's integer


@dataclass(frozen=True)
class LinkFilter:
    message_id: str | None = None
    task_id: str | None = None


async def list_short_links(actor: Actor, filters: LinkFilter, offset: int = 0, limit: int = 20
                           ) -> tuple[int, list[dict[str, Any]]]:
    """(total, one page) of short links, oldest first; a filter that is no id finds none."""
    actor.require(Permission.VIEW)
    clause = sql.Where('short_links', steer=False)
    for column, value in (('message_id', filters.message_id), ('task_id', filters.task_id)):
        if value is not None:
            parsed = templates.parse_id(value)
            if parsed is None:
                return 0, []
            clause.add(f'{clause.column(column)} = ?', str(parsed))
    where, params = clause.clause()
    total = (await sql.execute(f'SELECT count(*) AS n FROM short_links WHERE {where}', params))[0]['n']
    rows = await sql.execute(
        'SELECT id, code, target, message_id, task_id, clicks, created_at, updated_at, first_visit_at, '
        f'last_visit_at FROM short_links WHERE {where} ORDER BY id LIMIT ? OFFSET ?',
        [*params, min(max(1, limit), MAX_PAGE), min(max(0, offset), MAX_OFFSET)])
    return total, rows


GIF = base64.b64decode('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7')
