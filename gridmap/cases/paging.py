"""Keyset (cursor) paging of case lists: where a page ended, as an opaque token the next request continues after.

A list is ordered by a sort key and the case id (the tie-breaker, in the same direction): `reported_at` (never
NULL), `deadline` and `overdue_by` (the deadline; cases without one last, whichever the direction), `updated_at`
(the last history entry; cases without history last). A page ends at a position — the sort key's value (or NULL)
and the id of its last case — and the next page is the cases strictly after that position in the order
(`gridmap.cases.queries.page_cases`): a condition the database answers from its indexes, however deep the page,
where an OFFSET reads and throws away every case before it. Cases added or removed between pages move no one:
each case that stays in the list is listed once, in order; a case added before the position is not listed.

The cursor is base64url of a small JSON object — the format version, the sort and the direction it belongs to, the
key (ISO 8601, UTC, microseconds; or null) and the id — followed by a keyed BLAKE2b tag of it. The tag catches a
cursor edited or cut by hand or by a careless client (a 422 naming `cursor`, as for any malformed one). It is
not a secret and the cursor grants nothing: the list's filters and the caller's jurisdiction are applied to every
page as to the first, so a forged position shows only cases the caller could list anyway.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass

from gridmap.errors import InvalidInput

VERSION = 1
MAX_CURSOR = 200  # characters: a cursor is about 110
MAX_ID = 2**63 - 1
_TAG_KEY = b"gridmap case list cursor v1"  # a fixed key: integrity against editing, not authority (see above)
_TAG_BYTES = 8
NULLABLE_SORTS = frozenset({"deadline", "overdue_by", "updated_at"})


@dataclass(frozen=True)
class Position:
    """Where a page of a list sorted by `sort` in `order` ended: the sort key of its last case (None: a case
    without the key) and that case's id."""

    sort: str
    order: str
    key: dt.datetime | None
    id: int


def _utc(value: dt.datetime) -> dt.datetime:
    """Times are stored in UTC; SQLite hands them back naive."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _tag(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, key=_TAG_KEY, digest_size=_TAG_BYTES).digest()


def encode(position: Position) -> str:
    """The opaque cursor of a position."""
    key = None if position.key is None else _utc(position.key).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    payload = json.dumps(
        {"v": VERSION, "s": position.sort, "o": position.order, "k": key, "i": position.id},
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode("ascii")
    return base64.urlsafe_b64encode(payload + _tag(payload)).rstrip(b"=").decode("ascii")


def _malformed(why: str, zh: str) -> InvalidInput:
    return InvalidInput(
        f"cursor: {why}; use the next_cursor of the previous page as it came, or leave cursor out for the first page",
        field="cursor",
        zh=f"游标（cursor）{zh}；请原样使用上一页返回的 next_cursor，或不带 cursor 取第一页。",
    )


def decode(text: str, *, sort: str, order: str) -> Position:
    """The position a cursor names, checked: well-formed, untouched (its tag), of this format version, made for a
    list of this sort and direction, a key of the right kind and an id in range. Anything else: InvalidInput on
    `cursor`."""
    if not text or len(text) > MAX_CURSOR:
        raise _malformed(f"from 1 to {MAX_CURSOR} characters", f"长度应为 1 至 {MAX_CURSOR} 个字符")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _malformed("not a cursor this service made", "无效，不是本服务生成的游标") from None
    payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if len(raw) <= _TAG_BYTES or not hmac.compare_digest(tag, _tag(payload)):
        raise _malformed("not a cursor this service made, or altered", "无效或已被改动")
    try:
        data = json.loads(payload)
    except ValueError:
        raise _malformed("not a cursor this service made", "无效，不是本服务生成的游标") from None
    if not isinstance(data, dict) or data.get("v") != VERSION:
        raise _malformed("of another version of the service", "来自其他版本的服务")
    if data.get("s") != sort or data.get("o") != order:
        raise InvalidInput(
            f"cursor: made for the list sorted by {data.get('s')!r} {data.get('o')!r}, not by {sort!r} {order!r}; "
            "a cursor continues the list it came from (same sort and order)",
            field="cursor",
            zh=f"游标（cursor）属于按 {data.get('s')!r} {data.get('o')!r} 排序的列表，与本次排序 {sort!r} {order!r} "
            "不符；游标只能用于同一排序的下一页。",
        )
    ident, key_text = data.get("i"), data.get("k")
    if type(ident) is not int or not 1 <= ident <= MAX_ID:
        raise _malformed("its case id is out of range", "中的案件编号超出范围")
    if key_text is None:
        if sort not in NULLABLE_SORTS:
            raise _malformed(f"a list sorted by {sort} has no case without the key", "中的排序值不能为空")
        return Position(sort, order, None, ident)
    try:
        if not isinstance(key_text, str) or len(key_text) > 40:
            raise ValueError(key_text)
        key = dt.datetime.fromisoformat(key_text)
    except ValueError:
        raise _malformed("its sort key is not a time", "中的排序值不是时间") from None
    if key.tzinfo is None or not 1900 <= key.year <= 2300:
        raise _malformed("its sort key is not a time in UTC", "中的排序值不是有效的 UTC 时间")
    return Position(sort, order, _utc(key), ident)


__all__ = ["MAX_CURSOR", "NULLABLE_SORTS", "Position", "decode", "encode"]
