"""Bulk import of 12345 exports through the HTTP API, on both databases: every row gets one outcome, address-only
rows are placed through the gazetteer, unplaceable rows come back with the reason, re-importing creates nothing
new, and two imports of one file racing each other make each case once."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
import uuid
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from gridmap.geo import crs as gcrs
from gridmap.locating.gazetteer import gazetteer_for
from gridmap.store.tables import Case
from tests.helpers import inside

LABELLED = Path(__file__).parents[1] / "data" / "addresses.csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
HEAD = ["工单编号", "来电时间", "来电人", "联系电话", "事发地址", "诉求内容", "问题分类", "经度", "纬度"]
DISPATCHER = {"X-User": "d1", "X-Role": "dispatcher"}


APP_SETTINGS = {"escalation_interval_s": 3600}  # the module's `client` (tests/conftest.py)


def _addresses(n):
    with LABELLED.open(encoding="utf-8") as f:
        rows = [
            r
            for r in csv.DictReader(f)
            if r["expected_kind"] in ("compound", "building")
            and r["variant"] in ("full_address", "building_unit_room", "road_building_haolou")
        ]
    return [r["text"] for r in rows[:n]]


def _export(client, prefix):
    """A realistic export: 12 address-only rows, 3 with GCJ-02 coordinates, and one row for each way to fail."""
    index = client.app.state.registry.current
    rows, expect = [], {}
    for i, text in enumerate(_addresses(12)):
        ticket = f"{prefix}-A{i:02d}"
        rows.append(
            [
                ticket,
                f"2026-11-{10 + i % 9:02d} 09:{i:02d}:00",
                "张三丰",
                "13812341234",
                text,
                "楼道堆放杂物，影响通行",
                "暴露垃圾" if i % 2 else "E0102",
                "",
                "",
            ]
        )
        expect[ticket] = "created"
    for k in range(3):
        glon, glat = gcrs.wgs84_to_gcj02(*inside(index, 10 + k))
        ticket = f"{prefix}-G{k}"
        rows.append(
            [ticket, "2026/11/18 14:05", "李四", "0871-63123456", "", "井盖缺失", "C0101", f"{glon:.7f}", f"{glat:.7f}"]
        )
        expect[ticket] = "created"
    bad = {
        "U1": ["2026-11-18 10:00:00", "王五", "13900001111", "火星路1号", "噪声扰民", "E0101", "", ""],
        "U2": ["2026-11-18 10:00:00", "", "", "", "无地址", "E0101", "", ""],
        "U3": ["2026-11-18 10:00:00", "", "", "", "坐标错误", "E0101", "0", "0"],
        "U4": ["2026-11-18 10:00:00", "", "", "", "坐标不是数字", "E0101", "abc", "25.0"],
        "I1": ["昨天下午", "", "", "东风街363号", "时间无法识别", "E0101", "", ""],
        "I2": ["2099-01-01 10:00:00", "", "", "东风街363号", "未来时间", "E0101", "", ""],
        "I3": ["2026-11-18 10:00:00", "赵六", "12ab", "东风街363号", "电话错误", "E0101", "", ""],
    }
    for name, rest in bad.items():
        rows.append([f"{prefix}-{name}", *rest])
        expect[f"{prefix}-{name}"] = "unplaced" if name[0] == "U" else "invalid"
    rows.append([f"{prefix}-A00", "2026-11-10 09:00:00", "", "", "重复行", "", "", "", ""])  # same ticket again
    rows.append([f"{prefix}-C1", "2026-11-18 11:00:00", "", "", _addresses(1)[0], "外星人入侵", "外星人", "", ""])
    expect[f"{prefix}-C1"] = "created"
    return rows, expect


def _csv(rows, encoding="gb18030"):
    buffer = io.StringIO()
    csv.writer(buffer).writerows([HEAD, *rows])
    return buffer.getvalue().encode(encoding)


def _xlsx(rows):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEAD)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _import(client, data, kind="text/csv", status=200, **params):
    r = client.post(
        "/api/v1/imports/hotline", content=data, params=params, headers={**DISPATCHER, "Content-Type": kind}
    )
    assert r.status_code == status, r.text
    return r.json() if params.get("report", "json") == "json" else r


def _stored(client, prefix):
    with client.app.state.sessionmaker() as s:
        query = sa.select(Case).options(sa.orm.selectinload(Case.category)).where(Case.external_ref.startswith(prefix))
        return {c.external_ref: c for c in s.scalars(query)}


def test_every_row_gets_one_outcome_and_reimporting_creates_nothing(client):
    prefix = uuid.uuid4().hex[:8]
    rows, expect = _export(client, prefix)
    result = _import(client, _csv(rows))
    assert result["rows"] == len(rows) == len(result["report"])
    outcome = {
        e["ticket"]: e["status"] for e in result["report"] if e["reason"] != "repeats an earlier row of this file"
    }
    assert outcome == expect
    assert [e["row"] for e in result["report"]] == list(range(2, len(rows) + 2))  # spreadsheet row numbers
    assert result["report"][-2]["status"] == "duplicate"  # the repeated ticket
    assert (result["created"], result["unplaced"], result["invalid"], result["duplicate"]) == (16, 4, 3, 1)
    assert sum(result[k] for k in ("created", "duplicate", "unplaced", "invalid")) == result["rows"]
    reasons = {
        e["ticket"].split("-")[1]: (e["field"], e["reason"])
        for e in result["report"]
        if e["status"] in ("unplaced", "invalid")
    }
    assert reasons["U1"][1].startswith("address: no compound")
    assert reasons["U2"][1].startswith("address: empty")
    assert reasons["U3"][1].startswith("lon/lat: far outside")
    assert reasons["U4"][1].startswith("lon/lat: not a valid")
    assert reasons["I1"][0] == reasons["I2"][0] == "reported_at" and "future" in reasons["I2"][1]
    assert reasons["I3"][0] == "reporter_phone"

    stored = _stored(client, prefix)
    assert set(stored) == {t for t, s in expect.items() if s == "created"}
    gazetteer = gazetteer_for(client.app.state.sessionmaker())
    for i, text in enumerate(_addresses(12)):
        case = stored[f"{prefix}-A{i:02d}"]
        assert case.source == "hotline" and case.state == "dispatched"
        assert case.microgrid_code.startswith(gazetteer.match(text).leaf_code)  # where the gazetteer says
        assert "placed_by_address" in case.locate_flags
        call = dt.datetime(2026, 11, 10 + i % 9, 9, i, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        assert case.reported_at.replace(tzinfo=None) == call.astimezone(dt.UTC).replace(tzinfo=None)
    assert stored[f"{prefix}-A01"].category.code == "E0101"  # named by its minor class, 暴露垃圾
    g0 = stored[f"{prefix}-G0"]
    lon, lat = inside(client, 10)
    assert abs(g0.lon - lon) < 1e-6 and abs(g0.lat - lat) < 1e-6  # GCJ-02 converted back to WGS84
    assert g0.department_id is not None and g0.reporter_phone == "087163123456"  # a component: its owner
    unknown = stored[f"{prefix}-C1"]
    assert unknown.state == "reported" and unknown.category_id is None  # waits for a dispatcher to file it
    assert any(e["reason"] == "category_not_matched" for e in result["report"] if e["ticket"] == f"{prefix}-C1")

    # the same rows again, now as XLSX: nothing new, each duplicate names its case
    again = _import(client, _xlsx(rows), XLSX)
    assert (again["created"], again["duplicate"]) == (0, 17)
    assert {e["case_number"] for e in again["report"] if e["ticket"] == f"{prefix}-A03"} == {
        stored[f"{prefix}-A03"].number
    }
    assert len(_stored(client, prefix)) == len(stored)
    # the operator corrects the unmatched address and imports again: just that row is created
    fixed = [r if r[0] != f"{prefix}-U1" else [r[0], r[1], r[2], r[3], _addresses(2)[1], *r[5:]] for r in rows]
    third = _import(client, _csv(fixed, "utf-8"))
    assert third["created"] == 1 and f"{prefix}-U1" in _stored(client, prefix)


def test_reporter_data_is_masked_in_the_api_and_absent_from_the_report(client):
    prefix = uuid.uuid4().hex[:8]
    rows, _ = _export(client, prefix)
    r = _import(client, _csv(rows[:3]), report="csv")
    assert r.headers["content-type"].startswith("text/csv") and "created=3" in r.headers["x-import-counts"]
    text = r.content.decode("utf-8-sig")
    assert "13812341234" not in text and "张三丰" not in text
    case = _stored(client, prefix)[f"{prefix}-A00"]
    body = client.get(f"/api/v1/cases/{case.id}", headers={"X-Role": "viewer"}).json()  # no contact rights
    assert body["reporter_phone"] == "138****1234" and body["reporter_name"] == "张**"
    r = _import(client, _csv(rows[:3]), report="xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert [c.value for c in sheet[1]][:3] == ["row", "ticket", "status"]
    assert {row[2] for row in sheet.iter_rows(min_row=2, values_only=True)} == {"duplicate"}


def test_two_imports_of_one_file_at_once_make_each_case_once(client):
    prefix = uuid.uuid4().hex[:8]
    rows, expect = _export(client, prefix)
    data = _csv(rows)
    results = []

    def run():
        results.append(_import(client, data))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = sum(r["created"] for r in results)
    assert created == 16 and len(_stored(client, prefix)) == 16
    with client.app.state.sessionmaker() as s:
        numbers = s.scalars(
            sa.select(sa.func.count(Case.id)).where(Case.external_ref.startswith(prefix)).group_by(Case.external_ref)
        ).all()
    assert set(numbers) == {1}


@pytest.mark.parametrize(
    ("data", "kind", "headers", "status", "field"),
    [
        (b"a,b\n1,2\n", "text/csv", DISPATCHER, 422, "columns"),
        (b"", "text/csv", DISPATCHER, 422, "file"),
        (b"not a zip", XLSX, DISPATCHER, 422, "file"),
        (b"x", "application/pdf", DISPATCHER, 422, "Content-Type"),
        (
            _csv([["t1", "2026-11-18 10:00", "", "", "东风街363号", "", "", "", ""]]),
            "text/csv",
            {"X-User": "r1", "X-Role": "viewer"},
            403,
            "role",
        ),
        (
            _csv([["t1", "2026-11-18 10:00", "", "", "东风街363号", "", "", "", ""]]),
            "text/csv",
            {"X-User": ""},
            422,
            "X-User",
        ),
    ],
)
def test_bad_files_are_refused_and_store_nothing(client, data, kind, headers, status, field):
    with client.app.state.sessionmaker() as s:
        before = s.scalar(sa.select(sa.func.count(Case.id)))
    r = client.post("/api/v1/imports/hotline", content=data, headers={**headers, "Content-Type": kind})
    assert r.status_code == status and r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field
    with client.app.state.sessionmaker() as s:
        assert s.scalar(sa.select(sa.func.count(Case.id))) == before


def test_a_bad_crs_is_refused(client):
    r = client.post(
        "/api/v1/imports/hotline?crs=venus", content=b"x", headers={**DISPATCHER, "Content-Type": "text/csv"}
    )
    assert r.status_code == 422 and r.json()["field"] == "crs"


def test_the_command_line_imports_and_exports_measures(client, db_url, tmp_path, capsys):
    import json

    from gridmap.cli import main

    prefix = uuid.uuid4().hex[:8]
    rows, _ = _export(client, prefix)
    (tmp_path / "export.xlsx").write_bytes(_xlsx(rows))
    assert (
        main(
            [
                "--database",
                db_url,
                "import-hotline",
                str(tmp_path / "export.xlsx"),
                "--report",
                str(tmp_path / "report.csv"),
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert (printed["created"], printed["unplaced"], printed["invalid"]) == (16, 4, 3)
    report = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text(encoding="utf-8-sig"))))
    assert len(report) == len(rows)
    assert (
        main(
            [
                "--database",
                db_url,
                "measures",
                str(tmp_path / "m.xlsx"),
                "--by",
                "subdistrict",
                "--since",
                "2026-11-01T00:00:00+08:00",
                "--until",
                "2026-12-01T00:00:00+08:00",
            ]
        )
        == 0
    )
    sheet = openpyxl.load_workbook(tmp_path / "m.xlsx").active
    total = [row for row in sheet.iter_rows(min_row=2, values_only=True) if row[1] == "*"][0]
    assert total[3] >= 16  # 受理量 includes this import's November calls
    assert main(["--database", db_url, "measures", str(tmp_path / "m.csv"), "--by", "street"]) == 2


def test_a_row_that_intake_refuses_is_reported_invalid_and_the_rest_are_imported(client, monkeypatch):
    from gridmap.cases import hotline
    from gridmap.errors import InvalidInput

    prefix = uuid.uuid4().hex[:8]
    rows, _ = _export(client, prefix)
    real = hotline.create_cases  # the import's intake: many rows at once, each answered with its case or its error

    def refusing(session, index, news, **kwargs):
        refused = InvalidInput("category: refused by intake", field="category")
        made = iter(real(session, index, [n for n in news if n.external_ref != f"{prefix}-A03"], **kwargs))
        return [refused if n.external_ref == f"{prefix}-A03" else next(made) for n in news]

    monkeypatch.setattr(hotline, "create_cases", refusing)
    result = _import(client, _csv(rows))
    entry = next(e for e in result["report"] if e["ticket"] == f"{prefix}-A03")
    assert (entry["status"], entry["field"]) == ("invalid", "category")
    assert result["created"] == 15 and f"{prefix}-A03" not in _stored(client, prefix)
    assert len(_stored(client, prefix)) == 15


def test_a_batch_stopped_by_a_deadlock_is_written_again(client, monkeypatch):
    """Two imports of overlapping tickets in different orders can deadlock on PostgreSQL (40P01): the stopped batch
    was rolled back whole and is written again, not lost half way through the import (found in review)."""
    from gridmap.cases import hotline

    prefix = uuid.uuid4().hex[:8]
    rows, _ = _export(client, prefix)
    real, calls = hotline.create_cases, []

    class Deadlock(Exception):
        sqlstate = "40P01"

    def deadlocked_once(session, index, news, **kwargs):
        calls.append(len(news))
        if len(calls) == 1:
            raise sa.exc.OperationalError("INSERT INTO case_file …", {}, Deadlock("deadlock detected"))
        return real(session, index, news, **kwargs)

    monkeypatch.setattr(hotline, "create_cases", deadlocked_once)
    result = _import(client, _csv(rows))
    assert calls == [16, 16] and result["created"] == 16 and len(_stored(client, prefix)) == 16


def test_an_import_of_many_batches_writes_each_while_it_prepares_the_next(client, monkeypatch):
    """More rows than a batch: each batch is written on a thread of its own (in the request's context: audited as
    the dispatcher who imported) while the next is prepared, with the same outcomes, every case stored once."""
    from gridmap.cases import hotline
    from gridmap.store.tables import AuditEntry

    prefix = uuid.uuid4().hex[:8]
    rows, expect = _export(client, prefix)
    monkeypatch.setattr(hotline, "BULK_BATCH", 3)
    real, threads = hotline.write_cases, []

    def writing(conn, prepared):
        threads.append(threading.current_thread().name)
        return real(conn, prepared)

    monkeypatch.setattr(hotline, "write_cases", writing)
    with client.app.state.sessionmaker() as s:
        last = s.scalar(sa.select(sa.func.max(AuditEntry.id))) or 0
    result = _import(client, _csv(rows))
    assert len(threads) == 6 and all(t.startswith("gridmap-import-writer") for t in threads)  # 16 cases, 3 a batch
    outcome = {
        e["ticket"]: e["status"] for e in result["report"] if e["reason"] != "repeats an earlier row of this file"
    }
    assert outcome == expect and result["created"] == 16
    stored = _stored(client, prefix)
    assert len(stored) == 16
    assert {e["ticket"]: e["case_number"] for e in result["report"] if e["status"] == "created"} == {
        t: c.number for t, c in stored.items()
    }
    ids = [c.id for _, c in sorted(stored.items(), key=lambda kv: int(kv[1].id))]
    in_file = [stored[e["ticket"]].id for e in result["report"] if e["status"] == "created"]
    assert in_file == ids  # numbered in the order of the file
    with client.app.state.sessionmaker() as s:
        actors = s.scalars(
            sa.select(AuditEntry.actor).where(
                AuditEntry.id > last, AuditEntry.target == "case_file", AuditEntry.action == "insert"
            )
        ).all()
    assert actors == ["dispatcher:d1"] * 6


@pytest.mark.parametrize("failure", ["duplicate", "deadlock"])
def test_a_batch_whose_write_fails_in_a_pipelined_import_is_written_again(client, monkeypatch, failure):
    """A batch written on the writer thread that fails as another import's tickets or a deadlock make it fail is
    written again once the other batches are written; nothing is lost or made twice."""
    from gridmap.cases import hotline

    prefix = uuid.uuid4().hex[:8]
    rows, _ = _export(client, prefix)
    monkeypatch.setattr(hotline, "BULK_BATCH", 4)
    real, calls = hotline.write_cases, []

    class Deadlock(Exception):
        sqlstate = "40P01"

    def failing_once(conn, prepared):
        calls.append(len(prepared.rows))
        if len(calls) == 2:
            if failure == "deadlock":
                raise sa.exc.OperationalError("INSERT INTO case_file …", {}, Deadlock("deadlock detected"))
            raise sa.exc.IntegrityError("INSERT INTO case_file …", {}, Exception("duplicate key"))
        return real(conn, prepared)

    monkeypatch.setattr(hotline, "write_cases", failing_once)
    result = _import(client, _csv(rows))
    assert result["created"] == 16 and len(_stored(client, prefix)) == 16
    assert calls == [4, 4, 4, 4] and not any(e["status"] is None for e in result["report"])


def test_a_write_that_fails_otherwise_stops_a_pipelined_import(client, monkeypatch):
    """Any other failure of a batch's write is raised, and the batches after it are not written."""
    from gridmap.cases import hotline

    prefix = uuid.uuid4().hex[:8]
    rows, _ = _export(client, prefix)
    monkeypatch.setattr(hotline, "BULK_BATCH", 4)
    real, calls = hotline.write_cases, []

    def broken_second(conn, prepared):
        calls.append(len(prepared.rows))
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(conn, prepared)

    monkeypatch.setattr(hotline, "write_cases", broken_second)
    index = client.app.state.registry.current
    with pytest.raises(RuntimeError, match="disk full"):
        hotline.import_export(client.app.state.sessionmaker, index, _csv(rows), "csv")
    assert calls == [4, 4] and len(_stored(client, prefix)) == 4
