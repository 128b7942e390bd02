"""Photos and files of a case (上报照片, 处置前/处置后)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1")
