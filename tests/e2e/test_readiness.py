"""``/readyz`` knows an empty catalog: a first start answers 503 with ``"catalog": "empty"``
until the first import has finished (every order would be refused as an unknown product); a
restart with a catalog is ready at once, even while Kinguin fails."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import BITLOOT, JWT_SECRET, sandbox_admin, start_process, stop_processes
from tests.support import free_port

FAILING_KINGUIN = json.dumps({"error_rate": 1.0})  # every catalog page answers 500
PRODUCT = "5c9b5f6b2539a4e8f172916a"


def first_readiness(url: str, process: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    """``/readyz`` as soon as ``/healthz`` answers."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return httpx.get(f"{url}/readyz", timeout=5)
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"the engine did not start:\n{log.read_text()}")


def await_ready(url: str, timeout: float = 20) -> httpx.Response:
    """``/readyz`` once it answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/readyz", timeout=5)
        if answer.status_code == 200:
            return answer
        time.sleep(0.1)
    raise AssertionError(f"never ready: {answer.text}")


def test_readiness_waits_for_the_first_catalog_import_only(tmp_path: Path) -> None:
    """503 and ``catalog: empty`` while the first import cannot finish, 200 once it has, and
    200 from the first answer of a restart whose Kinguin fails."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "PORT": str(port),
           "JWT_SECRET": JWT_SECRET, "KINGUIN_SANDBOX_DELAY": "0.1",
           "KINGUIN_SANDBOX_FAULTS": FAILING_KINGUIN}  # fmt: skip
    process = start_process([BITLOOT, "serve"], env, tmp_path / "first.log")
    try:
        empty = first_readiness(url, process, tmp_path / "first.log")
        assert empty.status_code == 503
        assert empty.json() == {"status": "not ready", "checks": {
            "store": "ok", "broker": "ok", "vault": "ok", "catalog": "empty"}}  # fmt: skip
        cleared = httpx.post(f"{url}/sandbox/kinguin/faults", json={}, headers=sandbox_admin())
        assert cleared.status_code == 200
        assert await_ready(url).json()["checks"]["catalog"] == "ok"
        assert httpx.get(f"{url}/products/{PRODUCT}").status_code == 200
    finally:
        stop_processes([process])
    again = start_process([BITLOOT, "serve"], env, tmp_path / "again.log")
    try:
        ready = first_readiness(url, again, tmp_path / "again.log")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["catalog"] == "ok"
    finally:
        stop_processes([again])
