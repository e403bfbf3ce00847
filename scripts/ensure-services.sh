#!/usr/bin/env bash
# Start what the test suite needs when it is not already running: the PostgreSQL of
# TEST_DATABASE_URL and the Redis of TEST_REDIS_URL (127.0.0.1:5432 and :6379 by default; CI
# machines have both running already). Only a server on this machine is started here.
set -u
read -r pg_host pg_port redis_host redis_port < <(python3 - <<'PY'
import os
from urllib.parse import urlsplit
pg = urlsplit(os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"))
rd = urlsplit(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
print(pg.hostname or "127.0.0.1", pg.port or 5432, rd.hostname or "127.0.0.1", rd.port or 6379)
PY
)
local_host() { [ "$1" = 127.0.0.1 ] || [ "$1" = localhost ] || [ "$1" = ::1 ]; }
pg_up() { pg_isready -q -h "$pg_host" -p "$pg_port" 2>/dev/null || (exec 3<>"/dev/tcp/$pg_host/$pg_port") 2>/dev/null; }
redis_up() { (exec 3<>"/dev/tcp/$redis_host/$redis_port") 2>/dev/null; }

if ! pg_up; then
  if local_host "$pg_host" && command -v pg_ctlcluster >/dev/null; then
    echo "starting PostgreSQL"
    for version in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "PostgreSQL is not reachable on $pg_host:$pg_port (TEST_DATABASE_URL)" >&2; exit 1; }
fi

if ! redis_up; then
  if local_host "$redis_host" && command -v redis-server >/dev/null; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no
  fi
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  redis_up || { echo "Redis is not reachable on $redis_host:$redis_port (TEST_REDIS_URL)" >&2; exit 1; }
fi
