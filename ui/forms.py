"""Small helpers shared by the forms of every page."""
from __future__ import annotations

from collections.abc import Mapping

from nicegui import ui

from domain.errors import ValidationError


def show_errors(error: ValidationError, inputs: Mapping[str, ui.element]) -> None:
    """Show each message next to its field; messages for fields without an input go to a notification."""
    for element in inputs.values():
        element.props(remove='error error-message')
        if hasattr(element, 'error'):
            element.error = None
    rest = []
    for field, message in error.errors.items():
        element = inputs.get(field)
        if element is not None and hasattr(element, 'error'):
            element.error = message
        else:
            rest.append(message)
    if rest:
        ui.notify('\n'.join(rest), type='negative', multi_line=True)
