"""Notifications of an account (urged, supervised, assigned cases …)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class NotificationOut(BaseModel):
    id: int
    kind: Literal["urge", "supervise", "assigned"]
    kind_zh: str
    case_id: int | None
    case_number: str | None
    text: str
    actor: str | None
    at: str | None
    read_at: str | None


class NotificationPage(BaseModel):
    total: int
    unread: int
    limit: int
    offset: int
    items: list[NotificationOut]


class ReadOut(BaseModel):
    id: int
    read_at: str | None
