#!/usr/bin/env bash
# Make sure a PostgreSQL server with PostGIS answers on 127.0.0.1:5432 and that the role the tests use exists.
# The tests create (and drop) their own uniquely named databases; nothing here depends on an earlier run.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
as_postgres() {
  if [ "$(id -un)" = postgres ]; then "$@"
  elif [ "$(id -u)" = 0 ]; then su postgres -c "$(printf '%q ' "$@")"
  else sudo -u postgres "$@"; fi
}
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  ver=$(ls /etc/postgresql | sort -n | tail -n 1)
  if ! pg_lsclusters -h | awk '{print $2}' | grep -qx main; then $SUDO pg_createcluster "$ver" main; fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || $SUDO pg_ctlcluster "$ver" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
as_postgres psql -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridmap_test') THEN
    CREATE ROLE gridmap_test LOGIN SUPERUSER PASSWORD 'gridmap_test';
  END IF;
END $$;
SQL
# An action on a case locks every month partition of case_file and each of their indexes (about 1,240 locks with
# 28 partitions); PostgreSQL's default lock table (64 per connection) is full with five such transactions at once
# ("out of shared memory"). Raised here as a deployment must raise it (README, "PostgreSQL settings").
LOCKS=1024
have=$(as_postgres psql -Atq -d postgres -c "SHOW max_locks_per_transaction")
if [ "$have" -lt "$LOCKS" ]; then
  as_postgres psql -q -v ON_ERROR_STOP=1 -d postgres -c "ALTER SYSTEM SET max_locks_per_transaction = $LOCKS"
  ver=$(pg_lsclusters -h | awk '$2 == "main" && $3 == "5432" {print $1}' | head -n 1)
  if [ -n "$ver" ] && { $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main restart \
      || $SUDO pg_ctlcluster "$ver" main restart; }; then
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    echo "max_locks_per_transaction raised from $have to $LOCKS (PostgreSQL restarted)"
  else
    echo "warning: could not restart PostgreSQL: max_locks_per_transaction stays $have until it restarts" >&2
  fi
fi
echo "PostGIS ready on 127.0.0.1:5432 (role gridmap_test)"
