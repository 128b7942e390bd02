"""Durability: the server process is killed (SIGKILL) again and again during a burst of concurrent submissions that
clients retry with their Idempotency-Key; after the last restart every acknowledged case is there, exactly once.
On both databases (SpatiaLite runs in WAL with synchronous=FULL)."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import sqlalchemy as sa

from gridmap import storage
from gridmap.tables import Case, IdempotencyKey

GRIDMAP = str(Path(sys.executable).with_name("gridmap"))
KILLS = 3
SUBMISSIONS = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(url: str, port: int) -> subprocess.Popen:
    import tempfile

    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([GRIDMAP, "--database", url, "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/categories", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            log.seek(0)
            raise AssertionError("the server did not start: " + log.read().decode(errors="replace")[-2000:])
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not answer within 90 s")


def _bursts_with_kills(url: str, port: int, rng: random.Random, rounds: int, send, todo, done) -> int:
    """Rounds of 8 concurrent clients sending `todo()`, the server SIGKILLed at a random moment of each of the first
    KILLS rounds (while requests are in flight) and restarted; until `done()`. Returns how many kills there were."""
    proc = _start(url, port)
    kills = 0
    try:
        for _ in range(rounds):
            killer = None
            if kills < KILLS:
                killer = threading.Timer(rng.uniform(0.05, 0.3), proc.kill)
                killer.start()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(send, todo()))
            if killer is not None:
                killer.join()
                kills += 1
            if proc.poll() is not None:
                proc = _start(url, port)
            if kills >= KILLS and done():
                break
    finally:
        proc.kill()
        proc.wait(10)
    return kills


def test_acknowledged_cases_survive_sigkill_exactly_once(fresh_db_url):
    engine = storage.make_engine(fresh_db_url)
    with storage.make_sessionmaker(engine)() as s:
        lon, lat = s.execute(sa.select(Case.lon, Case.lat).where(Case.grid_code.is_not(None)).limit(1)).one()
    run = uuid.uuid4().hex[:8]
    keys = [f"{run}-{i}" for i in range(SUBMISSIONS)]
    port = _free_port()
    acknowledged: dict[str, int] = {}
    lock = threading.Lock()

    def submit(key: str) -> None:
        body = {"title": "断电测试", "lon": lon, "lat": lat, "category": "E0101", "description": f"durability {key}"}
        try:
            r = httpx.post(f"http://127.0.0.1:{port}/api/v1/cases", json=body, headers={"Idempotency-Key": key},
                           timeout=20)
        except httpx.HTTPError:
            return  # no answer: the client will retry
        if r.status_code in (200, 201):
            with lock:
                assert acknowledged.setdefault(key, r.json()["id"]) == r.json()["id"], "a retry got another case"

    rng = random.Random(7)
    # retry everything not yet acknowledged, and some acknowledged keys again (a client that lost an answer)
    kills = _bursts_with_kills(fresh_db_url, port, rng, 20, submit, lambda: [k for k in keys if k not in acknowledged]
                               + rng.sample(sorted(acknowledged), min(10, len(acknowledged))),
                               lambda: len(acknowledged) == len(keys))
    assert kills == KILLS and len(acknowledged) == len(keys), f"{len(acknowledged)} of {len(keys)} acknowledged"
    with storage.make_sessionmaker(engine)() as s:
        stored = dict(s.execute(sa.select(IdempotencyKey.key, IdempotencyKey.case_id)
                                .where(IdempotencyKey.key.in_(keys))).all())
        assert stored == acknowledged  # every acknowledged case is there, under its key
        descriptions = list(s.scalars(sa.select(Case.description).where(Case.description.like(f"durability {run}-%"))))
        assert sorted(descriptions) == sorted(f"durability {k}" for k in keys)  # each exactly once
    engine.dispose()


def test_acknowledged_drafts_and_admin_edits_survive_sigkill(fresh_db_url):
    """Every write route commits before it answers: boundary drafts (a planner's) and calendar days (an admin's)
    that were acknowledged are stored after SIGKILLs in the middle of a burst."""
    import datetime as dt

    from gridmap import accounts
    from gridmap.tables import CalendarDay, Generation

    engine = storage.make_engine(fresh_db_url)
    with storage.session_scope(storage.make_sessionmaker(engine)) as s:
        tokens = {}
        for role in ("planner", "admin"):
            account = accounts.add_account(s, accounts.AccountSpec(f"durable-{role}-{uuid.uuid4().hex[:6]}", role),
                                           "a-long-password-1")
            tokens[role] = accounts.issue_token(s, account, "access", dt.timedelta(hours=1))
    run = uuid.uuid4().hex[:8]
    first_day = dt.date(2031, 1, 1)
    jobs = [("draft", i) for i in range(24)] + [("day", i) for i in range(40)]
    port = _free_port()
    acknowledged: dict[tuple[str, int], object] = {}
    lock = threading.Lock()

    def send(job: tuple[str, int]) -> None:
        kind, i = job
        try:
            if kind == "draft":
                r = httpx.post(f"http://127.0.0.1:{port}/api/v1/generations", json={"name": f"{run}-{i}"},
                               headers={"Authorization": f"Bearer {tokens['planner']}"}, timeout=20)
            else:
                day = (first_day + dt.timedelta(days=i)).isoformat()
                r = httpx.put(f"http://127.0.0.1:{port}/api/v1/calendar/{day}",
                              json={"kind": "holiday", "name": f"{run}-{i}"},
                              headers={"Authorization": f"Bearer {tokens['admin']}"}, timeout=20)
        except httpx.HTTPError:
            return
        if r.status_code in (200, 201):
            with lock:
                acknowledged[job] = r.json().get("id", r.json().get("day"))

    rng = random.Random(11)
    kills = _bursts_with_kills(fresh_db_url, port, rng, 12, send, lambda: [j for j in jobs if j not in acknowledged],
                               lambda: len(acknowledged) == len(jobs))
    assert kills == KILLS and len(acknowledged) == len(jobs), f"{len(acknowledged)} of {len(jobs)} acknowledged"
    with storage.make_sessionmaker(engine)() as s:
        drafts = dict(s.execute(sa.select(Generation.id, Generation.name).where(Generation.name.like(f"{run}-%"))).all())
        days = set(s.scalars(sa.select(CalendarDay.name).where(CalendarDay.name.like(f"{run}-%"))))
    for (kind, i), ident in acknowledged.items():
        if kind == "draft":
            assert drafts.get(ident) == f"{run}-{i}", f"acknowledged draft {ident} is missing"
        else:
            assert f"{run}-{i}" in days, f"acknowledged calendar day {ident} is missing"
    engine.dispose()
