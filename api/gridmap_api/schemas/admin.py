"""Administration (admins only): accounts, API keys and the audit log."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gridmap.access import accounts, policy
from gridmap_api.params import Id

Code = Annotated[str, Field(min_length=1, max_length=24, pattern=r"^\d+$")]


class AccountOut(BaseModel):
    id: int
    username: str
    display_name: str | None
    role: str
    role_zh: str
    areas: list[str]
    department: str | None
    staff_id: int | None
    active: bool
    created_at: str | None


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=2, max_length=64)
    role: str = Field(max_length=16, description=f"one of {', '.join(policy.ROLES)}")
    areas: list[Code] = Field(default_factory=list, max_length=50)
    department: str | None = Field(None, max_length=32)
    staff_id: Id | None = None
    display_name: str | None = Field(None, max_length=64)
    password: str = Field(min_length=accounts.MIN_PASSWORD, max_length=accounts.MAX_PASSWORD)


class AccountPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str | None = Field(None, max_length=16)
    areas: list[Code] | None = Field(None, max_length=50)
    department: str | None = Field(None, max_length=32)
    staff_id: Id | None = None
    display_name: str | None = Field(None, max_length=64)
    active: bool | None = None
    password: str | None = Field(None, min_length=accounts.MIN_PASSWORD, max_length=accounts.MAX_PASSWORD)


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    scopes: list[Literal["report", "hotline", "locate", "read"]] = Field(min_length=1, max_length=4)
    areas: list[Code] = Field(default_factory=list, max_length=50)


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    areas: list[str]
    created_by: str | None
    created_at: str | None
    revoked_at: str | None
    key: str | None = Field(None, description="the key itself: shown once, when it is made")


class AuditOut(BaseModel):
    id: int
    at: str
    actor: str
    account_id: int | None
    action: str
    target: str | None
    address: str | None
    detail: dict[str, Any] | None = Field(description="what the action recorded; its members depend on `action`")


class AuditPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[AuditOut] = Field(description="newest first")
