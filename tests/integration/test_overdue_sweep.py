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
