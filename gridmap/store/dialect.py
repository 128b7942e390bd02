"""The few spatial SQL differences between SpatiaLite and PostGIS, chosen by `dialect.name`.

SQLite uses a spatial index only when the query names it: SpatiaLite's R*Tree is reached through the
`SpatialIndex` virtual table. PostGIS uses its GiST index by itself for `&&` and `ST_Covers`.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql import visitors
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

_S = TypeVar("_S", bound=sa.ClauseElement)


def _is_sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def covering_leaf_codes_sql(session: Session) -> sa.TextClause:
    """SQL returning the codes of the leaf areas of a generation that cover (:lon, :lat), smallest first."""
    if _is_sqlite(session):
        return sa.text(
            "SELECT code FROM area WHERE generation_id = :generation AND is_leaf = 1 "
            "AND ST_Covers(geom, MakePoint(:lon, :lat, 4326)) = 1 "
            "AND ROWID IN (SELECT ROWID FROM SpatialIndex WHERE f_table_name = 'area' "
            "AND f_geometry_column = 'geom' AND search_frame = MakePoint(:lon, :lat, 4326)) ORDER BY code"
        )
    return sa.text(
        "SELECT code FROM area WHERE generation_id = :generation AND is_leaf "
        "AND ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) ORDER BY code"
    )


def bbox_filter(session: Session, table: str, bbox: tuple[float, float, float, float]) -> sa.TextClause:
    """A WHERE clause keeping rows of `table` whose geometry's box meets `bbox` (index-assisted)."""
    params = dict(zip(("minx", "miny", "maxx", "maxy"), bbox))
    if _is_sqlite(session):
        return sa.text(
            f"{table}.ROWID IN (SELECT ROWID FROM SpatialIndex WHERE f_table_name = '{table}' "
            "AND f_geometry_column = 'geom' AND search_frame = BuildMbr(:minx, :miny, :maxx, :maxy, 4326))"
        ).bindparams(**params)
    return sa.text(f"{table}.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4326)").bindparams(**params)


def floor_int(session: Session, expr: sa.ColumnElement[float | None]) -> sa.ColumnElement[int]:
    """SQL: the whole number below a NON-NEGATIVE number (a cell index). SQLite has no floor() without its math
    extension, and its CAST to INTEGER truncates (the floor of a non-negative number); PostgreSQL's CAST rounds,
    so it uses floor()."""
    if _is_sqlite(session):
        return sa.cast(expr, sa.Integer)
    return sa.cast(sa.func.floor(expr), sa.Integer)


def byte_ordered(session: Session, column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """A text column compared and ordered by bytes (code points), as its index on case numbers is (migration 0017):
    `COLLATE "C"` on PostgreSQL; SQLite's default collation (BINARY) is already so."""
    if _is_sqlite(session):
        return column
    return sa.type_coerce(column.collate("C"), sa.String)


class _CodeIs(ColumnElement[bool]):
    """`code_is`: compiled per dialect."""

    __visit_name__ = "gridmap_code_is"
    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("code", InternalTraversal.dp_clauseelement),
        ("seek", InternalTraversal.dp_boolean),
    ]

    def __init__(self, column: sa.SQLColumnExpression[Any], code: str, seek: bool) -> None:
        self.column = column
        self.code = sa.bindparam(None, code, type_=sa.String(), unique=True)  # a parameter: one statement cached
        self.seek = seek

    def self_group(self, against: Any = None) -> ColumnElement[Any]:
        return self  # a comparison itself, as `column = code` is: not wrapped as `(…) = 1` on SQLite, no index could


def code_is(column: sa.SQLColumnExpression[Any], code: str, *, seek: bool = False) -> sa.ColumnElement[bool]:
    """`column = code` for the case table's district code (`tables.Case`), which leads the district's indexes: on
    PostgreSQL always; on SQLite only for a statement that should `seek` the district in its index (migration 0022:
    a count, or a count of some states, `ix_case_file_district_state_due`; 0024: the map's clusters and count of a
    period, `ix_case_file_district_map`), and written as the prefix
    `column LIKE 'code%'` otherwise — the same rows, as the column holds codes of one length (`code` is one, of
    digits). For a page in some order SQLite should walk that order's index and keep the district's cases (one in
    sixteen on a province): it takes a prefix for unselective and does (6 ms for 50 of 10 M cases), where an
    equality it may take for selective, read the whole district (600,000 cases) and sort it (4.4 s), as it did
    when the column had no index and no statistics (0015)."""
    return _CodeIs(column, code, seek)


def seeking(statement: _S) -> _S:
    """`statement` with its district conditions (`code_is`) sought in the district's index on SQLite: for a count
    of what a page lists, whose statement `statement` is."""

    def replace(element: Any, **kw: Any) -> Any:
        if isinstance(element, _CodeIs) and not element.seek:
            return _CodeIs(element.column, str(element.code.value), True)
        return None

    return cast(_S, visitors.replacement_traverse(cast(Any, statement), {}, replace))


@compiles(_CodeIs)
def _code_is(element: _CodeIs, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column == element.code, **kw)


@compiles(_CodeIs, "sqlite")
def _code_is_sqlite(element: _CodeIs, compiler: SQLCompiler, **kw: Any) -> str:
    if element.seek:
        return compiler.process(element.column == element.code, **kw)
    return compiler.process(element.column.startswith(element.code), **kw)  # (a code of digits: nothing to escape)
