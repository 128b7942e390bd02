"""The overdue sweep at scale, on both databases (found by the province benchmark: after a large import every
server process swept hundreds of thousands of overdue cases a statement per case in one transaction, and the second
process waited minutes on the first one's row locks):

- one UPDATE … RETURNING per chunk of `limit` cases, oldest deadline first; repeated, every overdue case is
  escalated exactly once, with one `escalate` step each;
- on PostgreSQL a sweep that finds another process sweeping returns at once with nothing instead of waiting;
- the server's sweep reads a chunk's candidates in a transaction of its own, then escalates them by id and report
  time: on PostgreSQL that transaction locks their months alone.
"""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.cases.workflow import SWEEP_LOCK, escalate_overdue, sweep_overdue
from gridmap.store import engine as storage
from gridmap.store import partitions
from gridmap.store.tables import Case, CaseEvent

NOW = dt.datetime(2031, 1, 1, tzinfo=dt.UTC)  # after every demo deadline


def _open_not_escalated(session) -> list[int]:
    return list(
        session.scalars(
            sa.select(Case.id).where(
                Case.state.in_(("accepted", "rework")), Case.due_at < NOW, Case.escalation_level == 0
            )
        )
    )


def test_the_sweep_escalates_every_overdue_case_once_a_chunk_at_a_time(engine):
    sm = storage.make_sessionmaker(engine)
    with sm() as s:
        overdue = _open_not_escalated(s)
        steps_before = s.scalar(sa.select(sa.func.count()).select_from(CaseEvent).where(CaseEvent.action == "escalate"))
    assert len(overdue) > 7, "the demo has open cases to escalate"
    swept: list[int] = []
    chunks = 0
    while True:
        with storage.session_scope(sm) as s:
            done = escalate_overdue(s, NOW, limit=3)
        chunks += 1
        swept += done
        assert len(done) <= 3
        if len(done) < 3:
            break
    assert sorted(swept) == sorted(overdue) and len(set(swept)) == len(swept)
    assert chunks == len(overdue) // 3 + 1
    with sm() as s:
        assert _open_not_escalated(s) == []
        steps = s.execute(
            sa.select(CaseEvent.case_id, CaseEvent.from_state, CaseEvent.detail).where(
                CaseEvent.action == "escalate", CaseEvent.at == NOW
            )
        ).all()
        assert sorted(c for c, _, _ in steps) == sorted(overdue)
        assert all(d == {"level": 1, "to": "community", "reason": "overdue"} for _, _, d in steps)
        total = s.scalar(sa.select(sa.func.count()).select_from(CaseEvent).where(CaseEvent.action == "escalate"))
        assert total == steps_before + len(overdue)
        levels = set(s.scalars(sa.select(Case.escalation_level).where(Case.id.in_(overdue))))
        assert levels == {1}
    with storage.session_scope(sm) as s:  # a second sweep finds nothing
        assert escalate_overdue(s, NOW) == []


def test_a_sweep_does_not_wait_for_another_process_sweeping(postgis_url):
    """PostgreSQL (SQLite has one writer at a time by construction): the lock is tried before any table is read, so
    an empty database shows it."""
    engine = storage.make_engine(postgis_url)
    sm = storage.make_sessionmaker(engine)
    try:
        with sm() as holder:
            assert holder.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(SWEEP_LOCK)))
            with storage.session_scope(sm) as s:
                assert escalate_overdue(s, NOW) == []  # at once, not after the holder's transaction
            holder.rollback()
    finally:
        engine.dispose()


def _plan(session, prefix: str, *setup: str) -> str:
    """The database's plan of the sweep's chunk query (`overdue_candidates`), caught as `escalate_overdue` sends it
    (rolled back)."""
    from gridmap.store.tables import OVERDUE_CANDIDATES

    sent: list[tuple[str, object]] = []

    def catch(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and OVERDUE_CANDIDATES in statement:
            sent.append((statement, parameters))

    bind = session.get_bind()
    sa.event.listen(bind, "before_cursor_execute", catch)
    try:
        escalate_overdue(session, NOW, limit=1000)
    finally:
        sa.event.remove(bind, "before_cursor_execute", catch)
        session.rollback()
    ((statement, parameters),) = sent
    for line in setup:
        session.connection().exec_driver_sql(line)
    rows = session.connection().exec_driver_sql(f"{prefix} {statement}", parameters).all()
    session.rollback()
    return "\n".join(str(r[-1]) for r in rows)


def test_the_sweep_reads_the_partial_index_of_its_candidates(engine):
    """Migration 0014: the sweep's query is answered from `ix_case_file_overdue` (the open cases not yet escalated)
    on both databases, never by walking every case ever due (12-17 s a chunk on 10 M cases before it). The index's
    predicate is the sweep's, and an escalated case leaves it."""
    from gridmap.store.tables import OVERDUE_CANDIDATES

    sm = storage.make_sessionmaker(engine)
    with sm() as s:
        if engine.dialect.name == "sqlite":
            (definition,) = s.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'ix_case_file_overdue'")
            ).one()
            assert definition.endswith(f"WHERE {OVERDUE_CANDIDATES}")
            plan = _plan(s, "EXPLAIN QUERY PLAN")
            assert "ix_case_file_overdue" in plan, plan
        else:
            definition = s.scalar(sa.text("SELECT pg_get_indexdef('ix_case_file_overdue'::regclass)"))
            assert "(due_at, id) WHERE ((escalation_level = 0)" in definition, definition
            # each month partition has its own copy of the index; none of the table is read to find the candidates
            names = {"ix_case_file_overdue"} | set(
                s.scalars(
                    sa.text(
                        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                        "WHERE i.inhparent = 'ix_case_file_overdue'::regclass"
                    )
                )
            )
            # a demo's partitions are small enough to be read whole: the question is which index
            plan = _plan(s, "EXPLAIN", "SET LOCAL enable_seqscan = off")
            used = {n for n in names if n in plan}
            assert used and "Seq Scan" not in plan, plan
        # the index's rows are the sweep's candidates
        candidates = s.scalars(
            sa.text(f"SELECT id FROM case_file WHERE {OVERDUE_CANDIDATES} AND due_at < :now"), {"now": NOW}
        ).all()
        assert sorted(candidates) == sorted(_open_not_escalated(s))


def test_a_database_before_0014_is_swept_as_before(tmp_path):
    """A server may run before `gridmap init` upgraded its database: without the index the sweep still escalates."""
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = storage.make_engine(url)
    try:
        storage.migrate(engine, "0013")
        sm = storage.make_sessionmaker(engine)
        with storage.session_scope(sm) as s:
            assert escalate_overdue(s, NOW, limit=10) == []  # an empty database: nothing, and no error
    finally:
        engine.dispose()


LOCKS = (
    "SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
    "WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'"
)
MONTH = re.compile(r"^case_file_(p\d{6}|default)")  # a partition, or one of its indexes


def test_a_sweep_reads_its_candidates_then_escalates_them_naming_their_months_alone(engine):
    """`sweep_overdue`, as the server runs it: each chunk's candidates are read in a transaction of their own, then
    escalated in another, each case only if it is still a candidate. On PostgreSQL the escalating transaction opens
    and locks the partitions of its cases' months alone (and their indexes): the UPDATE names each case by id and
    report time. Before, the candidates were a subquery of the UPDATE, which locked every month and every index of
    each (~1,250 locks at 28 months). The read still names every month, and its locks end with it."""
    sm = storage.make_sessionmaker(engine)
    running = sa.and_(Case.state.in_(("accepted", "rework")), Case.due_at < NOW)
    with storage.session_scope(sm) as s:  # every running case overdue and not escalated (the module's tests share
        # the database, and another may have escalated them): put back as it was at the end
        before = s.execute(sa.select(Case.id, Case.escalation_level, Case.escalated_at).where(running)).all()
        last_event = s.scalar(sa.select(sa.func.max(CaseEvent.id)))
        s.execute(
            sa.update(Case)
            .where(running)
            .values(escalation_level=0, escalated_at=None)
            .execution_options(synchronize_session=False)
        )
        overdue = _open_not_escalated(s)
        reported = dict(s.execute(sa.select(Case.id, Case.reported_at).where(Case.id.in_(overdue))).all())
    assert len(overdue) > 7, "the demo has open cases to escalate"
    held: list[set[tuple[str, str]]] = []

    def grab(session) -> None:
        if engine.dialect.name == "postgresql":
            held.append({(r, m) for r, m in session.connection().exec_driver_sql(LOCKS)})

    sa.event.listen(Session, "before_commit", grab)
    try:
        escalated = sweep_overdue(sm, NOW, chunk=3)
        assert escalated == len(overdue)
        with sm() as s:
            assert _open_not_escalated(s) == []
            assert sorted(
                s.scalars(sa.select(CaseEvent.case_id).where(CaseEvent.id > last_event, CaseEvent.action == "escalate"))
            ) == sorted(overdue)
        if engine.dialect.name != "postgresql":
            return
        chunks = -(-len(overdue) // 3)
        writes = [h for h in held if any(mode == "RowExclusiveLock" and MONTH.match(r) for r, mode in h)]
        reads = [h for h in held if h not in writes and any(MONTH.match(r) for r, _ in h)]
        assert len(writes) == chunks and len(reads) >= chunks, (len(writes), len(reads))
        escalated_months = {partitions.month_of(at).name for at in reported.values()}
        every_month = {m.group(0) for h in reads for r, _ in h if (m := MONTH.match(r))}
        assert len(every_month) > 3  # a read names every month
        for h in writes:
            months = {m.group(0) for r, _ in h if (m := MONTH.match(r))}
            assert 1 <= len(months) <= 3 and months <= escalated_months, months
    finally:
        sa.event.remove(Session, "before_commit", grab)
        with storage.session_scope(sm) as s:  # as they were, for the module's other tests
            for case_id, level, at in before:
                s.execute(
                    sa.update(Case)
                    .where(Case.id == case_id)
                    .values(escalation_level=level, escalated_at=at)
                    .execution_options(synchronize_session=False)
                )
            s.execute(sa.delete(CaseEvent).where(CaseEvent.id > last_event))
