"""Faults, measured from outside: orders arriving at a steady rate, one fault injected mid-run.

For each scenario the script starts a fresh engine as a real process (``bitloot serve``, as the
end-to-end tests do: a fresh ``VAR_DIR``, and on PostgreSQL + Redis a fresh schema of the local
PostgreSQL, a private ``redis-server`` and a local S3 server for the key vault). N customers
arrive at R a second; each places an order (``POST /orders``), creates its invoice
(``POST /payments/create``) and makes the NOWPayments sandbox send a signed ``finished`` IPN
(``POST /sandbox/nowpayments/payments/{id}/simulate``). F seconds after the first arrival one
fault is injected. A request the fault makes fail (connection refused or cut, timeout, 5xx, 429,
an IPN the engine did not answer 200) is sent again after a short pause, for up to a minute, as
a customer would; a simulated payment is only ever re-sent for the same invoice, which the engine
records once. Then the script waits until no order is ``paid`` or ``reserved`` any more, or
until 120 s after the last payment went through, and reads every order's history.

It prints a Markdown table, one row per fault:

- fulfilled: orders ``fulfilled`` by then, out of the orders whose history has ``OrderPaid``;
- stranded: paid but not fulfilled by then;
- doubled: paid orders bought more than once from the Kinguin sandbox (``item_count`` > 1 for
  their ``orderExternalId``) or with a key delivered twice (a ``KeyDelivered`` key id repeated);
- tracebacks in the log: occurrences of ``Traceback`` in everything the engine logged.

Below it, one line per fault with what happened on the way. PostgreSQL faults use
``pg_ctlcluster`` on the local cluster (port 5432), which must be run as root or ``postgres``;
PostgreSQL is started again on every exit path.

    .venv/bin/python bench/faults.py
    .venv/bin/python bench/faults.py --orders 150 --rate 5 --fault-at 8 --only pg-restart kill
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psycopg
import redis

from entrypoints.http.auth import mint_token

BIN = Path(sys.executable).parent
BITLOOT = str(BIN / "bitloot")
MOTO = str(BIN / "moto_server")
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
POSTGRES_PORT = "5432"
PRODUCT_ID = "5c9b5f6b2539a4e8f172916a"
JWT_SECRET = f"faults-{secrets.token_hex(24)}"
PAUSE_S = 0.5  # a customer's pause before sending a failed request again
GIVE_UP_S = 60.0  # ... and how long they keep trying one request
REQUEST_TIMEOUT_S = 10.0
IN_FLIGHT = frozenset({"paid", "reserved"})
# The engine's settings are not inherited from the caller's environment: each engine gets
# only what the script sets.
ENGINE_SETTINGS = frozenset(
    {
        "AUDIT_SIGNING_KEY",
        "CATALOG_SYNC_INTERVAL_S",
        "DATABASE_SCHEMA",
        "DATABASE_URL",
        "DOWNLOAD_LINK_SINGLE_USE",
        "EMAIL_FROM",
        "FULFILLMENT_ATTEMPTS",
        "HOST",
        "JWT_AUDIENCE",
        "JWT_ISSUER",
        "JWT_SECRET",
        "KEY_ENCRYPTION_KEY",
        "KINGUIN_API_KEY",
        "KINGUIN_BASE_URL",
        "KINGUIN_SANDBOX_DELAY",
        "KINGUIN_SANDBOX_FAULTS",
        "KINGUIN_SANDBOX_PRODUCTS",
        "KINGUIN_WEBHOOK_SECRET",
        "KINGUIN_WEBHOOK_URL",
        "NOWPAYMENTS_API_KEY",
        "NOWPAYMENTS_BASE_URL",
        "NOWPAYMENTS_IPN_SECRET",
        "NOWPAYMENTS_SANDBOX_FAULTS",
        "ORDERS_PER_MINUTE",
        "ORDERS_PER_MINUTE_PER_IP",
        "PORT",
        "PUBLIC_BASE_URL",
        "R2_ACCESS_KEY_ID",
        "R2_BUCKET",
        "R2_ENDPOINT",
        "R2_SECRET_ACCESS_KEY",
        "REDIS_URL",
        "RESEND_API_KEY",
        "RESEND_BASE_URL",
        "RETRY_BACKOFF_MAX_S",
        "RETRY_BACKOFF_S",
        "REVEALS_PER_MINUTE",
        "SANDBOXES",
        "STUCK_ORDER_AFTER_S",
        "SUPPLIER_PRICE_TOLERANCE_PERCENT",
        "TRUSTED_PROXIES",
        "VAR_DIR",
    }
)
SETTINGS = {
    "JWT_SECRET": JWT_SECRET,
    "KINGUIN_SANDBOX_DELAY": "0.2",
    "ORDERS_PER_MINUTE": "10000",
    "ORDERS_PER_MINUTE_PER_IP": "10000",
}


class BenchError(Exception):
    """A scenario could not be carried out (an engine or a server that would not start)."""


class GaveUp(Exception):
    """A customer stopped trying: a refusal, or a request that kept failing."""


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


# --- the servers around the engine ----------------------------------------------------------------


class Postgres:
    """The local PostgreSQL cluster on port 5432, stopped and started with ``pg_ctlcluster``."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.touched = False

    @classmethod
    def find(cls) -> Postgres | None:
        """The cluster ``main`` on port 5432 under /etc/postgresql, if this user can control it."""
        if not (shutil.which("pg_ctlcluster") and shutil.which("pg_lsclusters")):
            return None
        if os.geteuid() != 0 and os.environ.get("USER") != "postgres":
            return None
        listed = subprocess.run(
            ["pg_lsclusters", "--no-header"],  # noqa: S607 - the system's own tool
            capture_output=True,
            text=True,
            check=False,
        )
        for line in listed.stdout.splitlines():
            version, name, port, status = [*line.split(), "", "", "", ""][:4]
            wanted = name == "main" and port == POSTGRES_PORT and status == "online"
            if wanted and Path(f"/etc/postgresql/{version}/main").is_dir():
                return cls(version)
        return None

    def ctl(self, action: str) -> float:
        """``pg_ctlcluster <version> main <action>``; the seconds it took."""
        self.touched = True
        begun = time.monotonic()
        subprocess.run(  # noqa: S603
            ["pg_ctlcluster", self.version, "main", action],  # noqa: S607
            check=True,
            capture_output=True,
        )
        return time.monotonic() - begun

    def running(self) -> bool:
        status = subprocess.run(  # noqa: S603
            ["pg_ctlcluster", self.version, "main", "status"],  # noqa: S607
            check=False,
            capture_output=True,
        )
        return status.returncode == 0

    def ensure_running(self) -> None:
        """Start the cluster again if this script stopped it."""
        if self.touched and not self.running():
            _progress(f"starting PostgreSQL {self.version} again")
            self.ctl("start")


def _postgres_reachable() -> bool:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _connect_postgres(timeout: float = 30) -> psycopg.Connection[Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class RedisServer:
    """A private ``redis-server`` that keeps nothing on disk, so a restart empties it."""

    def __init__(self, folder: Path) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = folder / "redis.log"
        self._process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        command = [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                   "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]  # fmt: skip
        with self._log.open("ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url).ping()
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    raise BenchError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)
            else:
                return process

    def restart_empty(self) -> float:
        """SIGKILL, then start again on the same port; the seconds it was away."""
        begun = time.monotonic()
        self.stop()
        self._process = self._start()
        return time.monotonic() - begun

    def stop(self) -> None:
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()


class S3Server:
    """A local S3-compatible server (``moto_server``) for the key vault, started on first use."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""

    def url(self) -> str:
        if self._process is None:
            port = _free_port()
            self._process = subprocess.Popen(  # noqa: S603
                [MOTO, "-H", "127.0.0.1", "-p", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.endpoint = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(self.endpoint, timeout=1, trust_env=False)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise BenchError("moto_server did not start") from None
                    time.sleep(0.1)
        return self.endpoint

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)


# --- the engine -----------------------------------------------------------------------------------


@dataclass
class Engine:
    """One ``bitloot serve`` (API, process manager, projections, sweeper, actor threads) that can
    be killed and started again on the same ``VAR_DIR`` and database; one log file per start."""

    folder: Path
    env: dict[str, str]
    url: str
    logs: list[Path] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        """Start it and wait until it answers ``/healthz`` and has imported its catalog."""
        log = self.folder / f"serve-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603
                [BITLOOT, "serve"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the engine exited early; see {log}")
            try:
                answer = httpx.get(
                    f"{self.url}/products", params={"limit": 1}, timeout=2, trust_env=False
                )
                if answer.status_code == 200 and answer.json()["items"]:
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise BenchError(f"the engine was not up with a catalog within {timeout:.0f} s; see {log}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def secret(self, name: str) -> str:
        stored: dict[str, str] = json.loads(
            (Path(self.env["VAR_DIR"]) / "secrets.json").read_text()
        )
        return stored[name]

    def admin(self) -> httpx.Client:
        token = mint_token(JWT_SECRET, "faults-admin", "admin")
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_S,
            trust_env=False,
        )

    def tracebacks(self) -> tuple[int, Counter[str]]:
        """Occurrences of ``Traceback`` in every log, and the exception each one ended with."""
        total, raised = 0, Counter[str]()
        for path in self.logs:
            text = path.read_text(errors="replace") if path.exists() else ""
            total += text.count("Traceback")
            lines = text.splitlines()
            for at, line in enumerate(lines):
                if line.startswith("Traceback (most recent call last)"):
                    raised[_exception_after(lines, at + 1)] += 1
        return total, raised

    def swept(self) -> int:
        """Orders the sweeper re-dispatched, by its log lines."""
        logged = "".join(path.read_text(errors="replace") for path in self.logs if path.exists())
        return sum(int(n) for n in re.findall(r"sweeper re-dispatched (\d+) stuck", logged))


def _exception_after(lines: list[str], start: int) -> str:
    """The exception type a traceback ends with: its first line that is not indented."""
    for line in lines[start:]:
        if line and not line[0].isspace():
            return line.split(":", 1)[0].strip()[:80]
    return "?"


@dataclass
class Stage:
    """What a fault acts on."""

    engine: Engine
    redis: RedisServer | None
    postgres: Postgres | None


class Services:
    """Servers shared by every scenario, and what each wiring needs of them."""

    def __init__(self) -> None:
        self.s3 = S3Server()
        self.postgres = Postgres.find()
        self.postgres_up = _postgres_reachable()
        self.redis_server = shutil.which("redis-server") is not None

    def unavailable(self, scenario: Scenario) -> str | None:
        """Why the scenario cannot be measured here, or None."""
        if scenario.wiring == "sqlite":
            return None
        if scenario.needs_cluster and self.postgres is None:
            return "not measured (no controllable PostgreSQL)"
        if not self.postgres_up:
            return f"not measured (no PostgreSQL at {POSTGRES_URL})"
        if not self.redis_server:
            return "not measured (no redis-server)"
        return None

    def close(self) -> None:
        try:
            if self.postgres is not None:
                self.postgres.ensure_running()
        finally:
            self.s3.stop()


@contextmanager
def staged(scenario: Scenario, services: Services, folder: Path) -> Iterator[Stage]:
    """A fresh engine on the scenario's wiring; everything it used is removed afterwards."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in ENGINE_SETTINGS}
    env |= SETTINGS | {"VAR_DIR": str(folder / "var"), "PORT": str(port)}
    with ExitStack() as cleanup:
        private_redis = None
        if scenario.wiring == "postgresql+redis":
            schema = f"faults_{uuid.uuid4().hex[:10]}"
            with _connect_postgres() as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            cleanup.callback(_drop_schema, schema)
            if services.postgres is not None:
                cleanup.callback(services.postgres.ensure_running)  # before the drop
            private_redis = RedisServer(folder)
            cleanup.callback(private_redis.stop)
            env |= {
                "DATABASE_URL": POSTGRES_URL,
                "DATABASE_SCHEMA": schema,
                "REDIS_URL": private_redis.url,
                "R2_ENDPOINT": services.s3.url(),
                "R2_BUCKET": f"faults-{uuid.uuid4().hex[:10]}",
                "R2_ACCESS_KEY_ID": "test",
                "R2_SECRET_ACCESS_KEY": "test-secret",
            }
        engine = Engine(folder, env, f"http://127.0.0.1:{port}")
        cleanup.callback(engine.stop)
        engine.start()
        yield Stage(engine, private_redis, services.postgres)


def _drop_schema(schema: str) -> None:
    with _connect_postgres() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# --- the faults -----------------------------------------------------------------------------------


def restart_postgres(stage: Stage) -> str:
    assert stage.postgres is not None
    with Outage() as outage:
        took = stage.postgres.ctl("restart")
    return (
        f"`pg_ctlcluster {stage.postgres.version} main restart` took {took:.2f} s, "
        f"new connections refused for {outage.seconds:.2f} s"
    )


def stop_postgres(stage: Stage) -> str:
    assert stage.postgres is not None
    with Outage() as outage:
        stage.postgres.ctl("stop")
        time.sleep(10)
        stage.postgres.ctl("start")
    return f"PostgreSQL stopped for 10 s, connections refused for {outage.seconds:.1f} s"


class Outage:
    """How long PostgreSQL refused new connections while a fault ran: a connection and a
    ``SELECT 1`` every 50 ms, from the start of the fault until one succeeds after it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._probe, daemon=True)

    def __enter__(self) -> Outage:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=60)

    def _probe(self) -> None:
        failing_since: float | None = None
        while True:
            attempt = time.monotonic()
            try:
                with psycopg.connect(POSTGRES_URL, connect_timeout=1) as conn:
                    conn.execute("SELECT 1")
            except psycopg.Error:
                if failing_since is None:
                    failing_since = attempt
            else:
                if failing_since is not None:
                    self.seconds += time.monotonic() - failing_since
                    failing_since = None
                if self._done.is_set():
                    return
            time.sleep(0.05)


def restart_redis(stage: Stage) -> str:
    assert stage.redis is not None
    away = stage.redis.restart_empty()
    return f"redis-server killed (SIGKILL) and started empty, {away:.2f} s away"


def kill_engine(stage: Stage) -> str:
    begun = time.monotonic()
    stage.engine.kill()
    time.sleep(2)
    stage.engine.start()
    return f"engine killed (SIGKILL); serving again {time.monotonic() - begun:.1f} s later"


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    wiring: str
    inject: Callable[[Stage], str]
    needs_cluster: bool = False


SCENARIOS = (
    Scenario("pg-restart", "PostgreSQL restarted (about 0.4 s down)", "postgresql+redis",
             restart_postgres, needs_cluster=True),
    Scenario("pg-stop", "PostgreSQL stopped for 10 s", "postgresql+redis", stop_postgres,
             needs_cluster=True),
    Scenario("redis-restart", "Redis killed and restarted empty", "postgresql+redis",
             restart_redis),
    Scenario("kill", "engine killed (SIGKILL), started again (`bitloot serve`) 2 s later",
             "postgresql+redis", kill_engine),
    Scenario("kill-sqlite", "the same on the embedded default (SQLite)", "sqlite", kill_engine),
)  # fmt: skip


# --- the customers --------------------------------------------------------------------------------


@dataclass
class Purchase:
    """One customer's order: its id once the engine gave one, when its payment went through."""

    order_id: str | None = None
    paid_at: float | None = None
    gave_up: str | None = None


class Customers:
    """Customers arriving at a steady rate, each in a thread of its own, retrying what fails."""

    def __init__(self, url: str, count: int, rate: float) -> None:
        self.url = url
        self.purchases = [Purchase() for _ in range(count)]
        self.rate = rate
        self.retried = 0
        self.started = 0.0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._admin = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'faults-admin', 'admin')}"}

    def start(self) -> None:
        self.started = time.monotonic() + 0.2
        for index in range(len(self.purchases)):
            thread = threading.Thread(target=self._arrive, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _arrive(self, index: int) -> None:
        _sleep_until(self.started + index / self.rate)
        purchase = self.purchases[index]
        token = mint_token(JWT_SECRET, f"faults-{index % 10}", "user")
        with httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=REQUEST_TIMEOUT_S,
            trust_env=False,
        ) as client:
            try:
                self._buy(client, purchase)
            except GaveUp as why:
                purchase.gave_up = str(why)

    def _buy(self, client: httpx.Client, purchase: Purchase) -> None:
        order = {"email": "faults@example.com", "currency": "eur",
                 "items": [{"product_id": PRODUCT_ID, "quantity": 1}]}  # fmt: skip
        placed = self._send(client, "/orders", order, lambda r: r.status_code == 201)
        purchase.order_id = str(placed.json()["id"])
        invoice = self._send(
            client,
            "/payments/create",
            {"order_id": purchase.order_id},
            lambda r: r.status_code in (200, 201),
        )
        self._send(
            client,
            f"/sandbox/nowpayments/payments/{invoice.json()['payment_id']}/simulate",
            {"status": "finished"},
            lambda r: r.status_code == 200 and r.json().get("ipn_status_code") == 200,
            headers=self._admin,
        )
        purchase.paid_at = time.monotonic()

    def _send(
        self,
        client: httpx.Client,
        path: str,
        body: dict[str, Any],
        accepted: Callable[[httpx.Response], bool],
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """POST until accepted; a 4xx other than 429 is a refusal, anything else is retried."""
        give_up = time.monotonic() + GIVE_UP_S
        while True:
            try:
                response = client.post(path, json=body, headers=headers)
            except httpx.TransportError as cut:
                failure = type(cut).__name__
            else:
                if accepted(response):
                    return response
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    raise GaveUp(f"{_route(path)} refused {response.status_code}")
                failure = str(response.status_code)
            if self.stop.is_set() or time.monotonic() > give_up:
                raise GaveUp(f"{_route(path)} still failing ({failure}) after {GIVE_UP_S:.0f} s")
            with self._lock:
                self.retried += 1
            time.sleep(PAUSE_S)


def _route(path: str) -> str:
    return "simulate" if path.endswith("/simulate") else path


# --- one scenario ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table, and what happened on the way."""

    label: str
    cells: tuple[str, str, str, str]
    details: str


def measure(scenario: Scenario, args: argparse.Namespace, services: Services) -> Row:
    """Run one scenario on a fresh engine and audit every order."""
    with (
        tempfile.TemporaryDirectory(prefix=f"faults-{scenario.name}-") as name,
        staged(scenario, services, Path(name)) as stage,
    ):
        customers = Customers(stage.engine.url, args.orders, args.rate)
        customers.start()
        try:
            _sleep_until(customers.started + args.fault_at)
            _progress(f"{scenario.name}: injecting the fault")
            fault = scenario.inject(stage)
            _progress(f"{scenario.name}: {fault}")
            customers.join()
        finally:
            customers.stop.set()
        paid_at = [p.paid_at for p in customers.purchases if p.paid_at is not None]
        last_paid = max(paid_at, default=time.monotonic())
        orders = [p.order_id for p in customers.purchases if p.order_id is not None]
        _progress(f"{scenario.name}: {len(paid_at)} paid; waiting for fulfilment")
        statuses, settled_at = settle(stage.engine, orders, last_paid + args.wait)
        audit = Audit.of(stage.engine, orders, statuses)
        total, raised = stage.engine.tracebacks()
        swept = stage.engine.swept()
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix=f"faults-{scenario.name}-logs-"))
            for log in stage.engine.logs:
                shutil.copy(log, kept)
            _progress(f"{scenario.name}: logs kept in {kept}")
    settled = (
        f"nothing left in paid/reserved {settled_at - last_paid:.1f} s after the last payment"
        if settled_at is not None
        else f"orders still in paid/reserved {args.wait:.0f} s after the last payment"
    )
    gave_up = Counter(p.gave_up for p in customers.purchases if p.gave_up)
    details = "; ".join(
        part
        for part in (
            f"{len(orders)} orders placed, {audit.paid} paid, {customers.retried} requests re-sent",
            f"{sum(gave_up.values())} customers gave up ({_counts(gave_up)})" if gave_up else "",
            f"fault {args.fault_at:g} s in: {fault}",
            settled,
            f"the sweeper re-dispatched {swept} stuck order(s)" if swept else "",
            f"stranded as {_counts(audit.stranded)}" if audit.stranded else "",
            f"tracebacks end in {_counts(raised)}" if raised else "",
        )
        if part
    )
    cells = (f"{audit.fulfilled}/{audit.paid}", str(sum(audit.stranded.values())),
             str(audit.doubled), str(total))  # fmt: skip
    return Row(scenario.label, cells, details)


def settle(engine: Engine, orders: list[str], until: float) -> tuple[dict[str, str], float | None]:
    """Poll until no order is paid or reserved, or ``until``; the statuses then, and when it
    settled (None if it did not)."""
    statuses: dict[str, str] = {}
    with engine.admin() as admin:
        while True:
            for order_id in orders:
                if statuses.get(order_id, "paid") not in IN_FLIGHT:
                    continue
                if time.monotonic() > until:
                    return statuses, None
                try:
                    answer = admin.get(f"/fulfillment/{order_id}/status")
                    if answer.status_code == 200:
                        statuses[order_id] = str(answer.json()["status"])
                except httpx.HTTPError:
                    pass
            if not any(statuses.get(o, "paid") in IN_FLIGHT for o in orders):
                return statuses, time.monotonic()
            if time.monotonic() > until:
                return statuses, None
            time.sleep(1.0)


@dataclass
class Audit:
    """Every order's history and its purchases at the supplier, counted."""

    paid: int = 0
    fulfilled: int = 0
    doubled: int = 0
    stranded: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, engine: Engine, orders: list[str], statuses: dict[str, str]) -> Audit:
        audit = cls()
        kinguin = {"X-Api-Key": engine.secret("KINGUIN_API_KEY")}
        with engine.admin() as admin:
            for order_id in orders:
                history: list[dict[str, Any]] = _get(admin, f"/orders/{order_id}/history")
                if not any(event["type"] == "OrderPaid" for event in history):
                    continue
                audit.paid += 1
                status = statuses.get(order_id, "unknown")
                if status == "fulfilled":
                    audit.fulfilled += 1
                else:
                    audit.stranded[status] += 1
                keys = [e["data"]["key_id"] for e in history if e["type"] == "KeyDelivered"]
                found = _get(
                    admin,
                    "/sandbox/kinguin/v1/order",
                    params={"orderExternalId": order_id},
                    headers=kinguin,
                )
                if found["item_count"] > 1 or len(keys) != len(set(keys)):
                    audit.doubled += 1
        return audit


def _get(client: httpx.Client, path: str, **options: Any) -> Any:
    """GET, asking again while the engine is in trouble (it should not be any more)."""
    for _ in range(30):
        try:
            answer = client.get(path, **options)
            if answer.status_code == 200:
                return answer.json()
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise BenchError(f"GET {path} kept failing")


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{count} x {what}" for what, count in counter.most_common())


# --- the run --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Measure each chosen fault and print the table."""
    args = _parser().parse_args(argv)
    args.orders = min(max(args.orders, 1), 1000)
    args.rate = min(max(args.rate, 0.1), 100.0)
    signal.signal(signal.SIGTERM, _terminate)  # so that PostgreSQL is started again
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    begun = time.monotonic()
    rows: list[Row] = []
    services = Services()
    try:
        for scenario in chosen:
            reason = services.unavailable(scenario)
            if reason is not None:
                rows.append(Row(scenario.label, (reason, "-", "-", "-"), reason))
                continue
            _progress(f"{scenario.name}: {scenario.label}, on {scenario.wiring}")
            try:
                rows.append(measure(scenario, args, services))
            except (BenchError, OSError, psycopg.Error, subprocess.CalledProcessError) as failed:
                _progress(f"{scenario.name}: failed: {failed!r}")
                rows.append(Row(scenario.label, ("failed", "-", "-", "-"), f"failed: {failed!r}"))
    finally:
        services.close()
    report(rows, args, time.monotonic() - begun)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=150, help="customers, one order each")
    parser.add_argument("--rate", type=float, default=5.0, help="customers arriving per second")
    parser.add_argument(
        "--fault-at", type=float, default=8.0, help="fault, seconds after the first arrival"
    )
    parser.add_argument(
        "--wait", type=float, default=120.0, help="seconds after the last payment to wait"
    )
    parser.add_argument(
        "--only", nargs="+", choices=[s.name for s in SCENARIOS], metavar="NAME",
        help=f"faults to measure: {', '.join(s.name for s in SCENARIOS)} (default: all)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the engine logs")
    return parser


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def report(rows: list[Row], args: argparse.Namespace, seconds: float) -> None:
    """The table, what happened in each scenario, the command and the run time."""
    print(
        f"{args.orders} orders arriving at {args.rate:g} a second, one fault injected "
        f"{args.fault_at:g} s in; fulfilled within {args.wait:g} s after the last payment\n"
    )
    print("| fault | fulfilled | stranded | doubled | tracebacks in the log |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row.label} | {' | '.join(row.cells)} |")
    print()
    for row in rows:
        print(f"- {row.label}: {row.details}")
    command = " ".join(shlex.quote(part) for part in ["python", "bench/faults.py", *sys.argv[1:]])
    print(f"\ncommand: {command}")
    print(f"run time: {seconds / 60:.1f} min")


if __name__ == "__main__":
    raise SystemExit(main())
