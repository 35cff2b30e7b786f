"""Users, roles, sign-in with throttling, and API keys."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from .errors import LoginThrottled, PermissionDenied, ValidationError
from .models import ApiKey, Role, User
from .phones import is_valid_email

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash('not a password')  # keeps timing equal for unknown emails
MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15
MIN_PASSWORD_LENGTH = 8
API_KEY_PREFIX = 'hk_'


class Permission(Enum):
    VIEW = 'view'
    MANAGE_TEMPLATES = 'manage templates'
    SEND = 'send notifications'
    REQUEST_SENDER = 'request sender names'
    DECIDE_SENDER = 'approve sender names'
    MANAGE_SETTINGS = 'change settings'
    MANAGE_USERS = 'manage users'


class Scope(str, Enum):
    """What an API key may do over the API (a user's token may do what the user's role permits)."""
    MESSAGES_SEND = 'messages:send'
    MESSAGES_READ = 'messages:read'
    PHONES_CHECK = 'phones:check'
    TEMPLATES_READ = 'templates:read'
    TEMPLATES_WRITE = 'templates:write'
    TASKS_READ = 'tasks:read'
    TASKS_WRITE = 'tasks:write'
    SETTINGS_READ = 'settings:read'
    SETTINGS_WRITE = 'settings:write'

    @property
    def label(self) -> str:
        noun, verb = self.value.split(':')
        return f'{verb.capitalize()} {noun}'


_OPERATOR = {Permission.VIEW, Permission.MANAGE_TEMPLATES, Permission.SEND, Permission.REQUEST_SENDER}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.VIEW}),
    Role.OPERATOR: frozenset(_OPERATOR),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True)
class Actor:
    """Who does something: a signed-in user or an API key."""
    label: str
    role: Role
    user_id: int | None = None
    api_key_id: int | None = None
    scopes: frozenset[Scope] = frozenset(Scope)

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def has_scope(self, scope: Scope) -> bool:
        return scope in self.scopes

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise PermissionDenied(f'Your role ({self.role.value}) may not {permission.value}.')

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(label=user.email, role=user.role, user_id=user.id)


SYSTEM = Actor(label='system', role=Role.ADMIN)


def now() -> datetime:
    return datetime.now(timezone.utc)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _validate_user_fields(email: str, password: str | None) -> dict[str, str]:
    errors = {}
    if not is_valid_email(email):
        errors['email'] = 'Enter a valid email address.'
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        errors['password'] = f'The password needs at least {MIN_PASSWORD_LENGTH} characters.'
    return errors


async def has_users() -> bool:
    return await User.exists()


async def create_user(email: str, password: str, role: Role, name: str = '') -> User:
    """Create a user (no permission check: callers are the first-run page, the CLI and `users.add_user`)."""
    email = email.strip().lower()
    errors = _validate_user_fields(email, password)
    if not errors and await User.filter(email=email).exists():
        errors['email'] = 'A user with this email already exists.'
    if errors:
        raise ValidationError(errors)
    return await User.create(email=email, name=name.strip(), password_hash=hash_password(password), role=role)


async def create_first_admin(email: str, password: str, name: str = '') -> User:
    """The first-run page's admin, who is signed in right away."""
    if await has_users():
        raise PermissionDenied('Herald already has users: sign in instead.')
    user = await create_user(email, password, Role.ADMIN, name)
    user.last_login_at = now()
    await user.save(update_fields=['last_login_at'])
    return user


async def authenticate(email: str, password: str) -> User:
    """The active user with these credentials; failed attempts lock the account for a while."""
    user = await User.get_or_none(email=email.strip().lower())
    if user is not None and user.locked_until and user.locked_until > now():
        minutes = max(1, int((user.locked_until - now()).total_seconds() // 60) + 1)
        raise LoginThrottled(f'Too many failed sign-ins. Try again in {minutes} minute(s).')
    if user is None or not user.is_active:
        _verify(_DUMMY_HASH, password)
        raise ValidationError({'password': 'Wrong email or password.'})
    if not _verify(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now() + timedelta(minutes=LOCK_MINUTES)
            user.failed_logins = 0
        await user.save(update_fields=['failed_logins', 'locked_until'])
        raise ValidationError({'password': 'Wrong email or password.'})
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now()
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    await user.save(update_fields=['failed_logins', 'locked_until', 'last_login_at', 'password_hash'])
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


async def active_user(user_id: int | None, session_version: int | None) -> User | None:
    """The user of a session, unless deactivated or signed out everywhere since."""
    if user_id is None:
        return None
    user = await User.get_or_none(id=user_id, is_active=True)
    if user is None or user.session_version != session_version:
        return None
    return user


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(name: str, created_by: User | None = None, scopes: list[str] | None = None) -> tuple[ApiKey, str]:
    """A new API key and its secret, shown once; only its SHA-256 is stored (it is random, so no slow hash)."""
    name = name.strip()
    if not name:
        raise ValidationError({'name': 'Give the key a name.'})
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = await ApiKey.create(name=name, prefix=secret[:10], key_hash=_hash_key(secret),
                              scopes=scopes or ['*'], created_by=created_by)
    return key, secret


async def actor_for_api_key(secret: str) -> Actor | None:
    key = await ApiKey.get_or_none(key_hash=_hash_key(secret), revoked_at=None)
    if key is None:
        return None
    await ApiKey.filter(id=key.id).update(last_used_at=now())
    return Actor(label=f'API key {key.name}', role=Role.OPERATOR, api_key_id=key.id)
