"""Sign-in: the bearer token and who the credentials stand for."""

from __future__ import annotations

from pydantic import BaseModel


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class MeOut(BaseModel):
    username: str
    role: str
    role_zh: str
    areas: list[str]
    everywhere: bool
    department: str | None = None
    staff_id: int | None = None
    via: str
