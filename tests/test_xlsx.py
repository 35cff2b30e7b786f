"""domain/xlsx.py: files read back with openpyxl and python-calamine."""
from __future__ import annotations

import zipfile
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from python_calamine import CalamineWorkbook

from domain.xlsx import MAX_TEXT, XlsxStream, write_xlsx

HEADERS = ['Text', 'Number', 'Moment']


def read_openpyxl(path: Path) -> list[tuple]:
    return list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))


def read_calamine(path: Path) -> list[list]:
    return CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()


def test_every_type_round_trips(tmp_path: Path) -> None:
    path = tmp_path / 'types.xlsx'
    moscow = ZoneInfo('Europe/Moscow')
    row = ['text', 42, -7, 2.5, Decimal('0.0450'), True, False, datetime(2024, 5, 6, 7, 8, 9, 123000),
           datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc), date(2024, 1, 2), None, '', 10 ** 17]
    headers = [f'Column {i}' for i in range(len(row))]
    assert write_xlsx(path, 'Types', headers, [row], zone=moscow) == 1

    sheet = openpyxl.load_workbook(path).active
    assert [cell.value for cell in sheet[1]] == headers
    assert [cell.value for cell in sheet[2]] == [
        'text', 42, -7, 2.5, 0.045, True, False, datetime(2024, 5, 6, 7, 8, 9, 123000),
        datetime(2024, 5, 6, 10, 8, 9), datetime(2024, 1, 2), None, None, '100000000000000000']
    assert [cell.data_type for cell in sheet[2]][:9] == ['s', 'n', 'n', 'n', 'n', 'b', 'b', 'd', 'd']
    assert sheet['H2'].is_date and sheet['J2'].is_date

    calamine = read_calamine(path)
    assert calamine[1][:10] == ['text', 42, -7, 2.5, 0.045, True, False, datetime(2024, 5, 6, 7, 8, 9, 123000),
                                datetime(2024, 5, 6, 10, 8, 9), date(2024, 1, 2)]


def test_header_is_bold_and_frozen_with_widths(tmp_path: Path) -> None:
    path = tmp_path / 'head.xlsx'
    write_xlsx(path, 'History', HEADERS, [['a' * 100, 1, datetime(2024, 1, 1)]])
    sheet = openpyxl.load_workbook(path).active
    assert sheet.title == 'History'
    assert sheet.freeze_panes == 'A2'
    assert all(cell.font.b for cell in sheet[1])
    assert not sheet['A2'].font.b
    widths = {key: dimension.width for key, dimension in sheet.column_dimensions.items()}
    assert widths['A'] == 60 and 6 <= widths['B'] <= 10 and widths['C'] >= 19


@pytest.mark.parametrize('text', ['=1+2', '=HYPERLINK("http://evil.example","x")', '+7 900 123', '-5', '@SUM(A1)',
                                  '=cmd|" /C calc"!A0'])
def test_formula_looking_texts_stay_texts(tmp_path: Path, text: str) -> None:
    path = tmp_path / 'formula.xlsx'
    write_xlsx(path, 'Sheet', ['Text'], [[text]])
    cell = openpyxl.load_workbook(path).active['A2']
    assert cell.data_type == 's' and cell.value == text
    assert read_calamine(path)[1] == [text]
    with zipfile.ZipFile(path) as archive:
        assert '<f>' not in archive.read('xl/worksheets/sheet1.xml').decode()


def test_illegal_characters_removed_and_markup_escaped(tmp_path: Path) -> None:
    path = tmp_path / 'chars.xlsx'
    rows = [['a\x00b\x01c\x08d\x0be\x1ff\ufffeg', 'x'], ['<b>&amp;</b> "q" \'s\'', 'tab\there'],
            ['  spaces  ', 'line 1\nline 2'], ['\ud800lone surrogate', 'A | B |C'], ['_x0041_ stays', 'end']]
    write_xlsx(path, 'Chars', ['One', 'Two'], rows)
    expected = [('abcdefg', 'x'), ('<b>&amp;</b> "q" \'s\'', 'tab\there'), ('  spaces  ', 'line 1\nline 2'),
                ('lone surrogate', 'A | B |C')]
    assert read_openpyxl(path)[1:5] == expected
    assert [tuple(row) for row in read_calamine(path)[1:]] == [*expected, ('_x0041_ stays', 'end')]


def test_long_text_capped_at_excel_limit(tmp_path: Path) -> None:
    path = tmp_path / 'long.xlsx'
    write_xlsx(path, 'Long', ['Text', 'After'], [['я' * (MAX_TEXT + 1000), 'next']])
    text, after = read_openpyxl(path)[1]
    assert text == 'я' * MAX_TEXT and after == 'next'


def test_unicode_and_cyrillic(tmp_path: Path) -> None:
    path = tmp_path / 'unicode.xlsx'
    rows = [['Ваш код 1234', 'Доставлено', '日本語 ✓ 🎉']]
    write_xlsx(path, 'История', ['Текст', 'Статус', 'Прочее'], rows)
    assert read_openpyxl(path) == [('Текст', 'Статус', 'Прочее'), tuple(rows[0])]
    assert openpyxl.load_workbook(path).active.title == 'История'


def test_empty_rows_list_gives_header_only(tmp_path: Path) -> None:
    path = tmp_path / 'empty.xlsx'
    assert write_xlsx(path, 'Empty', HEADERS, []) == 0
    assert read_openpyxl(path) == [tuple(HEADERS)]
    assert read_calamine(path) == [HEADERS]


def test_stream_in_chunks_with_mixed_types_per_row(tmp_path: Path) -> None:
    path = tmp_path / 'stream.xlsx'
    start = datetime(2024, 3, 31, 0, 30, tzinfo=timezone.utc)  # Europe/Berlin moves to summer time at 01:00 UTC
    rows = [[f'row {i}' if i % 3 else None, i if i % 2 else Decimal(i) / 4, start + timedelta(minutes=15 * i)]
            for i in range(1000)]
    stream = XlsxStream(path, 'Stream', HEADERS, ZoneInfo('Europe/Berlin'))
    for offset in range(0, len(rows), 300):
        stream.write(rows[offset:offset + 300])
    assert stream.close() == 1000
    read = read_openpyxl(path)[1:]
    assert len(read) == 1000
    berlin = ZoneInfo('Europe/Berlin')
    for (text, number, moment), (got_text, got_number, got_moment) in zip(rows, read):
        assert got_text == text and got_number == float(number)
        assert got_moment == moment.astimezone(berlin).replace(tzinfo=None)


def test_abort_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / 'broken.xlsx'

    def rows():
        yield ['fine']
        raise RuntimeError('source failed')
    with pytest.raises(RuntimeError):
        write_xlsx(path, 'Broken', ['Text'], rows())
    assert not path.exists()


def test_sheet_title_made_valid(tmp_path: Path) -> None:
    path = tmp_path / 'title.xlsx'
    write_xlsx(path, 'History [2024/05]: a very long title indeed', ['A'], [])
    title = openpyxl.load_workbook(path).active.title
    assert len(title) <= 31 and not set('[]:*?/\\') & set(title)


def test_zone_change_inside_a_quarter_hour(tmp_path: Path) -> None:
    """Monrovia moved from UTC-0:44:30 to UTC at 00:44:30 UTC on 1972-01-07: not on a quarter hour."""
    path = tmp_path / 'monrovia.xlsx'
    monrovia = ZoneInfo('Africa/Monrovia')
    moments = [datetime(1972, 1, 7, 0, 40, tzinfo=timezone.utc) + timedelta(seconds=30 * i) for i in range(20)]
    write_xlsx(path, 'Monrovia', ['Moment'], [[moment] for moment in moments], zone=monrovia)
    assert [row[0] for row in read_openpyxl(path)[1:]] == [
        moment.astimezone(monrovia).replace(tzinfo=None) for moment in moments]
