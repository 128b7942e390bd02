"""Area codes (DB11 shape: district 6 digits of GB/T 2260, then 3 per sub-district, community and grid, and 2 or 3
per micro-grid) and the register of every code ever given.

A code once used is never given to another area: a split or merge in a draft takes fresh codes under the parent
(`new_codes`), registered at once in `code_registry` in the caller's transaction, and never reused even when the
draft is undone or thrown away. Codes that the boundaries keep (an unchanged grid) stay as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gridmap.errors import Conflict
from gridmap.store.tables import CODE_DIGITS, LEVEL_NAMES_ZH, Area, CodeRegistry

CHILD_LEVEL = {"district": "subdistrict", "subdistrict": "community", "community": "grid", "grid": "microgrid"}
LEVEL_OF_LENGTH = {n: level for level, lengths in CODE_DIGITS.items() for n in lengths}


def level_of(code: str) -> str | None:
    """The level a DB11-shaped code belongs to by its length, or None for a code of another shape."""
    return LEVEL_OF_LENGTH.get(len(code)) if code.isascii() and code.isdigit() else None


def parent_code(code: str) -> str | None:
    """The parent's code by prefix (None for a district or a code of another shape)."""
    level = level_of(code)
    if level is None or level == "district":
        return None
    return code[: {"subdistrict": 6, "community": 9, "grid": 12, "microgrid": 15}[level]]


def used_codes(session: Session, prefix: str) -> set[str]:
    """Every code starting with `prefix` that was ever given: registered, or in any generation's areas."""
    like = prefix + "%"
    registered = session.scalars(sa.select(CodeRegistry.code).where(CodeRegistry.code.like(like)))
    in_areas = session.scalars(sa.select(Area.code).where(Area.code.like(like)).distinct())
    return set(registered) | set(in_areas)


def register(session: Session, codes: dict[str, str], generation_id: int | None) -> None:
    """Record `codes` (code → level) as used; codes already registered are left as they are."""
    if not codes:
        return
    known = set(session.scalars(sa.select(CodeRegistry.code).where(CodeRegistry.code.in_(list(codes)))))
    for code, level in codes.items():
        if code not in known:
            session.add(CodeRegistry(code=code, level=level, first_generation_id=generation_id))
    session.flush()


def new_codes(session: Session, parent: str, level: str, count: int, generation_id: int | None) -> list[str]:
    """`count` codes for new children of `parent` at `level` that were never used, lowest first, registered at once.

    The suffix width is the level's (3 digits; 2 for micro-grids, widening to 3 when 2 run out). `Conflict` when
    the parent has no free suffix left."""
    widths = CODE_DIGITS[level]
    used = used_codes(session, parent)
    out: list[str] = []
    for total in widths:
        width = total - len(parent)
        if width <= 0:
            continue
        for n in range(1, 10**width):
            code = f"{parent}{n:0{width}d}"
            if code not in used:
                out.append(code)
                used.add(code)
                if len(out) == count:
                    register(session, dict.fromkeys(out, level), generation_id)
                    return out
    raise Conflict(
        f"code: no unused {level} code is left under {parent}",
        field="code",
        zh=f"编码：{parent} 之下已没有可用的{LEVEL_NAMES_ZH.get(level, level)}编码。",
    )
