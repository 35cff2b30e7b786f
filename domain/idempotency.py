"""Answers kept for `Idempotency-Key`: a retried request gets the first answer instead of doing the work twice."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from tortoise.exceptions import IntegrityError

from .models import IdempotentRequest

KEEP = timedelta(hours=24)
ABANDONED = timedelta(minutes=10)  # an answer still missing after this: its process died, the key may be used again


@dataclass(frozen=True)
class Kept:
    """An earlier request with the same key: its answer, or None while it is still being answered."""
    fingerprint: str
    status_code: int | None
    content_type: str = ''
    body: bytes = b''


async def begin(owner: str, key: str, path: str, fingerprint: str) -> IdempotentRequest | Kept:
    """Claim the key for this request (a record to `keep` or `forget`), or what an earlier request with it left."""
    for _ in range(2):
        try:
            return await IdempotentRequest.create(owner=owner, key=key, method='POST', path=path[:500],
                                                  fingerprint=fingerprint)
        except IntegrityError:
            earlier = await IdempotentRequest.get_or_none(owner=owner, key=key)
            if earlier is None:  # dropped meanwhile: claim it again
                continue
            if earlier.status_code is None and earlier.created_at < datetime.now(timezone.utc) - ABANDONED:
                await IdempotentRequest.filter(id=earlier.id, status_code=None).delete()
                continue
            if earlier.status_code is None:
                return Kept(earlier.fingerprint, None)
            stored = json.loads(earlier.body)
            return Kept(earlier.fingerprint, earlier.status_code, stored['contentType'], stored['body'].encode())
    return Kept(fingerprint, None)


async def keep(record: IdempotentRequest, status_code: int, content_type: str, body: bytes) -> None:
    record.status_code = status_code
    record.body = json.dumps({'contentType': content_type, 'body': body.decode('utf-8', 'replace')})
    await record.save(update_fields=['status_code', 'body'])


async def forget(record: IdempotentRequest) -> None:
    """The request failed on our side: a retry does the work again."""
    await record.delete()


async def delete_expired() -> int:
    """Forget the answers older than a day (a sweep); returns how many went."""
    return await IdempotentRequest.filter(created_at__lt=datetime.now(timezone.utc) - KEEP).delete()
