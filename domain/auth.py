"""Users, roles, sign-in with throttling, API tokens (JWT) and API keys."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from .config import settings
from .errors import LoginThrottled, NotFound, PermissionDenied, ValidationError
from .models import ApiKey, Role, User
from .phones import is_valid_email

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash('not a password')  # keeps timing equal for unknown emails
MAX_FAILED_LOGINS = 5
LOCK_MINUTES = 15
MIN_PASSWORD_LENGTH = 8
API_KEY_PREFIX = 'hk_'
ALL_SCOPES = '*'
DEFAULT_RATE_LIMIT = 600
MAX_RATE_LIMIT = 100_000
USER_RATE_LIMIT = 3000  # requests a minute with a user's token: generous, it only stops a runaway client
LAST_USED_RESOLUTION = timedelta(minutes=1)  # a key's last_used_at is written at most this often
TOKEN_TTL, MIN_TOKEN_TTL, MAX_TOKEN_TTL = 3600, 60, 86400  # seconds
REFRESH_TOKEN_TTL = timedelta(days=30)


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
    METRICS_READ = 'metrics:read'  # GET /metrics from outside HERALD_METRICS_ALLOW (a Prometheus server's key)

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
    rate_limit_per_minute: int = USER_RATE_LIMIT

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


@dataclass(frozen=True)
class TokenPair:
    auth_token: str
    refresh_token: str


def _signing_key() -> bytes:
    """Derived from the app secret, so that tokens and session cookies never share a key."""
    return hashlib.sha256(b'herald api tokens\0' + settings().secret.encode()).digest()


def _token(user: User, kind: str, lifetime: timedelta) -> str:
    issued = now()
    claims = {'sub': str(user.id), 'sv': user.session_version, 'typ': kind, 'iat': issued, 'exp': issued + lifetime}
    return jwt.encode(claims, _signing_key(), algorithm='HS256')


def _check_ttl(ttl: int) -> None:
    if not MIN_TOKEN_TTL <= ttl <= MAX_TOKEN_TTL:
        raise ValidationError({'ttl': f'The lifetime must be {MIN_TOKEN_TTL}..{MAX_TOKEN_TTL} seconds.'})


def issue_tokens(user: User, ttl: int = TOKEN_TTL) -> TokenPair:
    """An auth token living `ttl` seconds and a refresh token; both end when the user's sessions end."""
    _check_ttl(ttl)
    return TokenPair(_token(user, 'auth', timedelta(seconds=ttl)), _token(user, 'refresh', REFRESH_TOKEN_TTL))


async def login(email: str, password: str, ttl: int = TOKEN_TTL) -> TokenPair | None:
    """Tokens for these credentials, or None when they are wrong (LoginThrottled while the account is locked)."""
    _check_ttl(ttl)  # before the sign-in attempt, so that a bad ttl does not count as a failed sign-in
    try:
        user = await authenticate(email, password)
    except ValidationError:
        return None
    return issue_tokens(user, ttl)


async def _user_of_token(token: str, kind: str) -> User | None:
    try:
        claims = jwt.decode(token, _signing_key(), algorithms=['HS256'],
                            options={'require': ['exp', 'sub', 'typ', 'sv']})
    except jwt.InvalidTokenError:
        return None
    if claims['typ'] != kind or not str(claims['sub']).isdigit() or not isinstance(claims['sv'], int):
        return None
    return await active_user(int(claims['sub']), claims['sv'])


async def refresh(refresh_token: str, ttl: int = TOKEN_TTL) -> TokenPair | None:
    """A new pair for a valid refresh token of a still active user, or None."""
    user = await _user_of_token(refresh_token, 'refresh')
    return None if user is None else issue_tokens(user, ttl)


async def actor_for_token(token: str) -> Actor | None:
    """The caller behind a bearer token: an API key (hk_...) or a user's auth token; None if invalid or revoked."""
    if token.startswith(API_KEY_PREFIX):
        return await actor_for_api_key(token)
    user = await _user_of_token(token, 'auth')
    return None if user is None else Actor.of(user)


def _hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _valid_key_input(name: str, scopes: list[str], rate_limit_per_minute: int) -> dict[str, str]:
    errors = {}
    if not name:
        errors['name'] = 'Give the key a name.'
    elif len(name) > 200:
        errors['name'] = 'Keep the name under 200 characters.'
    if scopes != [ALL_SCOPES] and not set(scopes) <= {scope.value for scope in Scope}:
        errors['scopes'] = 'Choose scopes from the list.'
    elif not scopes:
        errors['scopes'] = 'Choose at least one scope.'
    if not 1 <= rate_limit_per_minute <= MAX_RATE_LIMIT:
        errors['rate_limit_per_minute'] = f'Allow 1 to {MAX_RATE_LIMIT:,} requests a minute.'
    return errors


async def create_api_key(name: str, scopes: list[str] | None = None, rate_limit_per_minute: int = DEFAULT_RATE_LIMIT,
                         actor: Actor = SYSTEM) -> tuple[ApiKey, str]:
    """A new API key and its secret, shown once; only its SHA-256 is stored (it is random, so no slow hash).
    Without scopes the key may do everything; the command line creates keys as SYSTEM."""
    actor.require(Permission.MANAGE_SETTINGS)
    name = name.strip()
    scopes = [ALL_SCOPES] if scopes is None else list(dict.fromkeys(getattr(s, 'value', s) for s in scopes))
    if errors := _valid_key_input(name, scopes, rate_limit_per_minute):
        raise ValidationError(errors)
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = await ApiKey.create(name=name, prefix=secret[:10], key_hash=_hash_key(secret), scopes=scopes,
                              rate_limit_per_minute=rate_limit_per_minute, created_by_id=actor.user_id)
    state = {'name': name, 'scopes': scopes, 'rate_limit_per_minute': rate_limit_per_minute}
    await _audit(actor, 'create', key, f'Created API key {name}', {field: [None, v] for field, v in state.items()})
    return key, secret


async def list_api_keys(actor: Actor) -> list[ApiKey]:
    """All keys, newest first, with `created_by` fetched."""
    actor.require(Permission.MANAGE_SETTINGS)
    return await ApiKey.all().order_by('-created_at', '-id').prefetch_related('created_by')


async def revoke_api_key(actor: Actor, key_id: int) -> ApiKey:
    """Revoke a key: the next request with it is refused."""
    actor.require(Permission.MANAGE_SETTINGS)
    key = await ApiKey.get_or_none(id=key_id)
    if key is None:
        raise NotFound('This API key no longer exists.')
    if key.revoked_at is None:
        key.revoked_at = now()
        await key.save(update_fields=['revoked_at'])
        await _audit(actor, 'revoke', key, f'Revoked API key {key.name}',
                     {'revoked_at': [None, key.revoked_at.isoformat()]})
    return key


async def _audit(actor: Actor, action: str, key: ApiKey, summary: str, changes: dict[str, list]) -> None:
    from . import audit  # audit imports Actor from this module
    await audit.record(actor, action, 'api_key', key.id, summary, changes)


def key_scopes(key: ApiKey) -> frozenset[Scope]:
    if ALL_SCOPES in key.scopes:
        return frozenset(Scope)
    return frozenset(scope for scope in Scope if scope.value in key.scopes)


async def actor_for_api_key(secret: str) -> Actor | None:
    """The key's actor: its scopes limit what it may call; it acts as an operator, or as an admin when it may
    change settings (settings services need the admin's permission)."""
    key = await ApiKey.get_or_none(key_hash=_hash_key(secret), revoked_at=None)
    if key is None:
        return None
    moment = now()
    if key.last_used_at is None or moment - key.last_used_at >= LAST_USED_RESOLUTION:
        await ApiKey.filter(id=key.id).update(last_used_at=moment)
    scopes = key_scopes(key)
    role = Role.ADMIN if Scope.SETTINGS_WRITE in scopes else Role.OPERATOR
    return Actor(label=f'API key {key.name}', role=role, api_key_id=key.id, scopes=scopes,
                 rate_limit_per_minute=key.rate_limit_per_minute)
