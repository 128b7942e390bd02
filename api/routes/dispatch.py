"""The dispatcher's desk: queues, batch steps, urging (催办/督办) and location corrections."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1")
