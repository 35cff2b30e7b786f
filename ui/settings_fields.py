"""A provider's settings as form inputs, drawn from its schema (Settings → Channels & providers: routes and phone
checks). Secret settings are never sent to the browser: their inputs start empty and keep the stored value."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from domain.providers import SettingField, StoredSettings


class SettingsFields:
    """The inputs of one provider's settings, drawn again when the form's provider changes: `schema_of(provider)`
    gives its fields, and `stored` what is saved (shown while the form's provider is the stored one). Their inputs
    are kept in `inputs` under `settings.<key>`, where the service's errors name them."""

    def __init__(self, container: ui.element, inputs: dict[str, ui.element],
                 schema_of: Callable[[str], tuple[SettingField, ...]], stored: StoredSettings | None) -> None:
        self.container = container
        self.inputs = inputs
        self.schema_of = schema_of
        self.stored = stored
        self.fields: dict[str, ui.element] = {}
        self.removals: dict[str, ui.checkbox] = {}

    def build(self, provider: str | None) -> None:
        self.container.clear()
        for key in [key for key in self.inputs if key.startswith('settings.')]:
            del self.inputs[key]
        self.fields, self.removals = {}, {}
        same = self.stored is not None and self.stored.provider == provider
        values = self.stored.settings if same else {}
        secrets = self.stored.secrets if same else frozenset()
        with self.container:
            schema = self.schema_of(provider or '')
            if not schema:
                ui.label('This provider has no settings.').classes('text-grey-7')
            for field in schema:
                element = self._input(field, values.get(field.key, field.default), field.key in secrets)
                self.fields[field.key] = self.inputs[f'settings.{field.key}'] = element

    def _input(self, field: SettingField, value: Any, has_secret: bool) -> ui.element:
        label = f'{field.label} *' if field.required else field.label
        if field.kind == 'bool':
            element = ui.switch(label, value=bool(value))
            if field.help:
                ui.label(field.help).classes('text-caption text-grey-7 -mt-2')
            return element
        if field.kind == 'choice':
            element = ui.select(list(field.choices), label=label, value=value)
        elif field.kind == 'secret':
            element = ui.input(label, password=True, password_toggle_button=True)
            if has_secret:
                element.props['placeholder'] = 'Leave empty to keep'
                self.removals[field.key] = ui.checkbox(f'Remove the stored {field.label.lower()}')
        elif field.kind == 'multiline':
            element = ui.textarea(label, value='' if value is None else str(value)).props('autogrow')
        else:
            element = ui.input(label, value='' if value is None else str(value))
            if field.kind in ('int', 'float'):
                element.props['inputmode'] = 'numeric' if field.kind == 'int' else 'decimal'
        if field.help:
            element.props['hint'] = field.help
        return element.classes('w-full')

    def values(self) -> dict[str, Any]:
        return {key: element.value for key, element in self.fields.items()}

    def cleared(self) -> frozenset[str]:
        return frozenset(key for key, checkbox in self.removals.items() if checkbox.value)
