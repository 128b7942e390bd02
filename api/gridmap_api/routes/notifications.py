"""Notifications to the signed-in account (催办, 督办, cases given to it): its own only."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query

from gridmap.access.policy import Principal
from gridmap.cases import notifications
from gridmap_api.auth import allow
from gridmap_api.deps import SessionDep
from gridmap_api.params import Offset, PathId
from gridmap_api.schemas.common import COMMON, problems
from gridmap_api.schemas.notifications import NotificationPage, ReadOut

router = APIRouter(prefix="/api/v1", tags=["notifications"], responses=COMMON)


@router.get("/notifications")
def list_notifications(
    session: SessionDep,
    who: Annotated[Principal, allow("notification.read")],
    unread: bool = False,
    limit: Annotated[int, Query(ge=1, le=notifications.MAX_LIST)] = 50,
    offset: Annotated[Offset, Query()] = 0,
) -> NotificationPage:
    """The signed-in account's notifications, newest first (`unread=true`: only those not read yet), with the
    number unread."""
    total, unread_count, items = notifications.list_for(
        session, who.account_id, unread=unread, limit=limit, offset=offset
    )
    return NotificationPage(total=total, unread=unread_count, limit=limit, offset=offset, items=items)


@router.post("/notifications/{notification_id}/read", responses=problems(404))
def read_notification(
    notification_id: PathId, session: SessionDep, who: Annotated[Principal, allow("notification.read")]
) -> ReadOut:
    """Mark one of one's own notifications read; another account's is not found (404, as a missing id)."""
    out = notifications.mark_read(session, who.account_id, notification_id, dt.datetime.now(dt.UTC))
    return ReadOut(**out)
