"""The schema and the two databases (SpatiaLite, PostGIS): engines, sessions, migrations, the case table's monthly
partitions, the audit log, media storage."""
