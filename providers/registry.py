"""The providers Herald ships, found by name, and their settings validated against each one's schema.

A provider class may define `check_settings(settings: dict) -> dict[str, str]` for rules a schema field cannot
express (ranges, combinations); it returns {key: message} for what is wrong.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.providers import Provider, ProviderConfigError, ReportSink, SettingField

from .simulator import SimulatorProvider
from .smtp import SmtpProvider

PROVIDERS: dict[str, type] = {cls.name: cls for cls in (
    SimulatorProvider,
    SmtpProvider,
)}

_TRUE = frozenset({'true', '1', 'yes', 'on'})
_FALSE = frozenset({'false', '0', 'no', 'off'})


class InvalidSettings(ProviderConfigError):
    """Settings that do not fit the schema: `errors` maps a setting key to what is wrong with it."""

    def __init__(self, provider: str, errors: dict[str, str]) -> None:
        self.errors = errors
        details = '; '.join(f'{key}: {message}' for key, message in errors.items())
        super().__init__(f'Invalid settings for provider {provider!r}: {details}')


def provider_class(name: str) -> type:
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ', '.join(sorted(PROVIDERS))
        raise ProviderConfigError(f'Unknown provider {name!r}; known providers: {known}') from None


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


def create_provider(name: str, route_name: str, raw_settings: Mapping[str, Any],
                    report_sink: ReportSink | None) -> Provider:
    cls = provider_class(name)
    return cls(route_name, validate_settings(cls, raw_settings), report_sink)
