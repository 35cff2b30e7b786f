"""A fast streaming xlsx (SpreadsheetML) writer for reports: rows go straight into the zip, cell by cell, as inline
strings, so memory stays flat whatever the row count (openpyxl's write-only mode is several times slower).

Cell rules: every str is text (never a formula, whatever it starts with), with the characters XML 1.0 forbids
removed and cut at Excel's 32,767 characters; int, float and Decimal are numbers (ints too long for Excel's 15
significant digits are written as text, so no digit is lost); bool is TRUE/FALSE; datetime and date are real
Excel dates (aware datetimes converted to `zone`, naive ones written as given); None and '' are empty cells;
anything else is written as its str()."""
from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from types import NoneType
from xml.sax.saxutils import quoteattr

MEDIA_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'
MAX_ROWS = 1_048_576  # Excel's limit, the header row included
MAX_TEXT = 32_767
MAX_WIDTH = 60
_SAMPLE_ROWS = 200  # rows that decide the column widths
_FLUSH_ROWS = 500  # rows per write into the zip entry
_EPOCH = datetime(1899, 12, 30)
_ONE_DAY = timedelta(days=1)
_DAY = 86_400.0
_UNIX_EPOCH_SERIAL = 25_569.0  # 1970-01-01 as an Excel serial
_BUCKET = 900
_BIG_INT = 10 ** 15

_ILLEGAL = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
_ESCAPED = re.compile('_(x[0-9A-Fa-f]{4}_)')  # Excel reads `_x0041_` as "A": its own underscore escape keeps it
_SHEET_TITLE_BAD = re.compile(r'[\[\]:*?/\\]')

_STYLE_HEADER, _STYLE_DATETIME, _STYLE_DATE = 1, 2, 3


def write_xlsx(path: Path, sheet_title: str, headers: list[str], rows: Iterable[Sequence[object]],
               zone: tzinfo = timezone.utc) -> int:
    """Write a one-sheet workbook; returns the number of data rows written."""
    stream = XlsxStream(path, sheet_title, headers, zone)
    try:
        stream.write(rows)
    except BaseException:
        stream.abort()
        raise
    return stream.close()


class XlsxStream:
    """A workbook written incrementally: `write(rows)` as many times as needed, then `close()` (or `abort()`).
    Values beyond the headers' count are ignored.

    Cells carry no reference (`r`, optional in SpreadsheetML): an empty cell is `<c/>`, and a row of texts needing
    no escaping (most rows) is one %-format of a template cached per combination of value types."""

    def __init__(self, path: Path, sheet_title: str, headers: list[str], zone: tzinfo = timezone.utc) -> None:
        self.path = Path(path)
        self.rows = 0
        self._title = _sheet_title(sheet_title)
        self._headers = [str(header) for header in headers]
        self._width = len(headers)
        self._zone = zone
        self._offsets: dict[float, float] = {}  # quarter hour → offset of `zone` (see _offset)
        self._plans: dict[tuple[type, ...], _RowPlan] = {}
        self._sample: list[Sequence[object]] | None = []
        self._zip = zipfile.ZipFile(self.path, 'w', compression=zipfile.ZIP_DEFLATED, compresslevel=1)
        self._sheet = None

    def write(self, rows: Iterable[Sequence[object]]) -> None:
        """Append rows (the first few are held back until the column widths are known)."""
        if self._sample is not None:
            rows = iter(rows)
            for row in rows:
                self._sample.append(row)
                if len(self._sample) >= _SAMPLE_ROWS:
                    self._start()
                    break
        if self._sample is None:
            self._write_rows(rows)

    def close(self) -> int:
        """Finish the file; returns the number of data rows."""
        if self._sample is not None:
            self._start()
        self._sheet.write(b'</sheetData></worksheet>')
        self._sheet.close()
        for name, text in self._parts().items():
            self._zip.writestr(name, text)
        self._zip.close()
        return self.rows

    def abort(self) -> None:
        """Give up: close and delete the unfinished file."""
        try:
            if self._sheet is not None:
                self._sheet.close()
            self._zip.close()
        finally:
            self.path.unlink(missing_ok=True)

    def _start(self) -> None:
        sample, self._sample = self._sample, None
        self._sheet = self._zip.open('xl/worksheets/sheet1.xml', 'w')
        head = [_SHEET_HEAD]
        if self._headers:
            head.append('<cols>')
            for i, width in enumerate(self._widths(sample), start=1):
                head.append(f'<col min="{i}" max="{i}" width="{width}" customWidth="1"/>')
            head.append('</cols>')
        head.append('<sheetData><row r="1">')
        head += [_text_cell(header, _STYLE_HEADER) for header in self._headers]
        head.append('</row>')
        self._sheet.write(''.join(head).encode())
        self._write_rows(sample)

    def _widths(self, sample: list[Sequence[object]]) -> list[int]:
        widths = [len(header) + 2 for header in self._headers]
        for row in sample:
            for i, value in enumerate(row[:self._width]):
                widths[i] = max(widths[i], _display_width(value))
        return [min(width, MAX_WIDTH) for width in widths]

    def _write_rows(self, rows: Iterable[Sequence[object]]) -> None:
        plans, offsets, number, width = self._plans, self._offsets, self.rows + 1, self._width
        out: list[str] = []
        for row in rows:
            number += 1
            if number > MAX_ROWS:
                raise ValueError(f'Excel holds at most {MAX_ROWS - 1} rows under the header.')
            kinds = tuple(map(type, row[:width]))
            plan = plans.get(kinds) or plans.setdefault(kinds, _RowPlan(kinds))
            if not plan.fits(row):
                out.append(self._row_by_cell(number, row))
            elif plan.converted:
                values = list(row)
                for i in plan.moments:  # self._serial, inlined: a report has several dates per row
                    value = values[i]
                    if value.tzinfo is None:
                        values[i] = (value - _EPOCH) / _ONE_DAY
                    else:
                        stamp = value.timestamp()
                        offset = offsets.get(stamp // _BUCKET)
                        if offset is None:
                            offset = self._offset(stamp)
                        values[i] = (stamp + offset) / _DAY + _UNIX_EPOCH_SERIAL
                for i in plan.others:
                    values[i] = self._other_cell(values[i])
                out.append(plan.template % (number, *plan.values(values)))
            else:
                out.append(plan.template % (number, *plan.values(row)))
            if len(out) >= _FLUSH_ROWS:
                self._flush(out)
        self._flush(out)
        self.rows = number - 1

    def _flush(self, out: list[str]) -> None:
        self._sheet.write(''.join(out).replace(_EMPTY_TEXT, '<c/>').encode())
        out.clear()

    def _row_by_cell(self, number: int, row: Sequence[object]) -> str:
        cells = [f'<row r="{number}">']
        for value in row[:self._width]:
            if value is None:
                cells.append('<c/>')
            elif isinstance(value, str):
                cells.append(_text_cell(value))
            elif type(value) is datetime:
                cells.append(f'<c s="{_STYLE_DATETIME}"><v>{self._serial(value)!r}</v></c>')
            else:
                cells.append(self._other_cell(value))
        cells.append('</row>')
        return ''.join(cells)

    def _serial(self, value: datetime) -> float:
        """An Excel date-time serial number: days since 1899-12-30, in `zone` for an aware datetime."""
        if value.tzinfo is None:
            return (value - _EPOCH) / _ONE_DAY
        stamp = value.timestamp()
        offset = self._offsets.get(stamp // _BUCKET)
        return (stamp + (self._offset(stamp) if offset is None else offset)) / _DAY + _UNIX_EPOCH_SERIAL

    def _offset(self, stamp: float) -> float:
        """Seconds east of UTC in `zone` at POSIX time `stamp`, remembered for its quarter hour when the zone does not
        change within it (a report's datetimes fall in few of them; astimezone for each would be slower)."""
        bucket = stamp // _BUCKET
        first, last = (_offset_at(self._zone, bucket * _BUCKET + edge) for edge in (0, _BUCKET - 1e-6))
        if first != last:
            return _offset_at(self._zone, stamp)
        self._offsets[bucket] = first
        return first

    def _other_cell(self, value: object) -> str:
        """Cells of the less common types (str, None and datetime are handled inline: they are most cells)."""
        if isinstance(value, bool):
            return f'<c t="b"><v>{int(value)}</v></c>'
        if isinstance(value, int):
            return f'<c><v>{value}</v></c>' if -_BIG_INT < value < _BIG_INT else _text_cell(str(value))
        if isinstance(value, float):
            return f'<c><v>{value!r}</v></c>' if math.isfinite(value) else _text_cell(str(value))
        if isinstance(value, Decimal):
            return f'<c><v>{value:f}</v></c>' if value.is_finite() else _text_cell(str(value))
        if isinstance(value, datetime):  # a subclass of datetime
            return f'<c s="{_STYLE_DATETIME}"><v>{self._serial(value)!r}</v></c>'
        if isinstance(value, date):
            return f'<c s="{_STYLE_DATE}"><v>{(value - _EPOCH.date()).days}</v></c>'
        return _text_cell(str(value))

    def _parts(self) -> dict[str, str]:
        return {'[Content_Types].xml': _CONTENT_TYPES, '_rels/.rels': _ROOT_RELS, 'docProps/app.xml': _APP,
                'xl/workbook.xml': _WORKBOOK.format(title=quoteattr(self._title)),
                'xl/_rels/workbook.xml.rels': _WORKBOOK_RELS, 'xl/styles.xml': _STYLES}


class _RowPlan:
    """The row template for one combination of value types: `template % (row number, *values(row))`, after
    datetimes are replaced by their serial numbers and values of the less common types by their whole cell."""

    def __init__(self, kinds: tuple[type, ...]) -> None:
        def columns_of(kind: type) -> list[int]:
            return [i for i, of in enumerate(kinds) if of is kind]
        self.texts, self.ints, self.floats = (_getter(columns_of(kind)) for kind in (str, int, float))
        self.values = _getter([i for i, kind in enumerate(kinds) if kind is not NoneType])
        self.moments = columns_of(datetime)
        self.others = [i for i, kind in enumerate(kinds) if kind not in _IN_TEMPLATE]
        self.converted = bool(self.moments or self.others)
        cells = [_IN_TEMPLATE.get(kind, '%s') for kind in kinds]
        while cells and cells[-1] == '<c/>':
            cells.pop()
        self.template = '<row r="%d">' + ''.join(cells) + '</row>'

    def fits(self, row: Sequence[object]) -> bool:
        """Whether the template writes this row right: texts need no escaping, numbers are what Excel can hold."""
        ints = self.ints(row)
        return (_plain('|'.join(self.texts(row))) and (not ints or -_BIG_INT < min(ints) <= max(ints) < _BIG_INT)
                and all(map(math.isfinite, self.floats(row))))


_IN_TEMPLATE = {str: '<c t="inlineStr"><is><t>%s</t></is></c>', datetime: f'<c s="{_STYLE_DATETIME}"><v>%r</v></c>',
                int: '<c><v>%d</v></c>', float: '<c><v>%r</v></c>', NoneType: '<c/>'}


def _getter(indexes: list[int]) -> Callable[[Sequence[object]], tuple[object, ...]]:
    """itemgetter that always returns a tuple."""
    if len(indexes) > 1:
        return itemgetter(*indexes)
    if indexes:
        index = indexes[0]
        return lambda row: (row[index],)
    return lambda row: ()


def _plain(texts: str) -> bool:
    """Whether texts joined by '|' go into XML as they are: nothing to escape or remove, no space at either end of
    one of them (Excel would trim it), none too long."""
    return (texts.isprintable() and '&' not in texts and '<' not in texts and '>' not in texts and '_x' not in texts
            and '| ' not in texts and ' |' not in texts and texts[:1] != ' ' and texts[-1:] != ' '
            and len(texts) <= MAX_TEXT)


def _offset_at(zone: tzinfo, stamp: float) -> float:
    return datetime.fromtimestamp(stamp, zone).utcoffset().total_seconds()


_EMPTY_TEXT = '<c t="inlineStr"><is><t></t></is></c>'  # an empty str: written as an empty cell


def _text_cell(value: str, style: int = 0) -> str:
    text = _text(value)
    styled = f' s="{style}"' if style else ''
    return f'<c{styled} t="inlineStr"><is><t{_space(text)}>{text}</t></is></c>'


def _text(value: str) -> str:
    """Text as cell XML: illegal characters removed, capped at Excel's limit, escaped."""
    value = _ILLEGAL.sub('', value)[:MAX_TEXT]
    if '_x' in value:
        value = _ESCAPED.sub(r'_x005F_\1', value)
    return value.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('\r', '&#13;')


def _space(text: str) -> str:
    """Excel trims the ends of a text unless told to keep them."""
    return ' xml:space="preserve"' if text[:1].isspace() or text[-1:].isspace() else ''


def _display_width(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, datetime):
        return 20
    if isinstance(value, date):
        return 12
    text = str(value)
    return max(len(line) for line in text.splitlines()) + 2 if text else 0


def _sheet_title(title: str) -> str:
    """Excel's rules: at most 31 characters, none of []:*?/\\, not empty."""
    title = _ILLEGAL.sub('', _SHEET_TITLE_BAD.sub(' ', title)).strip().strip("'")[:31]
    return title or 'Sheet1'


_SHEET_HEAD = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
               '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
               'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
               '<sheetViews><sheetView workbookViewId="0">'  # the header row frozen
               '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
               '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/></sheetView></sheetViews>'
               '<sheetFormatPr defaultRowHeight="15"/>')

_CONTENT_TYPES = '''<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">\
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>\
<Default Extension="xml" ContentType="application/xml"/>\
<Override PartName="/xl/workbook.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>\
<Override PartName="/xl/worksheets/sheet1.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>\
<Override PartName="/xl/styles.xml" \
ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>\
<Override PartName="/docProps/app.xml" \
ContentType="application/vnd.openxmlformats-officedocument.extended-properties+xml"/>\
</Types>'''

_ROOT_RELS = '''<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">\
<Relationship Id="rId1" \
Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>\
<Relationship Id="rId2" \
Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/extended-properties" \
Target="docProps/app.xml"/>\
</Relationships>'''

_APP = '''<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">\
<Application>Herald</Application></Properties>'''

_WORKBOOK = '''<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" \
xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">\
<bookViews><workbookView/></bookViews>\
<sheets><sheet name={title} sheetId="1" r:id="rId1"/></sheets></workbook>'''

_WORKBOOK_RELS = '''<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">\
<Relationship Id="rId1" \
Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>\
<Relationship Id="rId2" \
Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>\
</Relationships>'''

_STYLES = '''<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">\
<numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy\\-mm\\-dd\\ hh:mm:ss"/>\
<numFmt numFmtId="165" formatCode="yyyy\\-mm\\-dd"/></numFmts>\
<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>\
<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>\
<fills count="2"><fill><patternFill patternType="none"/></fill>\
<fill><patternFill patternType="gray125"/></fill></fills>\
<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>\
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>\
<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>\
<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>\
<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>\
<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>\
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>\
</styleSheet>'''
