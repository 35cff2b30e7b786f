"""Tests for domain.sms: GSM-7 / UCS-2 segmentation."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.sms import GSM7_BASIC, GSM7_EXTENSION, SmsInfo, analyze, part_count, split

CYR = 'я'
EMOJI = '😀'


def units(part: str) -> int:
    """Units a part occupies in its message's encoding."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in part):
        return sum(2 if c in GSM7_EXTENSION else 1 for c in part)
    return len(part.encode('utf-16-le')) // 2


@pytest.mark.parametrize(('n', 'parts'), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)])
def test_gsm7_ascii_parts(n: int, parts: int) -> None:
    info = analyze('a' * n)
    assert info.encoding == 'GSM-7'
    assert info.units == n
    assert info.parts == parts
    assert len(split('a' * n)) == parts


def test_single_and_multi_capacity() -> None:
    assert analyze('a' * 160) == SmsInfo('GSM-7', 160, 1, 160, 0)
    assert analyze('a' * 161) == SmsInfo('GSM-7', 161, 2, 153, 153 - 8)
    assert analyze('hello') == SmsInfo('GSM-7', 5, 1, 160, 155)


def test_empty() -> None:
    assert analyze('') == SmsInfo('GSM-7', 0, 0, 160, 160)
    assert split('') == []


def test_extension_counts_two() -> None:
    assert len(GSM7_EXTENSION) == 10
    assert all(analyze(c).units == 2 for c in '^{}\\[~]|€\f')
    info = analyze('€' * 80)
    assert (info.encoding, info.units, info.parts, info.remaining) == ('GSM-7', 160, 1, 0)
    info = analyze('€' * 81)
    assert (info.units, info.parts) == (162, 2)


def test_extension_char_not_split_at_boundary() -> None:
    text = 'a' * 152 + '€' + 'b' * 10
    parts = split(text)
    assert parts == ['a' * 152, '€' + 'b' * 10]
    assert analyze(text).parts == 2
    assert analyze(text).remaining == 153 - 12
    # 81 '€': 76 fit in 152 septets, the 77th would straddle 153.
    assert split('€' * 81) == ['€' * 76, '€' * 5]


def test_straddle_can_add_a_part() -> None:
    # 306 septets would fit in 2 parts, but the '€' at 152..153 moves over.
    text = 'a' * 152 + '€' + 'a' * 152
    assert analyze(text).units == 306
    assert analyze(text).parts == 3
    assert [units(p) for p in split(text)] == [152, 153, 1]


def test_gsm7_basic_non_ascii() -> None:
    info = analyze('Ça coûte 5£ à Zürich')  # 'û' is not GSM-7
    assert info.encoding == 'UCS-2'
    info = analyze('Ça coute 5£ à Zürich, ¿Ñ? Δ€')
    assert info.encoding == 'GSM-7'
    assert info.units == len('Ça coute 5£ à Zürich, ¿Ñ? Δ€') + 1


@pytest.mark.parametrize(('n', 'parts'), [(70, 1), (71, 2), (134, 2), (135, 3), (300, 5)])
def test_ucs2_cyrillic_parts(n: int, parts: int) -> None:
    info = analyze(CYR * n)
    assert info.encoding == 'UCS-2'
    assert info.units == n
    assert info.parts == parts
    assert info.per_part == (70 if parts == 1 else 67)
    assert len(split(CYR * n)) == parts


def test_ucs2_remaining() -> None:
    assert analyze(CYR * 70).remaining == 0
    assert analyze(CYR * 300).remaining == 67 * 5 - 300


def test_one_cyrillic_letter_forces_ucs2() -> None:
    info = analyze('Your code is 1234, Сергей')
    assert info.encoding == 'UCS-2'
    assert info.units == 25
    assert analyze('a' * 69 + 'п').parts == 1
    assert analyze('a' * 70 + 'п').parts == 2
    assert analyze('a' * 70 + 'п').per_part == 67


def test_emoji_counts_two() -> None:
    assert analyze(EMOJI).units == 2
    assert analyze(EMOJI * 35) == SmsInfo('UCS-2', 70, 1, 70, 0)
    assert analyze(EMOJI * 36).parts == 2


def test_emoji_not_split_at_boundary() -> None:
    text = CYR * 66 + EMOJI + CYR * 3  # emoji would occupy units 67..68
    info = analyze(text)
    assert info.units == 71
    assert info.parts == 2
    parts = split(text)
    assert parts == [CYR * 66, EMOJI + CYR * 3]
    assert info.remaining == 67 - 5


# Mix of GSM basic, extension, Cyrillic and astral characters.
alphabet = st.sampled_from(sorted(GSM7_BASIC)[:20] + sorted(GSM7_EXTENSION) + ['a', 'я', EMOJI, '🇫', '中'])
texts = st.one_of(
    st.text(alphabet=alphabet, max_size=400),
    st.text(alphabet=st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION)), max_size=400),
    st.text(max_size=300),
)


@given(texts)
def test_split_properties(text: str) -> None:
    info = analyze(text)
    parts = split(text)
    assert ''.join(parts) == text
    assert len(parts) == info.parts
    assert all(parts)
    gsm = info.encoding == 'GSM-7'
    cost = (lambda c: 2 if c in GSM7_EXTENSION else 1) if gsm else (lambda c: 2 if ord(c) > 0xFFFF else 1)
    sizes = [sum(cost(c) for c in p) for p in parts]
    assert sum(sizes) == info.units
    limit = (160 if gsm else 70) if len(parts) <= 1 else (153 if gsm else 67)
    assert info.per_part == limit
    assert all(s <= limit for s in sizes)
    if parts:
        assert info.remaining == limit - sizes[-1]


@given(st.text(max_size=200))
def test_the_part_count_shortcut_agrees_with_analyze(text: str) -> None:
    assert part_count(text) == analyze(text).parts


@pytest.mark.parametrize('text', ['', 'Hi', 'x' * 70, 'x' * 71, '{' * 70, '`' * 71, 'я' * 35, 'я' * 71,
                                  '😀' * 35, '😀' * 36, 'a' * 161])
def test_the_part_count_shortcut_at_its_edges(text: str) -> None:
    assert part_count(text) == analyze(text).parts
