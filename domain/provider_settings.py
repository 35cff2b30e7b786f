"""A provider's settings: validated against its schema (`SettingField`s), and kept secret where the schema says so.

A provider class may define `check_settings(settings: dict) -> dict[str, str]` for rules a schema field cannot
express (ranges, combinations); it returns {key: message} for what is wrong.

Secret settings (kind 'secret') never leave in clear: forms get them left out (`stored_settings`), audit records
masked (`mask_settings`), and a secret a form leaves empty keeps the stored one (`settings_to_store`). Used for
message routes (domain.routes) and the phone-check provider (domain.hlr) alike.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ValidationError
from .providers import ProviderConfigError, SettingField, StoredSettings

MASK = '••••••'
_TRUE = frozenset({'true', '1', 'yes', 'on'})
_FALSE = frozenset({'false', '0', 'no', 'off'})


class InvalidSettings(ProviderConfigError):
    """Settings that do not fit the schema: `errors` maps a setting key to what is wrong with it."""

    def __init__(self, provider: str, errors: dict[str, str]) -> None:
        self.errors = errors
        details = '; '.join(f'{key}: {message}' for key, message in errors.items())
        super().__init__(f'Invalid settings for provider {provider!r}: {details}')


def validate_settings(cls: type, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults applied, strings coerced to the field's kind; raises InvalidSettings naming every bad key."""
    schema: tuple[SettingField, ...] = cls.settings_schema
    known = {f.key for f in schema}
    errors = {key: f'unknown setting (known: {", ".join(sorted(known))})' for key in raw if key not in known}
    settings: dict[str, Any] = {}
    for field in schema:
        value = raw.get(field.key)
        if value is None or value == '':
            if field.required and field.default is None:
                errors[field.key] = 'required'
            settings[field.key] = field.default
            continue
        try:
            settings[field.key] = _coerce(field, value)
        except ValueError as error:
            errors[field.key] = str(error)
    if not errors and (check := getattr(cls, 'check_settings', None)):
        errors = check(settings)
    if errors:
        raise InvalidSettings(cls.name, errors)
    return settings


def _coerce(field: SettingField, value: Any) -> Any:
    kind = field.kind
    if kind == 'bool':
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f'expected true or false, got {value!r}')
    if kind == 'int':
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip('+-').isdigit():
            return int(value)
        raise ValueError(f'expected a whole number, got {value!r}')
    if kind == 'float':
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f'expected a number, got {value!r}')
    if not isinstance(value, str):
        raise ValueError(f'expected text, got {value!r}')
    if kind == 'choice' and value not in field.choices:
        raise ValueError(f'expected one of {", ".join(field.choices)}, got {value!r}')
    return value


def is_secret(cls: type | None, key: str) -> bool:
    """Whether the provider declares the setting secret; every setting of an unknown provider is, to be safe."""
    return cls is None or any(f.key == key and f.kind == 'secret' for f in cls.settings_schema)


def given(value: Any) -> bool:
    return value is not None and value != ''


def stored_settings(cls: type | None, provider: str, settings: Mapping[str, Any]) -> StoredSettings:
    """What a form may show of saved settings: no secret, only which secrets have a value."""
    return StoredSettings(provider, {key: value for key, value in settings.items() if not is_secret(cls, key)},
                          frozenset(key for key, value in settings.items() if value and is_secret(cls, key)))


def settings_to_store(cls: type, form: Mapping[str, Any], stored: Mapping[str, Any],
                      clear_secrets: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The settings a form gives, coerced to their kinds (unset ones take the provider's defaults when it is built),
    with the `stored` secrets it leaves empty and does not clear (pass no `stored` when the provider changes).
    Raises ValidationError naming each bad one `settings.<key>`."""
    kept = {key: value for key, value in stored.items()
            if is_secret(cls, key) and key not in clear_secrets and not given(form.get(key))}
    merged = {**kept, **{key: value for key, value in form.items() if given(value)}}
    try:
        valid = validate_settings(cls, merged)
    except InvalidSettings as error:
        raise ValidationError({f'settings.{key}': message[:1].upper() + message[1:]
                               for key, message in error.errors.items()}) from None
    return {key: valid[key] for key in merged}


def mask_settings(changes: dict[str, Any], old: type | None, new: type | None) -> dict[str, Any]:
    """An audit.diff whose `settings.<key>` entries show secrets as MASK: a change is visible, its value is not."""
    for key, (before, after) in changes.items():
        if key.startswith('settings.'):
            setting = key.removeprefix('settings.')
            changes[key] = [MASK if given(value) and is_secret(cls, setting) else value
                            for value, cls in ((before, old), (after, new))]
    return changes
