"""User management for admins, with guard rails that keep Herald administrable."""
from __future__ import annotations

from tortoise.transactions import in_transaction

from . import audit, auth
from .auth import Actor, Permission
from .errors import NotFound, PermissionDenied, ValidationError
from .models import Role, User

ENTITY = 'user'


async def list_users(actor: Actor) -> list[User]:
    actor.require(Permission.MANAGE_USERS)
    return await User.all().order_by('email')


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError as error:
        raise ValidationError({'role': f'Choose one of: {", ".join(r.value for r in Role)}.'}) from error


def _state(user: User) -> dict[str, object]:
    return {'email': user.email, 'name': user.name, 'role': user.role.value, 'is_active': user.is_active}


async def add_user(actor: Actor, email: str, password: str, role: Role | str, name: str = '') -> User:
    actor.require(Permission.MANAGE_USERS)
    async with in_transaction():
        user = await auth.create_user(email, password, _role(role), name)
        await audit.record(actor, 'create', ENTITY, user.id, f'Added {user.role.value} {user.email}',
                           audit.diff({}, _state(user)))
    return user


async def _lock_admins() -> None:
    """Lock the active admins, always in the same order, before the user to change: two admins demoting each
    other at once then take turns (and the second sees the first's change) instead of deadlocking."""
    await User.filter(role=Role.ADMIN, is_active=True).order_by('id').select_for_update()


async def _get(user_id: int) -> User:
    user = await User.filter(id=user_id).select_for_update().first()
    if user is None:
        raise NotFound('This user no longer exists.')
    return user


async def _guard(actor: Actor, user: User, what: str) -> None:
    """Refuse to let an admin lock themselves out, or anyone remove the last active admin."""
    if user.id == actor.user_id:
        raise PermissionDenied(f'You cannot {what} yourself: ask another admin.')
    others = User.filter(role=Role.ADMIN, is_active=True).exclude(id=user.id)
    if user.role is Role.ADMIN and user.is_active and not await others.exists():
        raise PermissionDenied(f'{user.email} is the last active admin and cannot be {what}d.')


async def _save(actor: Actor, user: User, before: dict[str, object], summary: str, end_sessions: bool) -> None:
    if end_sessions:
        user.session_version += 1
    await user.save()
    await audit.record(actor, 'update', ENTITY, user.id, summary, audit.diff(before, _state(user)))


async def change_role(actor: Actor, user_id: int, role: Role | str) -> User:
    actor.require(Permission.MANAGE_USERS)
    role = _role(role)
    async with in_transaction():
        await _lock_admins()
        user = await _get(user_id)
        if user.role is role:
            return user
        if role is not Role.ADMIN:
            await _guard(actor, user, 'demote')
        before = _state(user)
        user.role = role
        await _save(actor, user, before, f'Changed the role of {user.email} to {role.value}', end_sessions=True)
    return user


async def set_active(actor: Actor, user_id: int, active: bool) -> User:
    actor.require(Permission.MANAGE_USERS)
    async with in_transaction():
        await _lock_admins()
        user = await _get(user_id)
        if user.is_active is active:
            return user
        if not active:
            await _guard(actor, user, 'deactivate')
        before = _state(user)
        user.is_active = active
        verb = 'Activated' if active else 'Deactivated'
        await _save(actor, user, before, f'{verb} {user.email}', end_sessions=not active)
    return user


async def reset_password(actor: Actor, user_id: int, new_password: str) -> User:
    """Set a new password, unlock the account and end its sessions."""
    actor.require(Permission.MANAGE_USERS)
    if len(new_password) < auth.MIN_PASSWORD_LENGTH:
        raise ValidationError({'password': f'The password needs at least {auth.MIN_PASSWORD_LENGTH} characters.'})
    async with in_transaction():
        user = await _get(user_id)
        before = _state(user)
        user.password_hash = auth.hash_password(new_password)
        user.failed_logins, user.locked_until = 0, None
        await _save(actor, user, before, f'Reset the password of {user.email}', end_sessions=True)
    return user


async def delete_user(actor: Actor, user_id: int) -> None:
    actor.require(Permission.MANAGE_USERS)
    async with in_transaction():
        await _lock_admins()
        user = await _get(user_id)
        await _guard(actor, user, 'delete')
        state = _state(user)
        await user.delete()
        await audit.record(actor, 'delete', ENTITY, user_id, f'Deleted {user.email}',
                           audit.diff(state, dict.fromkeys(state)))
