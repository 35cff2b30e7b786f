"""Task files: downloadable templates, safe reading of uploads and row checks (pure: no database)."""
from __future__ import annotations

import io
import pickle
import re
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import openpyxl
import pytest
import python_calamine

from domain import task_files as tf
from domain import templates
from domain.channels import Channel
from domain.models import TaskKind
from domain.task_files_ru import RUSSIAN

APPROVED = {'sms': frozenset({'MyShop'}), 'viber': frozenset({'MyShop'})}
TEMPLATE = [{'channel': 'sms', 'from': 'MyShop', 'text': 'Hello, {{name}}!', 'validityPeriod': None,
             'required': False}]


def rules(kind: TaskKind, template: list | None = None, **kwargs) -> tf.Rules:
    if template is None and tf.TEMPLATE_USE[kind] == 'required':
        template = TEMPLATE
    return tf.Rules(kind, template, APPROVED, 'RU', **kwargs)


def workbook(path: Path, rows: list[list[object]]) -> Path:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    book.save(path)
    return path


def check(tmp_path: Path, kind: TaskKind, rows: list[list[object]], **kwargs) -> list:
    table = tf.read_table(workbook(tmp_path / 'task.xlsx', rows))
    task_rules = rules(kind, **kwargs)
    return tf.check_rows(table.rows, tf.map_headers(table.headers, task_rules), task_rules)


def rejected(path: Path) -> str:
    with pytest.raises(tf.FileRejected) as caught:
        tf.read_table(path)
    return caught.value.errors['file']


def rewrite_member(path: Path, name: str, data: bytes) -> None:
    """Replace one member of a zip (openpyxl's output) with other bytes."""
    with zipfile.ZipFile(path) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    members[name] = data
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as target:
        for member, content in members.items():
            target.writestr(member, content)


# --- templates ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('language', ['en', 'ru'])
@pytest.mark.parametrize('kind', list(TaskKind))
def test_each_template_reads_back_with_no_problems(tmp_path: Path, kind: TaskKind, language: str) -> None:
    path = tmp_path / tf.template_filename(kind, language)
    path.write_bytes(tf.template_workbook(kind, language))
    table = tf.read_table(path)
    assert all(header.endswith('*') for header, column in zip(table.headers, tf.COLUMNS[kind]) if column.required)
    task_rules = rules(kind, TEMPLATE if tf.TEMPLATE_USE[kind] != 'none' else None)
    mapping = tf.map_headers(table.headers, task_rules)
    assert set(mapping.columns) == {column.key for column in tf.COLUMNS[kind]} and not mapping.unknown
    [result] = tf.check_rows(table.rows, mapping, task_rules)
    assert isinstance(result, tf.CheckedRow), result
    assert result.row == 2 and result.contacts[0] in ('+79001234567', None)


def test_template_sheets_phone_as_text_and_explanations() -> None:
    book = openpyxl.load_workbook(io.BytesIO(tf.template_workbook(TaskKind.FULL, 'ru')))
    recipients, columns = book.worksheets
    assert columns.title == 'Колонки'
    assert recipients['A1'].value == 'Телефон' and recipients['A2'].value == '+79001234567'
    assert recipients['A2'].data_type == 's' and recipients['A2'].number_format == '@'
    explained = [row[0] for row in columns.iter_rows(min_row=2, values_only=True)]
    assert all(tf._header(column, 'ru') in explained for column in tf.COLUMNS[TaskKind.FULL])
    assert any('{{name}}' in str(text) for text in explained)
    assert tf.template_filename(TaskKind.WHATSAPP_CHAT_START, 'en') == 'herald-task-whatsapp-chat-start-en.xlsx'


def test_labels_and_headers_are_distinct_within_a_kind() -> None:
    assert tf.LABELS[TaskKind.UNIVERSAL] == 'Universal (api format)'
    for kind, columns in tf.COLUMNS.items():
        names = [name for column in columns for name in {tf.normalize_header(n) for n in (column.key, column.en, column.ru)}]
        assert len(names) == len(set(names)), kind


def test_headers_match_in_russian_with_stars_case_and_underscores() -> None:
    headers = [' телефон* ', 'ИМЯ_ОТПРАВИТЕЛЯ', 'Text', 'external-id', 'Comment']
    mapping = tf.map_headers(headers, rules(TaskKind.SMS))
    assert mapping.columns == {'phone': 0, 'sender': 1, 'text': 2, 'external_id': 3}
    assert mapping.unknown == ('Comment',)


def test_missing_duplicate_and_variable_columns_are_rejected() -> None:
    with pytest.raises(tf.FileRejected, match='Missing columns: Sender, Text'):
        tf.map_headers(['Phone'], rules(TaskKind.SMS))
    with pytest.raises(tf.FileRejected, match='appears twice'):
        tf.map_headers(['Phone', 'Sender', 'Text', 'телефон'], rules(TaskKind.SMS))
    with pytest.raises(tf.FileRejected, match='variables: name'):
        tf.map_headers(['Phone'], rules(TaskKind.CHAT_START))
    with pytest.raises(tf.FileRejected, match='Missing columns: SMS sender'):
        tf.map_headers(['Phone', 'SMS text'], rules(TaskKind.FULL))
    with pytest.raises(tf.ValidationError) as caught:
        tf.map_headers(['Phone'], tf.Rules(TaskKind.UNIVERSAL))
    assert 'template' in caught.value.errors


def test_full_list_ignores_twin_columns_and_maps_variables_by_name() -> None:
    mapping = tf.map_headers(['Phone', 'Bot ID', 'Attachments', 'First name'],
                             rules(TaskKind.FULL, [dict(TEMPLATE[0], text='Hi {{first_name}}')]))
    assert mapping.ignored == ('Bot ID', 'Attachments') and mapping.variables == {'first_name': 3}


# --- bad files ---------------------------------------------------------------------------------------------------

def test_empty_and_header_only_files(tmp_path: Path) -> None:
    empty = tmp_path / 'empty.xlsx'
    empty.write_bytes(b'')
    assert rejected(empty) == tf.EMPTY
    assert rejected(workbook(tmp_path / 'header.xlsx', [['Phone', 'Sender', 'Text']])) == tf.NO_ROWS
    assert rejected(workbook(tmp_path / 'blank.xlsx', [])) == tf.NO_ROWS


@pytest.mark.parametrize('content, message', [
    (b'\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1' + bytes(600), 'save it as'),
    (b'Phone,Sender,Text\n+79001234567,MyShop,Hi\n', 'not an Excel .xlsx file'),
    (bytes(range(256)) * 4, 'not an Excel .xlsx file'),
])
def test_other_formats_are_named(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / 'upload.xlsx'
    path.write_bytes(content)
    assert message in rejected(path)


def test_damaged_and_workbookless_zips(tmp_path: Path) -> None:
    good = workbook(tmp_path / 'good.xlsx', [['Phone'], ['+79001234567']]).read_bytes()
    truncated = tmp_path / 'truncated.xlsx'
    truncated.write_bytes(good[:len(good) // 2])
    assert rejected(truncated) == tf.DAMAGED
    corrupt = tmp_path / 'corrupt.xlsx'
    middle = len(good) // 3
    corrupt.write_bytes(good[:middle] + bytes(200) + good[middle + 200:])
    assert rejected(corrupt) == tf.DAMAGED
    plain_zip = tmp_path / 'plain.xlsx'
    with zipfile.ZipFile(plain_zip, 'w') as archive:
        archive.writestr('notes.txt', 'hello')
    assert 'not an Excel .xlsx workbook' in rejected(plain_zip)


def zip_bomb(path: Path, megabytes: int) -> Path:
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        archive.writestr('xl/workbook.xml', '<workbook/>')
        with archive.open('xl/worksheets/sheet1.xml', 'w') as member:
            zeros = bytes(1024 * 1024)
            for _ in range(megabytes):
                member.write(zeros)
    return path


def test_zip_bomb_is_rejected_from_its_directory(tmp_path: Path) -> None:
    path = zip_bomb(tmp_path / 'bomb.xlsx', 200)
    assert path.stat().st_size < 1024 * 1024
    assert rejected(path) == tf.BOMB


def test_zip_bomb_with_a_lying_directory_is_rejected_while_unpacking(tmp_path: Path) -> None:
    path = zip_bomb(tmp_path / 'liar.xlsx', 20)
    data = bytearray(path.read_bytes())
    directory = data.rfind(b'PK\x01\x02')  # the sheet's entry, the last one
    data[directory + 24:directory + 28] = (1000).to_bytes(4, 'little')  # "unpacks to 1000 bytes"
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo('xl/worksheets/sheet1.xml').file_size == 1000
    assert rejected(path) == tf.BOMB


def test_xml_bomb_is_rejected(tmp_path: Path) -> None:
    path = workbook(tmp_path / 'laughs.xlsx', [['Phone'], ['+79001234567']])
    laughs = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
              + ''.join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
                        for i in range(1, 10))
              + ']><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
                '<row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>')
    rewrite_member(path, 'xl/worksheets/sheet1.xml', laughs.encode())
    assert rejected(path) == tf.XML_BOMB


def test_formulas_are_rejected_naming_the_cell(tmp_path: Path) -> None:
    path = workbook(tmp_path / 'formula.xlsx', [['Phone', 'Sender', 'Text'], ['+79001234567', 'MyShop', 'Hi'],
                                                ['+79001234568', '=1+1', 'Hi']])
    assert rejected(path) == 'The file contains formulas (first in cell B3): paste the values only.'


def test_too_many_rows_and_too_big(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workbook(tmp_path / 'rows.xlsx', [['Phone']] + [[f'+7900123456{i}'] for i in range(5)])
    monkeypatch.setattr(tf, 'MAX_ROWS', 4)
    assert 'more than 4 rows' in rejected(path)
    monkeypatch.setattr(tf, 'MAX_ROWS', 5)
    assert len(tf.read_table(path).rows) == 5
    monkeypatch.setattr(tf, 'MAX_FILE_BYTES', 100)
    assert rejected(path) == tf.TOO_BIG


def test_rows_keep_excel_numbers_and_skip_empty_rows(tmp_path: Path) -> None:
    path = workbook(tmp_path / 'rows.xlsx', [['Phone', 'Count'], [79001234567, 1.5], [None, None], ['x', 2]])
    table = tf.read_table(path)
    assert table.headers == ['Phone', 'Count']
    assert table.rows == [(2, ['79001234567', 1.5]), (4, ['x', '2'])]


def test_unreadable_workbook_is_damaged_not_a_traceback(tmp_path: Path) -> None:
    path = workbook(tmp_path / 'bad.xlsx', [['Phone'], ['+79001234567']])
    rewrite_member(path, 'xl/worksheets/sheet1.xml', b'<worksheet><sheetData><row><c><v>1</sheetData>')
    with pytest.raises(python_calamine.CalamineError):
        python_calamine.CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    assert rejected(path) == tf.DAMAGED


# --- rows --------------------------------------------------------------------------------------------------------

SMS_HEADERS = ['Phone', 'Sender', 'Text']


def test_phone_numbers_as_people_and_excel_write_them(tmp_path: Path) -> None:
    results = check(tmp_path, TaskKind.SMS, [SMS_HEADERS, [79001234567, 'MyShop', 'Hi'],
                                             ['8 (912) 345-67-89', 'MyShop', 'Hi'],
                                             ['+7 912 345 67 89', 'MyShop', 'Hi']])
    assert [r.contacts for r in results] == [('+79001234567', 'RU', None), ('+79123456789', 'RU', None),
                                             ('+79123456789', 'RU', None)]
    assert results[1].destination.phone == '+79123456789'


@pytest.mark.parametrize('kind, headers, row, column, reason', [
    (TaskKind.SMS, SMS_HEADERS, ['12', 'MyShop', 'Hi'], 'Phone', 'Phone: '),
    (TaskKind.SMS, SMS_HEADERS, ['+79001234567', 'MyShop', ''], 'Text', 'Text is empty.'),
    (TaskKind.SMS, SMS_HEADERS, ['+79001234567', 'Shop', 'Hi'], 'Sender',
     'Sender: “Shop” is not an approved sender name for SMS.'),
    (TaskKind.SMS, SMS_HEADERS, ['+79001234567', 'MyShop', 'Hi {{name}}'], 'name', 'has no column “name”'),
    (TaskKind.CHAT_START, ['Phone', 'name'], ['+79001234567', ''], 'name', 'name is empty: the text uses {{name}}'),
    (TaskKind.SPONSORED, ['Phone', 'Sender', 'Text', 'Button text'], ['+79001234567', 'MyShop', 'Sale', 'Buy'],
     'Button URL', 'button text and the button URL together'),
    (TaskKind.FULL, ['Phone', 'SMS sender', 'SMS text', 'Validity period'], ['+79001234567', 'MyShop', 'Hi', 5000],
     'Validity period', 'whole minutes from 1 to 2880'),
    (TaskKind.FULL, ['Phone', 'SMS sender', 'SMS text', 'Allowed time ranges'],
     ['+79001234567', 'MyShop', 'Hi', '13:00-09:00'], 'Allowed time ranges', 'The start must be before the end'),
    (TaskKind.FULL, ['Phone', 'SMS sender', 'SMS text', 'Allowed time ranges'],
     ['+79001234567', 'MyShop', 'Hi', 'mornings'], 'Allowed time ranges', 'write ranges as'),
    (TaskKind.FULL, ['Phone', 'SMS sender', 'SMS text', 'Required'], ['+79001234567', 'MyShop', 'Hi', 'maybe'],
     'Required', 'enter true or false'),
    (TaskKind.FULL, ['Email', 'SMS sender', 'SMS text'], ['a@example.com', 'MyShop', 'Hi'], 'Phone',
     'SMS needs the phone'),
    (TaskKind.FULL, ['Phone', 'Email'], ['+79001234567', ''], 'SMS text', 'or choose a template'),
    (TaskKind.UNIVERSAL, ['Phone', 'Email', 'name'], ['', '', 'Anna'], 'Phone', 'Fill the phone, the email'),
    (TaskKind.UNIVERSAL, ['Phone', 'Email', 'name'], ['', 'not-an-email', 'Anna'], 'Email', 'Email: not an email'),
])
def test_row_problems_name_the_row_column_and_reason(tmp_path: Path, kind: TaskKind, headers: list[str],
                                                    row: list[object], column: str, reason: str) -> None:
    good = {TaskKind.SMS: ['+79001234568', 'MyShop', 'Hi'], TaskKind.CHAT_START: ['+79001234568', 'Anna']}
    rows = [headers, good[kind], row] if kind in good else [headers, row]
    results = check(tmp_path, kind, rows)
    problem = results[-1]
    assert isinstance(problem, tf.RowProblem), problem
    assert problem.row == len(rows) and problem.column == column and reason in problem.reason
    assert all(isinstance(result, tf.CheckedRow) for result in results[:-1])


def test_problem_columns_use_the_files_own_headers(tmp_path: Path) -> None:
    [problem] = check(tmp_path, TaskKind.SMS, [['Телефон', 'Имя отправителя', 'Текст сообщения'],
                                               ['+79001234567', 'MyShop', '']])
    assert (problem.column, problem.reason) == ('Текст сообщения', 'Текст сообщения is empty.')


def test_full_row_channels_schedule_and_ids(tmp_path: Path) -> None:
    headers = ['Phone', 'Email', 'Messenger user ID', 'Telegram text', 'Email from', 'Email subject', 'Email text',
               'SMS sender', 'SMS text', 'Start date', 'Start time', 'Allowed time ranges', 'Validity period',
               'Required', 'Flow ID', 'Callback data', 'First name']
    row = ['+79001234567', 'A@Example.COM', '555', 'Hi {{First_name}}', 'shop@example.com', 'Order', 'Hi',
           'MyShop', 'Hi', '01.03.2030', '09-30-00', '14:00-18:00; 9:00-13:00', 30, 'да', 'f-1', '{"a": 1}',
           'Anna']
    [result] = check(tmp_path, TaskKind.FULL, [headers, row], time_zone='Europe/Moscow')
    destination = result.destination
    assert [step['channel'] for step in destination.steps] == ['telegram', 'sms', 'email']
    assert all(step['validityPeriod'] == 30 and step['required'] is True for step in destination.steps)
    assert destination.send_at == datetime(2030, 3, 1, 6, 30, tzinfo=timezone.utc)
    assert destination.allowed_time_ranges == [['09:00', '13:00'], ['14:00', '18:00']]
    assert destination.variables == {'First name': 'Anna', 'First_name': 'Anna'}
    assert destination.email == 'A@example.com' and destination.callback_data == '{"a": 1}'
    assert destination.flow_id == 'f-1'


def test_full_row_without_channels_uses_the_template_with_its_overrides(tmp_path: Path) -> None:
    rows = [['Phone', 'SMS sender', 'SMS text', 'name', 'Validity period'], ['+79001234567', '', '', 'Anna', ''],
            ['+79001234568', '', '', 'Bob', 90]]
    plain, overridden = check(tmp_path, TaskKind.FULL, rows, template=TEMPLATE)
    assert plain.destination.steps is None and plain.destination.variables == {'name': 'Anna'}
    assert overridden.destination.steps == [dict(TEMPLATE[0], validityPeriod=90)]


def test_whatsapp_parameters_become_template_data(tmp_path: Path) -> None:
    [result] = check(tmp_path, TaskKind.WHATSAPP_CHAT_START,
                     [['Phone', 'WhatsApp template name', 'Template parameters'], ['+79001234567', 'hello', 'Anna | 7']])
    assert result.destination.steps[0]['templateData'] == ['Anna', '7']


def test_results_survive_pickling_for_worker_processes(tmp_path: Path) -> None:
    table = tf.read_table(workbook(tmp_path / 'task.xlsx', [SMS_HEADERS, ['+79001234567', 'MyShop', 'Hi'],
                                                              ['1', 'MyShop', 'Hi']]))
    task_rules = rules(TaskKind.SMS)
    mapping = pickle.loads(pickle.dumps(tf.map_headers(table.headers, task_rules)))
    results = tf.check_rows(*pickle.loads(pickle.dumps((table.rows, mapping, task_rules))))
    assert pickle.loads(pickle.dumps(results)) == results


def test_step_errors_is_the_template_rule() -> None:
    step = {'channel': 'sms', 'from': 'MyShop', 'text': 'Hi {{ bad name }}'}
    assert templates.step_errors(Channel.SMS, step, {'MyShop'}) == {'text': templates._placeholder_error(step['text'])}
    assert templates.step_errors(Channel.SMS, step, ())['from'] == '“MyShop” is not an approved sender name for SMS.'
    assert templates.step_errors(Channel.EMAIL, {'fromEmail': 'x@example.com', 'subject': 'S'}, ()) == {
        'text': 'An email needs a text body or an HTML body.'}


# --- problems report ---------------------------------------------------------------------------------------------

def test_problems_workbook_keeps_formula_like_text_as_text(tmp_path: Path) -> None:
    table = tf.Table(['Phone', 'Sender', 'Text'], [(2, ['12', 'MyShop', '=HYPERLINK("http://evil")']),
                                                    (3, ['+79001234567', 'MyShop', 'ok'])])
    data = tf.problems_workbook([tf.RowProblem(2, 'Phone', 'Phone: too short.')], table)
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert [cell.value for cell in sheet[1]] == ['Row', 'Column', 'Reason', 'Phone', 'Sender', 'Text']
    assert [cell.value for cell in sheet[2]] == [2, 'Phone', 'Phone: too short.', '12', 'MyShop',
                                                 '=HYPERLINK("http://evil")']
    assert sheet['F2'].data_type == 's' and sheet.max_row == 2
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert b'<f>' not in archive.read('xl/worksheets/sheet1.xml')


@pytest.mark.parametrize('kind', list(TaskKind))
def test_the_russian_explanations_are_all_in_russian(kind: TaskKind) -> None:
    assert [text for text in tf.explanations(kind) if text not in RUSSIAN] == []
    sheet = openpyxl.load_workbook(io.BytesIO(tf.template_workbook(kind, 'ru')))['Колонки']
    descriptions = [row[4] for row in sheet.iter_rows(min_row=2, values_only=True) if row[4]]
    assert descriptions and all(re.search('[а-яё]', text, re.IGNORECASE) for text in descriptions)
