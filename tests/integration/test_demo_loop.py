"""The demo's year of cases is made by the rules of the case loop: every history is a legal path through the
workflow's steps, deadlines are the category limits on the working calendar, routing follows 先属地/先属主, and
the measures come out in the range published figures show (both databases)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import sqlalchemy as sa

from gridmap.calendar import WorkCalendar
from gridmap.cases import measures, workflow
from gridmap.cases.intake import utc
from gridmap.store.tables import Case, CaseCategory, CaseEvent

INTAKE = ("reported",)
SYSTEM = ("escalate",)  # the overdue sweep of any app started on this database: no step, the state stays


def _demo(session):
    # the demo's cases: those not taken in through intake (which records where it `located` the point)
    located = sa.select(CaseEvent.case_id).where(CaseEvent.action == "located")
    cases = {c.id: c for c in session.scalars(sa.select(Case).where(Case.id.not_in(located)))}
    events = defaultdict(list)
    for e in session.scalars(sa.select(CaseEvent).where(CaseEvent.case_id.in_(list(cases))).order_by(CaseEvent.id)):
        events[e.case_id].append(e)
    return cases, events


def test_every_demo_history_is_a_legal_path_through_the_steps(session):
    cases, events = _demo(session)
    assert len(cases) >= 300
    seen = set()
    for case_id, history in events.items():
        state = None
        for e in history:
            if e.action in INTAKE:
                assert state is None and e.to_state == "reported"
            elif e.action in SYSTEM:
                assert e.from_state == e.to_state == state
            else:
                step = workflow.STEPS[e.action]
                role = e.actor.split(":")[0]
                assert role in step.roles or (role == "system" and e.action == "dispatch"), (case_id, e.action)
                assert e.from_state == state and state in step.from_states, (case_id, e.action, state)
                if step.to_state is not None:
                    assert e.to_state == step.to_state, (case_id, e.action)
                seen.add(e.action)
            state = e.to_state
        assert state == cases[case_id].state
        assert [utc(e.at) for e in history] == sorted(utc(e.at) for e in history)
    assert {
        "file",
        "dispatch",
        "accept",
        "handle",
        "verify",
        "rate",
        "bounce",
        "send_back",
        "reject",
        "request_extension",
        "request_suspension",
        "approve",
    } <= seen


def test_deadlines_routing_and_counters_follow_the_rules(session):
    calendar = WorkCalendar.seeded()
    categories = {c.id: c for c in session.scalars(sa.select(CaseCategory))}
    cases, events = _demo(session)
    for case in cases.values():
        category = categories[case.category_id]
        history = events[case.id]
        if case.accepted_at is not None:
            due = calendar.add(utc(case.accepted_at), category.time_limit, category.time_unit)
            last_accept = max(i for i, e in enumerate(history) if e.action == "accept")
            if any(e.action == "approve" and e.detail["approved"] == "extension" for e in history[last_accept:]):
                due = calendar.add(due, category.time_limit, category.time_unit)
            assert abs((utc(case.due_at) - due).total_seconds()) < 1, case.number
        actions = [e.action for e in history]
        assert case.rework_count == actions.count("send_back") and case.bounce_count == actions.count("bounce")
        assert case.reopen_count == sum(1 for e in history if e.action == "rate" and e.detail["reopened"])
        if "dispatch" in actions and case.state not in ("filed",):
            if category.kind == "component" and category.department_id:
                assert case.department_id == category.department_id and case.assignee_id is None
            else:
                assert case.department_id is None


def test_demo_measures_are_in_the_published_range(session):
    until = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    _, table = measures.measures(session, "subdistrict", since=until - dt.timedelta(days=330), until=until)
    total = [r for r in measures.to_records(table) if r["key"] == "*"][0]
    assert total["due"] > 150
    assert 0.9 <= total["closure_rate"] <= 1.0 and 0.8 <= total["on_time_rate"] <= total["closure_rate"]
    assert 0 < total["rework_rate"] < 0.1 and 0 < total["satisfaction"] <= 1
    assert total["close_hours_p50"] < total["close_hours_p90"]
