"""Notifications to accounts: a case urged (催办) or supervised (督办) reaches whoever holds it, and a worker is told
when a case is dispatched or reassigned to them (`assigned`).

Recipients are accounts: for a worker, the accounts whose staff record is the worker; for a department, the
accounts of that department. A notification is written in the transaction of the step that causes it, so it
exists exactly when the step does. An account reads and marks only its own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.errors import NotFound
from gridmap.store.tables import Account, Case, Department, Notification

KINDS = {"urge": "催办", "supervise": "督办", "assigned": "新派案件"}
MAX_LIST = 200


def recipients(session: Session, case: Case) -> list[int]:
    """The accounts of whoever holds the case: its worker's accounts, or its department's."""
    if case.assignee_id is not None:
        query = sa.select(Account.id).where(Account.staff_id == case.assignee_id)
    elif case.department_id is not None:
        code = sa.select(Department.code).where(Department.id == case.department_id).scalar_subquery()
        query = sa.select(Account.id).where(Account.department_code == code, Account.role == "department")
    else:
        return []
    return list(session.scalars(query.where(Account.active.is_(True)).order_by(Account.id)))


def text_for(kind: str, case: Case, note: str | None = None) -> str:
    """The message, in Chinese (the people notified read Chinese): what happened to which case, and the note."""
    head = f"{KINDS[kind]}：案件 {case.number}「{case.title}」"
    return (f"{head}，{note}" if note else head)[:500]


def notify_holder(
    session: Session, case: Case, kind: str, *, actor: str | None, note: str | None = None, now: dt.datetime
) -> int:
    """A notification of `kind` to every account of the case's holder; returns how many were written."""
    accounts = recipients(session, case)
    text = text_for(kind, case, note)
    for account_id in accounts:
        session.add(Notification(account_id=account_id, kind=kind, case_id=case.id, text=text, actor=actor, at=now))
    return len(accounts)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return value.isoformat().replace("+00:00", "Z")


def list_for(
    session: Session, account_id: int | None, *, unread: bool = False, limit: int = 50, offset: int = 0
) -> tuple[int, int, list[dict[str, Any]]]:
    """An account's notifications, newest first: (total, unread count, items). A caller without an account (an
    API key) has none."""
    if account_id is None:
        return 0, 0, []
    base = sa.select(Notification).where(Notification.account_id == account_id)
    unread_count = session.scalar(
        sa.select(sa.func.count()).select_from(base.where(Notification.read_at.is_(None)).subquery())
    )
    if unread:
        base = base.where(Notification.read_at.is_(None))
    total = session.scalar(sa.select(sa.func.count()).select_from(base.subquery()))
    rows = list(
        session.scalars(
            base.order_by(Notification.at.desc(), Notification.id.desc()).limit(min(limit, MAX_LIST)).offset(offset)
        )
    )
    numbers = (
        dict(
            session.execute(
                sa.select(Case.id, Case.number).where(Case.id.in_({n.case_id for n in rows if n.case_id is not None}))
            ).all()
        )
        if rows
        else {}
    )
    items = [
        {
            "id": n.id,
            "kind": n.kind,
            "kind_zh": KINDS.get(n.kind, n.kind),
            "case_id": n.case_id,
            "case_number": numbers.get(n.case_id) if n.case_id is not None else None,
            "text": n.text,
            "actor": n.actor,
            "at": _iso(n.at),
            "read_at": _iso(n.read_at),
        }
        for n in rows
    ]
    return int(total or 0), int(unread_count or 0), items


def mark_read(session: Session, account_id: int | None, notification_id: int, now: dt.datetime) -> dict[str, Any]:
    """Mark one of the account's notifications read (again: no change); another account's is not found."""
    note = session.get(Notification, notification_id)
    if note is None or account_id is None or note.account_id != account_id:
        raise NotFound(
            f"notification id: no notification has id {notification_id}",
            field="id",
            zh=f"没有编号为 {notification_id} 的通知。",
        )
    if note.read_at is None:
        note.read_at = now
    session.flush()
    return {"id": note.id, "read_at": _iso(note.read_at)}
