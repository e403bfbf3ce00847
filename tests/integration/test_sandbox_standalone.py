"""A standalone ``bitloot sandbox`` never signs for a real shop: its controls need an admin
token of the engine, its IPNs are signed with a secret of its own, and it says it is a sandbox
when asked (the engine's start-up probe), over real HTTP against the real process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, Response, get

from adapters.nowpayments_signature import verify
from entrypoints.http.auth import mint_token
from sandboxes.identity import identifies_as_sandbox, probe
from tests.integration.test_sandbox_contract import Delivery
from tests.integration.test_sandbox_faults import IPN_HOOK, receiver
from tests.integration.test_sandbox_restart import PRODUCT_ID, SandboxProcess
from tests.support import free_port, serving

SANDBOX_IPN_SECRET = "standalone-sandbox-ipn-secret-0123456789"
REAL_IPN_SECRET = "the-shops-real-ipn-secret-0123456789"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxProcess]:
    """``bitloot sandbox`` with its own IPN secret, beside a different real one."""
    running = SandboxProcess(
        tmp_path / "var",
        settings={
            "NOWPAYMENTS_SANDBOX_IPN_SECRET": SANDBOX_IPN_SECRET,
            "NOWPAYMENTS_IPN_SECRET": REAL_IPN_SECRET,
        },
    )
    yield running
    running.process.kill()
    running.process.wait()


def invoice(sandbox: SandboxProcess, callback: str | None = None) -> str:
    """A new invoice's id (its IPNs go to ``callback``)."""
    body: dict[str, Any] = {"price_amount": 6.99, "price_currency": "eur", "order_id": "o-1"}
    if callback:
        body["ipn_callback_url"] = callback
    headers = {"x-api-key": sandbox.secret("NOWPAYMENTS_API_KEY")}
    answer = httpx.post(f"{sandbox.url}/sandbox/nowpayments/v1/invoice", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    invoice_id: str = answer.json()["id"]
    return invoice_id


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


def test_controls_need_an_admin_token_of_the_engine(sandbox: SandboxProcess) -> None:
    """Simulate, faults and release answer 401 problem details without a token, with a user
    token or with an admin token of another secret; an admin token of the engine works."""
    simulate = f"/sandbox/nowpayments/payments/{invoice(sandbox)}/simulate"
    secret = sandbox.secret("JWT_SECRET")
    refused = [
        {},
        bearer(mint_token(secret, "eve", "user")),
        bearer(mint_token(secret, "eve", "auditor")),
        bearer(mint_token("another-secret-that-is-long-enough-0123456", "eve", "admin")),
    ]
    controls = [
        ("POST", simulate, {"status": "finished"}),
        ("GET", "/sandbox/kinguin/faults", None),
        ("POST", "/sandbox/kinguin/faults", {}),
        ("GET", "/sandbox/nowpayments/faults", None),
        ("POST", "/sandbox/nowpayments/faults", {}),
        ("POST", f"/sandbox/kinguin/products/{PRODUCT_ID}/release", None),
    ]
    with httpx.Client(base_url=sandbox.url, timeout=10) as http:
        for method, path, body in controls:
            for headers in refused:
                answer = http.request(method, path, json=body, headers=headers)
                assert answer.status_code == 401, (method, path, headers)
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert answer.json()["status"] == 401
            admitted = http.request(method, path, json=body, headers=sandbox.admin())
            assert admitted.status_code == 200, (method, path, admitted.text)


def test_ipns_are_signed_with_the_sandbox_secret_only(sandbox: SandboxProcess) -> None:
    """The IPN a simulated payment sends verifies under NOWPAYMENTS_SANDBOX_IPN_SECRET and not
    under the shop's NOWPAYMENTS_IPN_SECRET: the sandbox cannot pay a real shop's orders."""
    deliveries: list[Delivery] = []
    with serving(receiver(deliveries)) as receiver_url:
        invoice_id = invoice(sandbox, f"{receiver_url}{IPN_HOOK}")
        with sandbox.nowpayments() as nowpayments:
            paid = nowpayments.post(f"/payments/{invoice_id}/simulate", json={"status": "finished"})
        assert paid.json()["ipn_status_code"] == 204, paid.text
    [ipn] = deliveries
    signature = ipn.headers["x-nowpayments-sig"]
    assert verify(SANDBOX_IPN_SECRET, ipn.body, signature)
    assert not verify(REAL_IPN_SECRET, ipn.body, signature)


def test_the_sandbox_says_it_is_one_and_nothing_else_does(sandbox: SandboxProcess) -> None:
    """The probe finds a BitLoot sandbox at its Kinguin base URL; a host answering anything
    else is a real Kinguin at once, and one that does not answer is one after the wait."""
    with httpx.Client(timeout=5) as client:
        assert probe(f"{sandbox.url}/sandbox/kinguin", client) is True
        assert probe(f"{sandbox.url}/sandbox/nowpayments/v1", client) is False
        assert probe(f"http://127.0.0.1:{free_port()}/esa/api", client) is None

    @get("/esa/api/bitloot-sandbox")
    async def impostor() -> Response[str]:
        return Response("hi", headers={"X-Other": "kinguin"})

    @get("/gateway/bitloot-sandbox")
    async def bad_gateway() -> Response[str]:
        return Response("upstream down", status_code=502)

    with serving(Litestar([impostor, bad_gateway])) as other:
        started = time.monotonic()
        assert identifies_as_sandbox(f"{other}/esa/api", wait_s=30) is False
        assert identifies_as_sandbox(f"{other}/elsewhere", wait_s=30) is False  # a 404
        assert time.monotonic() - started < 5, "an answer is final: no waiting"
        assert identifies_as_sandbox(f"{other}/gateway", wait_s=0.5, retry_s=0.1) is False


def test_a_sandbox_that_starts_after_the_engine_is_found(tmp_path: Path) -> None:
    """The probe keeps asking an address nothing listens on yet, and finds the sandbox once
    it is up."""
    port = free_port()
    found: list[bool] = []
    asking = threading.Thread(
        target=lambda: found.append(
            identifies_as_sandbox(f"http://127.0.0.1:{port}/sandbox/kinguin", 30, 0.2)
        )
    )
    asking.start()
    time.sleep(0.5)
    late = SandboxProcess(tmp_path / "var", port=port)
    try:
        asking.join(timeout=30)
    finally:
        late.process.kill()
        late.process.wait()
    assert found == [True]
