"""Who may do what, where — the whole matrix, on both databases (issue 12).

Every operation of the OpenAPI document (method × path) is called by every subject:

* for every role in `gridmap.access.policy.ROLES`, two real accounts that sign in with `POST /api/v1/auth/token`: one
  acting for the first sub-district of the small demo ("own"), one for the second ("other");
* for every API key scope, two keys made by an admin with `POST /api/v1/api-keys`, scoped the same two ways;
* the anonymous caller.

The objects used are all in the first sub-district (a case, its number, the sub-district's code), so the "own"
subject must get a 2xx and the "other" one a 404 (for a single object) or a 2xx that leaves the object out (for a
list). What each operation allows is written below BY HAND (`ROWS`: which roles and key scopes may call it,
whether it is open to anonymous callers, whether its objects are scoped to the caller's areas) and deliberately
not read back from `gridmap.access.policy.RULES`: the test compares two independent statements of the policy.

Classes compared: 2xx, 401, 403, 404. Every example request below (`ROWS[...].example`) is meant to be valid for a
caller who may make it, and a cell expecting 2xx must get a real 2xx. Where a request cannot be valid for every
allowed caller, the row says `passes_with` (a 400/409/412/422/428 then counts as "passed the policy": the request
got past the policy and was refused for its content); no row needs that today.

A new route without a row fails `test_every_operation_has_a_row`; a route (including pages and other routes left
out of the schema, but not the `/static` mount) without an `allow(...)` or `page_user(...)` dependency fails
`test_every_route_states_its_policy`. Forged identity headers without the gateway's secret change nothing
(`test_forged_identity_headers_change_nothing`, `test_a_wrong_gateway_secret_is_refused`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from unittest import mock

import pytest
import shapely.geometry
import sqlalchemy as sa
from fastapi import routing
from fastapi.testclient import TestClient
from geoalchemy2.shape import to_shape
from starlette.routing import Mount

from gridmap.access import accounts, policy
from gridmap.boundaries import areas
from gridmap.boundaries import generations as gens
from gridmap.cases import intake as cases
from gridmap.store import engine as storage
from gridmap.store.tables import Area, Case, Department, Generation, StaffArea
from gridmap_api.main import create_app
from gridmap_api.settings import Settings

PASSWORD = "pm-matrix-password-2026"
OPEN311_KEY = "pm-open311-key"
RATES_OFF = {
    f"rate_{p}": "off" for p in ("anonymous_intake", "open311_post", "open311_key", "signin_account", "signin_address")
}

# -- the policy, by hand -------------------------------------------------------------------------------------------

KNOWN_ROLES = (
    "admin",
    "planner",
    "approver",
    "dispatcher",
    "leader",
    "manager",
    "worker",
    "department",
    "verifier",
    "viewer",
    "integration",
)
SCOPES = ("report", "hotline", "locate", "read")
EVERYONE = frozenset(KNOWN_ROLES)
STAFF = EVERYONE - {"integration"}  # people who sign in
CASE_READERS = frozenset(
    {"admin", "dispatcher", "leader", "manager", "worker", "department", "verifier", "viewer", "integration"}
)  # planners and approvers see areas and boundary drafts, not cases
MEASURE_READERS = frozenset({"admin", "dispatcher", "leader", "manager", "department", "verifier", "viewer"})
CASE_ACTORS = frozenset({"dispatcher", "worker", "department", "verifier", "leader"})  # the loop's steps
ADMIN = frozenset({"admin"})
NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Row:
    """What one operation allows, by hand. `jurisdiction`: None (the same for every area), "object" (an object
    of another area is not found: 404) or "list" (a list leaves another area's objects out); `blind`: roles that
    may call a list but never see the object in it; `example(w, s)`: a valid request for subject `s`; `present(w,
    response)`: whether a list's answer holds the object."""

    roles: frozenset[str]
    example: Callable
    keys: frozenset[str] = NONE
    anonymous: bool = False
    jurisdiction: str | None = None
    blind: frozenset[str] = NONE
    present: Callable | None = None
    passes_with: frozenset[int] = NONE


def _req(method, url, **kw) -> dict:
    return {"method": method, "url": url, **kw}


def _edit_draft(w, s, *, edits: int = 0, undone: bool = False) -> int:
    """A draft of its own for a planner subject (with an edit, undone when asked); the shared draft for others."""
    if s.role != "planner" or s.kind != "account":
        return w.draft_id
    from gridmap.planning import edit as plan_edit

    with storage.session_scope(w.sessionmaker) as session:
        draft = gens.create_draft(session, f"编辑 {s.slug}").id
        session.flush()
        for _ in range(edits):
            plan_edit.apply(session, draft, {"op": "lock", "codes": [w.leaf], "locked": True}, "matrix")
        if undone:
            plan_edit.undo(session, draft)
    return draft


def _notification(w, s) -> int:
    """A notification of the subject's own account (others are refused before it matters)."""
    from gridmap.store.tables import Notification

    if s.kind != "account":
        return 1
    with storage.session_scope(w.sessionmaker) as session:
        note = Notification(
            account_id=s.account_id,
            kind="urge",
            case_id=w.case_id,
            text="矩阵催办",
            at=dt.datetime.now(dt.UTC),
        )
        session.add(note)
        session.flush()
        return note.id


def _case_ids(body) -> set:
    return {c["id"] for c in body["items"]}


def _area_codes(body) -> set:
    return {f["properties"]["code"] for f in body["features"]}


def _case_box(w) -> str:
    """A box a few centimetres around the shared case (of the first sub-district): only that case lies in it."""
    with w.sessionmaker() as s:
        case = s.get(Case, w.case_id)
        return f"{case.lon - 1e-6:.7f},{case.lat - 1e-6:.7f},{case.lon + 1e-6:.7f},{case.lat + 1e-6:.7f}"


def _case_tile(w, z: int = 16) -> str:
    """The vector tile (z/x/y) that holds the shared case."""
    import math

    with w.sessionmaker() as s:
        case = s.get(Case, w.case_id)
        n = 2**z
        x = int((case.lon + 180) / 360 * n)
        y = int((1 - math.asinh(math.tan(math.radians(case.lat))) / math.pi) / 2 * n)
        return f"{z}/{x}/{y}"


def _tile_case_ids(body: bytes) -> set:
    import mapbox_vector_tile

    return {f["id"] for f in mapbox_vector_tile.decode(body).get("cases", {}).get("features", [])}


ATTACH_TOKEN = "pm-attachment-reporter-token"


def _attachment_cases(w) -> dict:
    """Two open cases of the first sub-district for photos (made once): one held by the own worker, with a
    reporter token and a photo; one given to the own department."""
    if getattr(w, "_attach", None) is None:
        from gridmap.cases import attachments

        png = io.BytesIO()
        __import__("PIL.Image").Image.new("RGB", (32, 24), (0, 120, 0)).save(png, "PNG")
        w._png = png.getvalue()
        held, given = next(w._pool), next(w._pool)
        with storage.session_scope(w.sessionmaker) as s:
            s.execute(
                sa.update(Case)
                .where(Case.id == held)
                .values(
                    state="accepted",
                    closed_at=None,
                    rated_at=None,
                    assignee_id=w.staff1,
                    department_id=None,
                    reporter_token_hash=cases.token_digest(ATTACH_TOKEN),
                )
            )
            s.execute(
                sa.update(Case)
                .where(Case.id == given)
                .values(state="accepted", closed_at=None, rated_at=None, assignee_id=None, department_id=w.dept1_id)
            )
            row = attachments.add(
                s,
                w.client.app.state.settings.media_store(),
                s.get(Case, held),
                attachments.prepare(w._png),
                "report",
                actor="matrix",
            )
            photo = row.id
        w._attach = {"case": held, "department_case": given, "photo": photo}
    return w._attach


def _attachment_upload(w, s) -> dict:
    """A valid upload for each subject that may make one: a before photo by the worker and the department the
    case is with, a report photo by intake staff, and by a resident's client with the reporter token (only the
    own side and the anonymous caller hold it: the other side's key has no token, so finds no case)."""
    targets = _attachment_cases(w)
    case, stage, form = targets["case"], "report", {}
    if s.role == "worker":
        stage = "before"
    if s.role == "department":
        case, stage = targets["department_case"], "before"
    if s.kind == "anonymous" or (s.kind == "key" and s.side == "own"):
        form = {"reporter_token": ATTACH_TOKEN}
    return _req(
        "POST",
        f"/api/v1/cases/{case}/attachments",
        data={"stage": stage, **form},
        files={"file": ("photo.png", w._png, "image/png")},
    )


ROWS: dict[tuple[str, str], Row] = {
    # sign-in
    ("POST", "/api/v1/auth/token"): Row(
        EVERYONE,
        lambda w, s: _req("POST", "/api/v1/auth/token", data={"username": "pm-probe", "password": PASSWORD}),
        keys=frozenset(SCOPES),
        anonymous=True,
    ),
    ("POST", "/api/v1/auth/revoke"): Row(
        EVERYONE, lambda w, s: _req("POST", "/api/v1/auth/revoke", headers=w.fresh_token(s))
    ),
    ("GET", "/api/v1/auth/me"): Row(EVERYONE, lambda w, s: _req("GET", "/api/v1/auth/me")),
    # administration
    ("GET", "/api/v1/accounts"): Row(ADMIN, lambda w, s: _req("GET", "/api/v1/accounts")),
    ("POST", "/api/v1/accounts"): Row(
        ADMIN,
        lambda w, s: _req(
            "POST",
            "/api/v1/accounts",
            json={"username": f"pm-new-{s.slug}", "role": "viewer", "areas": [w.s1], "password": PASSWORD},
        ),
    ),
    ("PATCH", "/api/v1/accounts/{account_id}"): Row(
        ADMIN, lambda w, s: _req("PATCH", f"/api/v1/accounts/{w.probe_id}", json={"display_name": f"探针 {s.slug}"})
    ),
    ("GET", "/api/v1/api-keys"): Row(ADMIN, lambda w, s: _req("GET", "/api/v1/api-keys")),
    ("POST", "/api/v1/api-keys"): Row(
        ADMIN, lambda w, s: _req("POST", "/api/v1/api-keys", json={"name": f"pm-{s.slug}", "scopes": ["locate"]})
    ),
    ("DELETE", "/api/v1/api-keys/{key_id}"): Row(
        ADMIN, lambda w, s: _req("DELETE", f"/api/v1/api-keys/{w.spare_key()}")
    ),
    ("GET", "/api/v1/audit"): Row(ADMIN, lambda w, s: _req("GET", "/api/v1/audit", params={"limit": 5})),
    # areas and the map
    ("GET", "/api/v1/areas"): Row(
        EVERYONE,
        lambda w, s: _req("GET", "/api/v1/areas", params={"level": "subdistrict"}),
        keys=frozenset({"locate", "read"}),
        jurisdiction="list",
        present=lambda w, b: w.s1 in _area_codes(b),
    ),
    ("GET", "/api/v1/areas/{code}"): Row(
        EVERYONE,
        lambda w, s: _req("GET", f"/api/v1/areas/{w.s1}"),
        keys=frozenset({"locate", "read"}),
        jurisdiction="object",
    ),
    ("GET", "/api/v1/map/areas"): Row(
        STAFF,
        lambda w, s: _req("GET", "/api/v1/map/areas", params={"level": "subdistrict", "zoom": 11}),
        keys=frozenset({"read"}),
        jurisdiction="list",
        present=lambda w, b: w.s1 in _area_codes(b),
    ),
    ("GET", "/api/v1/map/cases"): Row(
        STAFF,
        lambda w, s: _req("GET", "/api/v1/map/cases"),
        keys=frozenset({"read"}),
        jurisdiction="list",
        blind=STAFF - CASE_READERS,
        present=lambda w, b: w.case_id in {r[b["fields"].index("id")] for r in b["rows"]},
    ),
    ("GET", "/api/v1/map/cases/clusters"): Row(
        STAFF,
        lambda w, s: _req("GET", "/api/v1/map/cases/clusters", params={"bbox": _case_box(w), "zoom": 16}),
        keys=frozenset({"read"}),
        jurisdiction="list",
        blind=STAFF - CASE_READERS,
        present=lambda w, b: sum(f["properties"]["count"] for f in b["features"]) > 0,
    ),
    ("GET", "/api/v1/tiles/{layer}/{z}/{x}/{y}.mvt"): Row(
        STAFF,
        lambda w, s: _req("GET", f"/api/v1/tiles/cases/{_case_tile(w)}.mvt"),
        keys=frozenset({"read"}),
        jurisdiction="list",
        blind=STAFF - CASE_READERS,
        present=lambda w, b: w.case_id in _tile_case_ids(b),
    ),
    ("GET", "/api/v1/tiles/{layer}/tilejson.json"): Row(
        STAFF, lambda w, s: _req("GET", "/api/v1/tiles/subdistrict/tilejson.json"), keys=frozenset({"read"})
    ),
    ("GET", "/api/v1/areas/{code}/measures"): Row(
        MEASURE_READERS, lambda w, s: _req("GET", f"/api/v1/areas/{w.s1}/measures"), jurisdiction="object"
    ),
    ("GET", "/api/v1/areas/{code}/series"): Row(
        MEASURE_READERS,
        lambda w, s: _req("GET", f"/api/v1/areas/{w.s1}/series", params={"months": 2}),
        jurisdiction="object",
    ),
    ("GET", "/api/v1/areas/{code}/ranking"): Row(
        MEASURE_READERS,
        lambda w, s: _req("GET", f"/api/v1/areas/{w.s1}/ranking", params={"measure": "on_time_rate", "by": "children"}),
        jurisdiction="object",
    ),
    ("GET", "/api/v1/exports/cases"): Row(
        CASE_READERS,
        lambda w, s: _req("GET", "/api/v1/exports/cases", params={"area": w.s1, "state": "overdue", "limit": 50}),
        keys=frozenset({"read"}),
        jurisdiction="object",
    ),
    ("GET", "/api/v1/search"): Row(
        STAFF,
        lambda w, s: _req("GET", "/api/v1/search", params={"q": w.case_number}),
        jurisdiction="list",
        blind=STAFF - CASE_READERS,
        present=lambda w, b: w.case_id in {i.get("id") for i in b["items"] if i["kind"] == "case"},
    ),
    ("GET", "/api/v1/departments"): Row(EVERYONE, lambda w, s: _req("GET", "/api/v1/departments")),
    # locate
    ("GET", "/api/v1/locate"): Row(
        EVERYONE,
        lambda w, s: _req("GET", "/api/v1/locate", params={"lon": w.point[0], "lat": w.point[1]}),
        keys=frozenset({"locate"}),
    ),
    ("POST", "/api/v1/locate/batch"): Row(
        EVERYONE,
        lambda w, s: _req(
            "POST", "/api/v1/locate/batch", json={"items": [{"id": 1, "lon": w.point[0], "lat": w.point[1]}]}
        ),
        keys=frozenset({"locate"}),
    ),
    # boundary generations
    ("GET", "/api/v1/generations"): Row(
        frozenset({"planner", "approver", "admin"}), lambda w, s: _req("GET", "/api/v1/generations")
    ),
    ("POST", "/api/v1/generations"): Row(
        frozenset({"planner"}), lambda w, s: _req("POST", "/api/v1/generations", json={"name": f"草稿 {s.slug}"})
    ),
    ("POST", "/api/v1/generations/import"): Row(
        frozenset({"planner"}),
        lambda w, s: _req(
            "POST",
            "/api/v1/generations/import",
            data={"name": f"导入 {s.slug}"},
            files={
                "file": (
                    "leaf.geojson",
                    json.dumps(
                        {
                            "type": "FeatureCollection",
                            "features": [
                                {"type": "Feature", "properties": {"网格编码": w.leaf}, "geometry": w.leaf_geojson}
                            ],
                        }
                    ).encode(),
                    "application/geo+json",
                )
            },
        ),
    ),
    ("PUT", "/api/v1/generations/{generation_id}/areas"): Row(
        frozenset({"planner"}),
        lambda w, s: _req("PUT", f"/api/v1/generations/{w.draft_id}/areas", json={"areas": {w.leaf: w.leaf_geojson}}),
    ),
    ("GET", "/api/v1/generations/{generation_id}/relocated-cases"): Row(
        frozenset({"planner", "approver", "admin"}),
        lambda w, s: _req("GET", f"/api/v1/generations/{w.draft_id}/relocated-cases", params={"limit": 5}),
    ),
    ("GET", "/api/v1/generations/{generation_id}/check"): Row(
        frozenset({"planner", "approver", "admin"}), lambda w, s: _req("GET", f"/api/v1/generations/{w.draft_id}/check")
    ),
    ("GET", "/api/v1/generations/{generation_id}/balance"): Row(
        frozenset({"planner", "approver", "admin"}),
        lambda w, s: _req("GET", f"/api/v1/generations/{w.draft_id}/balance", params={"area": w.s1}),
        jurisdiction="object",
    ),
    ("GET", "/api/v1/generations/{generation_id}/diff"): Row(
        frozenset({"planner", "approver", "admin"}),
        lambda w, s: _req("GET", f"/api/v1/generations/{w.draft_id}/diff", params={"area": w.s1}),
        jurisdiction="object",
    ),
    ("GET", "/api/v1/generations/{generation_id}/areas"): Row(
        frozenset({"planner", "approver", "admin"}),
        lambda w, s: _req("GET", f"/api/v1/generations/{w.draft_id}/areas", params={"level": "subdistrict"}),
        jurisdiction="list",
        present=lambda w, b: w.s1 in {a["code"] for a in b["areas"]},
    ),
    ("GET", "/api/v1/generations/{generation_id}/places"): Row(
        frozenset({"planner", "approver", "admin"}),
        lambda w, s: _req("GET", f"/api/v1/generations/{w.draft_id}/places", params={"area": w.s1}),
        jurisdiction="object",
    ),
    ("GET", "/api/v1/generations/{generation_id}/repairs"): Row(
        frozenset({"planner", "approver", "admin"}),
        lambda w, s: _req("GET", f"/api/v1/generations/{w.draft_id}/repairs", params={"kinds": "gap_to_neighbour"}),
    ),
    # a clean draft has nothing to repair: a planner gets past the policy to a 422 naming `kinds`
    ("POST", "/api/v1/generations/{generation_id}/repairs"): Row(
        frozenset({"planner"}),
        lambda w, s: _req(
            "POST", f"/api/v1/generations/{w.draft_for(s)}/repairs", json={"kinds": ["gap_to_neighbour"]}
        ),
        passes_with=frozenset({422}),
    ),
    ("POST", "/api/v1/generations/{generation_id}/activate"): Row(
        frozenset({"approver"}),
        lambda w, s: _req(
            "POST", f"/api/v1/generations/{w.draft_for(s)}/activate", json={"effective_from": w.next_day(s)}
        ),
    ),
    # publishing: a planner submits its draft, an approver approves (for a later day: scheduled) or rejects it
    ("POST", "/api/v1/generations/{generation_id}/submit"): Row(
        frozenset({"planner"}),
        lambda w, s: _req("POST", f"/api/v1/generations/{w.in_state(s, 'planner', 'draft')}/submit"),
    ),
    ("POST", "/api/v1/generations/{generation_id}/approve"): Row(
        frozenset({"approver"}),
        lambda w, s: _req(
            "POST",
            f"/api/v1/generations/{w.in_state(s, 'approver', 'submitted')}/approve",
            json={"effective_from": "2090-01-01"},
        ),
    ),
    ("POST", "/api/v1/generations/{generation_id}/reject"): Row(
        frozenset({"approver"}),
        lambda w, s: _req(
            "POST",
            f"/api/v1/generations/{w.in_state(s, 'approver', 'submitted')}/reject",
            json={"reason": f"矩阵退回 {s.slug}"},
        ),
    ),
    # planner edits of a draft (each planner subject on a draft of its own: an edit, an edit to undo, one to redo)
    ("POST", "/api/v1/generations/{generation_id}/edits"): Row(
        frozenset({"planner"}),
        lambda w, s: _req(
            "POST",
            f"/api/v1/generations/{_edit_draft(w, s)}/edits",
            json={"op": "lock", "codes": [w.leaf], "locked": True},
        ),
    ),
    ("POST", "/api/v1/generations/{generation_id}/edits/undo"): Row(
        frozenset({"planner"}),
        lambda w, s: _req("POST", f"/api/v1/generations/{_edit_draft(w, s, edits=1)}/edits/undo"),
    ),
    ("POST", "/api/v1/generations/{generation_id}/edits/redo"): Row(
        frozenset({"planner"}),
        lambda w, s: _req("POST", f"/api/v1/generations/{_edit_draft(w, s, edits=1, undone=True)}/edits/redo"),
    ),
    ("GET", "/api/v1/generations/{generation_id}/edits"): Row(
        frozenset({"planner", "approver", "admin"}), lambda w, s: _req("GET", f"/api/v1/generations/{w.draft_id}/edits")
    ),
    ("GET", "/api/v1/generations/{generation_id}/impact"): Row(
        frozenset({"planner", "approver", "admin"}),
        lambda w, s: _req("GET", f"/api/v1/generations/{w.draft_id}/impact"),
    ),
    ("GET", "/api/v1/generations/{generation_id}/assignments"): Row(
        frozenset({"planner", "approver", "admin"}),
        lambda w, s: _req("GET", f"/api/v1/generations/{w.draft_id}/assignments"),
    ),
    ("PUT", "/api/v1/generations/{generation_id}/assignments"): Row(
        frozenset({"planner"}),
        lambda w, s: _req(
            "PUT",
            f"/api/v1/generations/{w.draft_id}/assignments",
            json={"area_code": w.grid_code, "branch_id": w.grid_branch},
        ),
    ),
    ("POST", "/api/v1/generations/{generation_id}/partition"): Row(
        frozenset({"planner"}),
        lambda w, s: _req("POST", f"/api/v1/generations/{w.draft_id}/partition", json={"area": f"{w.s1}001", "n": 3}),
        jurisdiction="object",
    ),
    ("GET", "/api/v1/generations/{generation_id}/export"): Row(
        frozenset({"planner", "approver", "admin"}),
        lambda w, s: _req(
            "GET", f"/api/v1/generations/{w.draft_id}/export", params={"level": "subdistrict", "format": "geojson"}
        ),
        jurisdiction="list",
        present=lambda w, b: w.s1 in _area_codes(b),
    ),
    # OGC API – Features (the areas policy of /api/v1/areas)
    ("GET", "/ogc"): Row(EVERYONE, lambda w, s: _req("GET", "/ogc"), keys=frozenset({"locate", "read"})),
    ("GET", "/ogc/conformance"): Row(
        EVERYONE, lambda w, s: _req("GET", "/ogc/conformance"), keys=frozenset({"locate", "read"})
    ),
    ("GET", "/ogc/collections"): Row(
        EVERYONE, lambda w, s: _req("GET", "/ogc/collections"), keys=frozenset({"locate", "read"})
    ),
    ("GET", "/ogc/collections/{collection_id}"): Row(
        EVERYONE, lambda w, s: _req("GET", "/ogc/collections/subdistrict"), keys=frozenset({"locate", "read"})
    ),
    ("GET", "/ogc/collections/{collection_id}/items"): Row(
        EVERYONE,
        lambda w, s: _req("GET", "/ogc/collections/subdistrict/items"),
        keys=frozenset({"locate", "read"}),
        jurisdiction="list",
        present=lambda w, b: w.s1 in _area_codes(b),
    ),
    ("GET", "/ogc/collections/{collection_id}/items/{feature_id}"): Row(
        EVERYONE,
        lambda w, s: _req("GET", f"/ogc/collections/subdistrict/items/{w.s1}"),
        keys=frozenset({"locate", "read"}),
        jurisdiction="object",
    ),
    # cases
    ("POST", "/api/v1/cases"): Row(
        frozenset({"dispatcher", "worker", "manager", "admin", "integration"}),
        lambda w, s: _req(
            "POST", "/api/v1/cases", json={"title": f"矩阵 {s.slug}", "lon": w.point[0], "lat": w.point[1]}
        ),
        keys=frozenset({"report", "hotline"}),
        anonymous=True,
    ),
    ("GET", "/api/v1/cases"): Row(
        CASE_READERS,
        lambda w, s: _req("GET", "/api/v1/cases", params={"limit": 500}),
        keys=frozenset({"read"}),
        jurisdiction="list",
        present=lambda w, b: w.case_id in _case_ids(b),
    ),
    ("POST", "/api/v1/patrol-reports"): Row(
        frozenset({"worker"}),
        lambda w, s: _req(
            "POST",
            "/api/v1/patrol-reports",
            json={"title": f"巡查 {s.slug}", "lon": w.point[0], "lat": w.point[1], "category": "E0101"},
        ),
    ),
    ("GET", "/api/v1/cases/{case_id}/duplicates"): Row(
        CASE_READERS,
        lambda w, s: _req("GET", f"/api/v1/cases/{w.case_id}/duplicates"),
        keys=frozenset({"read"}),
        jurisdiction="object",
    ),
    ("POST", "/api/v1/cases/{case_id}/actions/{action}"): Row(
        CASE_ACTORS, lambda w, s: w.action(s), jurisdiction="object"
    ),
    ("POST", "/api/v1/cases/{case_id}/rating"): Row(
        EVERYONE, lambda w, s: w.rating(s), keys=frozenset({"report"}), anonymous=True
    ),  # the reporter's token is the credential
    ("GET", "/api/v1/cases/{case_id}"): Row(
        CASE_READERS,
        lambda w, s: _req("GET", f"/api/v1/cases/{w.case_id}"),
        keys=frozenset({"read"}),
        jurisdiction="object",
    ),
    # the dispatcher's desk: queues of an area (another sub-district's is not found), batch steps (each case's
    # refusal is in its result), one's own notifications
    ("GET", "/api/v1/queues"): Row(
        CASE_READERS,
        lambda w, s: _req("GET", "/api/v1/queues", params={"area": w.s1}),
        keys=frozenset({"read"}),
        jurisdiction="object",
    ),
    ("GET", "/api/v1/queues/{name}"): Row(
        CASE_READERS,
        lambda w, s: _req("GET", "/api/v1/queues/overdue", params={"area": w.s1, "limit": 5}),
        keys=frozenset({"read"}),
        jurisdiction="object",
    ),
    ("POST", "/api/v1/cases/batch/{action}"): Row(
        CASE_ACTORS,
        lambda w, s: _req("POST", "/api/v1/cases/batch/urge", json={"items": [{"id": w.case_id, "version": 1}]}),
    ),
    ("GET", "/api/v1/address-matches"): Row(
        STAFF,
        lambda w, s: _req(
            "GET",
            "/api/v1/address-matches",
            params={"q": "金马嘉园5栋", "near_lon": w.point[0], "near_lat": w.point[1]},
        ),
    ),
    ("GET", "/api/v1/notifications"): Row(
        STAFF, lambda w, s: _req("GET", "/api/v1/notifications", params={"unread": "true"})
    ),
    ("POST", "/api/v1/notifications/{notification_id}/read"): Row(
        STAFF, lambda w, s: _req("POST", f"/api/v1/notifications/{_notification(w, s)}/read")
    ),
    # catalogue and calendar
    ("GET", "/api/v1/categories"): Row(
        EVERYONE, lambda w, s: _req("GET", "/api/v1/categories"), keys=frozenset(SCOPES), anonymous=True
    ),
    ("POST", "/api/v1/categories"): Row(
        ADMIN,
        lambda w, s: _req(
            "POST",
            "/api/v1/categories",
            json={
                "code": f"E09{s.index:02d}",
                "kind": "event",
                "major_class": "扩展事件",
                "name": f"矩阵 {s.slug}",
                "time_limit": 2,
                "time_unit": "work_days",
            },
        ),
    ),
    ("PATCH", "/api/v1/categories/{code}"): Row(
        ADMIN, lambda w, s: _req("PATCH", "/api/v1/categories/E0101", json={"urgency": "normal"})
    ),
    ("GET", "/api/v1/calendar"): Row(
        EVERYONE,
        lambda w, s: _req("GET", "/api/v1/calendar", params={"year": 2026}),
        keys=frozenset(SCOPES),
        anonymous=True,
    ),
    ("PUT", "/api/v1/calendar/{day}"): Row(
        ADMIN, lambda w, s: _req("PUT", "/api/v1/calendar/2031-10-08", json={"kind": "holiday", "name": "国庆节"})
    ),
    ("DELETE", "/api/v1/calendar/{day}"): Row(ADMIN, lambda w, s: _req("DELETE", f"/api/v1/calendar/{w.holiday()}")),
    # imports and measures
    ("POST", "/api/v1/imports/hotline"): Row(
        frozenset({"dispatcher", "admin", "integration"}),
        lambda w, s: _req(
            "POST",
            "/api/v1/imports/hotline",
            params={"crs": "wgs84"},
            content=w.hotline_csv(s),
            headers={"Content-Type": "text/csv"},
        ),
        keys=frozenset({"hotline"}),
    ),
    ("GET", "/api/v1/measures"): Row(
        MEASURE_READERS, lambda w, s: _req("GET", "/api/v1/measures", params={"under": w.s1}), jurisdiction="object"
    ),
    # attachments: staff who see the case add photos by stage; a resident with the case's reporter_token
    ("POST", "/api/v1/cases/{case_id}/attachments"): Row(
        frozenset({"dispatcher", "worker", "department", "manager", "admin", "integration"}),
        lambda w, s: _attachment_upload(w, s),
        keys=frozenset({"report"}),
        anonymous=True,
        jurisdiction="object",
    ),
    ("GET", "/api/v1/cases/{case_id}/attachments"): Row(
        CASE_READERS,
        lambda w, s: _req("GET", f"/api/v1/cases/{_attachment_cases(w)['case']}/attachments"),
        keys=frozenset({"read"}),
        jurisdiction="object",
    ),
    ("GET", "/api/v1/attachments/{attachment_id}"): Row(
        CASE_READERS,
        lambda w, s: _req("GET", f"/api/v1/attachments/{_attachment_cases(w)['photo']}"),
        keys=frozenset({"read"}),
        jurisdiction="object",
    ),
    ("GET", "/api/v1/attachments/{attachment_id}/thumbnail"): Row(
        CASE_READERS,
        lambda w, s: _req("GET", f"/api/v1/attachments/{_attachment_cases(w)['photo']}/thumbnail"),
        keys=frozenset({"read"}),
        jurisdiction="object",
    ),
    # Open311: the public side (a POST carries its api_key in the body)
    ("GET", "/open311/v2/discovery.{fmt}"): Row(
        EVERYONE, lambda w, s: _req("GET", "/open311/v2/discovery.json"), keys=frozenset(SCOPES), anonymous=True
    ),
    ("GET", "/open311/v2/services.{fmt}"): Row(
        EVERYONE, lambda w, s: _req("GET", "/open311/v2/services.json"), keys=frozenset(SCOPES), anonymous=True
    ),
    ("GET", "/open311/v2/services/{service_code}.{fmt}"): Row(
        EVERYONE, lambda w, s: _req("GET", "/open311/v2/services/C0101.json"), keys=frozenset(SCOPES), anonymous=True
    ),
    ("POST", "/open311/v2/requests.{fmt}"): Row(
        EVERYONE,
        lambda w, s: _req(
            "POST",
            "/open311/v2/requests.json",
            data={"api_key": OPEN311_KEY, "service_code": "E0101", "lat": str(w.point[1]), "long": str(w.point[0])},
        ),
        keys=frozenset(SCOPES),
        anonymous=True,
    ),
    ("GET", "/open311/v2/requests.{fmt}"): Row(
        EVERYONE, lambda w, s: _req("GET", "/open311/v2/requests.json"), keys=frozenset(SCOPES), anonymous=True
    ),
    ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"): Row(
        EVERYONE,
        lambda w, s: _req("GET", f"/open311/v2/requests/{w.case_number}.json"),
        keys=frozenset(SCOPES),
        anonymous=True,
    ),
}
# a step each acting role may take on a case prepared for it in the first sub-district: (action, body, setup)
STEP_FOR = {
    "dispatcher": ("reject", {"reason": "矩阵测试：重复上报"}, {"state": "reported"}),
    "worker": ("accept", {}, {"state": "dispatched"}),  # assigned to the own worker's staff record
    "department": ("accept", {}, {"state": "dispatched"}),  # given to the own department
    "verifier": ("verify", {}, {"state": "handled", "handled_by": "a0", "handled_at": dt.datetime(2026, 11, 1)}),
    "leader": (
        "deny",
        {"reason": "矩阵测试：理由不足"},
        {
            "state": "accepted",
            "pending": {
                "kind": "extension",
                "amount": 1,
                "unit": "work_days",
                "reason": "矩阵",
                "by": "worker:x",
                "at": "2026-11-01T00:00:00+00:00",
            },
        },
    ),
}


def operations(app) -> list[tuple[str, str]]:
    """(METHOD, path) of every operation in the app's OpenAPI document; activation last (it changes the active
    boundaries, which nothing else in the matrix should see change under it)."""
    ops = [(m.upper(), p) for p, items in app.openapi()["paths"].items() for m in items]
    return sorted(ops, key=lambda op: op[1].endswith("/activate"))


OPERATIONS = operations(create_app(Settings(database_url="sqlite://", gateway_secret="")))


# -- subjects ------------------------------------------------------------------------------------------------------


@dataclass
class Subject:
    slug: str  # unique, URL-safe
    index: int
    kind: str  # account | key | anonymous
    role: str  # the account's role; "integration" for keys; "anonymous"
    side: str | None  # own | other | None (anonymous)
    scope: str | None = None  # a key's scope
    headers: dict = field(default_factory=dict)
    account_id: int | None = None


def expected(row: Row, s: Subject) -> str:
    """The status class the hand-made row promises to subject `s`."""
    if s.kind == "anonymous":
        return "2xx" if row.anonymous else "401"
    allowed = s.scope in row.keys if s.kind == "key" else s.role in row.roles
    if not allowed:
        return "403"
    if s.side == "other" and row.jurisdiction == "object":
        return "404"
    return "2xx"


def sees(row: Row, s: Subject) -> bool:
    """Whether a list answered to `s` holds the object of the first sub-district."""
    return s.side == "own" and not (s.kind == "account" and s.role in row.blind)


# -- the world the matrix runs in ----------------------------------------------------------------------------------


class World:
    """One database with the small demo, an app over it, the subjects and the objects they act on."""

    def __init__(self, url: str, client: TestClient):
        self.url, self.client = url, client
        self.sessionmaker = client.app.state.sessionmaker
        self.subjects: list[Subject] = []
        self.stats = {"cells": 0, "2xx": 0, "passed": 0}
        self._days = itertools.count(1)
        self._holidays = itertools.count(1)

    # objects ------------------------------------------------------------------------------------------------------

    def discover(self) -> None:
        with self.sessionmaker() as s:
            gen = s.scalar(sa.select(Generation.id).where(Generation.status == "active"))
            subs = list(
                s.scalars(
                    sa.select(Area.code)
                    .where(Area.generation_id == gen, Area.level == "subdistrict")
                    .order_by(Area.code)
                )
            )
            self.s1, self.s2 = subs[:2]

            def worker_in(code):
                return s.scalar(
                    sa.select(StaffArea.staff_id)
                    .where(StaffArea.role == "fulltime_worker", StaffArea.area_code.startswith(code))
                    .order_by(StaffArea.id)
                    .limit(1)
                )

            self.staff1, self.staff2 = worker_in(self.s1), worker_in(self.s2)
            (self.dept1_id, self.dept1), (self.dept2_id, self.dept2) = s.execute(
                sa.select(Department.id, Department.code).order_by(Department.code).limit(2)
            ).all()
            grid = s.scalars(
                sa.select(Area)
                .where(Area.generation_id == gen, Area.level == "grid", Area.code.startswith(self.s1))
                .order_by(Area.code)
            ).first()
            p = to_shape(grid.geom).representative_point()
            self.point = (p.x, p.y)
            closed = list(
                s.scalars(
                    sa.select(Case.id)
                    .where(
                        Case.state == "closed",
                        Case.subdistrict_code == self.s1,
                        sa.or_(Case.department_id.is_(None), Case.department_id == self.dept1_id),
                        sa.or_(Case.assignee_id.is_(None), Case.assignee_id != self.staff2),
                    )
                    .order_by(Case.id)
                )
            )
        assert self.staff1 and self.staff2 and len(closed) > 60
        self.case_id, self._pool = closed[0], iter(closed[1:])
        with self.sessionmaker() as s:
            self.case_number = s.get(Case, self.case_id).number

    def prepare(self) -> None:
        """A case for each acting subject's step, one for each subject's rating, a draft to redraw (made in the
        database: these are the matrix's fixtures, not what it tests)."""
        self.step_case: dict[str, int] = {}
        self.rating_case: dict[str, tuple[int, str]] = {}
        with storage.session_scope(self.sessionmaker) as s:
            for subject in self.subjects:
                if subject.kind == "account" and subject.role in STEP_FOR:
                    cid = next(self._pool)
                    values = {
                        "closed_at": None,
                        "rated_at": None,
                        "assignee_id": None,
                        "department_id": None,
                        **STEP_FOR[subject.role][2],
                    }
                    if subject.role == "worker":
                        values["assignee_id"] = self.staff1
                    if subject.role == "department":
                        values["department_id"] = self.dept1_id
                    s.execute(sa.update(Case).where(Case.id == cid).values(**values))
                    self.step_case[subject.slug] = cid
                cid, token = next(self._pool), f"pm-reporter-token-{subject.slug}"
                s.execute(
                    sa.update(Case)
                    .where(Case.id == cid)
                    .values(reporter_token_hash=cases.token_digest(token), rated_at=None, satisfaction=None)
                )
                self.rating_case[subject.slug] = (cid, token)
            draft = gens.create_draft(s, "矩阵草稿")
            self.draft_id = draft.id
            leaf = s.scalars(
                sa.select(Area)
                .where(Area.generation_id == draft.id, Area.is_leaf.is_(True), Area.code.startswith(self.s1))
                .order_by(Area.code)
            ).first()
            self.leaf, self.leaf_geojson = leaf.code, shapely.geometry.mapping(to_shape(leaf.geom))
            self.grid_code = s.scalar(
                sa.select(Area.code)
                .where(Area.generation_id == draft.id, Area.level == "grid", Area.code.startswith(self.s1))
                .order_by(Area.code)
            )
            self.grid_branch = areas.branch_for(s, self.grid_code).id
            self.leaf_geojson = json.loads(json.dumps(self.leaf_geojson))

    # per-cell requests --------------------------------------------------------------------------------------------

    def version(self, case_id: int) -> int:
        with self.sessionmaker() as s:
            return s.get(Case, case_id).version

    def action(self, s: Subject) -> dict:
        if s.slug in self.step_case:
            action, body, _ = STEP_FOR[s.role]
            cid = self.step_case[s.slug]
        else:  # a role that may not act: any step, on the shared case
            action, body, cid = "file", {}, self.case_id
        return _req("POST", f"/api/v1/cases/{cid}/actions/{action}", json={**body, "version": self.version(cid)})

    def rating(self, s: Subject) -> dict:
        cid, token = self.rating_case[s.slug]
        return _req("POST", f"/api/v1/cases/{cid}/rating", json={"reporter_token": token, "satisfaction": 5})

    def fresh_token(self, s: Subject) -> dict:
        """For revoking: a token of the subject's account of its own (the subject's token must live on)."""
        if s.kind != "account":
            return {}
        with storage.session_scope(self.sessionmaker) as session:
            account = accounts.get_account(session, s.account_id)
            token = accounts.issue_token(session, account, "access", dt.timedelta(minutes=5))
        return {"Authorization": f"Bearer {token}"}

    def spare_key(self) -> int:
        with storage.session_scope(self.sessionmaker) as session:
            key, _ = accounts.add_api_key(session, "pm-spare", ("locate",))
            return key.id

    def holiday(self) -> str:
        day = dt.date(2032, 1, 1) + dt.timedelta(days=next(self._holidays))
        with storage.session_scope(self.sessionmaker) as session:
            from gridmap.cases import catalogue

            catalogue.put_day(session, day.isoformat(), "holiday", "矩阵")
        return day.isoformat()

    def draft_for(self, s: Subject) -> int:
        """For an approver: a generation approved (by the fixture, as someone else) for a later day, which POST
        /activate brings forward."""
        if s.role != "approver" or s.kind != "account":
            return self.draft_id
        with storage.session_scope(self.sessionmaker) as session:
            gen = gens.create_draft(session, f"待发布 {s.slug}", created_by="a0")
            gen.status, gen.submitted_by, gen.approved_by = "approved", "a0", "a0"
            gen.effective_from = dt.date(2090, 1, 1)
            return gen.id

    def in_state(self, s: Subject, role: str, status: str) -> int:
        """For a subject of `role`: a draft of its own in `status` (made by the fixture as someone else; no other
        generation left scheduled). Others get the shared draft (they are refused before it matters)."""
        if s.role != role or s.kind != "account":
            return self.draft_id
        with storage.session_scope(self.sessionmaker) as session:
            session.execute(
                sa.update(Generation).where(Generation.status == "approved").values(status="draft", effective_from=None)
            )
            gen = gens.create_draft(session, f"发布流程 {s.slug}", created_by="a0")
            gen.status, gen.submitted_by = status, ("a0" if status == "submitted" else None)
            return gen.id

    def next_day(self, s: Subject) -> str:
        return (dt.date(2026, 1, 1) + dt.timedelta(days=7 * next(self._days))).isoformat()

    def hotline_csv(self, s: Subject) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer).writerows(
            [
                ["工单编号", "来电时间", "诉求内容", "经度", "纬度"],
                [f"PM-{s.slug}", "2026-11-18 10:00:00", "路灯不亮", self.point[0], self.point[1]],
            ]
        )
        return buffer.getvalue().encode()


def _sign_in(client: TestClient, username: str) -> dict:
    r = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def world(fresh_db_url):
    assert set(policy.ROLES) == set(KNOWN_ROLES), "a role was added or removed: write its rights into ROWS by hand"
    settings = Settings(
        database_url=fresh_db_url,
        escalation_interval_s=3600,
        gateway_secret="",
        open311_api_keys=OPEN311_KEY,
        anonymous_intake=True,
        **RATES_OFF,
    )
    with TestClient(create_app(settings)) as client:
        w = World(fresh_db_url, client)
        w.discover()
        # the accounts: one password hash for all of them (argon2id costs a third of a second each)
        digest = accounts.hash_password(PASSWORD)
        with storage.session_scope(w.sessionmaker) as s, mock.patch.object(accounts, "hash_password", lambda p: digest):
            accounts.add_account(s, accounts.AccountSpec("pm-root", "admin"), PASSWORD)
            probe = accounts.add_account(s, accounts.AccountSpec("pm-probe", "viewer", (w.s1,)), PASSWORD)
            w.probe_id = probe.id
            specs = []
            for role in policy.ROLES:
                for side, area, dept, staff in (("own", w.s1, w.dept1, w.staff1), ("other", w.s2, w.dept2, w.staff2)):
                    spec = accounts.AccountSpec(
                        f"pm-{role}-{side}",
                        role,
                        (area,),
                        department=dept if role == "department" else None,
                        staff_id=staff if role == "worker" else None,
                    )
                    specs.append((role, side, accounts.add_account(s, spec, PASSWORD).id))
        index = itertools.count()
        for role, side, account_id in specs:  # each signs in for real
            w.subjects.append(
                Subject(
                    f"{role}-{side}",
                    next(index),
                    "account",
                    role,
                    side,
                    headers=_sign_in(client, f"pm-{role}-{side}"),
                    account_id=account_id,
                )
            )
        w.root = _sign_in(client, "pm-root")
        for scope in SCOPES:
            for side, area in (("own", w.s1), ("other", w.s2)):
                r = client.post(
                    "/api/v1/api-keys",
                    headers=w.root,
                    json={"name": f"pm-{scope}-{side}", "scopes": [scope], "areas": [area]},
                )
                assert r.status_code == 201, r.text
                w.subjects.append(
                    Subject(
                        f"key-{scope}-{side}",
                        next(index),
                        "key",
                        "integration",
                        side,
                        scope,
                        headers={"X-API-Key": r.json()["key"]},
                    )
                )
        w.subjects.append(Subject("anonymous", next(index), "anonymous", "anonymous", None))
        w.prepare()
        yield w
    print(
        f"\npolicy matrix on {fresh_db_url.split(':')[0]}: {len(OPERATIONS)} operations × {len(w.subjects)} "
        f"subjects; {w.stats['cells']} cells run, {w.stats['2xx']} answered 2xx ({w.stats['passed']} of them by "
        "passing the policy with a 4xx on content)"
    )


# -- the tests -----------------------------------------------------------------------------------------------------


def test_every_operation_has_a_row():
    """A new operation must be given its row by hand; a row whose operation is gone must be removed."""
    missing = [op for op in OPERATIONS if op not in ROWS]
    stale = [op for op in ROWS if op not in OPERATIONS]
    assert not missing, f"operations without a row in ROWS (who may call them?): {missing}"
    assert not stale, f"rows for operations that no longer exist: {stale}"


def _policy_of(dependant) -> list[str]:
    found = []
    for dep in dependant.dependencies:
        permission = getattr(dep.call, "permission", None)
        if permission is not None:
            found.append(permission)
        found.extend(_policy_of(dep))
    return found


def test_every_route_states_its_policy():
    """Every route — API, pages, routes left out of the schema — names its permission with `allow(...)` or
    `page_user(...)`; only the static files' mount has none."""
    app = create_app(Settings(database_url="sqlite://", gateway_secret=""))
    without, seen = [], 0
    for route in routing.iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount) and route.path == "/static":
            continue
        seen += 1
        dependant = getattr(route.original_route, "dependant", None)
        permissions = _policy_of(dependant) if dependant is not None else []
        if not permissions:
            without.append(f"{sorted(route.methods or [])} {route.path}")
        for permission in permissions:
            assert permission in policy.RULES, f"{route.path}: unknown permission {permission!r}"
    assert seen > len(OPERATIONS)  # the pages and the hidden routes were walked too
    assert not without, f"routes without a policy dependency: {without}"


def _status_class(code: int) -> str:
    if 200 <= code < 300:
        return "2xx"
    return str(code)


@pytest.mark.parametrize("op", OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_matrix(world, op):
    """One operation × every subject: the status class (and, for lists, whether the object is in the answer)
    that the hand-made row promises."""
    row = ROWS.get(op)
    assert row is not None, f"{op} has no row in ROWS"
    wrong = []
    for s in world.subjects:
        request = row.example(world, s)
        headers = {**s.headers, **request.pop("headers", {})}  # (revoking: a fresh token replaces the subject's)
        r = world.client.request(headers=headers, **request)
        want = expected(row, s)
        got = _status_class(r.status_code)
        world.stats["cells"] += 1
        if want == "2xx" and r.status_code in row.passes_with:
            got = "2xx"
            world.stats["passed"] += 1
        if got != want:
            wrong.append(f"{s.slug}: expected {want}, got {r.status_code} {r.text[:200]}")
            continue
        if got == "401":
            assert r.headers.get("www-authenticate", "").startswith("Bearer"), (s.slug, r.headers)
        if got == "2xx":
            world.stats["2xx"] += 1
            if row.jurisdiction == "list" and 200 <= r.status_code < 300:
                present = row.present(
                    world,
                    r.content if r.headers.get("content-type") == "application/vnd.mapbox-vector-tile" else r.json(),
                )
                if present != sees(row, s):
                    wrong.append(
                        f"{s.slug}: the object of the first sub-district is "
                        f"{'in' if present else 'missing from'} the list"
                    )
    assert not wrong, f"{op[0]} {op[1]}:\n" + "\n".join(wrong)


# -- forged identity headers ---------------------------------------------------------------------------------------

FORGED = {"X-User": "mallory", "X-Role": "admin", "X-Areas": "530111", "X-Staff-Id": "1", "X-Department": "CG"}


def _worker(world) -> Subject:
    return next(s for s in world.subjects if s.slug == "worker-own")


def test_forged_identity_headers_change_nothing(world):
    """Without the gateway's secret configured, X-User / X-Role / X-Areas / X-Staff-Id / X-Department (and even an
    X-Gateway-Secret header) are ignored: an anonymous caller stays anonymous, a worker stays that worker."""
    client = world.client
    assert client.app.state.settings.gateway_secret == ""
    for extra in ({}, {"X-Gateway-Secret": ""}, {"X-Gateway-Secret": "guess"}):
        headers = {**FORGED, **extra}
        assert client.get("/api/v1/cases", headers=headers).status_code == 401
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 401
        assert (
            client.post(
                "/api/v1/accounts", headers=headers, json={"username": "mallory", "role": "admin", "password": PASSWORD}
            ).status_code
            == 401
        )
        assert client.get("/api/v1/audit", headers=headers).status_code == 401
    worker = _worker(world)
    other_staff = {"X-Staff-Id": str(world.staff2), "X-Areas": world.s2}
    headers = {**worker.headers, **FORGED, **other_staff, "X-Gateway-Secret": "guess"}
    me = client.get("/api/v1/auth/me", headers=headers).json()
    assert (me["role"], me["username"], me["areas"], me["staff_id"], me["via"]) == (
        "worker",
        "pm-worker-own",
        [world.s1],
        world.staff1,
        "token",
    )
    assert client.get("/api/v1/accounts", headers=headers).status_code == 403
    assert client.get("/api/v1/audit", headers=headers).status_code == 403
    assert client.get("/api/v1/measures", headers=headers).status_code == 403
    s2_case = _case_in(world, world.s2)
    assert client.get(f"/api/v1/cases/{s2_case}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/cases/{world.case_id}", headers=headers).status_code == 200


def _case_in(world, subdistrict: str) -> int:
    with world.sessionmaker() as s:
        return s.scalar(
            sa.select(Case.id)
            .where(
                Case.subdistrict_code == subdistrict,
                sa.or_(Case.assignee_id.is_(None), Case.assignee_id != world.staff1),
            )
            .order_by(Case.id)
            .limit(1)
        )


def test_a_wrong_gateway_secret_is_refused(world):
    """With a gateway secret configured, a request carrying a wrong one is a 401 — with or without a valid token —
    and the right one is honoured (so the 401 is about the secret)."""
    settings = world.client.app.state.settings.model_copy(update={"gateway_secret": "the-real-gateway-secret"})
    worker = _worker(world)
    with TestClient(create_app(settings)) as client:
        for headers in (
            {**FORGED, "X-Gateway-Secret": "wrong"},
            {**FORGED, "X-Gateway-Secret": ""},
            {**worker.headers, **FORGED, "X-Gateway-Secret": "the-real-gateway-secreT"},
        ):
            r = client.get("/api/v1/auth/me", headers=headers)
            assert r.status_code == 401 and r.json()["field"] == "X-Gateway-Secret", r.text
            assert client.get("/api/v1/accounts", headers=headers).status_code == 401
        me = client.get("/api/v1/auth/me", headers={**worker.headers, **FORGED})  # no secret: headers ignored
        assert me.status_code == 200 and me.json()["role"] == "worker"
        assert client.get("/api/v1/auth/me", headers=FORGED).status_code == 401
        right = client.get("/api/v1/auth/me", headers={**FORGED, "X-Gateway-Secret": "the-real-gateway-secret"})
        assert right.status_code == 200 and right.json()["role"] == "admin" and right.json()["via"] == "gateway"
