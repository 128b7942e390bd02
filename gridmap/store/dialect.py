"""The few spatial SQL differences between SpatiaLite and PostGIS, chosen by `dialect.name`.

SQLite uses a spatial index only when the query names it: SpatiaLite's R*Tree is reached through the
`SpatialIndex` virtual table. PostGIS uses its GiST index by itself for `&&` and `ST_Covers`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal


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
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement), ("code", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: sa.SQLColumnExpression[Any], code: str) -> None:
        self.column = column
        self.code = sa.bindparam(None, code, type_=sa.String(), unique=True)  # a parameter: one statement cached


def code_is(column: sa.SQLColumnExpression[Any], code: str) -> sa.ColumnElement[bool]:
    """`column = code` for an area code column that leads an index on PostgreSQL but none on SQLite (the case
    table's district code: `tables.Case`), where it is written as the prefix `column LIKE 'code%'` — the same rows,
    as the column holds codes of one length (`code` is one, of digits). SQLite keeps no statistics on a column
    without an index and takes an equality for selective: it read and sorted a whole district (600,000 of 10 M
    cases) for a first page of 50 (4.4 s), where with the prefix, which it takes for unselective, it walks the
    report time's index (6 ms)."""
    return _CodeIs(column, code)


@compiles(_CodeIs)
def _code_is(element: _CodeIs, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column == element.code, **kw)


@compiles(_CodeIs, "sqlite")
def _code_is_sqlite(element: _CodeIs, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column.startswith(element.code), **kw)  # (a code of digits: nothing to escape)
