"""Shared fixtures: real databases (a SpatiaLite file and a fresh PostGIS database), loaded with the small demo.

A PostGIS test may be skipped on a laptop without a server, but under CI (CI=true) a missing server fails the run.
Each run creates its own uniquely named PostGIS database and drops it afterwards: no test depends on an earlier run.
Each test module gets a database of its own (`db_url`, a copy of the demo) and, for API tests, a `client` on it:
modules do not depend on each other's order. A point inside a grid: `tests.helpers.inside`.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from gridmap.cases.measures import keep_close_hours
from gridmap.demo.load import load_demo
from gridmap.store import engine as storage

POSTGRES_ADMIN_URL = os.environ.get(
    "GRIDMAP_TEST_POSTGRES_URL", "postgresql+psycopg://gridmap_test:gridmap_test@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TODAY = dt.date(2026, 11, 20)
DIALECTS = ["spatialite", "postgis"]


def _postgis_unavailable(reason: str):
    if IN_CI:
        pytest.fail(f"PostGIS is required under CI but unavailable: {reason}")
    pytest.skip(f"PostGIS unavailable: {reason}")


def _new_postgis_database(template: str | None = None) -> tuple[str, callable]:
    """A new, uniquely named PostGIS database: (url, drop); a copy of the database `template` if given."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"gridmap_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
    except sa.exc.OperationalError as exc:
        _postgis_unavailable(str(exc).splitlines()[0])
    url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    try:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
        engine.dispose()
    except sa.exc.DBAPIError as exc:
        drop()
        _postgis_unavailable(str(exc).splitlines()[0])
    return url, drop


def empty_database(dialect: str, folder: Path) -> tuple[str, Callable[[], None] | None]:
    """An empty database of a kind (`DIALECTS`): a SpatiaLite file in `folder`, or a new PostGIS database; its URL
    and how to drop it (None for a file)."""
    if dialect == "spatialite":
        return f"sqlite:///{folder / 'gridmap.sqlite'}", None
    return _new_postgis_database()


@pytest.fixture(scope="session")
def postgis_url():
    url, drop = _new_postgis_database()
    yield url
    drop()


@pytest.fixture(scope="module")
def fresh_db_url(db_url):
    """The module's own database (`db_url`), under the name the modules that change what other tests would rely on
    (activating a boundary generation, say) have used since `db_url` was shared by the whole session."""
    return db_url


# The small demo is loaded once per process and dialect (about 5 s each) into a template; every database the
# fixtures hand out is a copy of it (a file copy; CREATE DATABASE … TEMPLATE), the same as loading it again.
_TEMPLATES: dict[str, str] = {}


def _spatialite_template() -> Path:
    if "spatialite" not in _TEMPLATES:
        folder = Path(tempfile.mkdtemp(prefix="gridmap-test-template-"))
        _TEMPLATES["spatialite"] = str(folder / "demo.sqlite")
        _TEMPLATES["spatialite-folder"] = str(folder)
        _load_demo(f"sqlite:///{_TEMPLATES['spatialite']}")
    return Path(_TEMPLATES["spatialite"])


def _postgis_template() -> str:
    """The name of this process's PostGIS database holding the small demo, to copy (never used itself: a
    database is copied only while nobody is connected to it)."""
    if "postgis" not in _TEMPLATES:
        url, drop = _new_postgis_database()
        _TEMPLATES["postgis-drop"] = drop
        _load_demo(url)
        _TEMPLATES["postgis"] = sa.engine.make_url(url).database
    return _TEMPLATES["postgis"]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With pytest-xdist and `--dist loadfile` (`make test` runs `-n 2 --dist loadfile`): a test module (each of its
    dialects' halves) runs whole and in its order on one worker, and the e2e tests all on one worker (one server,
    one Chromium, each account signed in once), first, as they take longest. (xdist_group marks and `--dist
    loadgroup` do not work with pytest 9.2: xdist 3.8.0 renames items through an attribute pytest no longer reads.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndE2e(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            # a module's SpatiaLite and PostGIS halves may go to different workers (pytest runs every test of
            # db_url's first dialect before the second's, each half on a database of its own)
            module, _, name = nodeid.partition("::")
            if module.startswith("tests/e2e/"):
                return "tests/e2e/"
            dialect = next((p for p in name.partition("[")[2].rstrip("]").split("-") if p in DIALECTS), "")
            return f"{module}[{dialect}]" if dialect else module

    config.option.loadscopereorder = False  # the collection's order, the e2e tests first (below)
    return ModulesAndE2e(config, log)


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput"):  # an xdist worker: see above
        items.sort(key=lambda item: not item.nodeid.startswith("tests/e2e/"))  # stable: the order is kept otherwise


def pytest_sessionfinish(session, exitstatus):
    if "postgis-drop" in _TEMPLATES:
        _TEMPLATES.pop("postgis-drop")()
    if "spatialite-folder" in _TEMPLATES:
        shutil.rmtree(_TEMPLATES.pop("spatialite-folder"), ignore_errors=True)
    _TEMPLATES.clear()


def _load(url: str) -> str:
    """The small demo (seed 11, today 2026-11-20) in the database at `url`, which must be empty; a SpatiaLite file
    that does not exist yet is made as a copy of the template."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            template = _spatialite_template()
            for suffix in ("", "-wal"):  # the template's last connection is closed: no write is under way
                if Path(f"{template}{suffix}").exists():
                    shutil.copyfile(f"{template}{suffix}", f"{path}{suffix}")
            return url
    return _load_demo(url)


def _load_demo(url: str) -> str:
    engine = storage.make_engine(url)
    storage.migrate(engine)
    with storage.session_scope(storage.make_sessionmaker(engine)) as session:
        load_demo(session, "530111", small=True, seed=11, today=TODAY)
    keep_close_hours(storage.make_sessionmaker(engine))  # as `gridmap demo` does
    engine.dispose()
    return url


@pytest.fixture(scope="module", params=DIALECTS)
def db_url(request, tmp_path_factory):
    """A database of each kind holding the small Guandu demo, the test module's own: a copy of the template made for
    the module and dropped after it (about 0.3 s on PostGIS, a file copy on SpatiaLite), so that no module sees
    what another wrote and modules pass in any order, alone or together. Tests within a module share it."""
    if request.param == "spatialite":
        yield _load(f"sqlite:///{tmp_path_factory.mktemp('db') / 'gridmap.sqlite'}")
        return
    url, drop = _new_postgis_database(template=_postgis_template())
    yield url
    drop()


@pytest.fixture(scope="module")
def engine(db_url):
    eng = storage.make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture()
def session(engine):
    """A session in a transaction that is rolled back after the test."""
    with engine.connect() as conn:
        trans = conn.begin()
        with sa.orm.Session(bind=conn) as s:
            yield s
        trans.rollback()


GATEWAY_SECRET = "test-gateway-secret"


def api_client(settings, *, role: str = "admin", user: str = "tester", **headers: str):
    """A TestClient of the app whose requests come through a trusted gateway (`GRIDMAP_GATEWAY_SECRET`) as `user`
    with `role` (an admin, everywhere, unless told otherwise); a request's own X-User / X-Role / X-Areas /
    X-Staff-Id / X-Department headers override these. Tests of sign-in itself use real accounts instead
    (tests/integration/test_auth.py)."""
    from fastapi.testclient import TestClient

    from gridmap_api.main import create_app

    app = create_app(settings.model_copy(update={"gateway_secret": GATEWAY_SECRET}))
    # English answers unless a test asks otherwise (the API answers in Chinese without Accept-Language)
    defaults = {"X-Gateway-Secret": GATEWAY_SECRET, "X-User": user, "X-Role": role, "Accept-Language": "en", **headers}
    return TestClient(app, headers=defaults)


@pytest.fixture(scope="module")
def settings(request, db_url):
    """The settings of the module's app (`client`): on the module's database, with the module's `APP_SETTINGS`
    (a dict of Settings fields, e.g. `APP_SETTINGS = {"escalation_interval_s": 3600}`) if it has one. A module
    needing more (a folder of its own, say) overrides this fixture."""
    from gridmap_api.settings import Settings

    return Settings(database_url=db_url, **getattr(request.module, "APP_SETTINGS", {}))


@pytest.fixture(scope="module")
def client(request, settings):
    """The module's TestClient (`api_client`) over its own database (`db_url`), acting as the module's
    `CLIENT_ROLE` (admin unless the module says otherwise, e.g. `CLIENT_ROLE = "dispatcher"`); started (lifespan
    run) for the module and stopped after it. Its tests begin once the start-up's round of the overdue sweep (and
    of the hours to close kept) has ended: that round, in the background, escalated a case between a test's read of
    its version and its step (a 409 under CI), and its commits would be among those a test watches."""
    with api_client(settings, role=getattr(request.module, "CLIENT_ROLE", "admin")) as c:
        _wait_for(lambda: c.app.state.sweep_rounds >= 1, "the start-up's overdue sweep")
        yield c


def _wait_for(done: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not end within {timeout_s:.0f} s")
        time.sleep(0.02)
