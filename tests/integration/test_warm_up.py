"""A starting server's warm-up gives way to its answers (issue 15 §6: the map's first screen on a freshly started
server), on both databases.

- `Runtime` counts the answers in progress (`gridmap_api.main.RuntimeSync`, around every request), and
  `Runtime.giving_way()` is a pause that waits while there are any and for a quiet moment after the last: at most
  `each_s` at a time and `total_s` in all.
- The start-up's warm-up (`gridmap_api.main._warm`, not `fresh`) calls it between slices of the branch and staff of
  every grid (`people_directory`, every PEOPLE_SLICE rows) and before each step of the lookup index's warm-up; a
  caller that waits for that load meanwhile (a locate) makes it stop giving way, so that the two never wait for
  each other.
- Last, once the process has been quiet for a moment, one district's series (`measures.warm_series`); and before it
  serves, the start makes every route (`_routes_made`), which FastAPI would make on a worker's first request.
"""

from __future__ import annotations

import threading
import time

import pytest

from gridmap.boundaries import areas
from gridmap.locating import locate as glocate
from gridmap.runtime import Runtime
from gridmap.store import engine as storage
from tests.conftest import api_client

DEADLOCK_S = 30  # only a deadlock waits this long; the tests pass at the first moment what they wait for is seen


@pytest.fixture()
def runtime(fresh_db_url):
    engine = storage.make_engine(fresh_db_url)
    runtime = Runtime(storage.make_sessionmaker(engine))
    yield runtime
    runtime.stop()
    engine.dispose()


def test_a_pause_waits_while_the_process_answers_and_ends_within_its_limits(runtime):
    pause = runtime.giving_way(each_s=0.3, total_s=0.5)
    started = time.monotonic()
    pause()  # nothing being answered: no wait
    assert time.monotonic() - started < 0.1
    runtime.answer_begun()
    try:
        assert runtime.answering() == 1
        started = time.monotonic()
        pause()  # at most each_s
        assert 0.25 <= time.monotonic() - started < 2
        started = time.monotonic()
        pause()  # what is left of total_s (0.2 s)
        pause()  # nothing left: no more waiting
        assert 0.15 <= time.monotonic() - started < 2
        ended = threading.Timer(0.2, runtime.answer_ended)
        ended.start()
        pause = runtime.giving_way(each_s=DEADLOCK_S, total_s=DEADLOCK_S)
        started = time.monotonic()
        pause()  # ends when the answer does
        assert 0.15 <= time.monotonic() - started < DEADLOCK_S / 2
    finally:
        if runtime.answering():
            runtime.answer_ended()
    assert runtime.answering() == 0


def test_a_pause_also_waits_for_a_quiet_moment_after_the_last_answer(runtime):
    """A screen's requests come in bursts: a pause waits until the process has answered nothing for `quiet_s`
    (within `each_s`), and not at all once it has."""
    pause = runtime.giving_way(each_s=DEADLOCK_S, total_s=DEADLOCK_S, quiet_s=0.4)
    runtime.answer_begun()
    runtime.answer_ended()
    started = time.monotonic()
    pause()
    assert 0.3 <= time.monotonic() - started < DEADLOCK_S / 2
    started = time.monotonic()
    pause()  # quiet for 0.4 s by now
    assert time.monotonic() - started < 0.2
    assert runtime.answering() == 0


def test_counting_an_answer_never_waits_for_a_change_being_applied(runtime):
    """`answer_begun` runs on the event loop before every request: it must not wait for the lock a change is
    applied under (`Runtime._apply` reads the active generation while holding it)."""
    with runtime._lock:
        done = threading.Event()
        counting = threading.Thread(target=lambda: (runtime.answer_begun(), runtime.answer_ended(), done.set()))
        counting.start()
        assert done.wait(DEADLOCK_S)
    assert runtime.answering() == 0


def test_the_people_load_waits_for_answers_and_stops_waiting_for_a_caller_who_needs_it(runtime, monkeypatch):
    """The branch and staff of every grid, loaded by a warm-up that gives way: no row is read past a slice while
    the process answers; a locate that needs the load meanwhile gets it at once (not after the pause), and the load
    is read once."""
    monkeypatch.setattr(areas, "PEOPLE_SLICE", 1)
    glocate.clear_people_cache()
    db = runtime.db_key
    loads = []
    real = areas.people_directory

    def counted(session, on=None, **kw):
        loads.append(on)
        return real(session, on, **kw)

    monkeypatch.setattr(glocate, "people_directory", counted)
    runtime.answer_begun()
    try:
        pause = runtime.giving_way(each_s=DEADLOCK_S, total_s=DEADLOCK_S)
        with runtime.sessionmaker() as session:
            warm = threading.Thread(target=lambda: glocate.warm_people(session, pause=pause), daemon=True)
            warm.start()
            time.sleep(0.5)
            assert warm.is_alive() and glocate.people_age(db) is None  # held at its first pause
            with runtime.sessionmaker() as other:
                started = time.monotonic()
                directory = glocate.warm_people(other, max_age_s=glocate.PEOPLE_TTL_S)  # a locate's call
                assert time.monotonic() - started < DEADLOCK_S / 2
            assert directory and len(loads) == 1  # the warm-up's load, not a second one
            warm.join(DEADLOCK_S)
            assert not warm.is_alive()
    finally:
        runtime.answer_ended()
    assert glocate.people_age(db) is not None


def test_the_server_counts_its_answers_and_its_start_up_warm_up_gives_way(settings, monkeypatch):
    """Wiring: a request is an answer in progress from before it is routed until its response is sent; the
    start-up's warm-up passes a pause to the people load and to the index's warm-up, a warm-up after an activation
    (`fresh`) none."""
    import gridmap_api.main as main

    seen = []
    with api_client(settings) as c:
        runtime = c.app.state.runtime
        settled = runtime.settled

        def probe():
            seen.append(runtime.answering())
            return settled()

        monkeypatch.setattr(runtime, "settled", probe)
        assert c.get("/login").status_code == 200
        assert seen == [1] and runtime.answering() == 0
        assert c.get("/api/v1/no-such-route").status_code == 404
        assert seen == [1, 1] and runtime.answering() == 0

        calls = []

        class Index:
            def warm(self, pause=None):
                calls.append(("index", pause))

        monkeypatch.setattr(main, "warm_people", lambda session, **kw: calls.append(("people", kw.get("pause"))))
        main._warm(c.app, Index(), fresh=False)
        assert [what for what, _ in calls] == ["people", "index"]  # the slices that give way first
        assert all(callable(pause) for _, pause in calls)
        calls.clear()
        main._warm(c.app, Index(), fresh=True)
        assert [pause for _, pause in calls] == [None, None]


def test_the_start_up_works_out_a_district_series_in_a_quiet_moment_and_not_once_stopping(settings, monkeypatch):
    """Last in the start-up's warm-up, one district's series (`measures.warm_series`): only once the process has
    answered nothing for WARM_SERIES_QUIET_S, never after an activation (`fresh`), and not at all when the server
    stops while it waits."""
    import gridmap_api.main as main

    here = threading.current_thread()
    calls = []
    monkeypatch.setattr(main, "warm_people", lambda session, **kw: None)
    monkeypatch.setattr(
        main.measures_of_cases,
        "warm_series",
        lambda factory: calls.append(time.monotonic()) if threading.current_thread() is here else None,
    )
    monkeypatch.setattr(main, "WARM_SERIES_QUIET_S", 0.5)
    with api_client(settings) as c:
        runtime = c.app.state.runtime
        assert c.get("/login").status_code == 200
        answered = time.monotonic()
        main._warm(c.app, None, fresh=False)
        assert len(calls) == 1 and calls[0] - answered >= 0.45
        main._warm(c.app, None, fresh=True)
        assert len(calls) == 1
        stopping = threading.Event()
        runtime.answer_begun()  # a request in progress: the series waits, then the server stops
        try:
            threading.Timer(0.2, stopping.set).start()
            started = time.monotonic()
            main._warm(c.app, None, fresh=False, stopping=stopping)
            assert time.monotonic() - started < DEADLOCK_S / 2
            assert len(calls) == 1
        finally:
            runtime.answer_ended()


def test_every_route_is_made_at_the_start_not_on_a_first_request(settings, monkeypatch):
    """FastAPI makes an included router's routes (their parameters' and answers' models) when a request is first
    matched against them, on the event loop (130-215 ms of a province worker's first request); the start makes
    them all (`gridmap_api.main._routes_made`), so that a first request makes none."""
    import fastapi.routing

    made = []
    original = fastapi.routing._EffectiveRouteContext.from_api_route

    def counted(*args, **kwargs):
        made.append(1)
        return original(*args, **kwargs)

    with api_client(settings) as c:
        monkeypatch.setattr(fastapi.routing._EffectiveRouteContext, "from_api_route", counted)
        assert c.get("/api/v1/categories").status_code == 200
        assert c.get("/api/v1/areas/530111/series").status_code == 200
    assert made == []
