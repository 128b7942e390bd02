"""The overdue sweep at scale, on both databases (found by the province benchmark: after a large import every
server process swept hundreds of thousands of overdue cases a statement per case in one transaction, and the second
process waited minutes on the first one's row locks):

- one UPDATE … RETURNING per chunk of `limit` cases, oldest deadline first; repeated, every overdue case is
  escalated exactly once, with one `escalate` step each;
- on PostgreSQL a sweep that finds another process sweeping returns at once with nothing instead of waiting.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from gridmap.cases.workflow import SWEEP_LOCK, escalate_overdue
from gridmap.store import engine as storage
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
    """The database's plan of the sweep's chunk query, caught as `escalate_overdue` sends it (rolled back)."""
    from gridmap.store.tables import OVERDUE_CANDIDATES

    sent: list[tuple[str, object]] = []

    def catch(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE CASE_FILE"):
            sent.append((statement, parameters))

    bind = session.get_bind()
    sa.event.listen(bind, "before_cursor_execute", catch)
    try:
        escalate_overdue(session, NOW, limit=1000)
    finally:
        sa.event.remove(bind, "before_cursor_execute", catch)
        session.rollback()
    ((statement, parameters),) = sent
    assert OVERDUE_CANDIDATES in statement
    # the chunk's SELECT inside the UPDATE … WHERE id IN (…): explained alone
    start = end = statement.index("(SELECT")
    depth = 0
    for end in range(start, len(statement)):
        depth += {"(": 1, ")": -1}.get(statement[end], 0)
        if depth == 0:
            break
    inner = statement[start + 1 : end]
    if isinstance(parameters, dict):
        args: object = {k: v for k, v in parameters.items() if f"%({k})s" in inner}
    else:  # positional: the SET clause's come first, then the chunk's
        before = statement[:start].count("?")
        args = tuple(parameters)[before : before + inner.count("?")]
    for statement in setup:
        session.connection().exec_driver_sql(statement)
    rows = session.connection().exec_driver_sql(f"{prefix} {inner}", args).all()
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
