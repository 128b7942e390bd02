"""Photos of a case (上报照片, 处置前, 处置后, 巡查): checked, cleaned, stored, listed.

An upload goes through `prepare` before anything is stored or any row written:

1. size: at most `Limits.max_bytes` (10 MB by default);
2. content, from the first bytes (never the file's name or declared type): JPEG, PNG or WebP only — a `.jpg`
   holding HTML, SVG, a PDF or anything else is refused, naming the field `file`;
3. pixels, from the header alone (Pillow opens lazily: nothing is decoded yet): at most `Limits.max_pixels`, so a
   decompression bomb — a 30,000 × 30,000 PNG of zeros is a few kilobytes — is refused without allocating it;
4. the GPS position of the EXIF block is read (WGS84 degrees), to be offered as a location candidate;
5. the image is decoded (first frame only), turned upright by its EXIF orientation, converted to sRGB, shrunk
   to at most `Limits.max_side` pixels, and re-encoded from its pixels alone — JPEG (quality 85) for photos, PNG
   for PNGs and for WebPs with transparency — so EXIF, GPS, XMP, ICC, comments and anything a polyglot file
   carried after its image data are gone;
6. a thumbnail (JPEG, at most 320 px on its longer side).

Then `add` stores both files (`gridmap.store.media`) and writes the `attachment` row and a history event on the
case; the caller commits. Who may add which stage is `may_add`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import math
import re
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap import errors
from gridmap.errors import Conflict, InvalidInput, NotFound
from gridmap.store.partitions import this_case
from gridmap.store.tables import FINISHED_STATES, Attachment, Case, CaseEvent

if TYPE_CHECKING:
    from PIL import Image

    from gridmap.store.media import MediaStore

STAGES: dict[str, str] = {"report": "上报照片", "before": "处置前", "after": "处置后", "patrol": "巡查照片"}
HANDLING_STAGES = ("before", "after")
HANDLING_STATES = ("dispatched", "accepted", "rework", "handled")  # a holder may photograph the work in these
ACTION = "attach"  # the history event of an upload (zh 上传照片)
THUMBNAIL_SIDE = 320
JPEG_QUALITY = 85
SNIFF_BYTES = 64


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 50_000_000
    max_side: int = 4096
    per_case: int = 20


@dataclass(frozen=True)
class Prepared:
    """A cleaned image and its thumbnail, ready to store."""

    data: bytes
    content_type: str
    width: int
    height: int
    thumbnail: bytes
    thumb_width: int
    thumb_height: int
    gps: tuple[float, float] | None  # (lon, lat) WGS84 from the EXIF block, or None
    source_type: str  # what the upload held: jpeg | png | webp

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# -- content ---------------------------------------------------------------------------------------------------


def sniff(head: bytes) -> str:
    """What the first bytes say a file holds: jpeg, png, webp (accepted), or html, svg, xml, gif, pdf, zip, text,
    empty, other (refused)."""
    if not head:
        return "empty"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    text = head.lstrip(b"\xef\xbb\xbf").lstrip().lower()
    if text.startswith(b"<svg") or b"<svg" in text:
        return "svg"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<meta", b"<iframe", b"<img")):
        return "html"
    if text.startswith(b"<?xml") or text.startswith(b"<!--") or text.startswith(b"<"):
        return "xml" if b"html" not in text else "html"
    if b"\x00" not in head:
        return "text"
    return "other"


CONTENT_EN = {
    "html": "an HTML page",
    "svg": "an SVG drawing",
    "xml": "XML or markup",
    "gif": "a GIF",
    "pdf": "a PDF document",
    "zip": "a ZIP archive",
    "text": "text",
    "empty": "nothing (0 bytes)",
    "other": "data that is not an image",
}
CONTENT_ZH = {
    "html": "HTML 网页",
    "svg": "SVG 矢量图",
    "xml": "XML 或标记文本",
    "gif": "GIF 动图",
    "pdf": "PDF 文档",
    "zip": "ZIP 压缩包",
    "text": "文本",
    "empty": "空文件",
    "other": "非图片数据",
}
PILLOW_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


def _mb(n: int) -> str:
    value = n / 2**20
    return f"{value:.0f}" if value == int(value) else f"{value:.1f}"


class TooLarge(errors.TooLarge):
    """The file is over the size limit (kind `too_large`)."""


def check_size(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise TooLarge(
            f"file: {size:,} bytes is over the {_mb(limits.max_bytes)} MB limit for a photo",
            field="file",
            zh=f"文件：{size:,} 字节，超过照片上限 {_mb(limits.max_bytes)} MB。",
        )


def _refuse_content(kind: str) -> InvalidInput:
    return InvalidInput(
        f"file: holds {CONTENT_EN[kind]}, not a photo; accepted: JPEG, PNG, WebP (unsupported_image)",
        field="file",
        zh=f"文件：内容是{CONTENT_ZH[kind]}，不是照片；可接受：JPEG、PNG、WebP。",
    )


def _damaged() -> InvalidInput:
    return InvalidInput(
        "file: the image is damaged or truncated and cannot be read",
        field="file",
        zh="文件：图片已损坏或不完整，无法读取。",
    )


def _too_many_pixels(width: int, height: int, limits: Limits) -> InvalidInput:
    mp = limits.max_pixels / 1e6
    return InvalidInput(
        f"file: {width:,} × {height:,} pixels is over the pixel limit of {mp:g} megapixels "
        "(refused from the header, before decoding)",
        field="file",
        zh=f"文件：{width:,} × {height:,} 像素，超过 {mp:g} 百万像素的上限（按文件头判断，未解码）。",
    )


# -- EXIF ------------------------------------------------------------------------------------------------------


def _degrees(value: Any, ref: object) -> float | None:
    try:
        d, m, s = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    result = d + m / 60 + s / 3600
    if not math.isfinite(result):
        return None
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    if str(ref or "").strip().upper() in ("S", "W"):
        result = -result
    return result


def gps_of(image: Image.Image) -> tuple[float, float] | None:
    """(lon, lat) in WGS84 degrees from the EXIF GPS block, or None when it is missing or impossible."""
    from PIL import ExifTags

    try:
        gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # noqa: BLE001 - a broken EXIF block is no position, not a refusal
        return None
    if not gps:
        return None
    lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef))
    lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return round(lon, 7), round(lat, 7)


# -- the pipeline ----------------------------------------------------------------------------------------------


def _open(data: bytes, kind: str, limits: Limits) -> Image.Image:
    """Open lazily (header only) and check the pixel count before anything is decoded."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
        try:
            image = Image.open(io.BytesIO(data), formats=[PILLOW_FORMATS[kind]])
        except Image.DecompressionBombError as exc:
            width, height = _header_size(data, kind)
            if not width:  # Pillow says how many pixels, not the sides
                found = re.search(r"\((\d+) pixels\)", str(exc))
                pixels = int(found.group(1)) if found else 0
                mp = limits.max_pixels / 1e6
                raise InvalidInput(
                    f"file: {pixels:,} pixels is over the pixel limit of {mp:g} megapixels "
                    "(refused from the header, before decoding)",
                    field="file",
                    zh=f"文件：{pixels:,} 像素，超过 {mp:g} 百万像素的上限（按文件头判断，未解码）。",
                ) from None
            raise _too_many_pixels(width, height, limits) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
            raise _damaged() from None
    width, height = image.size
    if width < 1 or height < 1:
        raise _damaged()
    if width * height > limits.max_pixels:
        raise _too_many_pixels(width, height, limits)
    return image


def _header_size(data: bytes, kind: str) -> tuple[int, int]:
    """The size a PNG's IHDR declares (Pillow refuses bombs before telling the size); 0 × 0 when unknown."""
    if kind == "png" and len(data) >= 24 and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return 0, 0


def _to_srgb(image: Image.Image) -> Image.Image:
    from PIL import ImageCms

    icc = image.info.get("icc_profile")
    if not icc:
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") else "RGB"
        if image.mode not in ("RGB", "RGBA", "CMYK", "L"):
            return image
        converted = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode=mode)
        return converted if converted is not None else image  # None only for inPlace=True
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return image  # a profile we cannot apply is dropped with the rest of the metadata


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def prepare(data: bytes, limits: Limits | None = None) -> Prepared:
    """Check, clean and re-encode an uploaded photo (see the module doc); `InvalidInput` naming `file` when it is
    refused (`TooLarge` for the size)."""
    from PIL import Image, ImageOps

    limits = limits or Limits()
    check_size(len(data), limits)
    kind = sniff(data[:SNIFF_BYTES])
    if kind not in PILLOW_FORMATS:
        raise _refuse_content(kind)
    image = _open(data, kind, limits)
    gps = gps_of(image)
    try:
        image.seek(0)  # an animated PNG or WebP: the first frame
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # no copy of a 12-megapixel photo
        upright = image
    except Image.DecompressionBombError:
        raise _too_many_pixels(*image.size, limits) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError):
        raise _damaged() from None
    alpha = _has_alpha(upright)
    if upright.mode == "P":
        upright = upright.convert("RGBA" if alpha else "RGB")
    upright = _to_srgb(upright)
    keep_png = kind == "png" or (kind == "webp" and alpha)
    grey = upright.mode in ("L", "1", "I", "I;16", "F")
    mode = ("RGBA" if alpha else ("L" if grey else "RGB")) if keep_png else ("L" if grey else "RGB")
    clean = upright if upright.mode == mode else upright.convert(mode)
    if max(clean.size) > limits.max_side:
        clean.thumbnail((limits.max_side, limits.max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    clean.info = {}  # nothing of the upload's metadata goes along with the pixels
    out = io.BytesIO()
    if keep_png:
        clean.save(out, "PNG", compress_level=6)
        content_type = "image/png"
    else:
        clean.save(out, "JPEG", quality=JPEG_QUALITY)  # baseline: optimize/progressive cost 5× the time
        content_type = "image/jpeg"
    scale = min(1.0, THUMBNAIL_SIDE / max(clean.size))  # made from the clean image without copying it whole
    size = (max(1, round(clean.width * scale)), max(1, round(clean.height * scale)))
    thumb = clean.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0) if scale < 1 else clean.copy()
    if thumb.mode in ("RGBA", "LA"):
        flat = Image.new("RGB", thumb.size, (255, 255, 255))
        flat.paste(thumb, mask=thumb.getchannel("A"))
        thumb = flat
    elif thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGB")
    thumb_out = io.BytesIO()
    thumb.save(thumb_out, "JPEG", quality=80)
    return Prepared(
        out.getvalue(),
        content_type,
        clean.width,
        clean.height,
        thumb_out.getvalue(),
        thumb.width,
        thumb.height,
        gps,
        kind,
    )


# -- who may add what ------------------------------------------------------------------------------------------


def may_add(
    case: Case,
    stage: str,
    *,
    role: str,
    staff_id: int | None = None,
    department_id: int | None = None,
    reporter: bool = False,
) -> None:
    """Refuse a stage the caller may not add to this case (the caller already sees the case, or holds its
    reporter token):

    * `report` — the reporter (with the case's token), intake staff (dispatcher, admin, manager, integration),
      and the worker whose patrol found it;
    * `before` / `after` — the worker the case is assigned to, or the department it is given to, while the case
      is being worked (dispatched, accepted, rework, handled);
    * `patrol` — the worker whose patrol report it is.
    Nothing is added to a finished case (closed, rejected, voided, merged)."""
    if stage not in STAGES:
        raise InvalidInput(
            f"stage: {stage!r} is not a stage; accepted: {', '.join(STAGES)}",
            field="stage",
            zh=f"阶段：{stage!r} 不是照片阶段；可接受：{'、'.join(STAGES.values())}。",
        )
    if case.state in FINISHED_STATES:
        raise Conflict(
            f"case {case.number} is {case.state}: no more photos can be added",
            field="id",
            zh=f"案件 {case.number} 已办结或已关闭，不能再添加照片。",
        )
    holder = (role == "worker" and staff_id is not None and case.assignee_id == staff_id) or (
        role == "department" and department_id is not None and case.department_id == department_id
    )
    patroller = role == "worker" and staff_id is not None and case.reported_by_staff_id == staff_id
    if reporter:
        allowed = stage == "report"
    elif stage == "report":
        allowed = role in ("dispatcher", "admin", "manager", "integration") or patroller
    elif stage == "patrol":
        allowed = patroller
    else:
        allowed = holder
    if not allowed:
        who = "the reporter" if reporter else f"role {role}"
        raise InvalidInput(_STAGE_RULE[stage].format(who=who), field="stage", zh=_STAGE_RULE_ZH[stage])
    if stage in HANDLING_STAGES and case.state not in HANDLING_STATES:
        raise Conflict(
            f"stage: {STAGES[stage]} photos are taken while the case is worked on "
            f"({', '.join(HANDLING_STATES)}); case {case.number} is {case.state}",
            field="stage",
            zh=f"阶段：{STAGES[stage]}照片须在案件处置期间上传；案件 {case.number} 当前不在处置中。",
        )


_STAGE_RULE = {
    "report": "stage: {who} may not add report photos to this case (the reporter with its reporter_token, intake "
    "staff, or the worker whose patrol found it)",
    "before": "stage: {who} may not add before photos: only the worker or department the case is with",
    "after": "stage: {who} may not add after photos: only the worker or department the case is with",
    "patrol": "stage: {who} may not add patrol photos: only the worker whose patrol report it is",
}
_STAGE_RULE_ZH = {
    "report": "阶段：无权为此案件添加上报照片（仅上报人凭上报凭证、受理人员或巡查发现的网格员）。",
    "before": "阶段：只有承办此案件的网格员或职能部门可以添加处置前照片。",
    "after": "阶段：只有承办此案件的网格员或职能部门可以添加处置后照片。",
    "patrol": "阶段：只有巡查上报此案件的网格员可以添加巡查照片。",
}


# -- storing and reading ---------------------------------------------------------------------------------------


def _keys(case_id: int, content_type: str) -> tuple[str, str]:
    token = uuid.uuid4().hex
    ext = "png" if content_type == "image/png" else "jpg"
    return f"cases/{case_id}/{token}.{ext}", f"cases/{case_id}/{token}.thumb.jpg"


def count_for(session: Session, case_id: int) -> int:
    return int(
        session.scalar(sa.select(sa.func.count()).select_from(Attachment).where(Attachment.case_id == case_id)) or 0
    )


def counts(session: Session, case_ids: Iterable[int | None]) -> dict[int, int]:
    """Attachments per case, for the given cases (absent = 0): one grouped query for a page of cases."""
    ids = sorted({int(i) for i in case_ids if i is not None})
    if not ids:
        return {}
    rows = session.execute(
        sa.select(Attachment.case_id, sa.func.count()).where(Attachment.case_id.in_(ids)).group_by(Attachment.case_id)
    )
    return {int(case_id): int(n) for case_id, n in rows}


def add(
    session: Session,
    store: MediaStore,
    case: Case,
    prepared: Prepared,
    stage: str,
    *,
    actor: str,
    limits: Limits | None = None,
    now: dt.datetime | None = None,
) -> Attachment:
    """Store the prepared image and its thumbnail, and record them on the case (a row and a history event); the
    caller commits. The files are removed again when the row cannot be written."""
    limits = limits or Limits()
    # the case row is locked first (PostgreSQL) so that two uploads at once cannot both pass the count
    session.execute(sa.select(Case.id).where(this_case(session, case)).with_for_update())
    if count_for(session, case.id) >= limits.per_case:
        raise Conflict(
            f"case {case.number} already has {limits.per_case} attachments, the most one case may have",
            field="file",
            zh=f"案件 {case.number} 已有 {limits.per_case} 个附件，已达上限。",
        )
    now = now or dt.datetime.now(dt.UTC)
    key, thumb_key = _keys(case.id, prepared.content_type)
    store.put(key, prepared.data, prepared.content_type)
    try:
        store.put(thumb_key, prepared.thumbnail, "image/jpeg")
        row = Attachment(
            case_id=case.id,
            stage=stage,
            content_type=prepared.content_type,
            width=prepared.width,
            height=prepared.height,
            bytes=len(prepared.data),
            sha256=prepared.sha256,
            storage_key=key,
            thumbnail_key=thumb_key,
            thumb_width=prepared.thumb_width,
            thumb_height=prepared.thumb_height,
            backend=store.name,
            gps_lon=prepared.gps[0] if prepared.gps else None,
            gps_lat=prepared.gps[1] if prepared.gps else None,
            uploaded_by=actor[:64],
            at=now,
        )
        session.add(row)
        session.flush()
        detail = {
            "attachment_id": row.id,
            "stage": stage,
            "content_type": prepared.content_type,
            "bytes": len(prepared.data),
            "width": prepared.width,
            "height": prepared.height,
        }
        if prepared.gps:
            detail["gps"] = {"lon": prepared.gps[0], "lat": prepared.gps[1]}
        session.add(
            CaseEvent(
                case_id=case.id,
                at=now,
                actor=actor[:64],
                action=ACTION,
                from_state=case.state,
                to_state=case.state,
                detail=detail,
            )
        )
        session.flush()
    except BaseException:
        discard(store, key, thumb_key)
        raise
    return row


def discard(store: MediaStore, *keys: str) -> None:
    """Remove stored files whose row was not committed (best effort: an orphan file is harmless, a row without
    its file is not)."""
    for key in keys:
        with contextlib.suppress(Exception):  # best effort
            store.delete(key)


def for_case(session: Session, case_id: int) -> list[Attachment]:
    return list(
        session.scalars(
            sa.select(Attachment).where(Attachment.case_id == case_id).order_by(Attachment.at, Attachment.id)
        )
    )


def get(session: Session, attachment_id: int) -> Attachment:
    row = session.get(Attachment, attachment_id)
    if row is None:
        raise NotFound(
            f"attachment id: no attachment has id {attachment_id}",
            field="id",
            zh=f"附件编号：没有编号为 {attachment_id} 的附件。",
        )
    return row


def first_photos(session: Session, case_ids: Iterable[int | None]) -> dict[int, int]:
    """The first report or patrol photo of each case (case id → attachment id), for Open311's `media_url`."""
    ids = sorted({int(i) for i in case_ids if i is not None})
    if not ids:
        return {}
    rows = session.execute(
        sa.select(Attachment.case_id, sa.func.min(Attachment.id))
        .where(Attachment.case_id.in_(ids), Attachment.stage.in_(("report", "patrol")))
        .group_by(Attachment.case_id)
    )
    return {int(c): int(a) for c, a in rows}


def view(row: Attachment) -> dict[str, Any]:
    """The stored facts of an attachment (the API adds its URLs)."""
    at = row.at if row.at is None or row.at.tzinfo else row.at.replace(tzinfo=dt.UTC)
    return {
        "id": row.id,
        "case_id": row.case_id,
        "stage": row.stage,
        "stage_zh": STAGES.get(row.stage, row.stage),
        "content_type": row.content_type,
        "width": row.width,
        "height": row.height,
        "bytes": row.bytes,
        "sha256": row.sha256,
        "thumbnail_width": row.thumb_width,
        "thumbnail_height": row.thumb_height,
        "gps": {"lon": row.gps_lon, "lat": row.gps_lat, "crs": "wgs84"} if row.gps_lon is not None else None,
        "uploaded_by": row.uploaded_by,
        "at": at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if at else None,
    }
