"""Restarts of the infrastructure in the middle of a run of paid orders, on PostgreSQL + Redis
with the chaos test's hostile Kinguin, one API process and two worker processes:

- PostgreSQL "restarts" three times: every backend of the engine's connections is terminated
  (``pg_terminate_backend``, what a server restart does to its clients), found by the
  ``application_name`` the engine gives its connections (``bitloot:<schema>``);
- PostgreSQL "stops" for a few seconds: the engine reaches it through a TCP proxy of the test,
  which cuts every connection and refuses new ones meanwhile (the shared server itself cannot
  be stopped);
- Redis is killed and, a few seconds later, started again empty.

Every order must converge exactly once (the chaos test's audit), and no engine or worker log may
hold a traceback: each failure an outage causes is one WARNING line naming what failed and when
it is tried again."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from entrypoints.http.auth import mint_token
from harness.servers import RedisServer
from tests.conftest import POSTGRES_URL
from tests.e2e.cluster import Cluster, check, place_paid_orders
from tests.e2e.conftest import JWT_SECRET
from tests.support import free_port

pytestmark = pytest.mark.alone  # a deployment of several processes: see tests/conftest.py

ORDERS = 30  # enough to keep every part busy across the outages, few enough to stay quick
RESTARTS = 3
DATABASE_DOWN_S = 8.0  # how long PostgreSQL stays away when "stopped" (a query gives up at 5 s)
REDIS_DOWN_S = 4.0  # how long Redis stays away


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis of the test's own (nothing shared with other tests)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not installed")
    server = RedisServer(free_port())
    yield server
    server.stop()


def terminate_engine_connections(schema: str) -> int:
    """Kill every server process serving the engine of ``schema``; return how many there were."""
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = %s",
            (f"bitloot:{schema}",),
        ).fetchall()
    return len(killed)


def assert_no_traceback(tmp_path: Path) -> bytes:
    """No log of the run holds a traceback; return the logs, joined."""
    logs = sorted(tmp_path.glob("*.log"))
    assert logs
    for path in logs:
        text = path.read_bytes()
        at = text.find(b"Traceback")
        assert at < 0, f"{path.name}:\n{text[max(at - 2000, 0) : at + 3000].decode()}"
    return b"".join(path.read_bytes() for path in logs)


def test_database_connections_dropped_mid_run(
    tmp_path: Path, pg_schema: str, redis_server: RedisServer
) -> None:
    """Three rounds of terminated connections while orders are placed, bought and delivered."""
    cluster = Cluster(tmp_path, pg_schema, redis_server.url)
    try:
        placing = ThreadPoolExecutor(max_workers=1)
        placed = placing.submit(place_paid_orders, cluster.url, ORDERS)
        killed = []
        for _ in range(RESTARTS):
            time.sleep(1.5)
            killed.append(terminate_engine_connections(pg_schema))
        orders = placed.result(timeout=120)
        placing.shutdown()
        check(cluster, orders)
    finally:
        cluster.stop()
    print(f"\nterminated connections per round: {killed}")  # noqa: T201 - the test reports them
    assert all(killed), killed
    logged = assert_no_traceback(tmp_path)
    assert b"database unavailable" in logged


class PostgresProxy:
    """A TCP forwarder to PostgreSQL that can play a stopped server: while it is down, every
    connection through it is cut and new ones are refused."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.port = free_port()
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        self.url = urlunsplit(parts._replace(netloc=netloc))
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        """Accept connections (again)."""
        listener = socket.create_server(("127.0.0.1", self.port))
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut every open one."""
        if self._listener is not None:
            _close(self._listener)  # shutdown wakes the accepting thread and stops listening
            self._listener = None
        with self._lock:
            cut, self._sockets = self._sockets, set()
        for sock in cut:
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed: the proxy is down
            try:
                server = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass  # cut: the proxy went down, or the other side closed
        finally:
            with self._lock:
                self._sockets -= {source, sink}
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def test_database_stopped_for_seconds_mid_run(
    tmp_path: Path, pg_schema: str, redis_server: RedisServer
) -> None:
    """PostgreSQL away for DATABASE_DOWN_S seconds while paid orders are being bought and
    delivered: the actors, loops and listeners wait it out, and a read-model request that cannot
    get a connection meanwhile answers 503."""
    proxy = PostgresProxy(POSTGRES_URL)
    cluster = Cluster(tmp_path, pg_schema, redis_server.url, database_url=proxy.url)
    admin = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'restarts-admin', 'admin')}"}
    try:
        orders = place_paid_orders(cluster.url, ORDERS)
        proxy.down()
        cut = time.monotonic()
        try:
            time.sleep(1.0)
            during = httpx.get(f"{cluster.url}/admin/orders", headers=admin, timeout=30)
            time.sleep(max(DATABASE_DOWN_S - (time.monotonic() - cut), 0.0))
        finally:
            proxy.up()
        check(cluster, orders)
    finally:
        cluster.stop()
        proxy.down()
    assert during.status_code == 503, during.text
    assert during.headers["retry-after"]
    logged = assert_no_traceback(tmp_path)
    assert b"database unavailable" in logged


def test_redis_restarted_empty_without_a_traceback(
    tmp_path: Path, pg_schema: str, redis_server: RedisServer
) -> None:
    """The chaos test's Redis restart, with Redis away for REDIS_DOWN_S seconds: the orders
    converge and the logs hold one line per failure, never a traceback."""
    cluster = Cluster(tmp_path, pg_schema, redis_server.url)
    try:
        placing = ThreadPoolExecutor(max_workers=1)
        placed = placing.submit(place_paid_orders, cluster.url, ORDERS)
        time.sleep(2)
        redis_server.stop()
        time.sleep(REDIS_DOWN_S)
        redis_server.restart_empty()
        orders = placed.result(timeout=120)
        placing.shutdown()
        check(cluster, orders)
    finally:
        cluster.stop()
    logged = assert_no_traceback(tmp_path)
    assert b"Redis unavailable" in logged
    assert b"sweeper re-dispatched" in logged
