"""Rankings of child areas and of workers on a measure, with the target line (达标线)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1")
