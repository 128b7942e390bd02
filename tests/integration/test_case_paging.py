"""Case lists and queues paged by cursor (`gridmap.cases.paging`), on both databases.

Walking a list page by page through `next_cursor` gives every case that was there once, in the list's order, for
each sort and direction, with ties of the sort key (cases given the same report time, deadline or last history
time) and cases without it (no deadline, no history) — while new cases are reported between the pages. A queue
walked by cursor gives the cases its offset pages give. The total is counted on the first page only (or when asked
for). A cursor that is malformed, altered, too long or made for another sort is a 422 problem naming `cursor`, in
Chinese unless English is asked for; a cursor together with an offset names `offset`. On PostGIS a date-bounded
page after a cursor reads only the month partitions of its period.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import re
import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from gridmap.cases import intake as cases
from gridmap.cases import paging, queries
from tests.helpers import inside

SORTS = [(s, o) for s in ("reported_at", "deadline", "overdue_by", "updated_at") for o in ("asc", "desc")]
LIMIT = 40
TIE = LIMIT + 5
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TIE_REPORTED = dt.datetime(2026, 9, 9, 1, 2, 3, 456789, tzinfo=dt.UTC)
# in the future whatever the day the tests run: a past deadline makes the tied cases overdue, and the app's sweep
# (every minute) escalated them in the middle of a walk, moving their last change (the walk by last update failed
# once 2026-12-01 had passed)
TIE_DUE = dt.datetime(2099, 12, 1, 8, 0, tzinfo=dt.UTC)
APP_SETTINGS = {"escalation_interval_s": 3600.0}  # the sweep at start-up only: no case changes while a walk runs
TIE_EVENT = dt.datetime(2026, 10, 10, 10, 10, 10, 101010, tzinfo=dt.UTC)


def _sql_time(engine: sa.Engine, at: dt.datetime) -> Any:
    """A UTC time as the database stores it (SQLite: the UTC wall clock as text)."""
    if engine.dialect.name == "sqlite":
        return at.strftime("%Y-%m-%d %H:%M:%S.%f")
    return at


def _swept(engine: sa.Engine) -> None:
    """Every overdue case escalated, as the app's start-up sweep would, and that sweep over: it runs in the
    background and escalated cases (a history entry each) in the middle of a walk by last update when the machine
    was busy (`pytest -n 2`). The sweep's conditional update leaves it nothing to do after this."""
    from gridmap.cases.workflow import overdue_candidates, sweep_overdue

    now = dt.datetime.now(dt.UTC)
    factory = sessionmaker(engine)
    for _ in range(600):
        sweep_overdue(factory, now)
        with factory() as session:
            if not overdue_candidates(session, now, 1):
                return
        time.sleep(0.1)  # (on PostgreSQL the app's sweep holds its lock: it is sweeping)
    raise AssertionError("the overdue cases were not all escalated within a minute")


@pytest.fixture(scope="module")
def ties(engine, client) -> dict[str, list[int]]:
    """Ties and blanks for every sort key, on the module's demo, each of TIE cases (more than a page): cases reported
    at one instant, given one deadline, whose history all happened at one instant, with no history at all (no
    `updated_at`), and with no deadline (besides the demo's reported ones). Made once the app has started and every
    overdue case is escalated (`_swept`): nothing changes them while a list is walked."""
    _swept(engine)
    with engine.begin() as conn:
        ids = conn.execute(sa.text("SELECT id FROM case_file ORDER BY id")).scalars().all()
        assert len(ids) > 5 * TIE
        groups = {  # every group longer than a page: a page boundary falls inside each tie, whatever the order
            "reported": ids[0:TIE],
            "due": ids[TIE : 2 * TIE],
            "event": ids[2 * TIE : 3 * TIE],
            "no_history": ids[3 * TIE : 4 * TIE],
            "no_due": ids[4 * TIE : 5 * TIE],
        }
        for name, column, value in (("reported", "reported_at", TIE_REPORTED), ("due", "due_at", TIE_DUE)):
            conn.execute(
                sa.text(f"UPDATE case_file SET {column} = :v WHERE id IN ({','.join(map(str, groups[name]))})"),
                {"v": _sql_time(engine, value)},
            )
        conn.execute(
            sa.text(f"UPDATE case_file SET due_at = NULL WHERE id IN ({','.join(map(str, groups['no_due']))})")
        )
        conn.execute(
            sa.text(f"UPDATE case_event SET at = :v WHERE case_id IN ({','.join(map(str, groups['event']))})"),
            {"v": _sql_time(engine, TIE_EVENT)},
        )
        conn.execute(sa.text(f"DELETE FROM case_event WHERE case_id IN ({','.join(map(str, groups['no_history']))})"))
    return groups


def _keys(engine: sa.Engine, ids: list[int]) -> dict[int, dict[str, dt.datetime | None]]:
    """Each case's sort keys as stored: report time, deadline, time of the last history entry."""
    with Session(engine) as session:
        rows = session.execute(
            sa.select(
                cases.Case.id,
                cases.Case.reported_at,
                cases.Case.due_at,
                sa.select(sa.func.max(cases.CaseEvent.at))
                .where(cases.CaseEvent.case_id == cases.Case.id)
                .correlate(cases.Case)
                .scalar_subquery(),
            ).where(cases.Case.id.in_(ids))
        ).all()
    return {
        r[0]: {"reported_at": cases.utc(r[1]), "due_at": cases.utc(r[2]), "updated_at": cases.utc(r[3])} for r in rows
    }


def _micro(at: dt.datetime) -> int:
    return (at - EPOCH) // dt.timedelta(microseconds=1)


def _order_key(sort: str, order: str, keys: dict[str, dt.datetime | None], case_id: int) -> tuple:
    """Where a case goes in a list sorted by `sort` `order`: keyed cases first (by key, then id, both in the
    direction), cases without the key last (by id); `overdue_by` is the deadline the other way round."""
    value = keys["due_at" if sort in ("deadline", "overdue_by") else sort]
    desc = (order == "desc") != (sort == "overdue_by")
    sign = -1 if desc else 1
    if value is None:
        return (1, 0, sign * case_id)
    return (0, sign * _micro(value), sign * case_id)


def _walk(client, path: str, params: dict[str, Any], *, between=None) -> tuple[list[int], list[dict]]:
    """Every page of a list by its cursors: the ids in the order given, and each page's answer (items left out)."""
    ids: list[int] = []
    pages: list[dict] = []
    cursor = None
    for n in itertools.count():
        r = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        ids += [c["id"] for c in body["items"]]
        pages.append({k: v for k, v in body.items() if k != "items"} | {"count": len(body["items"])})
        cursor = body["next_cursor"]
        if cursor is None:
            return ids, pages
        assert len(body["items"]) == params["limit"]  # a page before the last is full
        if between:
            between(n)


@pytest.mark.parametrize(("sort", "order"), SORTS)
def test_walking_every_page_by_cursor_gives_each_case_once_in_order(client, engine, ties, sort, order):
    with engine.connect() as conn:
        before = set(conn.execute(sa.text("SELECT id FROM case_file")).scalars())
    x, y = inside(client, 3)
    added: list[int] = []

    def report(n: int) -> None:  # new cases between pages: each lands somewhere in the order (or before the start)
        if n % 3 == 0:
            r = client.post("/api/v1/cases", json={"title": f"翻页中新报 {sort} {order} {n}", "lon": x, "lat": y})
            assert r.status_code == 201, r.text
            added.append(r.json()["id"])

    walked, pages = _walk(client, "/api/v1/cases", {"limit": LIMIT, "sort": sort, "order": order}, between=report)
    assert added, "the list is long enough for cases to be added while it is walked"
    assert len(walked) == len(set(walked)), "a case listed twice"
    assert before <= set(walked), f"cases never listed: {sorted(before - set(walked))[:10]}"
    assert set(walked) <= before | set(added)
    keys = _keys(engine, walked)
    expected = sorted(walked, key=lambda i: _order_key(sort, order, keys[i], i))
    assert walked == expected, "the pages are not in the list's order"
    # the ties and blanks made above are there, each group in id order within its tie
    for group in ties.values():
        assert set(group) <= set(walked)
    # counted once: on the first page; the pages after a cursor carry no total
    assert pages[0]["total"] is not None and pages[0]["total"] >= len(before)
    assert all(p["total"] is None for p in pages[1:]) and len(pages) > 3
    assert all(p["offset"] == 0 for p in pages)


def test_the_cursor_walk_and_the_offset_pages_agree_for_every_queue(client, ties):
    for queue in queries.QUEUES:
        walked, pages = _walk(client, f"/api/v1/queues/{queue}", {"limit": 7})
        total = pages[0]["total"]
        assert len(walked) == total, queue
        by_offset: list[int] = []
        for offset in range(0, total, 7):
            page = client.get(f"/api/v1/queues/{queue}", params={"limit": 7, "offset": offset}).json()
            assert page["total"] == total  # an offset page is counted, as before
            by_offset += [c["id"] for c in page["items"]]
        assert walked == by_offset, queue


def test_an_offset_page_gives_the_cursor_that_continues_it(client, ties):
    params = {"sort": "deadline", "order": "desc", "limit": 9}
    page = client.get("/api/v1/cases", params={**params, "offset": 18}).json()
    following = client.get("/api/v1/cases", params={**params, "cursor": page["next_cursor"]}).json()
    by_offset = client.get("/api/v1/cases", params={**params, "offset": 27}).json()
    assert [c["id"] for c in following["items"]] == [c["id"] for c in by_offset["items"]]


def test_the_total_is_counted_when_asked_for(client):
    first = client.get("/api/v1/cases", params={"limit": 5, "count": "false"}).json()
    assert first["total"] is None and first["next_cursor"]
    second = client.get("/api/v1/cases", params={"limit": 5, "cursor": first["next_cursor"], "count": "true"}).json()
    counted = client.get("/api/v1/cases", params={"limit": 5}).json()["total"]
    assert second["total"] == counted and counted > 10


def test_the_last_page_has_no_next_cursor(client):
    area = client.get("/api/v1/cases", params={"limit": 1}).json()["items"][0]["grid_code"]
    everything = client.get("/api/v1/cases", params={"area": area, "limit": 500}).json()
    assert everything["next_cursor"] is None and len(everything["items"]) == everything["total"]
    n = everything["total"]
    exact = client.get("/api/v1/cases", params={"area": area, "limit": n}).json()
    assert exact["next_cursor"] is None  # a page that ends exactly at the end has no next page
    geo = client.get("/api/v1/cases", params={"area": area, "limit": max(1, n - 1), "format": "geojson"}).json()
    assert geo["numberMatched"] == n and geo["next_cursor"]
    rest = client.get("/api/v1/cases", params={"area": area, "format": "geojson", "cursor": geo["next_cursor"]}).json()
    assert rest["numberMatched"] is None and len(rest["features"]) == 1 and rest["next_cursor"] is None


def _cursor(client, **params) -> str:
    cursor = client.get("/api/v1/cases", params={"limit": 3, **params}).json()["next_cursor"]
    assert cursor
    return cursor


def _altered(cursor: str) -> str:
    """The cursor with one character of its JSON changed (the id's last digit) and the old tag kept."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    payload, tag = raw[:-8], raw[-8:]
    digit = re.search(rb"\d(?=})", payload)
    assert digit
    swapped = payload[: digit.start()] + (b"1" if digit.group() != b"1" else b"2") + payload[digit.end() :]
    return base64.urlsafe_b64encode(swapped + tag).rstrip(b"=").decode()


def _forged(payload: bytes) -> str:
    """A cursor with this JSON and a right tag (as only the service makes them)."""
    return base64.urlsafe_b64encode(payload + paging._tag(payload)).rstrip(b"=").decode()


BAD_CURSORS = {
    "not base64": lambda c: "游标!!",
    "base64 of nothing it made": lambda c: "eyJ2IjoxfQ",
    "altered": _altered,
    "cut short": lambda c: c[:-5],
    "too long": lambda c: c + "A" * 300,
    "another sort": None,  # below
    "another version": lambda c: _forged(b'{"v":9,"s":"reported_at","o":"desc","k":null,"i":5}'),
    "null key of a sort never null": lambda c: _forged(b'{"v":1,"s":"reported_at","o":"desc","k":null,"i":5}'),
    "key not a time": lambda c: _forged(b'{"v":1,"s":"reported_at","o":"desc","k":"soon","i":5}'),
    "key without zone": lambda c: _forged(b'{"v":1,"s":"reported_at","o":"desc","k":"2026-01-01T00:00:00","i":5}'),
    "id not a number": lambda c: _forged(b'{"v":1,"s":"reported_at","o":"desc","k":null,"i":"5"}'),
    "id out of range": lambda c: _forged(b'{"v":1,"s":"reported_at","o":"desc","k":"2026-01-01T00:00:00Z","i":0}'),
    "not an object": lambda c: _forged(b"[1, 2]"),
}


@pytest.mark.parametrize("how", list(BAD_CURSORS))
def test_a_bad_cursor_is_a_422_naming_the_cursor_in_chinese_first(client, how):
    good = _cursor(client)
    if how == "another sort":
        bad, params = good, {"sort": "deadline"}
    else:
        bad, params = BAD_CURSORS[how](good), {}
    for path in ("/api/v1/cases", "/api/v1/queues/pending"):
        if path != "/api/v1/cases" and how == "another sort":
            continue  # the queue's own default sort
        r = client.get(path, params={"cursor": bad, **params}, headers={"Accept-Language": "zh-CN"})
        assert r.status_code == 422, (how, path, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["field"] == "cursor", body
        assert re.search(r"[\u4e00-\u9fff]", body["detail"]) and "游标" in body["detail"] or how == "too long", body
        english = client.get(path, params={"cursor": bad, **params}).json()
        assert english["field"] == "cursor" and not re.search(r"[\u4e00-\u9fff]", english["detail"]), english


def test_a_cursor_with_an_offset_is_a_422_naming_the_offset(client):
    r = client.get("/api/v1/cases", params={"cursor": _cursor(client), "offset": 10})
    assert r.status_code == 422 and r.json()["field"] == "offset"


def test_the_cursor_round_trips():
    at = dt.datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)
    for key in (at, at.replace(tzinfo=None), at.astimezone(dt.timezone(dt.timedelta(hours=8))), None):
        position = paging.Position("deadline", "asc", key, 123456)
        back = paging.decode(paging.encode(position), sort="deadline", order="asc")
        assert back == paging.Position("deadline", "asc", None if key is None else at, 123456)
    assert len(paging.encode(paging.Position("overdue_by", "desc", at, 2**31 - 1))) < paging.MAX_CURSOR
