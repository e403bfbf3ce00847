"""Faults of the built-in sandboxes (DESIGN §6, "Sandboxes"), over real HTTP.

The sandboxes run as the standalone app (``create_sandbox_app``) under uvicorn, their controls
checking for an admin token as ``bitloot sandbox`` does; webhooks and IPNs go to a separate
recording receiver, so each test sees exactly what a real engine would receive.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, post

from adapters.nowpayments_signature import verify
from adapters.revocations import MemoryRevocations
from entrypoints.http.app import admin_check
from entrypoints.http.auth import Tokens, mint_token
from sandboxes.faults import (
    NO_FAULTS,
    FaultDice,
    Faults,
    FaultSwitch,
    InvalidFaults,
    SandboxName,
    decide_api_fault,
    faults_from_env,
    parse_faults,
)
from sandboxes.kinguin import KinguinSandboxConfig, kinguin_sandbox
from sandboxes.nowpayments import NowPaymentsSandboxConfig, nowpayments_sandbox
from sandboxes.standalone import create_sandbox_app
from tests.integration.test_sandbox_contract import (
    EVENT_TIME,
    KINGUIN_ERROR_FIELDS,
    PRODUCT_ID,
    Delivery,
    order_body,
    place,
    wait_for,
)
from tests.support import free_port, serving

KINGUIN_KEY = "kinguin-faults-key"
WEBHOOK_SECRET = "kinguin-faults-webhook-secret"
NOWPAYMENTS_KEY = "nowpayments-faults-key"
IPN_SECRET = "nowpayments-faults-ipn-secret"
TEST_PRODUCT = "00000000000000000000dead"
KINGUIN_HOOK = "/hooks/kinguin"
IPN_HOOK = "/hooks/ipn"
TIMEOUT_S = 1.0
JWT_SECRET = "sandbox-faults-jwt-secret-long-enough-0123456789"
ADMIN = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'faults-admin', 'admin')}"}
PROBLEM_FIELDS = {"title", "status", "detail", "type"}
NOWPAYMENTS_ERROR_FIELDS = {"status", "statusCode", "code", "message"}
NO_KINGUIN_FAULTS = {
    "error_rate": 0.0,
    "rate_limit_rate": 0.0,
    "latency_ms": 0,
    "timeout_rate": 0.0,
    "duplicate_webhooks": False,
    "reorder_webhooks": False,
    "drop_webhook_rate": 0.0,
    "out_of_stock": [],
    "duplicate_external_id": False,
    "price_jump": 0.0,
    "balance": None,
    "product_updates": False,
}
KINGUIN_ONLY = {"out_of_stock", "duplicate_external_id", "price_jump", "balance", "product_updates"}
NO_NOWPAYMENTS_FAULTS = {
    name: value for name, value in NO_KINGUIN_FAULTS.items() if name not in KINGUIN_ONLY
}
ALL_KINGUIN_FAULTS = {
    "error_rate": 0.25,
    "rate_limit_rate": 0.5,
    "latency_ms": 10,
    "timeout_rate": 0.125,
    "duplicate_webhooks": True,
    "reorder_webhooks": True,
    "drop_webhook_rate": 0.75,
    "out_of_stock": [PRODUCT_ID, "another-product"],
    "duplicate_external_id": True,
    "price_jump": 12.5,
    "balance": 250.0,
    "product_updates": True,
}


@dataclass(frozen=True)
class Served:
    """The served sandboxes and what the separate receiver recorded."""

    base_url: str
    receiver_url: str
    deliveries: list[Delivery]

    def received(self, path: str) -> list[Delivery]:
        """Deliveries that reached ``path``, in arrival order."""
        return [delivery for delivery in list(self.deliveries) if delivery.path == path]

    def kinguin_events(self) -> list[dict[str, Any]]:
        """The ``order.status`` payloads received so far."""
        return [json.loads(delivery.body) for delivery in self.received(KINGUIN_HOOK)]

    def ipns(self) -> list[dict[str, Any]]:
        """The IPN payloads received so far."""
        return [json.loads(delivery.body) for delivery in self.received(IPN_HOOK)]

    def kinguin(self, api_key: str | None = KINGUIN_KEY) -> httpx.Client:
        """A Kinguin sandbox client with an admin token (and the API key unless told otherwise)."""
        headers = {"X-Api-Key": api_key} if api_key is not None else {}
        return httpx.Client(base_url=f"{self.base_url}/sandbox/kinguin", headers=ADMIN | headers)

    def nowpayments(self, api_key: str | None = NOWPAYMENTS_KEY) -> httpx.Client:
        """A NOWPayments sandbox client with an admin token (and the API key unless told
        otherwise)."""
        headers = {"x-api-key": api_key} if api_key is not None else {}
        return httpx.Client(
            base_url=f"{self.base_url}/sandbox/nowpayments", headers=ADMIN | headers
        )


def receiver(deliveries: list[Delivery]) -> Litestar:
    """An app recording every webhook and IPN it gets, answering 204."""

    @post([KINGUIN_HOOK, IPN_HOOK], status_code=204)
    async def receive(request: Request[Any, Any, Any]) -> None:
        body = await request.body()
        deliveries.append(Delivery(request.url.path, dict(request.headers), body))

    return Litestar([receive])


@contextmanager
def sandboxes(
    *,
    delay_s: float = 0.2,
    kinguin_faults: Faults = NO_FAULTS,
    nowpayments_faults: Faults = NO_FAULTS,
    rng: random.Random | None = None,
) -> Iterator[Served]:
    """Serve the standalone sandbox app and a recording receiver, each on a free port."""
    deliveries: list[Delivery] = []
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with serving(receiver(deliveries)) as receiver_url:
        kinguin = KinguinSandboxConfig(
            api_key=KINGUIN_KEY,
            webhook_secret=WEBHOOK_SECRET,
            webhook_url=f"{receiver_url}{KINGUIN_HOOK}",
            delay_s=delay_s,
            faults=kinguin_faults,
            timeout_s=TIMEOUT_S,
            rng=rng,
        )
        nowpayments = NowPaymentsSandboxConfig(
            api_key=NOWPAYMENTS_KEY,
            ipn_secret=IPN_SECRET,
            public_base_url=base_url,
            faults=nowpayments_faults,
            timeout_s=TIMEOUT_S,
            rng=rng,
        )
        check = admin_check(Tokens(JWT_SECRET, MemoryRevocations()))
        with serving(create_sandbox_app(kinguin, nowpayments, control_check=check), port=port):
            yield Served(base_url, receiver_url, deliveries)


@pytest.fixture
def stack() -> Iterator[Served]:
    """Fresh fault-free sandboxes whose Kinguin orders complete after 0.2 s."""
    with sandboxes() as served:
        yield served


@pytest.fixture
def kinguin(stack: Served) -> Iterator[httpx.Client]:
    """An authorised Kinguin sandbox client."""
    with stack.kinguin() as client:
        yield client


@pytest.fixture
def nowpayments(stack: Served) -> Iterator[httpx.Client]:
    """An authorised NOWPayments sandbox client."""
    with stack.nowpayments() as client:
        yield client


def set_faults(client: httpx.Client, faults: dict[str, object]) -> dict[str, Any]:
    """Replace the sandbox's faults (asserting 200) and return the echoed set."""
    response = client.post("/faults", json=faults)
    assert response.status_code == 200, response.text
    echoed: dict[str, Any] = response.json()
    return echoed


def count_orders(client: httpx.Client, external_id: str) -> int:
    """How many Kinguin orders carry ``external_id``."""
    response = client.get("/v1/order", params={"orderExternalId": external_id})
    assert response.status_code == 200, response.text
    count: int = response.json()["item_count"]
    return count


def create_invoice(client: httpx.Client, stack: Served) -> dict[str, Any]:
    """Create an invoice whose IPNs go to the receiver (asserting 200)."""
    body = {
        "price_amount": 9.99,
        "price_currency": "eur",
        "order_id": "ORD-F",
        "ipn_callback_url": f"{stack.receiver_url}{IPN_HOOK}",
    }
    response = client.post("/v1/invoice", json=body)
    assert response.status_code == 200, response.text
    invoice: dict[str, Any] = response.json()
    return invoice


def simulate(client: httpx.Client, invoice_id: str, status: str) -> dict[str, Any]:
    """Drive the invoice's payment to ``status`` (asserting 200) and return the answer."""
    response = client.post(f"/payments/{invoice_id}/simulate", json={"status": status})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# --- control routes ----------------------------------------------------------------------------


def test_faults_start_empty_and_need_no_api_key(stack: Served) -> None:
    """GET /faults without any key lists every applicable field at its no-fault default."""
    with stack.kinguin(api_key=None) as kinguin, stack.nowpayments(api_key=None) as nowpayments:
        assert kinguin.get("/faults").json() == NO_KINGUIN_FAULTS
        assert nowpayments.get("/faults").json() == NO_NOWPAYMENTS_FAULTS


def test_kinguin_faults_are_set_replaced_and_cleared(kinguin: httpx.Client) -> None:
    """POST replaces the whole set and echoes it, GET returns it, {} clears everything."""
    assert set_faults(kinguin, ALL_KINGUIN_FAULTS) == ALL_KINGUIN_FAULTS
    assert kinguin.get("/faults").json() == ALL_KINGUIN_FAULTS
    replaced = set_faults(kinguin, {"latency_ms": 5})
    assert replaced == {**NO_KINGUIN_FAULTS, "latency_ms": 5}
    assert set_faults(kinguin, {}) == NO_KINGUIN_FAULTS
    assert kinguin.get("/faults").json() == NO_KINGUIN_FAULTS


def test_nowpayments_faults_are_set_and_cleared(nowpayments: httpx.Client) -> None:
    """NOWPayments takes the faults that apply to it and lists only those."""
    applicable = {
        name: value for name, value in ALL_KINGUIN_FAULTS.items() if name not in KINGUIN_ONLY
    }
    assert set_faults(nowpayments, applicable) == applicable
    assert nowpayments.get("/faults").json() == applicable
    assert set_faults(nowpayments, {}) == NO_NOWPAYMENTS_FAULTS


@pytest.mark.parametrize(
    "body",
    [
        b'{"chaos": true}',
        b'{"error_rate": 1.5}',
        b'{"rate_limit_rate": -0.1}',
        b'{"timeout_rate": "0.5"}',
        b'{"drop_webhook_rate": 2}',
        b'{"latency_ms": -1}',
        b'{"latency_ms": 1.5}',
        b'{"duplicate_webhooks": 1}',
        b'{"out_of_stock": "5c9b68662539a4e8f17ae2fe"}',
        b'{"out_of_stock": [""]}',
        b'{"price_jump": -5}',
        b'{"balance": -1}',
        b'{"balance": "100"}',
        b'{"product_updates": "yes"}',
        b"[]",
        b"null",
        b"{not json",
    ],
    ids=[
        "unknown",
        "rate>1",
        "rate<0",
        "rate-str",
        "drop>1",
        "latency<0",
        "latency-float",
        "bool-int",
        "oos-str",
        "oos-empty-id",
        "jump<0",
        "balance<0",
        "balance-str",
        "updates-str",
        "array",
        "null",
        "not-json",
    ],
)
def test_bad_faults_are_400_problems_and_change_nothing(stack: Served, body: bytes) -> None:
    """Unknown fields, wrong types, out-of-range values or bad JSON: 400 problem, set kept."""
    for client in (stack.kinguin(api_key=None), stack.nowpayments(api_key=None)):
        with client:
            before = client.get("/faults").json()
            response = client.post(
                "/faults", content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 400
            assert response.headers["content-type"].startswith("application/problem+json")
            problem = response.json()
            assert set(problem) == PROBLEM_FIELDS
            assert problem["status"] == 400
            assert client.get("/faults").json() == before


@pytest.mark.parametrize("field", sorted(KINGUIN_ONLY))
def test_nowpayments_refuses_kinguin_only_faults(nowpayments: httpx.Client, field: str) -> None:
    """Naming a Kinguin-only fault on NOWPayments is a 400 problem saying it does not apply."""
    value = ALL_KINGUIN_FAULTS[field]
    response = nowpayments.post("/faults", json={field: value})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.json()["detail"]
    assert "does not apply" in response.json()["detail"]
    assert nowpayments.get("/faults").json() == NO_NOWPAYMENTS_FAULTS


# --- Kinguin API faults --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "kind"),
    [
        ("error_rate", 500, "Error"),
        ("rate_limit_rate", 429, "Http"),
        ("timeout_rate", 504, "HttpClient"),
    ],
)
def test_kinguin_api_fault_answers_and_creates_no_order(
    stack: Served, kinguin: httpx.Client, fault: str, status: int, kind: str
) -> None:
    """A faulted POST /v2/order answers a Kinguin error body and leaves no order behind."""
    set_faults(kinguin, {fault: 1})
    external_id = f"ext-{fault}"
    started = time.monotonic()
    response = kinguin.post("/v2/order", json=order_body(external_id=external_id))
    elapsed = time.monotonic() - started
    assert response.status_code == status
    error = response.json()
    assert set(error) >= KINGUIN_ERROR_FIELDS
    assert (error["kind"], error["status"], error["method"]) == (kind, status, "POST")
    if fault == "timeout_rate":
        assert TIMEOUT_S <= elapsed < TIMEOUT_S + 4
    if fault == "rate_limit_rate":
        assert response.headers["retry-after"] == "1"
    set_faults(kinguin, {})
    assert count_orders(kinguin, external_id) == 0
    time.sleep(0.4)  # past the completion delay: no order means no webhook either
    assert stack.received(KINGUIN_HOOK) == []


def test_kinguin_faults_apply_after_the_key_check(stack: Served, kinguin: httpx.Client) -> None:
    """A request without the key still gets 401; error_rate=1 turns every API route into 500."""
    set_faults(kinguin, {"error_rate": 1.0})
    with stack.kinguin(api_key=None) as anonymous:
        assert anonymous.get("/v1/balance").status_code == 401
    for path in ("/v1/balance", "/v1/order", "/v1/order/NOPE", "/v2/order/NOPE/keys"):
        assert kinguin.get(path).status_code == 500


def test_kinguin_latency_delays_api_requests(kinguin: httpx.Client) -> None:
    """latency_ms=300 makes an API request take at least 0.3 s and then succeed."""
    set_faults(kinguin, {"latency_ms": 300})
    started = time.monotonic()
    response = kinguin.get("/v1/balance")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200


def test_out_of_stock_product_is_unavailable(kinguin: httpx.Client) -> None:
    """An out_of_stock productId answers 400 ProductUnavailable naming it; other products sell."""
    set_faults(kinguin, {"out_of_stock": [PRODUCT_ID]})
    response = kinguin.post("/v2/order", json=order_body(external_id="ext-oos"))
    assert response.status_code == 400
    error = response.json()
    assert set(error) >= KINGUIN_ERROR_FIELDS
    assert (error["kind"], error["status"]) == ("ProductUnavailable", 400)
    assert PRODUCT_ID in error["detail"]
    assert count_orders(kinguin, "ext-oos") == 0
    other = {"products": [{"productId": TEST_PRODUCT, "qty": 1, "price": 1.5}]}
    assert kinguin.post("/v2/order", json=other).status_code == 201


def test_duplicate_external_id_fault_creates_exactly_one_order(
    stack: Served, kinguin: httpx.Client
) -> None:
    """duplicate_external_id answers 400 "already used" yet the search finds exactly one order."""
    set_faults(kinguin, {"duplicate_external_id": True})
    response = kinguin.post("/v2/order", json=order_body(external_id="ext-lost-201"))
    assert response.status_code == 400
    error = response.json()
    assert (error["kind"], error["detail"]) == (
        "ConstraintViolation",
        "orderExternalId already used",
    )
    found = kinguin.get("/v1/order", params={"orderExternalId": "ext-lost-201"}).json()
    assert found["item_count"] == 1
    [order] = found["results"]
    wait_for(lambda: [e["status"] for e in stack.kinguin_events()] == ["processing", "completed"])
    assert {event["orderId"] for event in stack.kinguin_events()} == {order["orderId"]}


# --- Kinguin webhook faults -----------------------------------------------------------------------


def test_dropped_webhooks_are_never_sent(
    stack: Served, kinguin: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """drop_webhook_rate=1: the order completes but no webhook arrives; drops are logged."""
    caplog.set_level(logging.INFO, logger="sandboxes.kinguin")
    set_faults(kinguin, {"drop_webhook_rate": 1})
    order = place(kinguin, order_body())
    time.sleep(1.0)
    assert stack.received(KINGUIN_HOOK) == []
    assert kinguin.get(f"/v1/order/{order['orderId']}").json()["status"] == "completed"
    assert caplog.text.count("dropped by fault") == 2


def test_duplicate_webhooks_are_sent_twice(stack: Served, kinguin: httpx.Client) -> None:
    """duplicate_webhooks: each order.status webhook arrives twice, byte for byte."""
    set_faults(kinguin, {"duplicate_webhooks": True})
    place(kinguin, order_body(external_id="ext-twice"))
    wait_for(lambda: len(stack.received(KINGUIN_HOOK)) == 4)
    hooks = stack.received(KINGUIN_HOOK)
    statuses = [json.loads(hook.body)["status"] for hook in hooks]
    assert statuses == ["processing", "processing", "completed", "completed"]
    assert hooks[0].body == hooks[1].body
    assert hooks[2].body == hooks[3].body
    assert all(hook.headers["x-event-secret"] == WEBHOOK_SECRET for hook in hooks)


def test_reordered_webhooks_send_a_stale_processing_last(
    stack: Served, kinguin: httpx.Client
) -> None:
    """reorder_webhooks: completed arrives first, then processing with an older updatedAt."""
    set_faults(kinguin, {"reorder_webhooks": True})
    order = place(kinguin, order_body(external_id="ext-reorder"))
    wait_for(lambda: len(stack.received(KINGUIN_HOOK)) == 2)
    time.sleep(0.3)  # nothing else follows
    completed, processing = stack.kinguin_events()
    assert (completed["status"], processing["status"]) == ("completed", "processing")
    assert completed["orderId"] == processing["orderId"] == order["orderId"]
    assert EVENT_TIME.match(processing["updatedAt"])
    assert processing["updatedAt"] < completed["updatedAt"]
    assert processing["updatedAt"].startswith(order["createdAt"][:19])


def test_fractional_rates_follow_the_injected_rng() -> None:
    """With a seeded rng, error_rate=0.5 fails exactly the requests the same seed predicts."""
    seed, rate, requests = 20260731, 0.5, 24
    replay = random.Random(seed)  # noqa: S311 - fault dice, not cryptography
    predicted = [replay.random() < rate for _ in range(requests)]
    assert True in predicted
    assert False in predicted
    rng = random.Random(seed)  # noqa: S311
    with sandboxes(rng=rng) as served, served.kinguin() as client:
        set_faults(client, {"error_rate": rate})
        statuses = [client.get("/v1/balance").status_code for _ in range(requests)]
    assert statuses == [500 if fails else 200 for fails in predicted]


def test_startup_faults_come_from_the_config() -> None:
    """Faults given in the config are in force from the first request and listed by GET."""
    faults = Faults(rate_limit_rate=1.0, out_of_stock=(PRODUCT_ID,))
    with sandboxes(kinguin_faults=faults) as served, served.kinguin() as client:
        listed = client.get("/faults").json()
        assert listed == {**NO_KINGUIN_FAULTS, "rate_limit_rate": 1.0, "out_of_stock": [PRODUCT_ID]}
        assert client.get("/v1/balance").status_code == 429


def test_startup_balance_fault_sets_the_starting_balance() -> None:
    """A start-up balance fault replaces the configured initial balance."""
    with sandboxes(kinguin_faults=Faults(balance=3.5)) as served, served.kinguin() as client:
        assert client.get("/v1/balance").json() == {"balance": 3.5}
        assert client.get("/faults").json()["balance"] == 3.5


# --- NOWPayments ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("error_rate", 500, "INTERNAL_ERROR"),
        ("rate_limit_rate", 429, "TOO_MANY_REQUESTS"),
        ("timeout_rate", 504, "GATEWAY_TIMEOUT"),
    ],
)
def test_nowpayments_api_fault_answers_the_vendor_error_body(
    nowpayments: httpx.Client, fault: str, status: int, code: str
) -> None:
    """A faulted /v1 request answers the vendor's error body with the fault's status and code."""
    set_faults(nowpayments, {fault: 1})
    started = time.monotonic()
    response = nowpayments.post("/v1/invoice", json={"price_amount": 5, "price_currency": "eur"})
    elapsed = time.monotonic() - started
    assert response.status_code == status
    error = response.json()
    assert set(error) == NOWPAYMENTS_ERROR_FIELDS
    assert (error["status"], error["statusCode"], error["code"]) == (False, status, code)
    if fault == "timeout_rate":
        assert TIMEOUT_S <= elapsed < TIMEOUT_S + 4


def test_nowpayments_faults_spare_simulate_and_the_invoice_page(
    stack: Served, nowpayments: httpx.Client
) -> None:
    """API faults hit only /v1: the invoice page and simulate (no key needed) keep working."""
    invoice = create_invoice(nowpayments, stack)
    set_faults(nowpayments, {"error_rate": 1, "latency_ms": 0})
    assert nowpayments.get("/v1/status").status_code == 500
    with stack.nowpayments(api_key=None) as customer:
        assert customer.get(f"/payment/?iid={invoice['id']}").status_code == 200
        assert simulate(customer, invoice["id"], "finished")["ipn_status_code"] == 204
        assert customer.get("/v1/status").status_code == 403


def test_ipns_are_dropped(stack: Served, nowpayments: httpx.Client) -> None:
    """drop_webhook_rate=1: simulate sets the status, reports no IPN status, nothing arrives."""
    invoice = create_invoice(nowpayments, stack)
    set_faults(nowpayments, {"drop_webhook_rate": 1})
    result = simulate(nowpayments, invoice["id"], "finished")
    assert result["ipn_status_code"] is None
    assert stack.received(IPN_HOOK) == []
    payment = nowpayments.get(f"/v1/payment/{result['payment_id']}").json()
    assert payment["payment_status"] == "finished"


def test_ipns_are_duplicated(stack: Served, nowpayments: httpx.Client) -> None:
    """duplicate_webhooks: each IPN arrives twice with the same body and a valid signature."""
    invoice = create_invoice(nowpayments, stack)
    set_faults(nowpayments, {"duplicate_webhooks": True})
    assert simulate(nowpayments, invoice["id"], "finished")["ipn_status_code"] == 204
    first, second = stack.received(IPN_HOOK)
    assert first.body == second.body
    assert verify(IPN_SECRET, second.body, second.headers["x-nowpayments-sig"])
    assert json.loads(first.body)["payment_status"] == "finished"


def test_ipns_are_reordered(stack: Served, nowpayments: httpx.Client) -> None:
    """reorder_webhooks: after the new IPN the previous status's IPN is re-sent, stale."""
    invoice = create_invoice(nowpayments, stack)
    set_faults(nowpayments, {"reorder_webhooks": True})
    simulate(nowpayments, invoice["id"], "waiting")
    assert [ipn["payment_status"] for ipn in stack.ipns()] == ["waiting"]
    simulate(nowpayments, invoice["id"], "finished")
    assert [ipn["payment_status"] for ipn in stack.ipns()] == ["waiting", "finished", "waiting"]
    first, _, stale = stack.received(IPN_HOOK)
    assert stale.body == first.body
    assert verify(IPN_SECRET, stale.body, stale.headers["x-nowpayments-sig"])


def test_startup_faults_refuse_kinguin_only_fields_for_nowpayments() -> None:
    """A NOWPayments config carrying a Kinguin-only fault is refused when the router is built."""
    config = NowPaymentsSandboxConfig(
        api_key="k", ipn_secret="s", public_base_url="http://x", faults=Faults(out_of_stock=("p",))
    )
    with pytest.raises(InvalidFaults, match="out_of_stock"):
        nowpayments_sandbox(config)


def test_startup_faults_out_of_range_are_refused() -> None:
    """A config Faults built in Python with an out-of-range value is refused by the router."""
    config = KinguinSandboxConfig("k", "s", "http://x/hooks", 0.1, faults=Faults(error_rate=2.0))
    with pytest.raises(InvalidFaults, match="error_rate"):
        kinguin_sandbox(config)


# --- standalone app ---------------------------------------------------------------------------


def test_standalone_app_answers_healthz(stack: Served) -> None:
    """The standalone sandbox app answers GET /healthz with {"status": "ok"}."""
    response = httpx.get(f"{stack.base_url}/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


# --- parsing, environment, dice -------------------------------------------------------------------


def test_parse_faults_reads_bytes_and_text() -> None:
    """parse_faults accepts bytes or str and fills unspecified fields with no-fault defaults."""
    parsed = parse_faults('{"latency_ms": 20, "out_of_stock": ["a", "b"]}')
    assert parsed == Faults(latency_ms=20, out_of_stock=("a", "b"))
    assert parse_faults(b"{}") == NO_FAULTS


def test_faults_from_env_reads_each_sandbox_variable() -> None:
    """KINGUIN_SANDBOX_FAULTS and NOWPAYMENTS_SANDBOX_FAULTS feed their own sandbox."""
    environ = {
        "KINGUIN_SANDBOX_FAULTS": '{"out_of_stock": ["p1"], "error_rate": 0.1}',
        "NOWPAYMENTS_SANDBOX_FAULTS": '{"duplicate_webhooks": true}',
    }
    assert faults_from_env(environ, "kinguin") == Faults(out_of_stock=("p1",), error_rate=0.1)
    assert faults_from_env(environ, "nowpayments") == Faults(duplicate_webhooks=True)


def test_parse_faults_reads_the_catalog_faults() -> None:
    """price_jump, balance and product_updates parse; balance defaults to None (no change)."""
    parsed = parse_faults('{"price_jump": 7, "balance": 12.5, "product_updates": true}')
    assert parsed == Faults(price_jump=7.0, balance=12.5, product_updates=True)
    assert NO_FAULTS.balance is None
    with pytest.raises(InvalidFaults, match="price_jump"):
        parse_faults('{"price_jump": 3}', sandbox="nowpayments")


def test_fault_switch_tells_its_listener_every_change() -> None:
    """FaultSwitch calls on_change with the previous and the new set after each replace."""
    changes: list[tuple[Faults, Faults]] = []
    switch = FaultSwitch("kinguin", on_change=lambda old, new: changes.append((old, new)))
    switch.replace('{"balance": 5}')
    switch.replace("{}")
    assert changes == [(NO_FAULTS, Faults(balance=5.0)), (Faults(balance=5.0), NO_FAULTS)]


@pytest.mark.parametrize("environ", [{}, {"KINGUIN_SANDBOX_FAULTS": "  "}])
def test_faults_from_env_defaults_to_none(environ: dict[str, str]) -> None:
    """An unset or blank variable means no faults."""
    assert faults_from_env(environ, "kinguin") == NO_FAULTS


@pytest.mark.parametrize(
    ("name", "variable", "value"),
    [
        ("kinguin", "KINGUIN_SANDBOX_FAULTS", "{error_rate: 1}"),
        ("kinguin", "KINGUIN_SANDBOX_FAULTS", '{"error_rate": 3}'),
        ("nowpayments", "NOWPAYMENTS_SANDBOX_FAULTS", "not json"),
        ("nowpayments", "NOWPAYMENTS_SANDBOX_FAULTS", '{"duplicate_external_id": true}'),
    ],
    ids=["kinguin-bad-json", "kinguin-out-of-range", "nowpayments-bad-json", "kinguin-only"],
)
def test_faults_from_env_names_the_bad_variable(
    name: SandboxName, variable: str, value: str
) -> None:
    """Invalid JSON or values raise a ValueError naming the variable."""
    with pytest.raises(ValueError, match=variable):
        faults_from_env({variable: value}, name)


def test_fault_dice_draws_only_for_fractional_rates() -> None:
    """Rates 0 and 1 are certain and draw nothing; others compare one draw with the rate."""

    class CountingRandom(random.Random):
        draws = 0

        def random(self) -> float:
            self.draws += 1
            return 0.5

    rng = CountingRandom()
    dice = FaultDice(rng)
    assert (dice.roll(0.0), dice.roll(1.0), rng.draws) == (False, True, 0)
    assert (dice.roll(0.6), dice.roll(0.4), rng.draws) == (True, False, 2)


def test_api_fault_priority_is_timeout_then_rate_limit_then_error() -> None:
    """When several API faults are certain, timeout wins over rate limit, which wins over error."""
    dice = FaultDice(random.Random(1))  # noqa: S311
    assert decide_api_fault(Faults(), dice) is None
    assert decide_api_fault(Faults(error_rate=1), dice) == "error"
    assert decide_api_fault(Faults(error_rate=1, rate_limit_rate=1), dice) == "rate_limit"
    everything = Faults(error_rate=1, rate_limit_rate=1, timeout_rate=1)
    assert decide_api_fault(everything, dice) == "timeout"
