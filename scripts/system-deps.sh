#!/usr/bin/env bash
# Install the Debian/Ubuntu packages gridmap needs, only those missing. Usage: system-deps.sh run|test
set -euo pipefail
what=${1:-run}
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in python3 python3-venv libsqlite3-mod-spatialite; do have "$p" || need+=("$p"); done
if [ "$what" = test ]; then
  pgver=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1 || true)
  if [ -z "$pgver" ]; then
    need+=(postgresql postgresql-postgis)
  else
    have "postgresql-$pgver-postgis-3" || need+=("postgresql-$pgver-postgis-3")
  fi
  have chromium || need+=(chromium)
  have fonts-noto-cjk || need+=(fonts-noto-cjk)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
