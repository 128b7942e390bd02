"""Durability: the server process is killed (SIGKILL) again and again during a burst of concurrent submissions that
clients retry (cases with their Idempotency-Key); after the last restart every acknowledged case is there, exactly
once, and every acknowledged draft and calendar day is there. On both databases (SpatiaLite runs in WAL with
synchronous=FULL)."""

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
import pytest
import sqlalchemy as sa

from gridmap.store import engine as storage
from gridmap.store.tables import Case, IdempotencyKey

GRIDMAP = str(Path(sys.executable).with_name("gridmap"))
KILLS = 3
SUBMISSIONS = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(url: str, port: int) -> subprocess.Popen:
    import tempfile

    # the server writes its errors to its own copy of the file's descriptor: ours is closed once it answers
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [GRIDMAP, "--database", url, "serve", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=log
        )
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


@pytest.mark.slow
def test_acknowledged_writes_survive_sigkill(fresh_db_url):
    """Every write route commits before it answers: residents' cases (retried with their Idempotency-Key, some
    acknowledged keys sent again as a client that lost an answer does), boundary drafts (a planner's) and calendar
    days (an admin's) go out together in bursts of 8 concurrent clients, the server is SIGKILLed in the middle of
    three of them and restarted; every acknowledged case is stored exactly once under its key, every acknowledged
    draft and day is stored. (One scenario for the three kinds: each restart of the server costs seconds.)"""
    import datetime as dt

    from gridmap.access import accounts
    from gridmap.store.tables import CalendarDay, Generation

    engine = storage.make_engine(fresh_db_url)
    with storage.session_scope(storage.make_sessionmaker(engine)) as s:
        lon, lat = s.execute(sa.select(Case.lon, Case.lat).where(Case.grid_code.is_not(None)).limit(1)).one()
        tokens = {}
        for role in ("planner", "admin"):
            account = accounts.add_account(
                s, accounts.AccountSpec(f"durable-{role}-{uuid.uuid4().hex[:6]}", role), "a-long-password-1"
            )
            tokens[role] = accounts.issue_token(s, account, "access", dt.timedelta(hours=1))
    run = uuid.uuid4().hex[:8]
    keys = [f"{run}-{i}" for i in range(SUBMISSIONS)]
    first_day = dt.date(2031, 1, 1)
    jobs = [("case", k) for k in keys] + [("draft", i) for i in range(24)] + [("day", i) for i in range(40)]
    port = _free_port()
    acknowledged: dict[tuple[str, object], object] = {}
    lock = threading.Lock()

    def send(job: tuple[str, object]) -> None:
        kind, i = job
        try:
            if kind == "case":
                body = {
                    "title": "断电测试",
                    "lon": lon,
                    "lat": lat,
                    "category": "E0101",
                    "description": f"durability {i}",
                }
                r = httpx.post(
                    f"http://127.0.0.1:{port}/api/v1/cases", json=body, headers={"Idempotency-Key": i}, timeout=20
                )
            elif kind == "draft":
                r = httpx.post(
                    f"http://127.0.0.1:{port}/api/v1/generations",
                    json={"name": f"{run}-{i}"},
                    headers={"Authorization": f"Bearer {tokens['planner']}"},
                    timeout=20,
                )
            else:
                day = (first_day + dt.timedelta(days=i)).isoformat()
                r = httpx.put(
                    f"http://127.0.0.1:{port}/api/v1/calendar/{day}",
                    json={"kind": "holiday", "name": f"{run}-{i}"},
                    headers={"Authorization": f"Bearer {tokens['admin']}"},
                    timeout=20,
                )
        except httpx.HTTPError:
            return  # no answer: the client will retry
        if r.status_code in (200, 201):
            ident = r.json()["id"] if kind != "day" else r.json().get("id", r.json().get("day"))
            with lock:
                assert acknowledged.setdefault(job, ident) == ident, f"a retry of {job} got another answer"

    def todo() -> list:
        # everything not yet acknowledged, and some acknowledged cases again (a client that lost an answer)
        cases = sorted(job for job in acknowledged if job[0] == "case")
        return [job for job in jobs if job not in acknowledged] + rng.sample(cases, min(10, len(cases)))

    rng = random.Random(7)
    kills = _bursts_with_kills(fresh_db_url, port, rng, 20, send, todo, lambda: len(acknowledged) == len(jobs))
    assert kills == KILLS and len(acknowledged) == len(jobs), f"{len(acknowledged)} of {len(jobs)} acknowledged"
    with storage.make_sessionmaker(engine)() as s:
        stored = dict(
            s.execute(sa.select(IdempotencyKey.key, IdempotencyKey.case_id).where(IdempotencyKey.key.in_(keys))).all()
        )
        descriptions = list(s.scalars(sa.select(Case.description).where(Case.description.like(f"durability {run}-%"))))
        drafts = dict(
            s.execute(sa.select(Generation.id, Generation.name).where(Generation.name.like(f"{run}-%"))).all()
        )
        days = set(s.scalars(sa.select(CalendarDay.name).where(CalendarDay.name.like(f"{run}-%"))))
    # every acknowledged case is there, under its key, and each exactly once
    assert stored == {i: ident for (kind, i), ident in acknowledged.items() if kind == "case"}
    assert sorted(descriptions) == sorted(f"durability {k}" for k in keys)
    for (kind, i), ident in acknowledged.items():
        if kind == "draft":
            assert drafts.get(ident) == f"{run}-{i}", f"acknowledged draft {ident} is missing"
        elif kind == "day":
            assert f"{run}-{i}" in days, f"acknowledged calendar day {ident} is missing"
    engine.dispose()
