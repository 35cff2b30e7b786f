"""SMS segmentation and pricing helpers (GSM 03.38 / UCS-2), pure functions."""
from __future__ import annotations

from dataclasses import dataclass

GSM7 = 'GSM-7'
UCS2 = 'UCS-2'

# GSM 03.38 default alphabet (0x1B, the escape to the extension table, excluded).
GSM7_BASIC: frozenset[str] = frozenset(
    '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ'
    ' !"#¤%&\'()*+,-./0123456789:;<=>?'
    '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§'
    '¿abcdefghijklmnopqrstuvwxyzäöñüà'
)
# Extension table: each character costs two septets (escape + char).
GSM7_EXTENSION: frozenset[str] = frozenset('\f^{}\\[~]|€')

GSM7_SINGLE, GSM7_MULTI = 160, 153  # septets; multi-part loses 7 to the UDH
UCS2_SINGLE, UCS2_MULTI = 70, 67  # UTF-16 code units


@dataclass(frozen=True)
class SmsInfo:
    """Encoding and segmentation of one message.

    ``units`` are septets (GSM-7) or UTF-16 code units (UCS-2); ``per_part`` is
    the capacity of each part (160/153 or 70/67); ``remaining`` is the units
    still free in the last part.
    """

    encoding: str
    units: int
    parts: int
    per_part: int
    remaining: int


GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION


def is_gsm7(text: str) -> bool:
    """True if every character is in the GSM-7 basic or extension table."""
    return set(text) <= GSM7_ALL


def _cost(char: str, gsm: bool) -> int:
    if gsm:
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1  # surrogate pair


def _units(text: str) -> tuple[bool, int]:
    """(GSM-7?, units) of a text, counted with set and string operations rather than per character."""
    characters = set(text)
    if characters <= GSM7_ALL:
        return True, len(text) + sum(text.count(c) for c in characters & GSM7_EXTENSION)
    if text.isascii() or max(text) <= '\uffff':
        return False, len(text)
    return False, len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _layout(text: str) -> tuple[str, int, int, list[str]]:
    """(encoding, units, per_part, parts) for ``text``."""
    gsm, units = _units(text)
    encoding = GSM7 if gsm else UCS2
    single, multi = (GSM7_SINGLE, GSM7_MULTI) if gsm else (UCS2_SINGLE, UCS2_MULTI)
    if not text:
        return encoding, 0, single, []
    if units <= single:
        return encoding, units, single, [text]
    # Greedy fill; a two-unit character (escape pair / surrogate pair) that
    # would straddle the boundary moves whole to the next part.
    parts: list[str] = []
    start, used = 0, 0
    for i, char in enumerate(text):
        cost = _cost(char, gsm)
        if used + cost > multi:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    return encoding, units, multi, parts


def analyze(text: str) -> SmsInfo:
    """Encoding, size and part count of ``text``.

    Empty text has 0 units and 0 parts (nothing to send); ``remaining`` is then
    the full single-part capacity.
    """
    encoding, units, per_part, parts = _layout(text)
    if len(parts) == 1:
        return SmsInfo(encoding, units, 1, per_part, per_part - units)
    last = sum(_cost(c, encoding == GSM7) for c in parts[-1]) if parts else 0
    return SmsInfo(encoding, units, len(parts), per_part, per_part - last)


def part_count(text: str) -> int:
    """`analyze(text).parts`, at once for the short texts most messages are: up to 70 ASCII characters fit one part
    in either encoding (35 characters of any kind do)."""
    if text and (len(text) <= 35 or (len(text) <= UCS2_SINGLE and text.isascii())):
        return 1
    return analyze(text).parts


def split(text: str) -> list[str]:
    """The texts of the parts, as counted by :func:`analyze` (``[]`` if empty).

    Never splits a GSM-7 escape sequence or a UTF-16 surrogate pair.
    """
    return _layout(text)[3]
