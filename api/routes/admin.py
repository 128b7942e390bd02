"""Administration: accounts, API keys and the audit log (admins only)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import allow
from api.deps import SessionDep, after_commit
from api.params import Id, Moment, Offset, PathId
from gridmap import accounts, policy
from gridmap.tables import AuditEntry
from gridmap.tabular import safe_cell

router = APIRouter(prefix="/api/v1", tags=["admin"])
Admin = Annotated[policy.Principal, allow("account.admin")]
Auditor = Annotated[policy.Principal, allow("audit.read")]
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


@router.get("/accounts", response_model=list[AccountOut])
def list_accounts(session: SessionDep, who: Admin) -> list[dict]:
    """Every account with its role and areas (never a password or its hash)."""
    return [accounts.account_dict(a) for a in accounts.list_accounts(session)]


@router.post("/accounts", status_code=201, response_model=AccountOut)
def create_account(body: AccountIn, session: SessionDep, request: Request, response: Response, who: Admin) -> dict:
    """A new account: role, the areas it acts for (each with everything under it), a department account's
    department, a worker's staff record, and an initial password (at least 10 characters)."""
    spec = accounts.AccountSpec(body.username, body.role, tuple(body.areas), body.department, body.staff_id,
                                body.display_name)
    out = accounts.account_dict(accounts.add_account(session, spec, body.password))
    response.headers["Location"] = f"/api/v1/accounts/{out['id']}"
    return out


@router.patch("/accounts/{account_id}", response_model=AccountOut)
def update_account(account_id: PathId, body: AccountPatch, session: SessionDep, request: Request,
                   who: Admin) -> dict:
    """Change an account; a new role, areas or password, or deactivation, ends all its sessions at once."""
    account = accounts.update_account(session, account_id, role=body.role,
                                      areas=tuple(body.areas) if body.areas is not None else None,
                                      department=body.department, staff_id=body.staff_id,
                                      display_name=body.display_name, active=body.active, password=body.password)
    out = accounts.account_dict(account)
    after_commit(session, request.app.state.principals.clear)
    return out


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


@router.get("/api-keys", response_model=list[ApiKeyOut])
def list_api_keys(session: SessionDep, who: Admin) -> list[dict]:
    from gridmap.tables import ApiKey

    return [accounts.api_key_dict(k) for k in session.scalars(sa.select(ApiKey).order_by(ApiKey.id))]


@router.post("/api-keys", status_code=201, response_model=ApiKeyOut)
def create_api_key(body: ApiKeyIn, session: SessionDep, who: Admin) -> dict:
    """A key for an integration (the 12345 platform, an Open311 client, a mini-program back end), limited to its
    scopes: `report` (submit and rate cases, Open311 POST), `hotline` (12345 imports), `locate`, `read` (cases).
    The key is in the answer once; only its digest is stored."""
    key, secret = accounts.add_api_key(session, body.name, tuple(body.scopes), areas=tuple(body.areas),
                                       created_by=who.label())
    out = {**accounts.api_key_dict(key), "key": secret}
    return out


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut)
def revoke_api_key(key_id: PathId, session: SessionDep, request: Request, who: Admin) -> dict:
    """Revoke a key: it stops working at once (within seconds on other server processes)."""
    out = accounts.api_key_dict(accounts.revoke_api_key(session, key_id))
    after_commit(session, request.app.state.principals.clear)
    return out


class AuditOut(BaseModel):
    id: int
    at: str
    actor: str
    account_id: int | None
    action: str
    target: str | None
    address: str | None
    detail: dict | None


AUDIT_FIELDS = ("id", "at", "actor", "account_id", "action", "target", "address", "detail")


@router.get("/audit", response_model=None)
def read_audit(session: SessionDep, who: Auditor, since: Moment | None = None, until: Moment | None = None,
               action: Annotated[str | None, Query(max_length=32)] = None,
               actor: Annotated[str | None, Query(max_length=100)] = None,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 200, offset: Annotated[Offset, Query()] = 0,
               format: Literal["json", "csv"] = "json"):
    """The audit log, newest first: writes, reveals of personal data, sign-ins (and failures), publishes; filtered
    by time, action and actor; as JSON or CSV (formula-safe)."""
    query = sa.select(AuditEntry)
    if since:
        query = query.where(AuditEntry.at >= since)
    if until:
        query = query.where(AuditEntry.at < until)
    if action:
        query = query.where(AuditEntry.action == action)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
    rows = session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset)).all()
    items = [{"id": r.id, "at": _iso(r.at), "actor": r.actor, "account_id": r.account_id, "action": r.action,
              "target": r.target, "address": r.address, "detail": r.detail} for r in rows]
    if format == "json":
        return {"total": int(total or 0), "limit": limit, "offset": offset, "items": items}
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(AUDIT_FIELDS)
    for item in items:
        writer.writerow([safe_cell(item[f] if f != "detail" else (str(item[f]) if item[f] else "")) for f in
                         AUDIT_FIELDS])
    return Response(buffer.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


def _iso(value: dt.datetime) -> str:
    value = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
