"""Alembic environment: runs on the connection that `gridmap.store.engine.migrate` passes in."""

from typing import Any

from alembic import context
from geoalchemy2 import alembic_helpers

from gridmap.store.tables import Base

connection = context.config.attributes["connection"]
_OWN_TABLES = set(Base.metadata.tables)


def _include_object(obj: Any, name: str | None, obj_type: str, reflected: bool, compare_to: Any) -> bool:
    """Only gridmap's own tables: SpatiaLite's and PostGIS's system tables are not ours to drop."""
    if obj_type == "table" and name not in _OWN_TABLES:
        return False
    return bool(alembic_helpers.include_object(obj, name, obj_type, reflected, compare_to))


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    include_object=_include_object,
    process_revision_directives=alembic_helpers.writer,
    render_item=alembic_helpers.render_item,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
