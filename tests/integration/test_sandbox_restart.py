"""The sandboxes keep their state across a restart: ``bitloot sandbox`` is killed with SIGKILL and
started again on the same ``VAR_DIR``; its orders, keys, balance, invoices and payments are still
there, and an order that was under way at the kill completes afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from entrypoints.http.auth import mint_token
from tests.e2e.conftest import BITLOOT, start_process
from tests.support import free_port

PRODUCT_ID = "5c9b5f6b2539a4e8f172916a"


class SandboxProcess:
    """``bitloot sandbox`` on a port of its own; ``kill`` and ``start`` keep ``VAR_DIR``."""

    def __init__(
        self, var_dir: Path, port: int | None = None, settings: dict[str, str] | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.var_dir = var_dir
        self.env = {
            **os.environ,
            "VAR_DIR": str(var_dir),
            "PORT": str(self.port),
            "KINGUIN_SANDBOX_DELAY": "1.0",
            **(settings or {}),
        }
        self.process = self.start()

    def start(self) -> subprocess.Popen[bytes]:
        log = self.var_dir.parent / f"sandbox-{time.monotonic_ns()}.log"
        process = start_process([BITLOOT, "sandbox"], self.env, log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return process
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"sandbox did not start:\n{log.read_text()}")

    def restart_killed(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = self.start()

    def secret(self, name: str) -> str:
        secrets: dict[str, str] = json.loads((self.var_dir / "secrets.json").read_text())
        return secrets[name]

    def kinguin(self) -> httpx.Client:
        headers = {"X-Api-Key": self.secret("KINGUIN_API_KEY")}
        return httpx.Client(base_url=f"{self.url}/sandbox/kinguin", headers=headers, timeout=10)

    def admin(self) -> dict[str, str]:
        """An admin token of the engine whose JWT_SECRET the sandbox shares (its VAR_DIR)."""
        token = mint_token(self.secret("JWT_SECRET"), "sandbox-admin", "admin")
        return {"Authorization": f"Bearer {token}"}

    def nowpayments(self) -> httpx.Client:
        """A NOWPayments client with the API key and an admin token (for ``simulate``)."""
        headers = {"x-api-key": self.secret("NOWPAYMENTS_API_KEY"), **self.admin()}
        return httpx.Client(base_url=f"{self.url}/sandbox/nowpayments", headers=headers, timeout=10)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxProcess]:
    running = SandboxProcess(tmp_path / "var")
    yield running
    running.process.kill()
    running.process.wait()


def place(kinguin: httpx.Client, external_id: str) -> dict[str, object]:
    line = {"productId": PRODUCT_ID, "qty": 1, "price": 6.0}
    answer = kinguin.post("/v2/order", json={"products": [line], "orderExternalId": external_id})
    assert answer.status_code == 201, answer.text
    order: dict[str, object] = answer.json()
    return order


def status(kinguin: httpx.Client, order_id: object) -> str:
    found: str = kinguin.get(f"/v1/order/{order_id}").json()["status"]
    return found


def wait_completed(kinguin: httpx.Client, order_id: object, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while status(kinguin, order_id) != "completed":
        assert time.monotonic() < deadline, f"order {order_id} never completed"
        time.sleep(0.1)


def test_orders_keys_and_balance_survive_a_kill(sandbox: SandboxProcess) -> None:
    with sandbox.kinguin() as kinguin:
        done = place(kinguin, "before-kill-1")
        wait_completed(kinguin, done["orderId"])
        keys_before = kinguin.get(f"/v2/order/{done['orderId']}/keys").json()
        under_way = place(kinguin, "before-kill-2")
        balance_before = kinguin.get("/v1/balance").json()["balance"]
        stock_before = kinguin.get(f"/v2/products/{PRODUCT_ID}").json()["qty"]

    with (sandbox.var_dir / "sandbox" / "kinguin.jsonl").open("ab") as journal:
        journal.write(b'{"type":"plac')  # a line torn by the kill
    sandbox.restart_killed()

    with sandbox.kinguin() as kinguin:
        assert kinguin.get(f"/v2/order/{done['orderId']}/keys").json() == keys_before
        assert kinguin.get("/v1/balance").json()["balance"] == balance_before
        assert kinguin.get(f"/v2/products/{PRODUCT_ID}").json()["qty"] == stock_before
        found = kinguin.get("/v1/order", params={"orderExternalId": "before-kill-2"}).json()
        assert [o["orderId"] for o in found["results"]] == [under_way["orderId"]]
        wait_completed(kinguin, under_way["orderId"])
        again = kinguin.post(
            "/v2/order",
            json={
                "products": [{"productId": PRODUCT_ID, "qty": 1, "price": 6.0}],
                "orderExternalId": "before-kill-1",
            },
        )
        assert again.status_code == 400, "an external id used before the restart is still used"
        after = place(kinguin, "after-kill")
        assert int(str(after["kinguinOrderId"])) > int(str(under_way["kinguinOrderId"]))


def test_invoices_and_payments_survive_a_kill(sandbox: SandboxProcess) -> None:
    with sandbox.nowpayments() as nowpayments:
        invoice = nowpayments.post(
            "/v1/invoice",
            json={"price_amount": 6.99, "price_currency": "eur", "order_id": "o-1"},
        ).json()
        simulated = nowpayments.post(
            f"/payments/{invoice['id']}/simulate", json={"status": "confirming"}
        ).json()

    sandbox.restart_killed()

    with sandbox.nowpayments() as nowpayments:
        payment = nowpayments.get(f"/v1/payment/{simulated['payment_id']}").json()
        assert payment["payment_status"] == "confirming"
        assert nowpayments.get("/payment/", params={"iid": invoice["id"]}).status_code == 200
        finished = nowpayments.post(
            f"/payments/{invoice['id']}/simulate", json={"status": "finished"}
        ).json()
        assert finished["payment_id"] == simulated["payment_id"]
