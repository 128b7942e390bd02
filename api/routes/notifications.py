"""Notifications to the signed-in account (催办, 督办, new cases)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1")
