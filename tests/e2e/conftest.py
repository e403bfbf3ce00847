"""Engines started as real processes (``bitloot serve``, ``bitloot worker``) on both wirings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis

from entrypoints.http.auth import mint_token
from tests.conftest import POSTGRES_URL, REDIS_URL
from tests.support import free_port, wait_for_catalog

BITLOOT = str(Path(sys.executable).with_name("bitloot"))


def _worker_database(url: str) -> str:
    """The Redis database of this pytest worker: the URL's database (9 by default) plus the
    worker's number (``gw1`` → 10). Each worker clears its own between engines; up to 7
    workers fit in Redis's 16 databases."""
    parts = urlsplit(url)
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    return urlunsplit(parts._replace(path=f"/{int(parts.path.strip('/') or 0) + worker}"))


E2E_REDIS_URL = _worker_database(
    os.environ.get("TEST_E2E_REDIS_URL")
    or urlunsplit(urlsplit(REDIS_URL)._replace(path="/9"))  # TEST_REDIS_URL's server, from 9
)
JWT_SECRET = "e2e-jwt-secret-that-is-long-enough-0123456789"


@dataclass
class RunningEngine:
    """A started engine: where it listens, how it was configured, what it logged."""

    url: str
    env: dict[str, str]
    logs: list[Path]
    wiring: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    actor_metrics_url: str = ""  # the /metrics of the process running the actors

    def __post_init__(self) -> None:
        self.actor_metrics_url = self.actor_metrics_url or f"{self.url}/metrics"

    def token(self, sub: str, role: str = "user") -> str:
        return mint_token(JWT_SECRET, sub, role)

    def client(self, sub: str, role: str = "user") -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token(sub, role)}"},
            timeout=10,
        )

    def logged(self) -> bytes:
        return b"".join(path.read_bytes() for path in self.logs if path.exists())


def local_secret(env: Mapping[str, str], name: str) -> str:
    """A secret the embedded default generated into ``VAR_DIR/secrets.json``."""
    secrets: dict[str, str] = json.loads((Path(env["VAR_DIR"]) / "secrets.json").read_text())
    return secrets[name]


def sandbox_admin() -> dict[str, str]:
    """Headers for the mounted sandboxes' controls (simulate, faults, release): an admin token."""
    return {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'sandbox-admin', 'admin')}"}


def pay_in_full(client: httpx.Client, payment: dict[str, Any]) -> httpx.Response:
    """Have the mounted NOWPayments sandbox finish ``payment`` (an answer of
    ``POST /payments/create``): it sends the signed ``finished`` IPN."""
    return client.post(
        f"/sandbox/nowpayments/payments/{payment['payment_id']}/simulate",
        json={"status": "finished"},
        headers=sandbox_admin(),
    )


def start_process(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"engine exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                wait_for_catalog(url)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"engine did not become healthy:\n{log.read_text()}")


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def another_api_process(engine: RunningEngine, log: Path) -> Iterator[str]:
    """A second ``bitloot serve --no-worker`` beside ``engine`` (same settings, another port),
    as a load balancer would have; yields its URL."""
    port = free_port()
    second = start_process(
        [BITLOOT, "serve", "--no-worker"], {**engine.env, "PORT": str(port)}, log
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", second, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_processes([second])


def clear_redis() -> None:
    client = redis.Redis.from_url(E2E_REDIS_URL)
    for key in client.scan_iter("bitloot*"):
        client.delete(key)
    client.close()


@contextmanager
def embedded_engine(tmp_path: Path, **settings: str) -> Iterator[RunningEngine]:
    """``bitloot serve`` on the embedded default with these settings, stopped afterwards."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "PORT": str(port),
           "JWT_SECRET": JWT_SECRET, **settings}  # fmt: skip
    log = tmp_path / "serve.log"
    process = start_process([BITLOOT, "serve"], env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield RunningEngine(url=url, env=env, logs=[log], wiring="sqlite", processes=[process])
    finally:
        stop_processes([process])


def distributed_env(request: pytest.FixtureRequest, bucket: str) -> dict[str, str]:
    """The settings of the PostgreSQL + Redis wiring: the test's schema, the e2e Redis database
    and a bucket of the test's S3 server."""
    return {
        "DATABASE_URL": POSTGRES_URL,
        "DATABASE_SCHEMA": request.getfixturevalue("pg_schema"),
        "REDIS_URL": E2E_REDIS_URL,
        "R2_ENDPOINT": request.getfixturevalue("s3_endpoint"),
        "R2_BUCKET": bucket,
        "R2_ACCESS_KEY_ID": "test",
        "R2_SECRET_ACCESS_KEY": "test-secret",
    }


@pytest.fixture
def engine_settings() -> dict[str, str]:
    """Settings a test module adds to every engine it starts (override the fixture)."""
    return {}


@pytest.fixture(params=["sqlite+in-process", "postgresql+redis"])
def engine(
    request: pytest.FixtureRequest, tmp_path: Path, engine_settings: dict[str, str]
) -> Iterator[RunningEngine]:
    """A running engine on the embedded default, or on PostgreSQL + Redis with a worker process."""
    port = free_port()
    env = {
        **os.environ,
        "VAR_DIR": str(tmp_path / "var"),
        "PORT": str(port),
        "JWT_SECRET": JWT_SECRET,
        "KINGUIN_SANDBOX_DELAY": "0.5",
        **engine_settings,
    }
    logs = [tmp_path / "serve.log"]
    serve = [BITLOOT, "serve"]
    if request.param == "postgresql+redis":
        clear_redis()
        env |= distributed_env(request, f"e2e-{port}")
        serve.append("--no-worker")
    processes = [start_process(serve, env, logs[0])]
    url = f"http://127.0.0.1:{port}"
    try:  # stopped whatever happens, a start that never became healthy included
        wait_healthy(url, processes[0], logs[0])
        actor_metrics_url = ""
        if request.param == "postgresql+redis":
            logs.append(tmp_path / "worker.log")
            metrics_port = free_port()
            worker = [BITLOOT, "worker", "--metrics-port", str(metrics_port)]
            processes.append(start_process(worker, env, logs[1]))
            actor_metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        yield RunningEngine(url=url, env=env, logs=logs, wiring=request.param,
                            processes=processes, actor_metrics_url=actor_metrics_url)  # fmt: skip
    finally:
        stop_processes(processes)
        if request.param == "postgresql+redis":
            clear_redis()
