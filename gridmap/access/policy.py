"""Who may do what, where — decided here and nowhere else.

Every operation of the API names one *permission* (`RULES`); a permission lists the roles that hold it. Every
account is scoped to subtrees of areas (an area and everything under it: area codes are hierarchical, so a
descendant's code starts with its ancestor's), a department account to its department, a worker to its grids and
the cases assigned to it. Objects outside the scope do not exist for the account: lookups answer "not found",
exactly as for an id nobody has, and lists are filtered by the same rule (`case_condition`, `sees_case`,
`sees_area`).

Roles (the codes accounts carry):

| role        | who (用户)                          | holds                                                        |
|-------------|-------------------------------------|--------------------------------------------------------------|
| admin       | system administrator 系统管理员     | accounts, API keys, catalogue, calendar, audit log; reads all |
| planner     | 规划 (组织部/社工部/民政/网格办)    | boundary drafts: create, redraw, re-locate preview            |
| approver    | 审批 (boundary publish)             | activate (publish) a draft                                    |
| dispatcher  | 调度员 (城运中心/综治中心)          | intake, filing, dispatch, imports, reporter contact           |
| leader      | 领导 (街道/社区)                    | approve or deny extensions and suspensions, resume            |
| manager     | 网格长                              | reads its area: map, cases, measures                          |
| worker      | 网格员                              | its own cases; patrol reports                                 |
| department  | 职能部门                            | the cases given to its department                             |
| verifier    | 核查员                              | verification and rework; reporter contact for 回访            |
| viewer      | 只读 (observer)                     | reads its area: map, cases, measures                          |
| integration | a system (12345 platform, Open311)  | what its API key's scopes allow                               |

`resident` is not an account role: a resident submits anonymously (where the deployment allows it) or through a
client holding an API key, and rates a case with the token handed back at submission.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from gridmap.errors import Forbidden, NotFound, Unauthenticated
from gridmap.store import dialect
from gridmap.store.tables import CODE_DIGITS

if TYPE_CHECKING:
    from gridmap.store.tables import Case

ROLES: tuple[str, ...] = (
    "admin",
    "planner",
    "approver",
    "dispatcher",
    "leader",
    "manager",
    "worker",
    "department",
    "verifier",
    "viewer",
    "integration",
)
ROLES_ZH = {
    "admin": "系统管理员",
    "planner": "规划员",
    "approver": "审批人",
    "dispatcher": "调度员",
    "leader": "领导",
    "manager": "网格长",
    "worker": "网格员",
    "department": "职能部门",
    "verifier": "核查员",
    "viewer": "只读用户",
    "integration": "系统对接",
    "resident": "群众",
}
STAFF_ROLES = frozenset(ROLES) - {"integration"}  # people who sign in
READERS = STAFF_ROLES - {"planner", "approver"}  # who reads cases (planners see areas and boundary drafts)
NOT_READERS = STAFF_ROLES - READERS  # no case exists for them, whatever their areas

# permission → roles holding it. `anonymous` stands for a caller with no credentials, `resident` for a resident's
# client (anonymous or through an API key with the `report` scope).
RULES: dict[str, frozenset[str]] = {
    "public": frozenset(ROLES) | {"anonymous", "resident"},  # Open311 discovery, services, public request views
    "signed_in": frozenset(ROLES),
    "area.read": frozenset(ROLES),
    "map.read": STAFF_ROLES,
    "locate": frozenset(ROLES),
    "search": STAFF_ROLES,
    "case.read": READERS | {"integration"},
    "case.create": frozenset({"dispatcher", "worker", "manager", "admin", "integration", "resident", "anonymous"}),
    "case.act": frozenset({"dispatcher", "worker", "department", "verifier", "leader"}),  # roles of workflow.STEPS
    "case.rate": frozenset(ROLES) | {"anonymous", "resident"},  # the reporter's token is the credential
    "patrol.create": frozenset({"worker"}),
    "notification.read": STAFF_ROLES,  # one's own notifications (催办, 督办, cases given to one)
    "import.hotline": frozenset({"dispatcher", "admin", "integration"}),
    "measures.read": READERS - {"worker"},
    "catalogue.read": frozenset(ROLES) | {"anonymous", "resident"},
    "catalogue.edit": frozenset({"admin"}),
    "generation.read": frozenset({"planner", "approver", "admin"}),
    "generation.edit": frozenset({"planner"}),
    "generation.activate": frozenset({"approver"}),
    "account.admin": frozenset({"admin"}),
    "audit.read": frozenset({"admin"}),
    # photos of a case: staff who may see the case (the stage decides who may add what, gridmap.cases.attachments), a
    # resident with the case's reporter_token (report photos only)
    "attachment.add": frozenset(
        {"dispatcher", "worker", "department", "manager", "admin", "integration", "resident", "anonymous"}
    ),
    "attachment.read": READERS | {"integration"},
}
# what an integration's API key may be scoped to, and the permissions each scope grants
SCOPES: dict[str, frozenset[str]] = {
    # and Open311's api_key; a resident's client adds report photos with the case's reporter_token
    "report": frozenset({"case.create", "case.rate", "catalogue.read", "public", "attachment.add"}),
    "hotline": frozenset({"case.create", "import.hotline", "catalogue.read", "public"}),
    "locate": frozenset({"locate", "area.read", "public", "catalogue.read"}),
    # and the map's data and vector tiles (QGIS adds the tile URL with the key's header), within the key's areas
    "read": frozenset({"case.read", "area.read", "catalogue.read", "public", "attachment.read", "map.read"}),
}
LEVEL_COLUMNS = {
    "district": "district_code",
    "subdistrict": "subdistrict_code",
    "community": "community_code",
    "grid": "grid_code",
    "microgrid": "microgrid_code",
}


@dataclass(frozen=True)
class Scope:
    """One subtree of areas: its root code and the root's level."""

    code: str
    level: str


@dataclass(frozen=True)
class Principal:
    """Who is acting: an account (or an API key, or the anonymous caller), its role and where it may act.

    `key` identifies the actor stably (`a12` for account 12, `k3` for API key 3): the four-eyes rule and "who
    handled it" compare keys, never display names."""

    key: str
    name: str
    role: str
    account_id: int | None = None
    scopes: tuple[Scope, ...] = ()
    everywhere: bool = False
    department: str | None = None
    department_id: int | None = None
    staff_id: int | None = None
    via: str = "anonymous"  # token | session | api_key | gateway | anonymous | system
    key_scopes: frozenset[str] = field(default_factory=frozenset)  # an API key's scopes

    @property
    def anonymous(self) -> bool:
        return self.via == "anonymous"

    def label(self) -> str:
        return f"{self.role}:{self.name}"


ANONYMOUS = Principal(key="anon", name="anonymous", role="anonymous", via="anonymous")
SYSTEM = Principal(key="system", name="system", role="system", everywhere=True, via="system")


def holds(principal: Principal, permission: str) -> bool:
    """Whether the principal's role (or, for an API key, its scopes) grants `permission` (anywhere)."""
    if permission not in RULES:
        raise KeyError(f"no policy for {permission!r}")  # a route without a policy entry is a bug
    if principal.via == "api_key":
        return any(permission in SCOPES.get(s, ()) for s in principal.key_scopes)
    return principal.role in RULES[permission]


def require(principal: Principal, permission: str) -> None:
    """Refuse a caller that may not do this at all: `Unauthenticated` without credentials, `Forbidden` for a role
    without the right."""
    if holds(principal, permission):
        return
    if principal.anonymous:
        raise Unauthenticated("sign in first", field="credentials", zh="未登录或登录已过期，请先登录。")
    raise Forbidden(
        f"role {principal.role} may not {permission}",
        field="role",
        zh=f"无权限：{ROLES_ZH.get(principal.role, principal.role)}不能执行此操作。",
    )


# -- areas ---------------------------------------------------------------------------------------------------------


def _in_subtree(code: str, scope: Scope) -> bool:
    """Whether an area's code lies in the subtree of a scope. Codes are hierarchical (a descendant's code starts with
    its ancestor's), except that a micro-grid has nothing below it: micro-grid codes widen from 2 to 3 digits, so
    another micro-grid's code can start with its own (`…10` and `…100`)."""
    return code == scope.code if scope.level == "microgrid" else code.startswith(scope.code)


def within(principal: Principal, code: str | None) -> bool:
    """Whether an area (by code) lies in one of the principal's subtrees."""
    if principal.everywhere:
        return True
    return code is not None and code != "" and any(_in_subtree(code, s) for s in principal.scopes)


def _all_outlines(principal: Principal) -> bool:
    """A department without areas works on its cases wherever they are: it sees every area's outline (not what
    happens inside: cases stay limited to its own)."""
    return principal.everywhere or (principal.role == "department" and not principal.scopes)


def sees_area(principal: Principal, code: str) -> bool:
    """An area is visible when it is in scope, or above it (the chain one navigates down from)."""
    return _all_outlines(principal) or within(principal, code) or any(s.code.startswith(code) for s in principal.scopes)


def check_area(principal: Principal, code: str, *, inside: bool = False) -> None:
    """Not found unless the area is visible (`inside`: in scope itself, not merely above it)."""
    if not (within(principal, code) if inside else sees_area(principal, code)):
        raise NotFound(f"area: no area has code {code!r}", field="code", zh=f"没有编码为 {code!r} 的区域。")


def area_condition(principal: Principal, column: sa.SQLColumnExpression[str | None]) -> sa.ColumnElement[bool]:
    """SQL: areas (by a code column) that are visible — in scope or above it."""
    if _all_outlines(principal):
        return sa.true()
    parts = [column.startswith(s.code, autoescape=True) for s in principal.scopes]
    ancestors = {s.code[:n] for s in principal.scopes for n in range(1, len(s.code) + 1)}
    if ancestors:
        parts.append(column.in_(sorted(ancestors)))
    return sa.or_(*parts) if parts else sa.false()


def code_condition(principal: Principal, column: sa.SQLColumnExpression[str | None]) -> sa.ColumnElement[bool]:
    """SQL: rows whose area code (any level) lies in scope (`within`)."""
    if principal.everywhere:
        return sa.true()
    parts = [
        column == s.code if s.level == "microgrid" else column.startswith(s.code, autoescape=True)
        for s in principal.scopes
    ]
    return sa.or_(*parts) if parts else sa.false()


# -- cases ---------------------------------------------------------------------------------------------------------


def _own_level(scope: Scope) -> bool:
    """Whether a scope's code has the shape of a code of its level (DB11: 6, 9, 12, 15, 17–18 digits): the code of
    an area at that level, compared with a case's code at that level by equality — the same cases as by prefix, as
    codes of one level have one length (and a micro-grid's is its own, not a prefix of its neighbours'), and a
    condition the area indexes serve (a prefix `LIKE` is served only under the C collation)."""
    return scope.code.isascii() and scope.code.isdigit() and len(scope.code) in CODE_DIGITS.get(scope.level, ())


def _case_in_scope(case_table: type[Case], scope: Scope) -> sa.ColumnElement[bool]:
    column: sa.ColumnElement[str | None] = getattr(case_table, LEVEL_COLUMNS.get(scope.level, "grid_code"))
    if not _own_level(scope):
        return column.startswith(scope.code, autoescape=True)
    return dialect.code_is(column, scope.code) if scope.level == "district" else column == scope.code


def case_condition(principal: Principal, case_table: type[Case]) -> sa.ColumnElement[bool]:
    """SQL: the cases the principal may see. An account sees the cases whose place lies in its areas (compared at
    the level of each area, so a case outside every grid still belongs to its district); a worker also every case
    assigned to it, a department every case given to it (and only those, when it has no areas); planners and
    approvers none."""
    if principal.role in NOT_READERS:
        return sa.false()
    if principal.everywhere:
        return sa.true()
    parts = [_case_in_scope(case_table, s) for s in principal.scopes]
    if principal.role == "worker" and principal.staff_id is not None:
        parts.append(case_table.assignee_id == principal.staff_id)
    if principal.role == "department":
        parts.append(case_table.department_id == (principal.department_id or -1))
    return sa.or_(*parts) if parts else sa.false()


def sees_case(principal: Principal, case: Case, department_code: str | None = None) -> bool:
    """Python twin of `case_condition` for one loaded case (`department_code`: the code of the case's department)."""
    if principal.role in NOT_READERS:
        return False
    if principal.everywhere:
        return True
    for s in principal.scopes:
        value = getattr(case, LEVEL_COLUMNS.get(s.level, "grid_code"), None)
        if value and (value == s.code if _own_level(s) else value.startswith(s.code)):
            return True
    if principal.role == "worker" and principal.staff_id is not None and case.assignee_id == principal.staff_id:
        return True
    return bool(principal.role == "department" and principal.department and department_code == principal.department)


def check_case(principal: Principal, case: Case, department_code: str | None = None) -> None:
    if not sees_case(principal, case, department_code):
        raise NotFound(f"case id: no case has id {case.id}", field="id", zh=f"没有编号为 {case.id} 的案件。")


def may_see_contact(principal: Principal, case: Case, department_code: str | None = None) -> bool:
    """Whether the reporter's name and phone of this case may be shown in full to this principal: dispatchers,
    admins and verifiers (回访) for cases in their areas; the worker or department the case is with."""
    if principal.role in ("dispatcher", "admin", "verifier"):
        return sees_case(principal, case, department_code)
    if principal.role == "worker":
        return principal.staff_id is not None and principal.staff_id == case.assignee_id
    if principal.role == "department":
        return bool(principal.department) and department_code == principal.department
    return False
