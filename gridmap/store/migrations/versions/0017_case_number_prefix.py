"""case numbers in byte order on PostgreSQL: the search box's prefix search served by an index

The map's search box (`gridmap.locating.search`) finds cases by the start of their number as the user types. It
asked `number LIKE 'RX2026%'`. PostgreSQL serves a prefix `LIKE` from a B-tree only when the index's collation is
"C" (or it uses a pattern operator class); this database's is the server's default (C.UTF-8 here, often
zh_CN.UTF-8 in China), so every search read every case: 5.8-7.2 s a keystroke on the 10 M-case province, for any
text, a Chinese word too.

`ix_case_file_number` (a plain index since 0010: numbers are unique in `case_registry`) is made again in the "C"
collation, and the search compares numbers in it (`number COLLATE "C" >= prefix AND < the next prefix`, in that
order): a range of the index. Nothing else compares case numbers on `case_file` (a case by its number is found
through the registry: `gridmap.store.partitions.cases_by_number`). SQLite's unique index on `number` already
orders by bytes (BINARY): nothing to do there.

Remaking it locks the case table against writes while it is built: about a minute on the province.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

NAME = "ix_case_file_number"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {NAME}")
    op.execute(f'CREATE INDEX {NAME} ON case_file (number COLLATE "C")')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {NAME}")
    op.execute(f"CREATE INDEX {NAME} ON case_file (number)")
