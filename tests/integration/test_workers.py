"""Many workers, one truth: `gridmap serve --workers 2` over one database (both kinds); a change made through one
worker process is answered by the other on its very next request — new boundaries after an activation, a revoked
API key refused, an edited working calendar.

Which worker answers is found out by the test alone, without anything in the server: HTTP/1.1 connections are
kept open, and each is matched (psutil, by its port) to the worker process holding its other end; requests are
then sent on a connection held by the worker that did not make the change."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse

import psutil
import pytest
import sqlalchemy as sa
from geoalchemy2.shape import to_shape

from gridmap.runtime import Runtime, read_versions
from gridmap.store import engine as storage
from gridmap.store.tables import Area
from tests.conftest import GATEWAY_SECRET
from tests.integration.test_generations import _as_geojson, _move_strip

ADMIN = {"X-User": "admin-1", "X-Role": "admin"}
PLANNER = {"X-User": "planner-1", "X-Role": "planner"}
APPROVER = {"X-User": "approver-1", "X-Role": "approver"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


IDLE_S = 3.0  # uvicorn closes a connection idle for 5 s: an older one is replaced before it is used


def _worker_of(server: subprocess.Popen, conn: http.client.HTTPConnection) -> int | None:
    """The pid of the server's worker process holding the other end of `conn`."""
    local_port = conn.sock.getsockname()[1]
    for child in psutil.Process(server.pid).children(recursive=True):
        try:
            for c in child.net_connections(kind="tcp"):
                if c.raddr and c.raddr.port == local_port and c.status == psutil.CONN_ESTABLISHED:
                    return child.pid
        except psutil.Error:
            continue
    return None


def _connections(
    proc: subprocess.Popen, port: int, wanted: set[int] | None, count: int = 2
) -> dict[int, http.client.HTTPConnection]:
    """Open connections until `count` distinct workers (of `wanted`, when given) hold one each; the others are
    kept open meanwhile, so that the next connection may well go to another worker."""
    found: dict[int, http.client.HTTPConnection] = {}
    spare = []
    try:
        for _ in range(600):
            if proc.poll() is not None:
                pytest.fail(f"the server ended: {proc.stderr.read().decode()[-2000:]}")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("GET", "/login")
                conn.getresponse().read()
            except OSError:
                conn.close()
                time.sleep(0.1)
                continue
            pid = _worker_of(proc, conn)
            if pid is not None and pid not in found and (wanted is None or pid in wanted):
                found[pid] = conn
                if len(found) == count:
                    return found
            else:
                spare.append(conn)
        pytest.fail(f"did not reach {count} distinct worker processes")
    finally:
        for conn in spare:
            conn.close()


class Worker:
    """One worker process of the server, reached on a kept-open connection."""

    def __init__(self, proc: subprocess.Popen, port: int, pid: int, conn: http.client.HTTPConnection):
        self.proc, self.port, self.pid, self.conn = proc, port, pid, conn
        self.used = time.monotonic()

    def call(
        self, method: str, path: str, body=None, headers=None, *, gateway: bool = True, form: dict | None = None
    ) -> tuple[int, dict]:
        """JSON from this worker, as a gateway's admin (or `headers` overriding) or, without `gateway`, with
        `headers` alone; `body` is sent as JSON, `form` as a form."""
        if time.monotonic() - self.used > IDLE_S:
            self.conn.close()
            self.conn = _connections(self.proc, self.port, {self.pid}, 1)[self.pid]
        data = json.dumps(body).encode() if body is not None else None
        kind = "application/json"
        if form is not None:
            data, kind = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
        sent = {"X-Gateway-Secret": GATEWAY_SECRET, **ADMIN} if gateway else {}
        self.conn.request(
            method, path, body=data, headers={"Content-Type": kind, "Accept-Language": "en", **sent, **(headers or {})}
        )
        response = self.conn.getresponse()
        payload = response.read()
        self.used = time.monotonic()
        assert response.getheader("connection", "").lower() != "close"  # the same worker answers the next one
        return response.status, json.loads(payload) if payload else {}


@pytest.fixture(scope="module")
def server(fresh_db_url):
    """`gridmap serve --workers 2` over the module's database, and one kept-open connection to each worker."""
    port = _free_port()
    env = {**os.environ, "GRIDMAP_GATEWAY_SECRET": GATEWAY_SECRET, "GRIDMAP_ESCALATION_INTERVAL_S": "3600"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gridmap.cli",
            "--database",
            fresh_db_url,
            "serve",
            "--workers",
            "2",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    workers = []
    try:
        workers = [Worker(proc, port, pid, conn) for pid, conn in _connections(proc, port, None).items()]
        yield workers
    finally:
        for w in workers:
            w.conn.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _neighbours(url: str, generation_id: int):
    """Two micro-grids of one grid sharing an edge (as tests/integration/test_generations.py picks them)."""
    engine = storage.make_engine(url)
    try:
        with storage.make_sessionmaker(engine)() as session:
            rows = session.scalars(
                sa.select(Area)
                .where(Area.generation_id == generation_id, Area.is_leaf, Area.level == "microgrid")
                .order_by(Area.code)
            ).all()
            leaves = [(a.code, a.parent_id, to_shape(a.geom)) for a in rows]
    finally:
        engine.dispose()
    for i, (code_a, parent_a, geom_a) in enumerate(leaves):
        for code_b, parent_b, geom_b in leaves[i + 1 :]:
            if parent_a == parent_b and geom_a.intersection(geom_b).length > 0.002:
                return (code_a, geom_a), (code_b, geom_b)
    raise AssertionError("the demo has no two adjacent micro-grids in one grid")


@pytest.mark.slow  # two server processes start (about 35 s with a load average of 13 on 2 cores)
def test_an_activation_through_one_worker_is_answered_by_the_other(server, fresh_db_url):
    one, other = server
    assert one.pid != other.pid
    status, generations = one.call("GET", "/api/v1/generations")
    (old,) = [g for g in generations if g["status"] == "active"]
    status, draft = one.call("POST", "/api/v1/generations", {"name": "两进程调整"}, PLANNER)
    assert status == 201, draft
    (code_a, geom_a), (code_b, geom_b) = _neighbours(fresh_db_url, draft["id"])
    new_a, new_b, p = _move_strip(geom_a, geom_b)
    where = f"/api/v1/locate?lon={p.x}&lat={p.y}"
    for worker in (one, other):  # both have the old boundaries in memory, and answer from them
        status, before = worker.call("GET", where)
        assert status == 200 and before["microgrid"]["code"] == code_b and before["generation_id"] == old["id"]

    status, out = one.call(
        "PUT",
        f"/api/v1/generations/{draft['id']}/areas",
        {"areas": {code_a: _as_geojson(new_a), code_b: _as_geojson(new_b)}},
        PLANNER,
    )
    assert status == 200, out
    # a draft's redraw reaches the other worker's cached draft index too
    status, moved = other.call("GET", f"/api/v1/generations/{draft['id']}/relocated-cases")
    assert status == 200
    status, out = one.call("POST", f"/api/v1/generations/{draft['id']}/submit", None, PLANNER)
    assert status == 200, out
    status, out = one.call(
        "POST", f"/api/v1/generations/{draft['id']}/approve", {"effective_from": dt.date.today().isoformat()}, APPROVER
    )
    assert status == 200 and out["generation"]["status"] == "active", out

    for _ in range(3):  # the other worker's very next answers use the new boundaries
        status, after = other.call("GET", where)
        assert status == 200 and after["generation_id"] == draft["id"] and after["microgrid"]["code"] == code_a
        status, after = one.call("GET", where)
        assert status == 200 and after["generation_id"] == draft["id"] and after["microgrid"]["code"] == code_a
    status, batch = other.call("POST", "/api/v1/locate/batch", {"items": [{"id": 1, "lon": p.x, "lat": p.y}]})
    assert status == 200 and batch["generation_id"] == draft["id"]
    assert batch["results"][0]["codes"]["microgrid"] == code_a


@pytest.mark.slow  # two server processes start (about 35 s with a load average of 13 on 2 cores)
def test_a_key_revoked_through_one_worker_is_refused_by_the_other(server, fresh_db_url):
    one, other = server
    status, generations = one.call("GET", "/api/v1/generations")
    (active,) = [g for g in generations if g["status"] == "active"]
    (_, geom), _ = _neighbours(fresh_db_url, active["id"])
    p = geom.representative_point()
    where = f"/api/v1/locate?lon={p.x}&lat={p.y}"
    status, key = one.call("POST", "/api/v1/api-keys", {"name": "workers-test", "scopes": ["locate", "read"]})
    assert status == 201, key
    secret = key["key"]
    as_key = {"X-API-Key": secret}
    status, _ = other.call("GET", where, None, as_key, gateway=False)
    assert status == 200  # the other worker now holds the key's principal in its cache
    status, revoked = one.call("DELETE", f"/api/v1/api-keys/{key['id']}")
    assert status == 200 and revoked["revoked_at"]
    status, refused = other.call("GET", where, None, as_key, gateway=False)
    assert status == 401 and refused["field"] == "X-API-Key"
    status, refused = one.call("GET", where, None, as_key, gateway=False)
    assert status == 401


@pytest.mark.slow  # two server processes start (about 35 s with a load average of 13 on 2 cores)
def test_an_account_disabled_through_one_worker_is_refused_by_the_other(server):
    one, other = server
    password = "workers-correct-horse-42"
    status, account = one.call(
        "POST", "/api/v1/accounts", {"username": "two-workers", "role": "admin", "password": password}
    )
    assert status == 201, account
    status, token = one.call(
        "POST", "/api/v1/auth/token", gateway=False, form={"username": "two-workers", "password": password}
    )
    assert status == 200, token
    bearer = {"Authorization": f"Bearer {token['access_token']}"}
    status, _ = other.call("GET", "/api/v1/generations", None, bearer, gateway=False)
    assert status == 200  # the other worker now holds the account's principal in its cache
    status, out = one.call("PATCH", f"/api/v1/accounts/{account['id']}", {"active": False})
    assert status == 200 and out["active"] is False, out
    status, refused = other.call("GET", "/api/v1/generations", None, bearer, gateway=False)
    assert status == 401 and refused["field"] == "Authorization"


def test_the_runtime_follows_writes_of_another_connection(fresh_db_url):
    """In one process, without a server: a runtime sees the versions a write elsewhere bumped, drops its caches
    of that topic and tells its followers; a write to nothing cached moves nothing."""
    engine = storage.make_engine(fresh_db_url)
    writer = storage.make_engine(fresh_db_url)
    runtime = Runtime(storage.make_sessionmaker(engine))
    try:
        runtime.sync()  # the first reading (start() would also listen on PostGIS, racing this test's own calls)
        heard = []
        runtime.on_change(heard.append)
        index = runtime.registry.active()
        assert index is not None and runtime.registry.current is index
        calendar = runtime.calendar()
        assert runtime.sync() == frozenset()
        before = runtime.stamp("boundaries")
        with storage.session_scope(storage.make_sessionmaker(writer)) as session:
            area = session.scalars(sa.select(Area).limit(1)).first()
            area.name = area.name  # no change: nothing moves
        assert runtime.sync() == frozenset() and heard == []
        with storage.session_scope(storage.make_sessionmaker(writer)) as session:
            area = session.scalars(sa.select(Area).where(Area.is_leaf).limit(1)).first()
            area.households = (area.households or 0) + 1
            with writer.connect() as probe:
                assert read_versions(probe)["boundaries"] == before  # not before the commit
        assert runtime.sync() == frozenset({"boundaries"}) and heard == [frozenset({"boundaries"})]
        assert runtime.stamp("boundaries") == before + 1
        # the same generation is still active: its index stays (a published generation's areas are not edited);
        # the calendar is kept
        assert runtime.registry.current is index and runtime.calendar() is calendar
        with storage.session_scope(storage.make_sessionmaker(writer)) as session:
            session.execute(sa.text("UPDATE calendar_day SET kind = kind WHERE 1 = 0"))  # raw SQL: not seen …
            from gridmap.runtime import mark_changed

            mark_changed(session, "calendar")  # … unless the writer says so
        assert runtime.sync() == frozenset({"calendar"}) and runtime.calendar() is not calendar
    finally:
        runtime.stop()
        engine.dispose()
        writer.dispose()


def test_a_calendar_read_across_a_change_is_not_kept(fresh_db_url, monkeypatch):
    """A change heard while the calendar is being read: the reader gets what it read, but it is not kept as the
    cache (it may predate the change), so the next caller reads again (found in review)."""
    from gridmap.calendar import WorkCalendar

    engine = storage.make_engine(fresh_db_url)
    runtime = Runtime(storage.make_sessionmaker(engine))
    real = WorkCalendar.from_session.__func__
    reads = []

    def read_while_a_change_arrives(cls, session):
        reads.append(1)
        if len(reads) == 1:
            runtime._invalidate(frozenset({"calendar"}))  # as sync() would on another thread, mid-read
        return real(cls, session)

    monkeypatch.setattr(WorkCalendar, "from_session", classmethod(read_while_a_change_arrives))
    try:
        first = runtime.calendar()
        assert first is not None and runtime._calendar is None
        second = runtime.calendar()
        assert len(reads) == 2 and runtime._calendar is second and runtime.calendar() is second
    finally:
        runtime.stop()
        engine.dispose()


def test_removing_an_accounts_areas_moves_the_principals(fresh_db_url):
    """An account's areas cleared through the relationship alone (delete-orphan) is a change of principals."""
    from gridmap.access.accounts import AccountSpec, add_account
    from gridmap.store.tables import Account

    engine = storage.make_engine(fresh_db_url)
    try:
        with storage.session_scope(storage.make_sessionmaker(engine)) as session:
            sub = session.scalar(sa.select(Area.code).where(Area.level == "subdistrict").order_by(Area.code))
            add_account(session, AccountSpec("areas-cleared", "dispatcher", (sub,)), "areas-cleared-password-2026")
        with storage.session_scope(storage.make_sessionmaker(engine)) as session:
            account = session.scalars(sa.select(Account).where(Account.username == "areas-cleared")).one()
            assert account.areas
            with engine.connect() as conn:
                before = read_versions(conn)["principals"]
            account.areas = []
        with engine.connect() as conn:
            assert read_versions(conn)["principals"] == before + 1
    finally:
        engine.dispose()


def _mapped(array) -> bool:
    """Whether the array's memory is a mapped file (its chain of bases reaches an np.memmap or an mmap)."""
    import mmap

    import numpy as np

    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


def test_the_shared_index_is_built_once_per_content_and_memory_mapped(fresh_db_url, tmp_path):
    """`shared_index` writes one folder per generation and content; a second load maps its arrays (the cell
    raster) from the file and locates exactly as the index built in memory; other areas give another folder."""
    import numpy as np

    from gridmap.boundaries.areas import active_generation, load_index
    from gridmap.boundaries.generations import shared_index

    engine = storage.make_engine(fresh_db_url)
    try:
        with storage.make_sessionmaker(engine)() as session:
            gen = active_generation(session)
            built = load_index(session, gen.id)
            first = shared_index(session, gen.id, cache_dir=tmp_path)
            (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
            made = folder.stat().st_mtime_ns
            again = shared_index(session, gen.id, cache_dir=tmp_path)
            assert [p for p in tmp_path.iterdir() if p.is_dir()] == [folder] and folder.stat().st_mtime_ns == made
            assert _mapped(again.cells.label) and not _mapped(built.cells.label)
            rng = np.random.default_rng(7)
            x0, y0, x1, y1 = built.bounds
            xs, ys = rng.uniform(x0, x1, 20_000), rng.uniform(y0, y1, 20_000)
            expected = built.locate_many(xs, ys)
            assert (expected >= 0).any()
            for index in (first, again):
                assert np.array_equal(index.locate_many(xs, ys), expected)
                assert list(index.leaf_codes) == list(built.leaf_codes)
            area = session.scalars(sa.select(Area).where(Area.generation_id == gen.id, Area.is_leaf).limit(1)).first()
            area.name = area.name + "（改）"
            session.flush()  # not committed: the rows the index is made from differ all the same
            renamed = shared_index(session, gen.id, cache_dir=tmp_path)
            assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2
            assert renamed.by_code[area.code].name == area.name
            session.rollback()
    finally:
        engine.dispose()


def test_loading_a_demo_district_tells_the_servers(fresh_db_url):
    """The demo writes areas and people in bulk, past the ORM's flush: it must still move the topics, or a running
    server keeps its index and staff without the new district (found in review). Last in this module: it adds a
    district to the module's database."""
    from gridmap.demo.load import load_demo

    engine = storage.make_engine(fresh_db_url)
    try:
        with engine.connect() as conn:
            before = read_versions(conn)
        with storage.session_scope(storage.make_sessionmaker(engine)) as session:
            load_demo(session, "140213", small=True)
        with engine.connect() as conn:
            after = read_versions(conn)
    finally:
        engine.dispose()
    assert after["boundaries"] > before["boundaries"] and after["people"] > before["people"]
    assert after["calendar"] == before["calendar"]
