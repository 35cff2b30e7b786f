"""Errors that services raise and pages / the API translate for the user."""
from __future__ import annotations


class HeraldError(Exception):
    """Base class: the message is meant for the user."""


class ValidationError(HeraldError):
    """Bad input: `errors` maps a field name to a message; nothing was changed."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__('; '.join(f'{field}: {message}' for field, message in errors.items()))


class PermissionDenied(HeraldError):
    pass


class NotFound(HeraldError):
    pass


class LoginThrottled(HeraldError):
    pass
