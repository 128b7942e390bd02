"""Administration: accounts, API keys and the audit log (admins only)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request, Response

from gridmap.access import accounts, policy
from gridmap.io.tabular import safe_cell
from gridmap.store.tables import AuditEntry
from gridmap_api.auth import allow
from gridmap_api.deps import SessionDep, after_commit
from gridmap_api.params import Moment, Offset, PathId
from gridmap_api.schemas.admin import AccountIn, AccountOut, AccountPatch, ApiKeyIn, ApiKeyOut, AuditPage
from gridmap_api.schemas.common import COMMON, binary, problems

router = APIRouter(prefix="/api/v1", tags=["admin"], responses=COMMON)
Admin = Annotated[policy.Principal, allow("account.admin")]
Auditor = Annotated[policy.Principal, allow("audit.read")]


@router.get("/accounts", response_model=list[AccountOut])
def list_accounts(session: SessionDep, who: Admin) -> list[dict]:
    """Every account with its role and areas (never a password or its hash)."""
    return [accounts.account_dict(a) for a in accounts.list_accounts(session)]


@router.post("/accounts", status_code=201, response_model=AccountOut, responses=problems(409))
def create_account(body: AccountIn, session: SessionDep, request: Request, response: Response, who: Admin) -> dict:
    """A new account: role, the areas it acts for (each with everything under it), a department account's
    department, a worker's staff record, and an initial password (at least 10 characters)."""
    spec = accounts.AccountSpec(
        body.username, body.role, tuple(body.areas), body.department, body.staff_id, body.display_name
    )
    out = accounts.account_dict(accounts.add_account(session, spec, body.password))
    response.headers["Location"] = f"/api/v1/accounts/{out['id']}"
    return out


@router.patch("/accounts/{account_id}", response_model=AccountOut, responses=problems(404, 409))
def update_account(account_id: PathId, body: AccountPatch, session: SessionDep, request: Request, who: Admin) -> dict:
    """Change an account; a new role, areas or password, or deactivation, ends all its sessions at once."""
    account = accounts.update_account(
        session,
        account_id,
        role=body.role,
        areas=tuple(body.areas) if body.areas is not None else None,
        department=body.department,
        staff_id=body.staff_id,
        display_name=body.display_name,
        active=body.active,
        password=body.password,
    )
    out = accounts.account_dict(account)
    after_commit(session, request.app.state.principals.clear)
    return out


@router.get("/api-keys", response_model=list[ApiKeyOut])
def list_api_keys(session: SessionDep, who: Admin) -> list[dict]:
    from gridmap.store.tables import ApiKey

    return [accounts.api_key_dict(k) for k in session.scalars(sa.select(ApiKey).order_by(ApiKey.id))]


@router.post("/api-keys", status_code=201, response_model=ApiKeyOut)
def create_api_key(body: ApiKeyIn, session: SessionDep, who: Admin) -> dict:
    """A key for an integration (the 12345 platform, an Open311 client, a mini-program back end), limited to its
    scopes: `report` (submit and rate cases, Open311 POST), `hotline` (12345 imports), `locate`, `read` (cases).
    The key is in the answer once; only its digest is stored."""
    key, secret = accounts.add_api_key(
        session, body.name, tuple(body.scopes), areas=tuple(body.areas), created_by=who.label()
    )
    out = {**accounts.api_key_dict(key), "key": secret}
    return out


@router.delete("/api-keys/{key_id}", response_model=ApiKeyOut, responses=problems(404))
def revoke_api_key(key_id: PathId, session: SessionDep, request: Request, who: Admin) -> dict:
    """Revoke a key: it stops working at once (within seconds on other server processes)."""
    out = accounts.api_key_dict(accounts.revoke_api_key(session, key_id))
    after_commit(session, request.app.state.principals.clear)
    return out


AUDIT_FIELDS = ("id", "at", "actor", "account_id", "action", "target", "address", "detail")


@router.get(
    "/audit",
    response_model=AuditPage,
    responses={**binary("text/csv", description="the audit log as JSON, or as CSV (`format=csv`)"), **COMMON},
)
def read_audit(
    session: SessionDep,
    who: Auditor,
    since: Moment | None = None,
    until: Moment | None = None,
    action: Annotated[str | None, Query(max_length=32)] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    offset: Annotated[Offset, Query()] = 0,
    format: Literal["json", "csv"] = "json",
):
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
    items = [
        {
            "id": r.id,
            "at": _iso(r.at),
            "actor": r.actor,
            "account_id": r.account_id,
            "action": r.action,
            "target": r.target,
            "address": r.address,
            "detail": r.detail,
        }
        for r in rows
    ]
    if format == "json":
        return {"total": int(total or 0), "limit": limit, "offset": offset, "items": items}
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(AUDIT_FIELDS)
    for item in items:
        writer.writerow(
            [safe_cell(item[f] if f != "detail" else (str(item[f]) if item[f] else "")) for f in AUDIT_FIELDS]
        )
    return Response(
        buffer.getvalue().encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


def _iso(value: dt.datetime) -> str:
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
