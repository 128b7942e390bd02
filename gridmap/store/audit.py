"""The audit log: who did what, when, from where — appended, never changed (the database refuses UPDATE and DELETE
on `audit_log`, see migration 0004).

Writes are recorded in one place: a flush hook on every SQLAlchemy session appends one row per table and kind of
change (insert, update, delete) in the same transaction as the change itself, so a write and its audit row commit
or vanish together. Who acts is taken from `acting` (a context variable the API sets for each request and the CLI
for each command); with nobody set, the actor is `system`. Reveals of personal data, sign-ins and boundary
publishes are recorded explicitly with `record`.
"""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from gridmap.store.tables import AuditEntry, Base

MAX_IDS = 100  # ids listed per audit row; the count is always complete
UNAUDITED = frozenset({"audit_log", "auth_token", "idempotency_key"})  # sign-ins are recorded as such


@dataclass(frozen=True)
class Acting:
    """Who the current writes are for, and from where."""

    actor: str
    account_id: int | None = None
    address: str | None = None


_acting: contextvars.ContextVar[Acting | None] = contextvars.ContextVar("gridmap_acting", default=None)


def current() -> Acting:
    return _acting.get() or Acting("system")


def set_acting(acting: Acting | None) -> contextvars.Token[Acting | None]:
    return _acting.set(acting)


@contextmanager
def acting(actor: str, account_id: int | None = None, address: str | None = None) -> Iterator[None]:
    """Record the writes inside the block as done by `actor`."""
    token = _acting.set(Acting(actor, account_id, address))
    try:
        yield
    finally:
        _acting.reset(token)


def record(
    session: Session,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    *,
    who: Acting | None = None,
    at: dt.datetime | None = None,
) -> None:
    """Append one audit row in the session's transaction."""
    who = who or current()
    session.execute(
        sa.insert(AuditEntry).values(
            at=at or dt.datetime.now(dt.UTC),
            actor=who.actor[:100],
            account_id=who.account_id,
            action=action[:32],
            target=(target or None) and target[:100],
            address=who.address,
            detail=detail,
        )
    )


def _pk(obj: Base) -> object:
    state = sa.inspect(obj)
    ident = state.mapper.primary_key_from_instance(obj)  # set by the INSERT already (identity comes later)
    if any(v is None for v in ident):
        return None
    return ident[0] if len(ident) == 1 else list(ident)


WRITTEN = "gridmap.store.audit.written"


def wrote(session: Session, table: str, kind: str, ident: object) -> None:
    """Record a row written by this flush outside the ORM's own statements (the case table's writes by month,
    `gridmap.store.partitions`), as the flush's own would be."""
    session.info.setdefault(WRITTEN, []).append((table, kind, ident))


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: object) -> None:
    """One audit row per table and kind of change in this flush (ids listed up to MAX_IDS)."""
    changes: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, objects in (("insert", session.new), ("update", session.dirty), ("delete", session.deleted)):
        for obj in objects:
            table = getattr(obj, "__tablename__", None)
            if table is None or table in UNAUDITED or not isinstance(obj, Base):
                continue
            if kind == "update" and not session.is_modified(obj, include_collections=False):
                continue
            changes.setdefault((table, kind), {"ids": [], "statements": 0})["ids"].append(_pk(obj))
    for table, kind, ident in session.info.pop(WRITTEN, []):
        changes.setdefault((table, kind), {"ids": [], "statements": 0})["ids"].append(ident)
    for table, kind in session.info.pop("gridmap.store.audit.statements", []):
        changes.setdefault((table, kind), {"ids": [], "statements": 0})["statements"] += 1
    if not changes:
        return
    who = current()
    now = dt.datetime.now(dt.UTC)
    rows = []
    for (table, kind), change in changes.items():
        ids = [i if isinstance(i, (int, str)) else str(i) for i in change["ids"] if i is not None]
        detail = {"count": len(change["ids"]), "ids": ids[:MAX_IDS]}
        if change["statements"]:
            detail["statements"] = change["statements"]
        rows.append(
            {
                "at": now,
                "actor": who.actor[:100],
                "account_id": who.account_id,
                "action": kind,
                "target": table,
                "address": who.address,
                "detail": detail,
            }
        )
    session.connection().execute(sa.insert(AuditEntry), rows)


@event.listens_for(Session, "do_orm_execute")
def _bulk(state: ORMExecuteState) -> None:
    """Bulk UPDATE/DELETE statements through the ORM (the guarded case transitions use them) are recorded with the
    next flush of the session."""
    if state.is_update or state.is_delete:
        mapper = state.bind_mapper
        table = getattr(getattr(mapper, "class_", None), "__tablename__", None) if mapper is not None else None
        if table and table not in UNAUDITED:
            state.session.info.setdefault("gridmap.store.audit.statements", []).append(
                (table, "update" if state.is_update else "delete")
            )
