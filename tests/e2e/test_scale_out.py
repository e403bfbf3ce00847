"""Scale-out on PostgreSQL + Redis: three ``bitloot serve --no-worker`` processes and two
``bitloot worker`` processes over one database and one Redis, customers spread over the three
APIs, a hostile Kinguin. Every order converges once — bought once, each key delivered once —
and each background part (process manager, every projection, sweeper, catalog sync) runs under
its lock in exactly one process while the others stand by."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.conftest import POSTGRES_URL
from tests.e2e.cluster import Cluster, check, clear_redis, place_paid_orders
from tests.e2e.conftest import E2E_REDIS_URL

pytestmark = pytest.mark.alone  # a deployment of several processes: see tests/conftest.py

ORDERS = 30
PARTS = (
    "follower:process_manager",
    "projection:orders",
    "projection:webhook_log",
    "projection:key_audit",
    "projection:products",
    "sweeper",
    "catalog_sync",
)


def test_three_apis_and_two_workers_share_one_deployment(tmp_path: Path, pg_schema: str) -> None:
    clear_redis(E2E_REDIS_URL)
    cluster = Cluster(tmp_path, pg_schema, E2E_REDIS_URL, more_apis=2)
    try:
        orders = place_paid_orders(cluster.urls, ORDERS)
        check(cluster, orders)
        holders = {part: _holders(pg_schema, part) for part in PARTS}
    finally:
        cluster.stop()
        clear_redis(E2E_REDIS_URL)
    api_pids = {p.pid for p in [cluster.api, *cluster.more_apis]}
    for part, pids in holders.items():
        assert len(pids) == 1, f"{part} is held by {pids}"
        assert pids <= api_pids, f"{part} is held by {pids}, not an API process"


def test_the_log_followers_can_run_in_the_workers(tmp_path: Path, pg_schema: str) -> None:
    """The two-core layout of docs/operations.md: the API only answers HTTP (``serve
    --no-worker --no-followers``); the workers also follow the log (``worker --followers``),
    each part in exactly one of them."""
    clear_redis(E2E_REDIS_URL)
    cluster = Cluster(
        tmp_path, pg_schema, E2E_REDIS_URL, api_args=("--no-followers",),
        worker_args=("--followers",),
    )  # fmt: skip
    try:
        orders = place_paid_orders(cluster.urls, ORDERS // 2)
        check(cluster, orders)
        holders = {part: _holders(pg_schema, part) for part in PARTS}
    finally:
        cluster.stop()
        clear_redis(E2E_REDIS_URL)
    worker_pids = {p.pid for p in cluster.workers}
    for part, pids in holders.items():
        assert len(pids) == 1, f"{part} is held by {pids}"
        assert pids <= worker_pids, f"{part} is held by {pids}, not a worker"


def _holders(schema: str, part: str) -> set[int]:
    """The server-side pids holding a part's advisory lock, mapped to the engine processes by
    the client port each connection comes from (pg_stat_activity.client_port)."""
    key = f"bitloot:{schema}:{part}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.objid::text::bigint = (hashtext(%s)::bigint & 4294967295)",
            (key,),
        ).fetchall()
    return {_process_of_port(port) for (port,) in rows}


def _process_of_port(port: int) -> int:
    """The local process that owns a TCP connection from ``port`` (from /proc/net/tcp)."""
    inode = _socket_inode(port)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        if f"socket:[{inode}]" in _links(proc / "fd"):
            return int(proc.name)
    raise AssertionError(f"no process owns the connection from port {port}")


def _links(folder: Path) -> set[str]:
    """Where a process's descriptors point (those still open as they are read)."""
    found: set[str] = set()
    try:
        descriptors = list(folder.iterdir())
    except OSError:
        return found
    for descriptor in descriptors:
        try:
            found.add(str(descriptor.readlink()))
        except OSError:
            continue
    return found


def _socket_inode(port: int) -> str:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            established = fields[3] == "01"  # not a closed one waiting out TIME_WAIT (inode 0)
            if established and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return fields[9]
    raise AssertionError(f"no connection from port {port}")
