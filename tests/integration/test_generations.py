"""Boundary generations on both databases: a planner drafts, redraws two micro-grids, sees which cases would
move, activates; locating then follows the new boundaries, and `as_of` answers with the old ones.

Each dialect gets a database of its own (`fresh_db_url`): activation changes what other tests rely on."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import shapely
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from gridmap.planning import publish
from gridmap.store.tables import Area

STRIP_DEG = 0.0004  # about 40 m


PLANNER = {"X-User": "planner-1", "X-Role": "planner"}
APPROVER = {"X-User": "approver-1", "X-Role": "approver"}


def _neighbours(client, generation_id):
    """Two micro-grids of one grid sharing an edge, at full stored precision."""
    sm = client.app.state.sessionmaker
    with sm() as session:
        rows = session.scalars(
            sa.select(Area)
            .where(Area.generation_id == generation_id, Area.is_leaf, Area.level == "microgrid")
            .order_by(Area.code)
        ).all()
        leaves = [(a.code, a.parent_id, to_shape(a.geom)) for a in rows]
    for i, (code_a, parent_a, geom_a) in enumerate(leaves):
        for code_b, parent_b, geom_b in leaves[i + 1 :]:
            if parent_a == parent_b and geom_a.intersection(geom_b).length > 0.002:
                return (code_a, geom_a), (code_b, geom_b)
    raise AssertionError("the demo has no two adjacent micro-grids in one grid")


def _move_strip(a, b, width=STRIP_DEG):
    """Give `a` a strip of `b` along their shared edge; returns the new geometries and a point in the strip."""
    strip = b.intersection(a.buffer(width))
    new_a = shapely.union_all([a, strip])
    new_b = b.difference(strip)
    inner = strip.intersection(a.buffer(width * 0.6)).difference(a.buffer(width * 0.3))
    point = inner.representative_point()
    return new_a, new_b, point


def _as_geojson(geom):
    return shapely.geometry.mapping(geom)


def test_draft_redraw_relocate_activate_and_as_of(client):
    generations = client.get("/api/v1/generations").json()
    (old,) = [g for g in generations if g["status"] == "active"]
    draft = client.post(
        "/api/v1/generations", headers=PLANNER, json={"name": "2027年网格调整", "note": "两微网格边界调整"}
    )
    assert draft.status_code == 201 and draft.json()["status"] == "draft"
    draft_id = draft.json()["id"]

    (code_a, geom_a), (code_b, geom_b) = _neighbours(client, draft_id)
    new_a, new_b, p = _move_strip(geom_a, geom_b)
    before = client.get("/api/v1/locate", params={"lon": p.x, "lat": p.y}).json()
    assert before["microgrid"]["code"] == code_b and before["generation_id"] == old["id"]

    case = client.post("/api/v1/cases", json={"title": "占道经营", "lon": p.x, "lat": p.y, "source": "patrol"})
    assert case.status_code == 201 and case.json()["microgrid_code"] == code_b

    # a first, smaller redraw is listed, then replaced: the draft's cached index must not go stale
    small_a, small_b, _ = _move_strip(geom_a, geom_b, width=STRIP_DEG / 10)
    assert (
        client.put(
            f"/api/v1/generations/{draft_id}/areas",
            headers=PLANNER,
            json={"areas": {code_a: _as_geojson(small_a), code_b: _as_geojson(small_b)}},
        ).status_code
        == 200
    )
    first = client.get(f"/api/v1/generations/{draft_id}/relocated-cases").json()
    assert case.json()["id"] not in {c["id"] for c in first["cases"]}

    redrawn = client.put(
        f"/api/v1/generations/{draft_id}/areas",
        headers=PLANNER,
        json={"areas": {code_a: _as_geojson(new_a), code_b: _as_geojson(new_b)}},
    )
    assert redrawn.status_code == 200, redrawn.text
    assert {code_a, code_b} <= set(redrawn.json()["changed"])
    moved = client.get(f"/api/v1/generations/{draft_id}/relocated-cases").json()
    row = next(c for c in moved["cases"] if c["id"] == case.json()["id"])
    assert row["microgrid_code"] == code_b and row["new_microgrid_code"] == code_a
    assert row["new_grid_code"] == row["grid_code"]  # same grid: only the micro-grid changes

    # the draft does not change what is live
    assert client.get("/api/v1/locate", params={"lon": p.x, "lat": p.y}).json()["microgrid"]["code"] == code_b

    today = dt.date.today()
    results: list[int] = []
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            results.append(client.get("/api/v1/locate", params={"lon": p.x, "lat": p.y}).status_code)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    # publishing: the planner submits, another user with the approver role approves it for today
    submitted = client.post(f"/api/v1/generations/{draft_id}/submit", headers=PLANNER)
    assert submitted.status_code == 200, submitted.text
    activated = client.post(
        f"/api/v1/generations/{draft_id}/approve", headers=APPROVER, json={"effective_from": today.isoformat()}
    )
    stop.set()
    for t in threads:
        t.join()
    assert activated.status_code == 200, activated.text
    assert activated.json()["generation"]["status"] == "active" and activated.json()["index_generation_id"] == draft_id
    assert activated.json()["activation"]["cases_relocated"] >= 1  # the case in the strip moved micro-grid
    assert results and set(results) == {200}  # locates during the activation all answered

    now = client.get("/api/v1/locate", params={"lon": p.x, "lat": p.y}).json()
    assert now["microgrid"]["code"] == code_a and now["generation_id"] == draft_id
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    then = client.get("/api/v1/locate", params={"lon": p.x, "lat": p.y, "as_of": yesterday}).json()
    assert then["microgrid"]["code"] == code_b and then["generation_id"] == old["id"]
    on_the_day = client.get("/api/v1/locate", params={"lon": p.x, "lat": p.y, "as_of": today.isoformat()}).json()
    assert on_the_day["generation_id"] == draft_id

    batch = client.post(
        "/api/v1/locate/batch", json={"as_of": yesterday, "items": [{"id": "x", "lon": p.x, "lat": p.y}]}
    ).json()
    assert batch["generation_id"] == old["id"] and batch["results"][0]["codes"]["microgrid"] == code_b

    before_all = client.get("/api/v1/locate", params={"lon": p.x, "lat": p.y, "as_of": "2020-01-01"})
    assert before_all.status_code == 404 and before_all.json()["field"] == "as_of"
    assert before_all.headers["content-type"] == "application/problem+json"

    listed = {g["id"]: g for g in client.get("/api/v1/generations").json()}
    assert listed[old["id"]]["status"] == "retired" and listed[old["id"]]["effective_to"] == today.isoformat()

    # new cases go to the new micro-grid
    new_case = client.post("/api/v1/cases", json={"title": "垃圾堆放", "lon": p.x, "lat": p.y}).json()
    assert new_case["microgrid_code"] == code_a

    # an active generation cannot be redrawn or activated again
    again = client.post(
        f"/api/v1/generations/{draft_id}/activate", headers=APPROVER, json={"effective_from": today.isoformat()}
    )
    assert again.status_code == 409 and again.json()["field"] == "generation"
    frozen = client.put(
        f"/api/v1/generations/{draft_id}/areas", headers=PLANNER, json={"areas": {code_a: _as_geojson(geom_a)}}
    )
    assert frozen.status_code == 409 and frozen.json()["field"] == "generation"


def _geometry_of(client, generation_id, code):
    with client.app.state.sessionmaker() as session:
        area = session.scalars(sa.select(Area).where(Area.generation_id == generation_id, Area.code == code)).one()
        return to_shape(area.geom)


BAD_REDRAWS = [
    ("not_geojson", lambda a, b, ca, cb: {ca: {"type": "Polygon", "coordinates": [[1, 2]]}}, 422, "areas."),
    (
        "bow_tie",
        lambda a, b, ca, cb: {
            ca: {
                "type": "Polygon",
                "coordinates": [[[102.7, 25.0], [102.71, 25.01], [102.71, 25.0], [102.7, 25.01], [102.7, 25.0]]],
            }
        },
        422,
        "geometry",
    ),
    ("a_point", lambda a, b, ca, cb: {ca: {"type": "Point", "coordinates": [102.7, 25.0]}}, 422, "geometry"),
    ("leaves_a_gap", lambda a, b, ca, cb: {ca: _as_geojson(a.buffer(-0.0003))}, 422, "geometry"),
    (
        "overlapping",
        lambda a, b, ca, cb: {ca: _as_geojson(shapely.union_all([a, b])), cb: _as_geojson(b)},
        422,
        "geometry",
    ),
    ("unknown_code", lambda a, b, ca, cb: {"999999999999999": _as_geojson(a)}, 404, "code"),
]


@pytest.mark.parametrize("name,changes,status,field", BAD_REDRAWS, ids=[b[0] for b in BAD_REDRAWS])
def test_bad_redraws_are_refused_and_the_draft_is_unchanged(client, name, changes, status, field):
    draft_id = client.post("/api/v1/generations", headers=PLANNER, json={"name": f"bad {name}"}).json()["id"]
    (code_a, geom_a), (code_b, geom_b) = _neighbours(client, draft_id)
    response = client.put(
        f"/api/v1/generations/{draft_id}/areas",
        headers=PLANNER,
        json={"areas": changes(geom_a, geom_b, code_a, code_b)},
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"].startswith(field)
    assert _geometry_of(client, draft_id, code_a).equals_exact(geom_a, 0)
    assert _geometry_of(client, draft_id, code_b).equals_exact(geom_b, 0)


def test_bad_activations_are_refused(client):
    """POST /activate only brings an approved (scheduled) generation forward, to today or earlier."""
    draft_id = client.post("/api/v1/generations", headers=PLANNER, json={"name": "未来边界"}).json()["id"]
    tomorrow = (publish.local_today() + dt.timedelta(days=1)).isoformat()
    a_draft = client.post(
        f"/api/v1/generations/{draft_id}/activate",
        headers=APPROVER,
        json={"effective_from": dt.date.today().isoformat()},
    )
    assert a_draft.status_code == 409 and a_draft.json()["field"] == "generation"  # drafts are submitted and approved
    assert client.post(f"/api/v1/generations/{draft_id}/submit", headers=PLANNER).status_code == 200
    scheduled = client.post(
        f"/api/v1/generations/{draft_id}/approve", headers=APPROVER, json={"effective_from": tomorrow}
    )
    assert scheduled.status_code == 200 and scheduled.json()["generation"]["status"] == "approved"
    future = client.post(
        f"/api/v1/generations/{draft_id}/activate", headers=APPROVER, json={"effective_from": tomorrow}
    )
    assert future.status_code == 422 and future.json()["field"] == "effective_from"
    ancient = client.post(
        f"/api/v1/generations/{draft_id}/activate", headers=APPROVER, json={"effective_from": "2000-01-01"}
    )
    assert ancient.status_code == 422 and ancient.json()["field"] == "effective_from"
    garbled = client.post(
        f"/api/v1/generations/{draft_id}/activate", headers=APPROVER, json={"effective_from": "下周一"}
    )
    assert garbled.status_code == 422 and "effective_from" in garbled.json()["field"]
    missing = client.post("/api/v1/generations/987654/activate", headers=APPROVER, json={"effective_from": tomorrow})
    assert missing.status_code == 404 and missing.json()["field"] == "generation"
    assert client.post("/api/v1/generations", headers=PLANNER, json={"name": ""}).status_code == 422
    assert next(g for g in client.get("/api/v1/generations").json() if g["id"] == draft_id)["status"] == "approved"
    back = client.post(f"/api/v1/generations/{draft_id}/reject", headers=APPROVER, json={"reason": "推迟"})
    assert back.status_code == 200
    assert next(g for g in client.get("/api/v1/generations").json() if g["id"] == draft_id)["status"] == "draft"


def test_a_lock_stays_with_the_area_into_a_draft_copied_from_it(client):
    first = client.post("/api/v1/generations", headers=PLANNER, json={"name": "带锁的草稿"}).json()["id"]
    with client.app.state.sessionmaker() as s:
        grid = s.scalar(
            sa.select(Area.code).where(Area.generation_id == first, Area.level == "grid").order_by(Area.code).limit(1)
        )
    r = client.post(
        f"/api/v1/generations/{first}/edits", headers=PLANNER, json={"op": "lock", "codes": [grid], "locked": True}
    )
    assert r.status_code == 200, r.text
    copy = client.post("/api/v1/generations", headers=PLANNER, json={"name": "复制", "source_id": first}).json()["id"]
    with client.app.state.sessionmaker() as s:
        locked = dict(s.execute(sa.select(Area.code, Area.locked).where(Area.generation_id == copy)).all())
    assert locked[grid] is True and sum(locked.values()) == 1
