"""A worker process's ``/healthz`` (compose's health check of the worker service): served beside
its ``/metrics``, 200 while its actor threads run and the store and broker answer, 503 once they
do not."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from entrypoints.bootstrap import Engine, bootstrap
from entrypoints.serving import serve_metrics
from entrypoints.settings import load_settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    settings = load_settings({"VAR_DIR": str(tmp_path), "KINGUIN_SANDBOX_DELAY": "0"})
    engine = bootstrap(settings)
    yield engine
    engine.stop()


def test_a_running_worker_is_healthy_and_a_stopped_one_is_not(engine: Engine) -> None:
    """The checks name each part; the actors' threads ending turns the answer into a 503."""
    port = free_port()
    engine.start(worker=True, followers=False, threads=2)
    server = serve_metrics(engine, "127.0.0.1", port)
    assert server is not None
    try:
        base = f"http://127.0.0.1:{port}"
        healthy = httpx.get(f"{base}/healthz")
        assert healthy.status_code == 200
        assert healthy.json() == {
            "status": "ok",
            "checks": {"store": "ok", "broker": "ok", "actors": "ok"},
        }
        assert "bitloot_actor_messages_total" in httpx.get(f"{base}/metrics").text
        engine.stop()
        stopped = httpx.get(f"{base}/healthz")
        assert stopped.status_code == 503
        assert stopped.json()["checks"]["actors"] == "failing: ActorsStopped"
    finally:
        server.shutdown()
        server.server_close()


def test_a_process_without_actors_is_not_a_healthy_worker(engine: Engine) -> None:
    """An engine that runs no actor threads (an API alone) fails the worker's check."""
    assert engine.worker_health()["actors"] == "failing: ActorsStopped"
