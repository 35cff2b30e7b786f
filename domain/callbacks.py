"""Signatures of client callbacks: `X-Herald-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`.

The key is `settings().callback_secret` (HERALD_CALLBACK_SECRET, or `callback.key` in the data dir). The body
carries `changedAt`, so a receiver that wants to refuse replays can check its age: it is covered by the signature."""
from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = 'X-Herald-Signature'
DELIVERY_HEADER = 'X-Herald-Delivery'  # the outbox row id: the same id on a retry, for receivers that dedupe
_PREFIX = 'sha256='


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for `body`."""
    return _PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, signature: str) -> bool:
    """Whether `signature` (the header's value) was made for exactly these bytes with this secret."""
    return hmac.compare_digest(sign(body, secret).encode(), signature.strip().encode())
