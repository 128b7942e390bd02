"""Text checks (gridmap.textcheck) and the spreadsheet helpers (gridmap.io.tabular), without a database."""

from __future__ import annotations

import csv
import io
import zipfile
from unittest import mock

import openpyxl
import pandas as pd
import pytest

from gridmap.errors import InvalidInput
from gridmap.io import tabular
from gridmap.locating.gazetteer import Gazetteer
from gridmap.textcheck import clean_phone, clean_text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("井盖\x00丢失", "U+0000"),
        ("井盖\x07丢失", "U+0007"),
        ("井盖\x85丢失", "U+0085"),
        ("abc\u202egpj.exe", "U+202E"),
        ("\u2066东风街\u2069", "U+2066"),
        ("\u200b\u200c\u200d\u2060\ufeff  \u3000", "empty"),
        ("   ", "empty"),
        ("line\nbreak", "U+000A"),
        ("lone \ud800 surrogate", "U+D800"),
    ],
)
def test_clean_text_refuses_with_the_field_and_never_the_value(text, why):
    with pytest.raises(InvalidInput) as caught:
        clean_text(text, "title", 200)
    assert caught.value.field == "title" and why in caught.value.message
    assert text.strip() not in caught.value.message or not text.strip()


def test_clean_text_checks_the_length_first_and_fast():
    huge = "东" * 10_000_000 + "\x00"
    # the length is measured before the text is read: normalising it (what costs time with the length) never runs
    with (
        mock.patch("gridmap.textcheck.unicodedata.normalize", side_effect=AssertionError("text normalised")),
        pytest.raises(InvalidInput) as caught,
    ):
        clean_text(huge, "address", 300)
    assert caught.value.field == "address" and "at most 300" in caught.value.message
    assert "东东" not in caught.value.message


def test_clean_text_keeps_what_is_fine_and_normalises():
    assert clean_text("Cafe\u0301 东风街", "title", 20) == "Café 东风街"  # NFC: one code point
    assert clean_text("第一行\r\n第二行\t尾", "description", 100, multiline=True) == "第一行\n第二行\t尾"
    assert clean_text(None, "description", 10, required=False) is None
    assert clean_text("\u200b ", "description", 10, required=False) is None
    assert clean_text("x\u200by", "title", 10) == "x\u200by"  # a joiner inside visible text is text
    with pytest.raises(InvalidInput):
        clean_text(None, "title", 10)
    with pytest.raises(InvalidInput):
        clean_text(123, "title", 10)


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("13812341234", "13812341234"),
        ("+86 138-1234-1234", "13812341234"),
        ("0871-63123456", "087163123456"),
        ("(0871) 63123456", "087163123456"),
        ("", None),
        (None, None),
    ],
)
def test_clean_phone_accepts_ascii_digits(phone, expected):
    assert clean_phone(phone, "reporter_phone") == expected


@pytest.mark.parametrize(
    "phone",
    [
        "١٣٨٠٠١٣٨٠٠٠",
        "１３８１２３４１２３４",
        "138１２３４1234",
        "12ab",
        "987",
        "1" * 16,
        "1" * 10_000,
        "138\x0012341234",
    ],
)
def test_clean_phone_refuses_other_digits_without_repeating_them(phone):
    with pytest.raises(InvalidInput) as caught:
        clean_phone(phone, "reporter_phone")
    assert caught.value.field == "reporter_phone" and phone not in caught.value.message


def test_the_gazetteer_answers_too_long_without_reading_the_text():
    gazetteer = Gazetteer([], [], set())
    # answered from the length alone: neither normalised nor turned into pinyin
    with (
        mock.patch("gridmap.locating.gazetteer.normalise", side_effect=AssertionError("text normalised")),
        mock.patch("gridmap.locating.gazetteer.lazy_pinyin", side_effect=AssertionError("pinyin made")),
    ):
        match = gazetteer.match("东风街363号" * 200_000)
    assert match.place is None and match.reason == "too_long" and match.text == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+SUM(1,2)", "'+SUM(1,2)"),
        ("-1+2", "'-1+2"),
        ("-3", "-3"),  # a plain number written as text (a CSV read as text) is a number to a spreadsheet
        ("+2.5", "+2.5"),
        ("-1e3", "-1e3"),
        ("-.5", "-.5"),
        ("- 3", "'- 3"),
        ("-3 ", "'-3 "),
        ("-0x1F", "'-0x1F"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("  =1", "'  =1"),
        ("＝1+1", "'＝1+1"),
        ("东风街=1", "东风街=1"),
        ("", ""),
        (-3, -3),
        (2.5, 2.5),
        (None, None),
    ],
)
def test_safe_cell(value, expected):
    assert tabular.safe_cell(value) == expected


def test_csv_and_xlsx_write_formulas_as_text_and_numbers_as_numbers():
    frame = pd.DataFrame(
        {
            "=cmd|' /c calc'!A0": ["=1+1", "+SUM(1,2)", "@x", "plain"],
            "n": [-5, 3, 0, 7],
            "rate": [-0.5, 0.25, float("nan"), 1.0],
        }
    )
    rows = list(csv.reader(io.StringIO(tabular.csv_bytes(frame).decode("utf-8-sig"))))
    assert rows[0] == ["'=cmd|' /c calc'!A0", "n", "rate"]
    assert [r[0] for r in rows[1:]] == ["'=1+1", "'+SUM(1,2)", "'@x", "plain"]
    assert [r[1] for r in rows[1:]] == ["-5", "3", "0", "7"]
    sheet = openpyxl.load_workbook(io.BytesIO(tabular.xlsx_bytes(frame, "t"))).active
    assert sheet["A1"].data_type == "s" and sheet["A1"].value == "=cmd|' /c calc'!A0"
    for row, text in zip(range(2, 6), ["=1+1", "+SUM(1,2)", "@x", "plain"]):
        assert sheet.cell(row, 1).data_type == "s" and sheet.cell(row, 1).value == text
    assert sheet["A2"].quotePrefix and not sheet["A5"].quotePrefix
    assert sheet["B2"].data_type == "n" and sheet["B2"].value == -5
    assert sheet["C2"].value == -0.5 and sheet["C4"].value is None


def _xlsx(rows) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_xlsx_rows_stream_and_long_cells_come_back_as_their_length():
    long = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(30_000))  # text that does not compress away
    data = _xlsx([["工单编号", "诉求内容"], ["t1", "短"], [None, None], ["t2", long], ["t3", 12.5]])
    headings, rows = tabular.read_xlsx_rows(data, max_rows=10)
    assert headings == ["工单编号", "诉求内容"]
    assert [n for n, _ in rows] == [2, 4, 5]  # row numbers in the sheet; the blank row left out
    assert rows[0][1] == ["t1", "短"] and rows[2][1] == ["t3", 12.5]
    assert rows[1][1][1] == tabular.TooLong(30_000)
    with pytest.raises(InvalidInput, match="more than 2 rows"):
        tabular.read_xlsx_rows(data, max_rows=2)


def test_csv_rows_have_per_field_limits():
    text = "工单编号,诉求内容\nt1,短\n\nt2," + "长" * 5000 + '\nt3,"多\n行"\n'
    headings, rows = tabular.read_csv_rows(text.encode("gb18030"), max_rows=10)
    assert headings == ["工单编号", "诉求内容"]
    assert rows[0] == (2, ["t1", "短"]) and rows[1] == (4, ["t2", tabular.TooLong(5000)])  # as Excel numbers them
    assert rows[2] == (5, ["t3", "多\n行"])
    with pytest.raises(InvalidInput, match="line 2"):  # one line of 2 MB: never held, the file is refused
        tabular.read_csv_rows(b"a,b\n" + b"x" * (2 * 1024 * 1024) + b"\n", max_rows=10)


def _zip(members: dict[str, bytes]) -> zipfile.ZipFile:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return zipfile.ZipFile(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize(
    ("members", "words"),
    [
        ({"../../etc/x.xml": b"x"}, "unsafe"),
        ({"/etc/x.xml": b"x"}, "unsafe"),
        ({"C:/x.xml": b"x"}, "unsafe"),
        ({"xl/bomb.xml": b"\x00" * (20 * 1024 * 1024)}, "more than 100 times"),
    ],
)
def test_unsafe_archives_are_refused(members, words):
    with pytest.raises(InvalidInput, match=words) as caught:
        tabular.check_archive(_zip(members), "the export")
    assert caught.value.field == "file"


def test_an_archive_that_unpacks_to_more_than_200_mb_in_all_is_refused():
    archive = _zip({f"xl/worksheets/sheet{i}.xml": b"<x/>" for i in range(3)})
    for info in archive.infolist():  # as the central directory of three 70 MB members would say
        info.file_size, info.compress_size = 70 * 1024 * 1024, 7 * 1024 * 1024
    with pytest.raises(InvalidInput, match="at most 209,715,200") as caught:
        tabular.check_archive(archive, "the export")
    assert "archive_too_large" in caught.value.message
