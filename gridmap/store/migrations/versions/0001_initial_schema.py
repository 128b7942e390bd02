"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from typing import Any, cast

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

# the operations that geoalchemy2.alembic_helpers registers on alembic's `op` (and on batch operations) at run
# time: mypy cannot see them
geo_op: Any = op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "department",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=True),
        sa.Column("effective_to", sa.Date(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "party_org",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("secretary_name", sa.String(length=64), nullable=True),
        sa.Column("secretary_phone", sa.String(length=32), nullable=True),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("reporting_member_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["party_org.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("party_org", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_party_org_parent_id"), ["parent_id"], unique=False)

    geo_op.create_geospatial_table(
        "place",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("area_code", sa.String(length=24), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("households", sa.Integer(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=True),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["place.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("place", schema=None) as batch_op:
        cast(Any, batch_op).create_geospatial_index(
            "idx_place_geom", ["geom"], unique=False, postgresql_using="gist", postgresql_ops={}
        )
        batch_op.create_index(batch_op.f("ix_place_area_code"), ["area_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_place_kind"), ["kind"], unique=False)

    op.create_table(
        "staff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("party_member", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    geo_op.create_geospatial_table(
        "area",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("households", sa.Integer(), nullable=False),
        sa.Column("population", sa.Integer(), nullable=False),
        sa.Column("area_m2", sa.Float(), nullable=False),
        sa.Column("is_leaf", sa.Boolean(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generation.id"],
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["area.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("generation_id", "code", name="uq_area_generation_code"),
    )
    with op.batch_alter_table("area", schema=None) as batch_op:
        cast(Any, batch_op).create_geospatial_index(
            "idx_area_geom", ["geom"], unique=False, postgresql_using="gist", postgresql_ops={}
        )
        batch_op.create_index("ix_area_generation_level", ["generation_id", "level"], unique=False)
        batch_op.create_index(batch_op.f("ix_area_parent_id"), ["parent_id"], unique=False)

    op.create_table(
        "case_category",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("major_class", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("time_limit", sa.Integer(), nullable=False),
        sa.Column("time_unit", sa.String(length=16), nullable=False),
        sa.Column("urgency", sa.String(length=16), nullable=False),
        sa.Column("filing_condition", sa.Text(), nullable=True),
        sa.Column("department_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_id"],
            ["department.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_table(
        "party_org_area",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("party_org_id", sa.Integer(), nullable=False),
        sa.Column("area_code", sa.String(length=24), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["party_org_id"],
            ["party_org.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("party_org_area", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_party_org_area_area_code"), ["area_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_party_org_area_party_org_id"), ["party_org_id"], unique=False)

    op.create_table(
        "staff_area",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("area_code", sa.String(length=24), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("staff_area", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_area_area_code"), ["area_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_staff_area_staff_id"), ["staff_id"], unique=False)

    geo_op.create_geospatial_table(
        "case_file",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("category_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=True),
        sa.Column("raw_x", sa.Float(), nullable=True),
        sa.Column("raw_y", sa.Float(), nullable=True),
        sa.Column("raw_crs", sa.String(length=32), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("generation_id", sa.Integer(), nullable=True),
        sa.Column("district_code", sa.String(length=24), nullable=True),
        sa.Column("subdistrict_code", sa.String(length=24), nullable=True),
        sa.Column("community_code", sa.String(length=24), nullable=True),
        sa.Column("grid_code", sa.String(length=24), nullable=True),
        sa.Column("microgrid_code", sa.String(length=24), nullable=True),
        sa.Column("branch_id", sa.Integer(), nullable=True),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("locate_flags", sa.JSON(), nullable=True),
        sa.Column("reporter_name", sa.String(length=64), nullable=True),
        sa.Column("reporter_phone", sa.String(length=32), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="POINT",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["staff.id"],
        ),
        sa.ForeignKeyConstraint(
            ["branch_id"],
            ["party_org.id"],
        ),
        sa.ForeignKeyConstraint(
            ["category_id"],
            ["case_category.id"],
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generation.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    with op.batch_alter_table("case_file", schema=None) as batch_op:
        cast(Any, batch_op).create_geospatial_index(
            "idx_case_file_geom", ["geom"], unique=False, postgresql_using="gist", postgresql_ops={}
        )
        batch_op.create_index(batch_op.f("ix_case_file_community_code"), ["community_code"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_file_grid_code"), ["grid_code"], unique=False)
        batch_op.create_index("ix_case_file_state_reported", ["state", "reported_at"], unique=False)

    op.create_table(
        "case_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["case_file.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("case_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_event_case_id"), ["case_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("case_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_event_case_id"))

    op.drop_table("case_event")
    with op.batch_alter_table("case_file", schema=None) as batch_op:
        batch_op.drop_index("ix_case_file_state_reported")
        batch_op.drop_index(batch_op.f("ix_case_file_grid_code"))
        batch_op.drop_index(batch_op.f("ix_case_file_community_code"))
        cast(Any, batch_op).drop_geospatial_index("idx_case_file_geom", postgresql_using="gist", column_name="geom")

    geo_op.drop_geospatial_table("case_file")
    with op.batch_alter_table("staff_area", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_area_staff_id"))
        batch_op.drop_index(batch_op.f("ix_staff_area_area_code"))

    op.drop_table("staff_area")
    with op.batch_alter_table("party_org_area", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_party_org_area_party_org_id"))
        batch_op.drop_index(batch_op.f("ix_party_org_area_area_code"))

    op.drop_table("party_org_area")
    op.drop_table("case_category")
    with op.batch_alter_table("area", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_area_parent_id"))
        batch_op.drop_index("ix_area_generation_level")
        cast(Any, batch_op).drop_geospatial_index("idx_area_geom", postgresql_using="gist", column_name="geom")

    geo_op.drop_geospatial_table("area")
    op.drop_table("staff")
    with op.batch_alter_table("place", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_place_kind"))
        batch_op.drop_index(batch_op.f("ix_place_area_code"))
        cast(Any, batch_op).drop_geospatial_index("idx_place_geom", postgresql_using="gist", column_name="geom")

    geo_op.drop_geospatial_table("place")
    with op.batch_alter_table("party_org", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_party_org_parent_id"))

    op.drop_table("party_org")
    op.drop_table("generation")
    op.drop_table("department")
