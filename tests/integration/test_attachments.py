"""Photos of cases (issue 14 §2 and its must-show "photo intake"), on both databases: content sniffed, EXIF and
every other metadata stripped with the GPS position offered back, decompression bombs refused from the header,
size and count limits, thumbnails, who may add which stage, jurisdiction, Open311 `media_url` / `media`, and the
S3 backend against a real S3-protocol server (moto's ThreadedMotoServer over HTTP).
"""

from __future__ import annotations

import errno
import io
import socket
import struct
import time
import uuid
import zlib
from unittest import mock

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from PIL import ExifTags, Image, ImageFile

from gridmap.cases import attachments
from gridmap.store import media as media_store
from gridmap.store.tables import Attachment, Case, CaseEvent
from gridmap_api.main import create_app
from gridmap_api.settings import Settings
from tests.conftest import api_client
from tests.helpers import inside

KEY = "test-key-attach"
GPS = (102.7200694, 25.0418056)  # what the EXIF block below says, in decimal degrees


# -- images ------------------------------------------------------------------------------------------------------


def jpeg_with_gps(size=(800, 600), orientation=6) -> bytes:
    """A phone photo: EXIF with the camera, an orientation (6: turn 90° clockwise to show) and a GPS position."""
    image = Image.new("RGB", size, (200, 30, 30))
    image.paste((20, 20, 220), (0, 0, size[0] // 2, size[1] // 4))  # a blue block at the top left, to see turns
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestPhone"
    exif[ExifTags.Base.Model] = "Model 7"
    exif[ExifTags.Base.Orientation] = orientation
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (25.0, 2.0, 30.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (102.0, 43.0, 12.25)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=90, comment=b"secret comment")
    return out.getvalue()


def png(size=(40, 30), color=(0, 128, 0)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side=30_000) -> bytes:
    """A valid 1-bit PNG of side × side zero pixels (900 million for 30,000): about 100 KB on the wire, 900 MB
    once decoded."""
    row = b"\x00" * (1 + side // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)">'
    b'<circle r="4"/></svg>'
)


# -- the world -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def settings(db_url, tmp_path_factory):
    return Settings(
        database_url=db_url,
        escalation_interval_s=3600,
        open311_api_keys=KEY,
        media_dir=str(tmp_path_factory.mktemp("media")),
        **{f"rate_{p}": "off" for p in ("anonymous_intake", "open311_post", "open311_key")},
    )


CLIENT_ROLE = "dispatcher"  # the module's `client` (tests/conftest.py)


def new_case(client, *, category="E0101", k=5, **extra) -> dict:
    """A case filed by a dispatcher (with a category inside a grid: dispatched to the grid's worker at once)."""
    lon, lat = inside(client, k)
    r = client.post(
        "/api/v1/cases",
        json={"title": f"照片测试 {uuid.uuid4().hex[:6]}", "lon": lon, "lat": lat, "category": category, **extra},
    )
    assert r.status_code == 201, r.text
    return r.json()


def upload(client, case_id, data, *, stage="report", name="photo.jpg", ctype="image/jpeg", headers=None, **form):
    return client.post(
        f"/api/v1/cases/{case_id}/attachments",
        data={"stage": stage, **form},
        files={"file": (name, data, ctype)},
        headers=headers or {},
    )


def stored_bytes(client, row_id: int, thumbnail=False) -> bytes:
    with client.app.state.sessionmaker() as s:
        row = s.get(Attachment, row_id)
        key = row.thumbnail_key if thumbnail else row.storage_key
    return client.app.state.settings.media_store().get(key)


# -- photo intake (must show) ------------------------------------------------------------------------------------


def test_a_jpeg_with_gps_exif_is_stored_without_exif_and_its_position_is_offered(client):
    case = new_case(client)
    original = jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the upload has it
    r = upload(client, case["id"], original)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["gps"] == {
        "lon": pytest.approx(GPS[0], abs=1e-6),
        "lat": pytest.approx(GPS[1], abs=1e-6),
        "crs": "wgs84",
    }
    assert body["content_type"] == "image/jpeg" and body["stage"] == "report" and body["stage_zh"] == "上报照片"
    assert (body["width"], body["height"]) == (600, 800)  # orientation 6 applied before stripping
    assert r.headers["location"] == body["url"] == f"/api/v1/attachments/{body['id']}"

    for data in (stored_bytes(client, body["id"]), client.get(body["url"]).content):
        stored = Image.open(io.BytesIO(data))
        assert stored.format == "JPEG" and stored.size == (600, 800)
        exif = stored.getexif()
        assert len(exif) == 0 and not exif.get_ifd(ExifTags.IFD.GPSInfo)
        assert not {"exif", "icc_profile", "xmp", "comment"} & set(stored.info)
        assert b"TestPhone" not in data and b"secret comment" not in data and b"Exif\x00\x00" not in data
        assert stored.getpixel((599, 10))[2] > 150  # the blue block, once at the top left, is now top right
    assert body["sha256"] == __import__("hashlib").sha256(stored_bytes(client, body["id"])).hexdigest()


def test_files_named_jpg_that_hold_html_or_svg_are_refused_naming_the_field(client):
    case = new_case(client)
    for data, words in (
        (HTML, "HTML"),
        (SVG, "SVG"),
        (b"GIF89a" + b"\x00" * 40, "GIF"),
        (b"", "nothing"),
        (b"%PDF-1.7 ...", "PDF"),
    ):
        r = upload(client, case["id"], data, name="photo.jpg", ctype="image/jpeg")
        assert r.status_code == 422, r.text
        problem = r.json()
        assert problem["field"] == "file" and words in problem["detail"] and "JPEG, PNG, WebP" in problem["detail"]
        assert r.headers["content-type"] == "application/problem+json"
    zh = upload(client, case["id"], SVG, headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 422 and "SVG" in zh.json()["detail"] and "不是照片" in zh.json()["detail"]
    # a JPEG start followed by HTML is not an image either: refused, never stored as it came
    r = upload(client, case["id"], b"\xff\xd8\xff\xe0" + HTML)
    assert r.status_code == 422 and r.json()["field"] == "file"
    assert client.get(f"/api/v1/cases/{case['id']}/attachments").json()["items"] == []


def test_a_decompression_bomb_png_is_refused_from_its_header_before_decoding(client):
    bomb = png_bomb()
    assert len(bomb) < 200_000
    case = new_case(client)
    # nothing may decode it: if Pillow's loader ran, the upload would fail loudly instead of being refused
    with mock.patch.object(ImageFile.ImageFile, "load", side_effect=AssertionError("the bomb was decoded")):
        started = time.perf_counter()
        r = upload(client, case["id"], bomb, name="map.png", ctype="image/png")
        took = time.perf_counter() - started
    print(f"\ndecompression bomb ({len(bomb):,} bytes, 30,000 × 30,000) refused in {took * 1000:.1f} ms")
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["field"] == "file"
    assert "30,000 × 30,000" in problem["detail"] and "50 megapixels" in problem["detail"]
    assert "before decoding" in problem["detail"]
    # just over the limit, and under Pillow's own bomb threshold: refused by ours, from the header too
    with mock.patch.object(ImageFile.ImageFile, "load", side_effect=AssertionError("decoded")):
        r = upload(client, case["id"], png_bomb(8_000), name="map.png", ctype="image/png")
    assert r.status_code == 422 and "8,000 × 8,000" in r.json()["detail"]
    # a JPEG whose frame header claims 60,000 × 60,000 (past Pillow's own threshold): refused the same way
    small = io.BytesIO()
    Image.new("L", (16, 16)).save(small, "JPEG")
    claimed = bytearray(small.getvalue())
    sof = claimed.index(b"\xff\xc0")
    claimed[sof + 5 : sof + 9] = (60_000).to_bytes(2, "big") * 2
    with mock.patch.object(ImageFile.ImageFile, "load", side_effect=AssertionError("decoded")):
        r = upload(client, case["id"], bytes(claimed))
    assert r.status_code == 422 and "3,600,000,000 pixels" in r.json()["detail"] and r.json()["field"] == "file"


def test_an_oversize_file_is_a_413_naming_the_field(client):
    case = new_case(client)
    limit = client.app.state.settings.media_max_bytes
    r = upload(client, case["id"], b"\xff\xd8\xff" + b"\x00" * limit)
    assert r.status_code == 413, r.text
    assert r.json()["field"] == "file" and r.json()["code"] == "payload_too_large" and "10 MB" in r.json()["detail"]
    # the body limit of every request stays in front of it
    big = client.app.state.settings.max_body_bytes
    r = upload(client, case["id"], b"\xff\xd8\xff" + b"\x00" * big)
    assert r.status_code == 413 and r.json()["field"] == "body"


def test_thumbnail_and_png_round_trip_with_cache_headers(client):
    case = new_case(client)
    r = upload(client, case["id"], png((1000, 500)), name="screen.png", ctype="image/png")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["content_type"] == "image/png" and (body["width"], body["height"]) == (1000, 500)
    assert (body["thumbnail_width"], body["thumbnail_height"]) == (320, 160) and body["gps"] is None
    image = client.get(body["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.headers["cache-control"].startswith("private") and image.headers["etag"] == f'"{body["sha256"]}"'
    assert Image.open(io.BytesIO(image.content)).size == (1000, 500)
    again = client.get(body["url"], headers={"If-None-Match": image.headers["etag"]})
    assert again.status_code == 304 and not again.content
    thumb = client.get(body["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.headers["cache-control"].startswith("private") and thumb.headers["etag"] != image.headers["etag"]
    assert Image.open(io.BytesIO(thumb.content)).size == (320, 160)
    # a portrait phone photo: the thumbnail is 320 on its longer side too
    photo = upload(client, case["id"], jpeg_with_gps((1600, 1200))).json()
    assert (photo["thumbnail_width"], photo["thumbnail_height"]) == (240, 320)
    assert Image.open(io.BytesIO(client.get(photo["thumbnail_url"]).content)).size == (240, 320)


def test_the_list_the_history_and_the_count_limit(client, engine):
    case = new_case(client)
    first = upload(client, case["id"], png()).json()
    listed = client.get(f"/api/v1/cases/{case['id']}/attachments").json()
    assert listed["case_id"] == case["id"] and listed["total"] == 1 and listed["limit"] == 20
    assert listed["items"][0]["id"] == first["id"] and listed["items"][0]["thumbnail_url"] == first["thumbnail_url"]
    detail = client.get(f"/api/v1/cases/{case['id']}").json()
    assert detail["attachments_count"] == 1  # the case item's count (gridmap.cases.queries.case_items)
    items = client.get("/api/v1/cases", params={"limit": 500}).json()["items"]
    assert next(i for i in items if i["id"] == case["id"])["attachments_count"] == 1
    history = detail["history"]
    event = [e for e in history if e["action"] == "attach"]
    assert len(event) == 1 and event[0]["detail"]["attachment_id"] == first["id"]
    assert event[0]["detail"]["stage"] == "report" and event[0]["actor"].startswith("dispatcher")
    assert event[0]["action_zh"] == "上传照片"  # named in the timeline, not a raw code
    with engine.begin() as conn:  # 19 more, straight into the table: the 21st upload is refused
        row = conn.execute(sa.select(Attachment.__table__).where(Attachment.id == first["id"])).mappings().one()
        values = {k: v for k, v in row.items() if k != "id"}
        conn.execute(sa.insert(Attachment.__table__), [values] * 19)
    r = upload(client, case["id"], png())
    assert r.status_code == 409 and r.json()["field"] == "file" and "20" in r.json()["detail"]


def test_stage_must_be_known_and_a_finished_case_takes_no_photos(client, engine):
    case = new_case(client)
    r = upload(client, case["id"], png(), stage="selfie")
    assert r.status_code == 422 and r.json()["field"] == "stage"
    r = client.post(f"/api/v1/cases/{case['id']}/attachments", data={"stage": "report"})
    assert r.status_code == 422 and r.json()["field"] == "file"
    with engine.begin() as conn:
        conn.execute(sa.update(Case).where(Case.id == case["id"]).values(state="closed"))
    assert upload(client, case["id"], png()).status_code == 409
    assert upload(client, 2**31 - 1, png()).status_code == 404


# -- who may add what, where -------------------------------------------------------------------------------------


def test_another_sub_districts_case_and_its_photos_are_not_found(client, settings):
    case = new_case(client)
    photo = upload(client, case["id"], png()).json()
    own = case["subdistrict_code"]
    with client.app.state.sessionmaker() as s:
        other = s.scalar(
            sa.select(Case.subdistrict_code)
            .where(Case.subdistrict_code.is_not(None), Case.subdistrict_code != own)
            .limit(1)
        )
    assert other
    for role in ("dispatcher", "manager", "viewer"):
        headers = {"X-Role": role, "X-Areas": other}
        for url in (f"/api/v1/cases/{case['id']}/attachments", photo["url"], photo["thumbnail_url"]):
            r = client.get(url, headers=headers)
            assert r.status_code == 404, (role, url, r.text)
        missing = client.get("/api/v1/attachments/2147483000", headers=headers)
        assert (
            client.get(photo["url"], headers=headers).json()["detail"].split(" has id")[0]
            == missing.json()["detail"].split(" has id")[0]
        )  # worded like an id nobody has
    r = upload(client, case["id"], png(), headers={"X-Role": "dispatcher", "X-Areas": other})
    assert r.status_code == 404
    mine = client.get(photo["url"], headers={"X-Role": "viewer", "X-Areas": own})
    assert mine.status_code == 200
    # roles without the permission at all
    assert upload(client, case["id"], png(), headers={"X-Role": "viewer", "X-Areas": own}).status_code == 403
    assert client.get(photo["url"], headers={"X-Role": "planner"}).status_code == 403


def test_a_resident_adds_report_photos_with_the_reporter_token(settings, client):
    with TestClient(create_app(settings), headers={"Accept-Language": "en"}) as anonymous:
        lon, lat = inside(client, 7)
        receipt = anonymous.post(
            "/api/v1/cases", json={"title": "路灯不亮", "lon": lon, "lat": lat, "category": "E0101"}
        ).json()
        token = receipt["reporter_token"]
        r = upload(anonymous, receipt["id"], jpeg_with_gps(), reporter_token=token)
        assert r.status_code == 201, r.text
        assert r.json()["gps"]["lat"] == pytest.approx(GPS[1], abs=1e-6)
        assert upload(anonymous, receipt["id"], png()).status_code == 404  # no token: no such case
        assert upload(anonymous, receipt["id"], png(), reporter_token="0" * 32).status_code == 404
        other = new_case(client)
        assert upload(anonymous, other["id"], png(), reporter_token=token).status_code == 404  # not its case
        r = upload(anonymous, receipt["id"], png(), stage="after", reporter_token=token)
        assert r.status_code == 422 and r.json()["field"] == "stage"
        assert anonymous.get(f"/api/v1/cases/{receipt['id']}/attachments").status_code == 401
    listed = client.get(f"/api/v1/cases/{receipt['id']}/attachments").json()
    assert [i["uploaded_by"] for i in listed["items"]] == ["resident"]


def test_a_worker_adds_before_and_after_photos_to_a_case_it_holds(client):
    case = new_case(client)
    assert case["state"] == "dispatched" and case["assignee_id"]
    holder = {"X-Role": "worker", "X-User": "w1", "X-Staff-Id": str(case["assignee_id"]), "X-Areas": case["grid_code"]}
    before = upload(client, case["id"], jpeg_with_gps(), stage="before", headers=holder)
    assert before.status_code == 201, before.text
    accepted = client.post(
        f"/api/v1/cases/{case['id']}/actions/accept", json={"version": case["version"]}, headers=holder
    )
    assert accepted.status_code == 200, accepted.text
    after = upload(client, case["id"], png(), stage="after", headers=holder)
    assert after.status_code == 201 and after.json()["stage_zh"] == "处置后"
    # a report photo is not the holder's to add, nor a before photo another worker's in the same grid
    r = upload(client, case["id"], png(), stage="report", headers=holder)
    assert r.status_code == 422 and r.json()["field"] == "stage"
    colleague = {**holder, "X-Staff-Id": str(case["assignee_id"] + 100000)}
    r = upload(client, case["id"], png(), stage="before", headers=colleague)
    assert r.status_code == 422 and r.json()["field"] == "stage"
    # the dispatcher is not the holder either
    assert upload(client, case["id"], png(), stage="after").status_code == 422
    stages = [i["stage"] for i in client.get(f"/api/v1/cases/{case['id']}/attachments").json()["items"]]
    assert stages == ["before", "after"]


def test_a_patrol_worker_adds_patrol_photos_to_its_own_report(client):
    lon, lat = inside(client, 9)
    with client.app.state.sessionmaker() as s:
        from gridmap.store.tables import Staff

        staff_id = s.scalar(sa.select(Staff.id).order_by(Staff.id).limit(1))
    worker = {"X-Role": "worker", "X-User": "patroller", "X-Staff-Id": str(staff_id)}
    r = client.post(
        "/api/v1/patrol-reports",
        json={"title": "巡查发现占道经营", "lon": lon, "lat": lat, "category": "E0101"},
        headers=worker,
    )
    assert r.status_code == 201, r.text
    case = r.json()
    assert upload(client, case["id"], png(), stage="patrol", headers=worker).status_code == 201
    assert upload(client, case["id"], png(), stage="patrol").status_code == 422  # the dispatcher found nothing


# -- Open311 -----------------------------------------------------------------------------------------------------


def _open311(client, fields: dict, files=None):
    if files:
        return client.post("/open311/v2/requests.json", data=fields, files=files)
    return client.post("/open311/v2/requests.json", data=fields)


def test_open311_media_url_is_kept_as_a_reference_and_never_fetched(client):
    lon, lat = inside(client, 3)
    base = {"api_key": KEY, "service_code": "E0101", "lat": str(lat), "long": str(lon)}
    connects = []
    real_connect = socket.socket.connect

    def spy(self, address):
        connects.append(address)
        return real_connect(self, address)

    with (
        mock.patch.object(socket.socket, "connect", spy),
        mock.patch.object(socket, "create_connection", side_effect=AssertionError("outbound connection")),
    ):
        for bad in (
            "http://example.org/a.jpg",
            "http://127.0.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/a.jpg",
            "https://[::1]/a.jpg",
            "file:///etc/passwd",
            "gopher://x/1",
            "https://user:pw@example.org/a.jpg",
            "https://localhost/a.jpg",
            "ftp://example.org/a.jpg",
        ):
            r = _open311(client, {**base, "media_url": bad})
            assert r.status_code == 400, (bad, r.text)
            assert "media_url" in r.json()[0]["description"]
        good = "https://img.example.org/photos/123.jpg"
        r = _open311(client, {**base, "media_url": good})
        assert r.status_code == 200, r.text
    assert connects == []  # nothing was fetched: not the good address, not the bad ones
    number = r.json()[0]["service_request_id"]
    (view,) = client.get(f"/open311/v2/requests/{number}.json").json()
    assert view["media_url"] == good
    xml = client.get(f"/open311/v2/requests/{number}.xml")
    assert f"<media_url>{good}</media_url>" in xml.text


def test_open311_media_file_is_stored_as_a_cleaned_photo_and_served_as_media_url(client):
    lon, lat = inside(client, 4)
    fields = {
        "api_key": KEY,
        "service_code": "E0101",
        "lat": str(lat),
        "long": str(lon),
        "description": "井盖缺失，附照片",
    }
    r = _open311(client, fields, files={"media": ("p.jpg", jpeg_with_gps(), "image/jpeg")})
    assert r.status_code == 200, r.text
    number = r.json()[0]["service_request_id"]
    (view,) = client.get(f"/open311/v2/requests/{number}.json").json()
    assert view["media_url"].startswith("http") and "/api/v1/attachments/" in view["media_url"]
    photo = client.get(view["media_url"])
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
    assert len(Image.open(io.BytesIO(photo.content)).getexif()) == 0
    with client.app.state.sessionmaker() as s:
        case = s.scalars(sa.select(Case).where(Case.number == number)).one()
        (row,) = s.scalars(sa.select(Attachment).where(Attachment.case_id == case.id))
        assert row.stage == "report" and row.uploaded_by == "open311" and row.gps_lat == pytest.approx(GPS[1])
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(CaseEvent)
                .where(CaseEvent.case_id == case.id, CaseEvent.action == "attach")
            )
            == 1
        )
    # an SVG as `media`: the whole request is refused, nothing filed
    with client.app.state.sessionmaker() as s:
        before = s.scalar(sa.select(sa.func.count()).select_from(Case))
    r = _open311(client, fields, files={"media": ("p.jpg", SVG, "image/jpeg")})
    assert r.status_code == 400 and "media" in r.json()[0]["description"]
    r = _open311(client, fields, files={"other": ("p.jpg", png(), "image/png")})
    assert r.status_code == 400
    with client.app.state.sessionmaker() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Case)) == before


# -- when the store fails ----------------------------------------------------------------------------------------


def test_a_full_media_store_is_507_and_stores_nothing_then_works_again(client):
    case = new_case(client)
    full = OSError(errno.ENOSPC, "No space left on device")
    with mock.patch("gridmap.store.media.os.fsync", side_effect=full):
        r = upload(client, case["id"], png())
        zh = upload(client, case["id"], png(), headers={"Accept-Language": "zh-CN"})
    assert r.status_code == 507 and r.json()["field"] == "file" and r.json()["code"] == "insufficient_storage"
    assert r.json()["title"] == "Insufficient storage" and zh.json()["title"] == "存储空间不足"
    assert zh.status_code == 507 and "存储空间已满" in zh.json()["detail"]
    with client.app.state.sessionmaker() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Attachment).where(Attachment.case_id == case["id"])) == 0
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(CaseEvent)
                .where(CaseEvent.case_id == case["id"], CaseEvent.action == "attach")
            )
            == 0
        )
    folder = client.app.state.media_store.root / "cases" / str(case["id"])
    assert (list(folder.iterdir()) if folder.exists() else []) == []  # no file, no half-written temporary
    assert upload(client, case["id"], png()).status_code == 201  # space again: no restart needed


def test_an_unreachable_object_store_is_503_with_retry_after(settings):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = settings.model_copy(
        update={
            "media_s3_bucket": "nowhere",
            "media_s3_endpoint": f"http://127.0.0.1:{port}",
            "media_s3_access_key": "x",
            "media_s3_secret_key": "y",
        }
    )
    with api_client(down, role="dispatcher") as c:
        case = new_case(c)
        r = upload(c, case["id"], png())
        assert r.status_code == 503 and r.json()["code"] == "storage_unavailable" and r.headers["retry-after"]
        assert c.get(f"/api/v1/cases/{case['id']}/attachments").json()["items"] == []


# -- S3-compatible storage ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server():
    """A real S3-protocol server on a free local port (moto's ThreadedMotoServer: HTTP, not a mock of boto3)."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _bucket(endpoint: str) -> str:
    import boto3

    name = f"gridmap-{uuid.uuid4().hex[:10]}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    ).create_bucket(Bucket=name)
    return name


def test_s3_store_round_trip(s3_server):
    bucket = _bucket(s3_server)
    store = media_store.S3Store(
        media_store.S3Config(
            bucket=bucket,
            endpoint_url=s3_server,
            region="us-east-1",
            access_key="test",
            secret_key="test",
            prefix="gridmap/",
        )
    )
    data = png((64, 48))
    store.put("cases/1/abc.png", data, "image/png")
    assert store.get("cases/1/abc.png") == data
    raw = store.client.get_object(Bucket=bucket, Key="gridmap/cases/1/abc.png")
    assert raw["ContentType"] == "image/png"
    store.delete("cases/1/abc.png")
    with pytest.raises(attachments.NotFound):
        store.get("cases/1/abc.png")
    with pytest.raises(ValueError):
        store.put("../etc/passwd", b"x", "text/plain")


def test_uploads_go_to_the_s3_bucket_when_one_is_configured(settings, s3_server, tmp_path):
    bucket = _bucket(s3_server)
    s3 = settings.model_copy(
        update={
            "media_s3_bucket": bucket,
            "media_s3_endpoint": s3_server,
            "media_s3_region": "us-east-1",
            "media_s3_access_key": "test",
            "media_s3_secret_key": "test",
            "media_dir": str(tmp_path / "unused"),
        }
    )
    with api_client(s3, role="dispatcher") as c:
        case = new_case(c)
        body = upload(c, case["id"], jpeg_with_gps()).json()
        image = c.get(body["url"])
        assert image.status_code == 200 and Image.open(io.BytesIO(image.content)).size == (600, 800)
        assert c.get(body["thumbnail_url"]).status_code == 200
        store = c.app.state.media_store
        assert isinstance(store, media_store.S3Store)
        keys = {o["Key"] for o in store.client.list_objects_v2(Bucket=bucket)["Contents"]}
        with c.app.state.sessionmaker() as s:
            row = s.get(Attachment, body["id"])
            assert row.backend == "s3" and {row.storage_key, row.thumbnail_key} == keys
    assert not (tmp_path / "unused").exists()


def test_directory_store_writes_whole_files_under_its_root(tmp_path):
    store = media_store.DirectoryStore(tmp_path)
    store.put("cases/7/x.jpg", b"abc", "image/jpeg")
    assert (tmp_path / "cases" / "7" / "x.jpg").read_bytes() == b"abc"
    assert not [p for p in (tmp_path / "cases" / "7").iterdir() if p.name.startswith(".upload-")]
    for bad in ("../x", "/etc/passwd", "cases/../../x", "Cases/1/A.JPG", "", "a//b"):
        with pytest.raises(ValueError):
            store.put(bad, b"x", "image/jpeg")
    store.delete("cases/7/x.jpg")
    with pytest.raises(attachments.NotFound):
        store.get("cases/7/x.jpg")


# -- the cleaning itself (no database) ---------------------------------------------------------------------------


def _encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def test_webp_png_with_metadata_and_damaged_files():
    from PIL import ImageCms

    opaque = attachments.prepare(_encoded(Image.new("RGB", (50, 40), (9, 9, 9)), "WEBP", quality=90))
    assert opaque.content_type == "image/jpeg" and (opaque.width, opaque.height) == (50, 40)
    clear = attachments.prepare(_encoded(Image.new("RGBA", (50, 40), (9, 9, 9, 0)), "WEBP", lossless=True))
    assert clear.content_type == "image/png" and Image.open(io.BytesIO(clear.data)).mode == "RGBA"
    # a PNG with text chunks, an ICC profile and EXIF: none of it is kept
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "张三 13812345678")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestPhone"
    noisy = _encoded(Image.new("RGB", (30, 20), (1, 2, 3)), "PNG", pnginfo=info, icc_profile=srgb, exif=exif)
    clean = attachments.prepare(noisy)
    stored = Image.open(io.BytesIO(clean.data))
    assert stored.format == "PNG" and not {"Author", "icc_profile", "exif"} & set(stored.info)
    assert b"13812345678" not in clean.data and b"TestPhone" not in clean.data
    # big photos are shrunk to the longest side allowed
    big = attachments.prepare(_encoded(Image.new("RGB", (5000, 1000)), "JPEG"))
    assert (big.width, big.height) == (4096, 819)
    # a truncated JPEG, and one that only starts like one
    whole = _encoded(Image.new("RGB", (300, 300), (200, 10, 10)), "JPEG")
    for data in (whole[: len(whole) // 3], b"\xff\xd8\xff\xe0\x00\x10JFIF\x00garbage"):
        with pytest.raises(attachments.InvalidInput) as refused:
            attachments.prepare(data)
        assert refused.value.field == "file" and refused.value.zh
