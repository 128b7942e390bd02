"""Accounts, sign-in, tokens and API keys.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended parameter set) and never
stored or logged in clear. A sign-in hands out a random token (an API client's bearer token or the pages' session
cookie); only its SHA-256 is stored, with an expiry, and it can be revoked one by one or all at once (deactivating
an account, changing its password). API keys for integrations work the same way, with scopes instead of a role's
rights. `principal_for_*` turn a presented token or key into the `policy.Principal` every check works with.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session, selectinload

from gridmap.access import policy
from gridmap.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from gridmap.store import audit
from gridmap.store.engine import rowcount
from gridmap.store.tables import LEVELS, Account, AccountArea, ApiKey, Area, AuthToken, Department, Generation, Staff

_hasher = PasswordHasher()  # argon2id, 64 MiB, 3 passes, 4 lanes
USERNAME = re.compile(r"^[A-Za-z0-9_.\-@]{2,64}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 256  # checked before hashing: hashing a megabyte is work an attacker chooses
TOKEN_KINDS = ("access", "session")
# roles that work on the whole service unless given areas: administrators, and planners and approvers (boundaries
# are drawn and published for the whole district; neither role reads cases)
UNSCOPED_ROLES = ("admin", "planner", "approver")
# a hash that no password matches, verified when the account is unknown so that both answers take as long
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher.hash(password)


def check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        raise InvalidInput(
            f"password: at most {MAX_PASSWORD} characters", field="password", zh=f"密码最长 {MAX_PASSWORD} 个字符。"
        )
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            f"password: at least {MIN_PASSWORD} characters", field="password", zh=f"密码至少 {MIN_PASSWORD} 个字符。"
        )


def new_password() -> str:
    """A random one-time password (16 characters, ~95 bits)."""
    return secrets.token_urlsafe(12)


# -- accounts ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountSpec:
    """What an administrator says about an account."""

    username: str
    role: str
    areas: tuple[str, ...] = ()
    department: str | None = None
    staff_id: int | None = None
    display_name: str | None = None


def _check_spec(session: Session, spec: AccountSpec) -> list[AccountArea]:
    if not USERNAME.match(spec.username or ""):
        raise InvalidInput(
            "username: 2 to 64 letters, digits or _ . - @",
            field="username",
            zh="用户名应为 2–64 个字母、数字或 _ . - @ 符号。",
        )
    if spec.role not in policy.ROLES:
        raise InvalidInput(
            f"role: {spec.role!r} is not a role; accepted: {', '.join(policy.ROLES)}",
            field="role",
            zh=f"角色 {spec.role!r} 不存在，可选：{'、'.join(policy.ROLES_ZH.get(r, r) for r in policy.ROLES)}。",
        )
    if spec.display_name is not None and len(spec.display_name) > 64:
        raise InvalidInput("display_name: at most 64 characters", field="display_name", zh="显示名称最多 64 个字符。")
    if len(spec.areas) > 50:
        raise InvalidInput("areas: at most 50 areas per account", field="areas", zh="每个账号最多 50 个辖区。")
    scopes = []
    for code in dict.fromkeys(spec.areas):
        if not isinstance(code, str) or not code.isdigit() or len(code) > 24:
            raise InvalidInput(
                f"areas: {str(code)[:30]!r} is not an area code (digits)",
                field="areas",
                zh=f"辖区：{str(code)[:30]!r} 不是区域编码（应为数字）。",
            )
        level = session.scalar(
            sa.select(Area.level)
            .join(Generation, Generation.id == Area.generation_id)
            .where(Area.code == code)
            .order_by(Generation.id.desc())
            .limit(1)
        )
        if level is None:
            raise InvalidInput(f"areas: no area has code {code}", field="areas", zh=f"辖区：没有编码为 {code} 的区域。")
        scopes.append(AccountArea(area_code=code, level=level))
    if spec.role == "department":
        if (
            not spec.department
            or session.scalar(sa.select(Department.id).where(Department.code == spec.department)) is None
        ):
            raise InvalidInput(
                f"department: {spec.department!r} is not a department code; a department account needs one",
                field="department",
                zh=f"部门：{spec.department!r} 不是部门编码；部门账号须填写所属部门的编码。",
            )
    elif spec.department:
        raise InvalidInput(
            "department: only department accounts have a department",
            field="department",
            zh="部门：只有部门账号才填写部门。",
        )
    if spec.role == "worker":
        if spec.staff_id is None or session.get(Staff, spec.staff_id) is None:
            raise InvalidInput(
                f"staff_id: a worker account needs the id of its staff record (got {spec.staff_id})",
                field="staff_id",
                zh=f"人员：网格员账号须填写其人员记录的编号（收到 {spec.staff_id}）。",
            )
    elif spec.staff_id is not None and session.get(Staff, spec.staff_id) is None:
        raise InvalidInput(
            f"staff_id: no staff record has id {spec.staff_id}",
            field="staff_id",
            zh=f"人员：没有编号为 {spec.staff_id} 的人员记录。",
        )
    if spec.role not in ("admin", "department", "integration", "planner", "approver") and not scopes:
        raise InvalidInput(
            f"areas: a {spec.role} account needs at least one area it acts for (--area CODE)",
            field="areas",
            zh=f"辖区：{policy.ROLES_ZH.get(spec.role, spec.role)}账号至少须有一个辖区（--area 区域编码）。",
        )
    return scopes


def add_account(session: Session, spec: AccountSpec, password: str, *, password_hash: str | None = None) -> Account:
    """Create an account; the username must be new. `password_hash`: `hash_password(password)` made already (the
    demo's accounts, which share one documented password, share its hash: one argon2 hash, not one per account)."""
    areas = _check_spec(session, spec)
    if session.scalar(sa.select(Account.id).where(Account.username == spec.username)) is not None:
        raise Conflict(
            f"username: {spec.username!r} exists already", field="username", zh=f"用户名 {spec.username!r} 已存在。"
        )
    account = Account(
        username=spec.username,
        display_name=spec.display_name,
        role=spec.role,
        department_code=spec.department,
        staff_id=spec.staff_id,
        password_hash=password_hash or hash_password(password),
        active=True,
        password_changed_at=_now(),
    )
    account.areas = areas
    session.add(account)
    session.flush()
    return account


def update_account(
    session: Session,
    account_id: int,
    *,
    role: str | None = None,
    areas: tuple[str, ...] | None = None,
    department: str | None = None,
    staff_id: int | None = None,
    display_name: str | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> Account:
    """Change an account. A new role, areas, password or deactivation ends every session it has."""
    account = get_account(session, account_id)
    spec = AccountSpec(
        account.username,
        role or account.role,
        tuple(areas) if areas is not None else tuple(a.area_code for a in account.areas),
        department if department is not None else account.department_code,
        staff_id if staff_id is not None else account.staff_id,
        display_name if display_name is not None else account.display_name,
    )
    scopes = _check_spec(session, spec)
    rights_changed = (
        spec.role != account.role
        or {a.area_code for a in account.areas} != set(spec.areas)
        or spec.department != account.department_code
        or spec.staff_id != account.staff_id
    )
    account.role, account.department_code, account.staff_id = spec.role, spec.department, spec.staff_id
    account.display_name = spec.display_name
    if areas is not None:
        account.areas = scopes
    if password is not None:
        account.password_hash = hash_password(password)
        account.password_changed_at = _now()
    if active is not None:
        account.active = active
    if rights_changed or password is not None or active is False:
        revoke_all(session, account.id)
    session.flush()
    return account


def get_account(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id, options=[selectinload(Account.areas)])
    if account is None:
        raise NotFound(
            f"account id: no account has id {account_id}", field="id", zh=f"没有编号为 {account_id} 的账号。"
        )
    return account


def list_accounts(session: Session) -> list[Account]:
    return list(session.scalars(sa.select(Account).options(selectinload(Account.areas)).order_by(Account.id)))


def account_dict(account: Account) -> dict[str, Any]:
    return {
        "id": account.id,
        "username": account.username,
        "display_name": account.display_name,
        "role": account.role,
        "role_zh": policy.ROLES_ZH.get(account.role, account.role),
        "areas": [a.area_code for a in account.areas],
        "department": account.department_code,
        "staff_id": account.staff_id,
        "active": account.active,
        "created_at": account.created_at.isoformat() if account.created_at else None,
    }


# -- sign-in and tokens --------------------------------------------------------------------------------------------


def authenticate(session: Session, username: str, password: str) -> Account:
    """The account whose password this is; a failure says nothing about whether the username exists."""
    failed = Unauthenticated("wrong username or password", field="password", zh="用户名或密码错误。")
    if (
        not isinstance(username, str)
        or not isinstance(password, str)
        or len(username) > 64
        or len(password) > MAX_PASSWORD
    ):
        raise failed
    account = session.scalars(sa.select(Account).where(Account.username == username)).first()
    try:
        _hasher.verify(account.password_hash if account is not None else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise failed from None
    if account is None or not account.active:
        raise failed
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    return account


def issue_token(session: Session, account: Account, kind: str, ttl: dt.timedelta, address: str | None = None) -> str:
    """A new token of `kind` for the account; only its hash is stored."""
    if kind not in TOKEN_KINDS:
        raise ValueError(kind)
    token = secrets.token_urlsafe(32)
    session.add(
        AuthToken(
            account_id=account.id,
            kind=kind,
            token_hash=digest(token),
            created_at=_now(),
            expires_at=_now() + ttl,
            address=(address or None) and address[:64],
        )
    )
    session.flush()
    return token


def revoke_token(session: Session, token: str) -> bool:
    done = session.execute(
        sa.update(AuthToken)
        .where(AuthToken.token_hash == digest(token), AuthToken.revoked_at.is_(None))
        .values(revoked_at=_now())
        .execution_options(synchronize_session=False)
    )
    return rowcount(done) > 0


def revoke_all(session: Session, account_id: int) -> int:
    done = session.execute(
        sa.update(AuthToken)
        .where(AuthToken.account_id == account_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=_now())
        .execution_options(synchronize_session=False)
    )
    return rowcount(done)


def principal_of(session: Session, account: Account, via: str) -> policy.Principal:
    """The principal an account acts as."""
    scopes = tuple(policy.Scope(a.area_code, a.level) for a in account.areas)
    department_id = None
    if account.department_code:
        department_id = session.scalar(sa.select(Department.id).where(Department.code == account.department_code))
    return policy.Principal(
        key=f"a{account.id}",
        name=account.username,
        role=account.role,
        account_id=account.id,
        scopes=scopes,
        everywhere=account.role in UNSCOPED_ROLES and not scopes,
        department=account.department_code,
        department_id=department_id,
        staff_id=account.staff_id,
        via=via,
    )


def principal_for_token(session: Session, token: str, kind: str) -> policy.Principal | None:
    """The principal a live token of `kind` stands for, or None (unknown, expired, revoked, account inactive)."""
    if not token or len(token) > 200:
        return None
    row = session.execute(
        sa.select(AuthToken.expires_at, AuthToken.account_id).where(
            AuthToken.token_hash == digest(token), AuthToken.kind == kind, AuthToken.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.UTC)
    if expires <= _now():
        return None
    account = session.get(Account, row.account_id, options=[selectinload(Account.areas)])
    if account is None or not account.active:
        return None
    return principal_of(session, account, "token" if kind == "access" else "session")


# -- API keys ------------------------------------------------------------------------------------------------------

KEY_PREFIX = "gmk_"


def add_api_key(
    session: Session, name: str, scopes: tuple[str, ...], *, areas: tuple[str, ...] = (), created_by: str | None = None
) -> tuple[ApiKey, str]:
    """A new API key (returned once, in clear) with its scopes; stored hashed."""
    if not name or len(name) > 64:
        raise InvalidInput(
            "name: 1–64 characters naming the integration", field="name", zh="名称：应为 1–64 个字符的对接系统名称。"
        )
    unknown = [s for s in scopes if s not in policy.SCOPES]
    if not scopes or unknown:
        raise InvalidInput(
            f"scopes: {unknown or 'none'}; accepted: {', '.join(policy.SCOPES)}",
            field="scopes",
            zh=f"权限范围：{unknown or '未填写'} 不被接受，可选：{', '.join(policy.SCOPES)}。",
        )
    for code in areas:
        if (
            not isinstance(code, str)
            or not code.isdigit()
            or len(code) > 24
            or session.scalar(sa.select(Area.id).where(Area.code == code).limit(1)) is None
        ):
            raise InvalidInput(
                f"areas: {str(code)[:30]!r} is not an area code",
                field="areas",
                zh=f"辖区：{str(code)[:30]!r} 不是区域编码。",
            )
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name,
        prefix=secret[:12],
        key_hash=digest(secret),
        role="integration",
        scopes=list(scopes),
        area_codes=list(areas) or None,
        created_by=created_by,
        created_at=_now(),
    )
    session.add(key)
    session.flush()
    return key, secret


def revoke_api_key(session: Session, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"api key id: no API key has id {key_id}", field="id", zh=f"没有编号为 {key_id} 的接口密钥。")
    if key.revoked_at is None:
        key.revoked_at = _now()
    session.flush()
    return key


def api_key_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": key.scopes,
        "areas": key.area_codes or [],
        "created_by": key.created_by,
        "created_at": key.created_at.isoformat() if key.created_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def principal_for_api_key(session: Session, secret: str) -> policy.Principal | None:
    if not secret or len(secret) > 200:
        return None
    key = session.scalars(
        sa.select(ApiKey).where(ApiKey.key_hash == digest(secret), ApiKey.revoked_at.is_(None))
    ).first()
    if key is None:
        return None
    levels = {}
    if key.area_codes:
        levels = dict(session.execute(sa.select(Area.code, Area.level).where(Area.code.in_(key.area_codes))).all())
    scopes = tuple(policy.Scope(c, levels.get(c, "district")) for c in key.area_codes or ())
    return policy.Principal(
        key=f"k{key.id}",
        name=key.name,
        role="integration",
        scopes=scopes,
        everywhere=not scopes,
        via="api_key",
        key_scopes=frozenset(key.scopes),
    )


def level_of_code(code: str) -> str:
    """The level a DB11-shaped code has by its length (6 + 3 + 3 + 3 [+ 2])."""
    return {6: "district", 9: "subdistrict", 12: "community", 15: "grid"}.get(len(code), LEVELS[-1])


def record_signin(
    session: Session, username: str, ok: bool, address: str | None, how: str, account_id: int | None = None
) -> None:
    """A sign-in attempt, successful or not, in the audit log (never the password)."""
    who = audit.Acting(f"user:{username[:64]}", account_id, address)
    audit.record(session, "signin" if ok else "signin_failed", f"account:{username[:64]}", {"how": how}, who=who)
