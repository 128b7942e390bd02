"""One demo account per role, with a documented password, so that the demo can be tried as every user.

| username          | role        | acts for                                        |
|-------------------|-------------|-------------------------------------------------|
| demo-admin        | admin       | everything                                      |
| demo-planner      | planner     | boundary drafts                                 |
| demo-approver     | approver    | publishing boundaries                           |
| demo-dispatcher   | dispatcher  | the whole district                              |
| demo-dispatcher-1 | dispatcher  | the first sub-district only                     |
| demo-leader       | leader      | the whole district                              |
| demo-manager      | manager     | the first community                             |
| demo-worker       | worker      | the first grid (as that grid's full-time worker)|
| demo-department   | department  | the first department's cases                    |
| demo-verifier     | verifier    | the whole district                              |
| demo-viewer       | viewer      | the first sub-district                          |

The password of every demo account is `DEMO_PASSWORD`. A real deployment creates its own accounts
(`gridmap user add`) and never loads the demo.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.access import accounts
from gridmap.store.tables import Account, Area, Department, Generation, StaffArea

DEMO_PASSWORD = "gridmap-demo-2026"


def demo_accounts(session: Session, district: str) -> dict[str, accounts.AccountSpec]:
    """The demo accounts for a loaded district (areas and staff taken from what the demo generated)."""
    active = session.scalar(sa.select(Generation.id).where(Generation.status == "active"))

    def first(level: str) -> str:
        code = session.scalar(
            sa.select(Area.code)
            .where(Area.generation_id == active, Area.level == level, Area.code.startswith(district))
            .order_by(Area.code)
            .limit(1)
        )
        assert code is not None, f"the demo of {district} has a {level}"
        return code

    grid = first("grid")
    worker = session.scalar(
        sa.select(StaffArea.staff_id)
        .where(StaffArea.area_code == grid, StaffArea.role == "fulltime_worker")
        .order_by(StaffArea.id)
        .limit(1)
    )
    department = session.scalar(sa.select(Department.code).order_by(Department.code).limit(1))
    specs = [
        accounts.AccountSpec("demo-admin", "admin", display_name="系统管理员"),
        accounts.AccountSpec("demo-planner", "planner", display_name="规划员"),
        accounts.AccountSpec("demo-approver", "approver", display_name="审批人"),
        accounts.AccountSpec("demo-dispatcher", "dispatcher", (district,), display_name="区调度员"),
        accounts.AccountSpec("demo-dispatcher-1", "dispatcher", (first("subdistrict"),), display_name="街道调度员"),
        accounts.AccountSpec("demo-leader", "leader", (district,), display_name="区领导"),
        accounts.AccountSpec("demo-manager", "manager", (first("community"),), display_name="网格长"),
        accounts.AccountSpec("demo-worker", "worker", (grid,), staff_id=worker, display_name="网格员"),
        accounts.AccountSpec("demo-department", "department", department=department, display_name="职能部门"),
        accounts.AccountSpec("demo-verifier", "verifier", (district,), display_name="核查员"),
        accounts.AccountSpec("demo-viewer", "viewer", (first("subdistrict"),), display_name="只读用户"),
    ]
    return {s.username: s for s in specs}


def create_demo_accounts(session: Session, district: str, password: str = DEMO_PASSWORD) -> list[str]:
    """Create the demo accounts that do not exist yet; returns their usernames. They share the password's hash
    (one argon2 hash, ~0.2 s of CPU, instead of one per account: the password is the same and published)."""
    made = []
    hashed: str | None = None  # one hash of the one password, made when a first account needs it
    for name, spec in demo_accounts(session, district).items():
        if session.scalar(sa.select(Account.id).where(Account.username == name)) is None:
            hashed = hashed or accounts.hash_password(password)
            accounts.add_account(session, spec, password, password_hash=hashed)
            made.append(name)
    return made
