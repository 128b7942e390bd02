"""The few spatial SQL differences between SpatiaLite and PostGIS, chosen by `dialect.name`.

SQLite uses a spatial index only when the query names it: SpatiaLite's R*Tree is reached through the
`SpatialIndex` virtual table. PostGIS uses its GiST index by itself for `&&` and `ST_Covers`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session


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
