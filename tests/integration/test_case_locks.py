"""A case read or stepped on by its id touches its own month of the case table, not every month (issue 15).

On PostGIS the case table is partitioned by month (migration 0010). Named by id alone, a case is looked for in every
partition: PostgreSQL opens and locks each of them and each of their indexes (about 600 locks for one read at 27
months, 1,200 for a step), and five steps at once filled the default lock table. `gridmap.store.partitions` names a
case by its id and its report time (read from `case_registry`), and the ORM's writes of a loaded case do the same;
the connections plan each execution for its own values (a generic plan would name and lock every month again).

Checked here through the API on both databases, with the locks PostgreSQL holds just before each commit (the same
connections reused, so that psycopg prepares the statements and PostgreSQL would have moved to a generic plan):
a read and a step lock the case's month alone; a merge of two cases of different months locks those two months;
the answers, the history (the merged case's entries on the case it joined) and the audit log are as before.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from geoalchemy2.shape import from_shape, to_shape
from shapely.geometry import Point
from sqlalchemy.orm import Session

from gridmap.store import partitions
from gridmap.store.tables import AuditEntry, Case

CLIENT_ROLE = "dispatcher"
# the overdue sweep at start-up only (the module's `client` waits for it): a later round's commits would be among
# those a test watches
APP_SETTINGS = {"escalation_interval_s": 3600.0}
LOCKS = (
    "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
    "WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'"
)
MONTH = re.compile(r"^case_file_(p\d{6}|default)")  # a partition, or one of its indexes


@contextmanager
def locks_at_commit(client):
    """The relations each transaction of the app holds locks on just before it ends: before a session commits,
    and before a transaction or a connection going back to the pool is rolled back (a read that does not
    commit). PostgreSQL only;
    on SQLite, which has no such view, nothing is recorded."""
    seen: list[set[str]] = []
    engine = client.app.state.sessionmaker.kw["bind"]
    if engine.dialect.name != "postgresql":
        yield seen
        return

    def grab(session: Session) -> None:
        seen.append({row[0] for row in session.connection().exec_driver_sql(LOCKS)})

    def grab_raw(dbapi_connection) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(LOCKS)
            locked = {row[0] for row in cursor.fetchall()}
        if locked & {"case_file", "case_registry"}:  # a transaction that read cases (not a bare pool check)
            seen.append(locked)

    def grab_rollback(conn) -> None:
        grab_raw(conn.connection.dbapi_connection)

    def grab_reset(dbapi_connection, _record, _state) -> None:
        grab_raw(dbapi_connection)

    sa.event.listen(Session, "before_commit", grab)
    sa.event.listen(engine, "rollback", grab_rollback)
    sa.event.listen(engine.pool, "reset", grab_reset)
    try:
        yield seen
    finally:
        sa.event.remove(Session, "before_commit", grab)
        sa.event.remove(engine, "rollback", grab_rollback)
        sa.event.remove(engine.pool, "reset", grab_reset)


def _months(relations: set[str]) -> set[str]:
    """The month partitions among locked relations (an index counts for its partition)."""
    return {m.group(0) for r in relations if (m := MONTH.match(r))}


def _dialect(client) -> str:
    return sa.engine.make_url(client.app.state.settings.database_url).get_backend_name()


def _month_of(client, case_id: int) -> str:
    """The partition holding a case (PostgreSQL), or the month's name it would have (SQLite)."""
    with client.app.state.sessionmaker() as s:
        if _dialect(client) == "postgresql":
            return s.scalar(sa.text("SELECT tableoid::regclass::text FROM case_file WHERE id = :id"), {"id": case_id})
        return partitions.month_of(s.get(Case, case_id).reported_at).name


def _cases(client, state: str, n: int) -> list[tuple[int, int]]:
    """`n` cases in a state, (id, version), from as many different months as there are."""
    with client.app.state.sessionmaker() as s:
        rows = s.execute(sa.select(Case.id, Case.version, Case.reported_at).where(Case.state == state)).all()
    by_month: dict[str, list[tuple[int, int]]] = {}
    for case_id, version, reported_at in sorted(rows):
        by_month.setdefault(partitions.month_of(reported_at).name, []).append((case_id, version))
    picked: list[tuple[int, int]] = []
    while len(picked) < n and any(by_month.values()):
        for month in sorted(by_month):
            if by_month[month] and len(picked) < n:
                picked.append(by_month[month].pop(0))
    assert len(picked) == n, f"the demo has {len(picked)} {state} cases, wanted {n}"
    return picked


def _audited_updates(client, case_id: int) -> int:
    with client.app.state.sessionmaker() as s:
        entries = s.scalars(
            sa.select(AuditEntry).where(AuditEntry.action == "update", AuditEntry.target == "case_file")
        ).all()
    return sum(case_id in e.detail.get("ids", []) for e in entries)


def test_reading_and_stepping_on_a_case_lock_its_month_alone(client):
    postgres = _dialect(client) == "postgresql"
    cases = _cases(client, "accepted", 10)
    months = {_month_of(client, case_id) for case_id, _ in cases}
    assert len(months) >= 4  # the cases come from several months: each must lock its own
    for case_id, _ in cases:
        own = _month_of(client, case_id)
        with locks_at_commit(client) as seen:
            shown = client.get(f"/api/v1/cases/{case_id}")
        assert shown.status_code == 200, shown.text
        version = shown.json()["version"]
        if postgres:
            assert seen and all(_months(locked) == {own} for locked in seen), (own, [_months(x) for x in seen])
        with locks_at_commit(client) as seen:
            stepped = client.post(
                f"/api/v1/cases/{case_id}/actions/urge", json={"version": version, "note": "请尽快处理"}
            )
        assert stepped.status_code == 200, stepped.text
        assert (stepped.json()["state"], stepped.json()["version"]) == ("accepted", version + 1)
        if postgres:
            assert seen and all(_months(locked) == {own} for locked in seen), (own, [_months(x) for x in seen])
            assert max(len(locked) for locked in seen) < 200  # 1,233 before, at 27 months
        history = client.get(f"/api/v1/cases/{case_id}").json()["history"]
        assert history[-1]["action"] == "urge" and history[-1]["to_state"] == "accepted"
        # the ORM's write of the case (its version) is in the audit log, as the ORM's own UPDATE was
        assert _audited_updates(client, case_id) >= 1
    # a stale version is still refused, and a case nobody has is still not found
    stale = client.post(f"/api/v1/cases/{case_id}/actions/urge", json={"version": version, "note": "再催"})
    assert stale.status_code == 409
    assert client.get("/api/v1/cases/2000000000").status_code == 404


def test_reading_cases_again_and_again_keeps_to_their_months(client):
    """Read many times over the same pooled connections: psycopg prepares the statements, and a generic plan
    (PostgreSQL's choice after five executions, unless the connection says otherwise) would lock every month."""
    postgres = _dialect(client) == "postgresql"
    cases = [case_id for case_id, _ in _cases(client, "closed", 12)]
    own = {case_id: _month_of(client, case_id) for case_id in cases}
    assert len(set(own.values())) == 12
    for _ in range(5):
        for case_id in cases:
            with locks_at_commit(client) as seen:
                shown = client.get(f"/api/v1/cases/{case_id}")
            assert shown.status_code == 200 and shown.json()["id"] == case_id
            if postgres:
                assert seen and all(_months(x) == {own[case_id]} for x in seen), [_months(x) for x in seen]


def test_a_merge_of_two_months_locks_those_two_and_keeps_both_histories(client):
    postgres = _dialect(client) == "postgresql"
    (first, _), (second, _) = _cases(client, "accepted", 2)
    first_version = client.get(f"/api/v1/cases/{first}").json()["version"]
    second_version = client.get(f"/api/v1/cases/{second}").json()["version"]
    months = {_month_of(client, first), _month_of(client, second)}
    assert len(months) == 2
    with locks_at_commit(client) as seen:
        merged = client.post(
            f"/api/v1/cases/{first}/actions/merge",
            json={"version": first_version, "into": second, "reason": "同一问题"},
        )
    assert merged.status_code == 200, merged.text
    assert merged.json()["state"] == "merged"
    if postgres:
        assert seen and all(_months(locked) <= months for locked in seen), (months, [_months(x) for x in seen])
    joined = client.get(f"/api/v1/cases/{second}").json()
    assert joined["version"] == second_version + 1  # the case it joined moved on too
    number = client.get(f"/api/v1/cases/{first}").json()["number"]
    from_merged = [e for e in joined["history"] if e.get("case_number") == number]
    assert from_merged and from_merged[-1]["action"] == "merge"  # the merged case's entries are shown on it


def test_the_orms_writes_of_a_case_name_its_month_and_write_what_was_changed(client):
    """Any change to a loaded case (plain values, JSON, geometry, an SQL expression) is written as the ORM would
    write it, by a statement naming the case's report time on PostGIS, and audited."""
    postgres = _dialect(client) == "postgresql"
    case_id, _ = _cases(client, "filed", 1)[0]
    sent: list[str] = []

    def capture(_conn, _cursor, statement, _parameters, _context, _many) -> None:
        if statement.lstrip().upper().startswith("UPDATE CASE_FILE"):
            sent.append(statement)

    engine = client.app.state.sessionmaker.kw["bind"]
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        with client.app.state.sessionmaker() as s, s.begin():
            case = s.scalars(sa.select(Case).where(partitions.cases_by_id(s, [case_id]))).one()
            rework = case.rework_count
            case.title = "井盖缺失（已核实）"
            case.pending = {"kind": "extension", "days": 3}
            case.geom = from_shape(Point(102.75, 25.02), srid=4326)
            case.rework_count = Case.rework_count + 2
            s.flush()
            assert case.rework_count == rework + 2  # the expression is read back when next used
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    assert sent
    if postgres:
        assert all("reported_at" in statement.split("WHERE", 1)[1] for statement in sent), sent
    with client.app.state.sessionmaker() as s:
        stored = s.get(Case, case_id)
        assert stored.title == "井盖缺失（已核实）"
        assert stored.pending == {"kind": "extension", "days": 3}
        assert to_shape(stored.geom).equals(Point(102.75, 25.02))
        assert stored.rework_count == rework + 2
    assert _audited_updates(client, case_id) >= 1


def test_a_savepoint_rolled_back_takes_back_the_write_and_one_kept_keeps_it(client):
    """The case as the session holds it follows the database after a savepoint (the batch steps' way) is rolled
    back, as it does after the ORM's own writes (the case still passes through the ORM's flush, with nothing left
    to write, and is marked as changed in the savepoint); a savepoint released keeps the write."""
    first, second = (case_id for case_id, _ in _cases(client, "filed", 2))
    with client.app.state.sessionmaker() as s, s.begin():
        case = s.scalars(sa.select(Case).where(partitions.cases_by_id(s, [first]))).one()
        title = case.title
        savepoint = s.begin_nested()
        case.title = "撤回的修改"
        s.flush()
        savepoint.rollback()
        assert case.title == title
        kept = s.scalars(sa.select(Case).where(partitions.cases_by_id(s, [second]))).one()
        with s.begin_nested():
            kept.title = "保留的修改"
            s.flush()
    with client.app.state.sessionmaker() as s:
        assert s.scalar(sa.select(Case.title).where(Case.id == first)) == title
        assert s.scalar(sa.select(Case.title).where(Case.id == second)) == "保留的修改"


@pytest.mark.parametrize("how", ["one", "several", "none"])
def test_cases_by_id_or_number_name_the_same_cases_as_their_ids(client, how):
    """The conditions with report times select exactly the cases the ids (the numbers) alone select."""
    with client.app.state.sessionmaker() as s:
        rows = s.execute(sa.select(Case.id, Case.number).order_by(Case.reported_at).limit(400)).all()[::37]
        ids = [r.id for r in rows]
        wanted = {"one": ids[:1], "several": [*ids, 2_000_000_000], "none": [2_000_000_000]}[how]
        got = set(s.scalars(sa.select(Case.id).where(partitions.cases_by_id(s, wanted))))
        plain = set(s.scalars(sa.select(Case.id).where(Case.id.in_(wanted))))
        numbers = [r.number for r in rows if r.id in wanted] + ["NO-SUCH-NUMBER"]
        by_number = set(s.scalars(sa.select(Case.id).where(partitions.cases_by_number(s, numbers))))
    assert got == plain == by_number and (got or how == "none")


def test_an_open311_request_by_number_reads_its_month_alone(client):
    postgres = _dialect(client) == "postgresql"
    case_id = _cases(client, "closed", 1)[0][0]
    number = client.get(f"/api/v1/cases/{case_id}").json()["number"]
    for path in (f"/open311/v2/requests/{number}.json", f"/open311/v2/requests.json?service_request_id={number}"):
        with locks_at_commit(client) as seen:
            found = client.get(path)
        assert found.status_code == 200, found.text
        assert [r["service_request_id"] for r in found.json()] == [number]
        if postgres:
            assert seen and all(_months(x) == {_month_of(client, case_id)} for x in seen), [_months(x) for x in seen]
