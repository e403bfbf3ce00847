"""The stage of ``bench/faults.py``: the servers around the engine, a fresh engine per scenario
(a real ``bitloot serve`` process), and the faults injected into them."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from entrypoints.http.auth import mint_token

if not __package__:  # run as ``python bench/faults.py``: the repository is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.servers import RedisServer, free_port, moto_server

BIN = Path(sys.executable).parent
BITLOOT = str(BIN / "bitloot")
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


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sleep_until(moment: float) -> None:
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
            progress(f"starting PostgreSQL {self.version} again")
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
        self._s3 = ExitStack()  # a local S3 server, started when a scenario first needs it
        self._s3_endpoint: str | None = None
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
            self._s3.close()

    def s3_url(self) -> str:
        """The local S3 server's endpoint (started on first use)."""
        if self._s3_endpoint is None:
            self._s3_endpoint = self._s3.enter_context(moto_server())
        return self._s3_endpoint


@contextmanager
def staged(scenario: Scenario, services: Services, folder: Path) -> Iterator[Stage]:
    """A fresh engine on the scenario's wiring; everything it used is removed afterwards."""
    port = free_port()
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
            private_redis = RedisServer(log=folder / "redis.log")
            cleanup.callback(private_redis.stop)
            env |= {
                "DATABASE_URL": POSTGRES_URL,
                "DATABASE_SCHEMA": schema,
                "REDIS_URL": private_redis.url,
                "R2_ENDPOINT": services.s3_url(),
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
