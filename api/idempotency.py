"""`Idempotency-Key`: a POST to /api/v1 retried with the same key by the same owner gets the first answer again
instead of doing the work twice. The same key with another request answers 422; a retry while the first is still
being answered, 409. Answers of 500 and above are not kept (the retry does the work)."""
from __future__ import annotations

import hashlib
import json

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain import idempotency
from domain.messages import owner_of
from domain.models import IdempotentRequest

HEADER = b'idempotency-key'
MAX_KEY_LENGTH = 255


def install(app) -> None:
    """Add the middleware innermost, inside ApiGuard (whose actor names the owner), whenever this is called."""
    app.user_middleware.append(Middleware(Idempotency))


class Idempotency:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = dict(scope.get('headers') or []).get(HEADER) if scope['type'] == 'http' else None
        actor = scope.get('state', {}).get('actor')
        if key is None or scope['method'] != 'POST' or not scope['path'].startswith('/api/v1/') or actor is None:
            await self.app(scope, receive, send)
            return
        key_text = key.decode('latin-1').strip()
        if not key_text or len(key_text) > MAX_KEY_LENGTH:
            await _error(send, 422, f'The Idempotency-Key header needs 1 to {MAX_KEY_LENGTH} characters.')
            return
        body = await _read_body(receive)
        fingerprint = hashlib.sha256(b'%s?%s\n%s' % (scope['path'].encode(), scope.get('query_string', b''), body)
                                     ).hexdigest()
        claimed = await idempotency.begin(owner_of(actor), key_text, scope['path'], fingerprint)
        if isinstance(claimed, idempotency.Kept):
            await _repeat(send, claimed, fingerprint)
            return
        await self._answer(scope, body, send, claimed)

    async def _answer(self, scope: Scope, body: bytes, send: Send, record: IdempotentRequest) -> None:
        """Run the request, pass its answer on and keep it (or drop the record when it failed)."""
        status, chunks, headers = 500, [], []
        sent_body = False

        async def replay() -> Message:
            nonlocal sent_body
            if sent_body:
                return {'type': 'http.disconnect'}
            sent_body = True
            return {'type': 'http.request', 'body': body, 'more_body': False}

        async def keep(message: Message) -> None:
            nonlocal status, headers
            if message['type'] == 'http.response.start':
                status, headers = message['status'], message.get('headers', [])
            elif message['type'] == 'http.response.body':
                chunks.append(message.get('body', b''))
            await send(message)

        try:
            await self.app(scope, replay, keep)
        finally:
            if status < 500:
                content_type = dict(headers).get(b'content-type', b'application/json').decode('latin-1')
                await idempotency.keep(record, status, content_type, b''.join(chunks))
            else:
                await idempotency.forget(record)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message['type'] != 'http.request':
            break
        chunks.append(message.get('body', b''))
        if not message.get('more_body'):
            break
    return b''.join(chunks)


async def _repeat(send: Send, kept: idempotency.Kept, fingerprint: str) -> None:
    if kept.status_code is None:
        await _error(send, 409, 'A request with this Idempotency-Key is still being answered: retry later.')
    elif kept.fingerprint != fingerprint:
        await _error(send, 422, 'This Idempotency-Key was used for another request: use a new key for it.')
    else:
        await _send(send, kept.status_code, kept.body, kept.content_type, replayed=True)


async def _error(send: Send, status: int, message: str) -> None:
    await _send(send, status, json.dumps({'error': {'message': message}}).encode(), 'application/json')


async def _send(send: Send, status: int, body: bytes, content_type: str, replayed: bool = False) -> None:
    headers = [(b'content-type', content_type.encode('latin-1')), (b'content-length', str(len(body)).encode())]
    if replayed:
        headers.append((b'idempotent-replayed', b'true'))
    await send({'type': 'http.response.start', 'status': status, 'headers': headers})
    await send({'type': 'http.response.body', 'body': body})

