"""An engine beside a standalone ``bitloot sandbox``: it sells through it when configured as
documented (the sandbox's IPN secret as its NOWPAYMENTS_IPN_SECRET, the sandbox started after
the engine), and it refuses to start where a real Kinguin would be paid through it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
from litestar import Litestar, get

from entrypoints.http.auth import mint_token
from tests.e2e.conftest import (
    BITLOOT,
    E2E_REDIS_URL,
    JWT_SECRET,
    RunningEngine,
    start_process,
    stop_processes,
    wait_healthy,
)
from tests.e2e.test_catalog import await_status, order_body
from tests.integration.test_sandbox_restart import SandboxProcess
from tests.support import free_port, serving

SHARED = {  # what the engine and its sandbox must agree on (docs/api.md)
    "JWT_SECRET": JWT_SECRET,
    "KINGUIN_API_KEY": "standalone-kinguin-api-key-0123",
    "KINGUIN_WEBHOOK_SECRET": "standalone-kinguin-webhook-0123",
    "NOWPAYMENTS_API_KEY": "standalone-nowpayments-key-0123",
}
SANDBOX_IPN_SECRET = "standalone-sandbox-ipn-secret-0123456789"


def test_an_engine_sells_through_a_standalone_sandbox(tmp_path: Path) -> None:
    """The engine waits for a sandbox that starts after it, takes its IPNs (signed with the
    sandbox's own secret, given to the engine as NOWPAYMENTS_IPN_SECRET) and fulfils the order;
    the payment simulator wants an admin token of the engine."""
    engine_port, sandbox_port = free_port(), free_port()
    engine_url, sandbox_url = f"http://127.0.0.1:{engine_port}", f"http://127.0.0.1:{sandbox_port}"
    env = {**os.environ, **SHARED, "VAR_DIR": str(tmp_path / "engine"), "PORT": str(engine_port),
           "KINGUIN_BASE_URL": f"{sandbox_url}/sandbox/kinguin",
           "NOWPAYMENTS_BASE_URL": f"{sandbox_url}/sandbox/nowpayments/v1",
           "NOWPAYMENTS_IPN_SECRET": SANDBOX_IPN_SECRET}  # fmt: skip
    log = tmp_path / "serve.log"
    engine = start_process([BITLOOT, "serve"], env, log)
    await_line(log, b"does not answer yet")  # the engine asks before the sandbox is up
    sandbox = SandboxProcess(tmp_path / "sandbox", port=sandbox_port, settings={
        **SHARED, "KINGUIN_SANDBOX_DELAY": "0.1",
        "NOWPAYMENTS_SANDBOX_IPN_SECRET": SANDBOX_IPN_SECRET,
        "KINGUIN_WEBHOOK_URL": f"{engine_url}/kinguin/webhooks"})  # fmt: skip
    try:
        wait_healthy(engine_url, engine, log)
        running = RunningEngine(url=engine_url, env=env, logs=[log], wiring="sqlite")
        with running.client("sam") as sam:
            order = sam.post("/orders", json=order_body()).json()
            payment = sam.post("/payments/create", json={"order_id": order["id"]}).json()
            assert payment["invoice_url"].startswith(sandbox_url)
            simulate = (
                f"{sandbox_url}/sandbox/nowpayments/payments/{payment['payment_id']}/simulate"
            )
            assert httpx.post(simulate, json={"status": "finished"}).status_code == 401
            admin = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'ops', 'admin')}"}
            paid = httpx.post(simulate, json={"status": "finished"}, headers=admin, timeout=10)
            assert paid.json()["ipn_status_code"] == 200, paid.text
            await_status(sam, order["id"], "fulfilled")
    finally:
        stop_processes([engine])
        sandbox.process.kill()
        sandbox.process.wait()


def await_line(log: Path, line: bytes, timeout: float = 30) -> None:
    """Wait until ``log`` holds ``line``."""
    deadline = time.monotonic() + timeout
    while line not in (log.read_bytes() if log.exists() else b""):
        assert time.monotonic() < deadline, f"{line!r} never logged"
        time.sleep(0.05)


@get("/esa/api/v1/products")
async def real_looking_kinguin() -> dict[str, object]:
    """A Kinguin that is not a BitLoot sandbox (it does not say it is one)."""
    return {"results": [], "item_count": 0}


def refused(tmp_path: Path, command: list[str], **settings: str) -> str:
    """Run ``command`` with ``settings``; assert it exits 2 at once and return its stderr."""
    env = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "PORT": str(free_port()), **settings}
    done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)  # noqa: S603
    assert done.returncode == 2, done.stdout + done.stderr
    return done.stderr.decode()


def test_no_process_pays_a_real_kinguin_through_a_sandbox(tmp_path: Path) -> None:
    """``serve`` and ``worker`` refuse a real Kinguin with sandbox payments, whether Kinguin's
    URL tells it (kinguin.net) or the host, asked, does not say it is a BitLoot sandbox."""
    sandbox_payments = "http://127.0.0.1:8801/sandbox/nowpayments/v1"
    message = refused(tmp_path, [BITLOOT, "serve"], NOWPAYMENTS_BASE_URL=sandbox_payments,
                      KINGUIN_BASE_URL="https://gateway.kinguin.net/esa/api")  # fmt: skip
    assert "configuration error: refusing to pay a real Kinguin" in message
    with serving(Litestar([real_looking_kinguin])) as kinguin:
        for command in ([BITLOOT, "serve"], [BITLOOT, "worker"]):
            message = refused(tmp_path, command, KINGUIN_BASE_URL=f"{kinguin}/esa/api",
                              NOWPAYMENTS_BASE_URL=sandbox_payments,
                              REDIS_URL=E2E_REDIS_URL)  # fmt: skip
            assert "did not identify itself as a BitLoot sandbox" in message
            assert "NOWPAYMENTS_BASE_URL" in message
