"""Contract tests of the built-in Kinguin and NOWPayments sandboxes, over real HTTP.

Both routers and a webhook receiver run in one Litestar app under uvicorn; the tests talk to it
with httpx exactly as the engine's adapters will, and check the shapes of EXTERNAL_APIS §1 and §2.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, post

from adapters.nowpayments_signature import canonical_body, sign, verify
from sandboxes.kinguin import KinguinSandboxConfig, kinguin_sandbox
from sandboxes.nowpayments import NowPaymentsSandboxConfig, nowpayments_sandbox
from tests.support import free_port, serving, wait_until

KINGUIN_KEY = "kinguin-test-key"
WEBHOOK_SECRET = "kinguin-webhook-secret"
NOWPAYMENTS_KEY = "nowpayments-test-key"
IPN_SECRET = "nowpayments-ipn-secret"
KINGUIN_HOOK = "/test-hooks/kinguin"
IPN_HOOK = "/test-hooks/ipn"

KINGUIN_UNAUTHORIZED = {
    "kind": "Authorization",
    "status": 401,
    "detail": "Invalid authentication data.",
    "type": "Unauthorized",
}
NOWPAYMENTS_FORBIDDEN = {
    "status": False,
    "statusCode": 403,
    "code": "INVALID_API_KEY",
    "message": "Invalid api key",
}
KINGUIN_ERROR_FIELDS = {"kind", "status", "title", "detail", "path", "method", "trace", "timestamp"}
ORDER_FIELDS = {
    "orderId",
    "orderExternalId",
    "kinguinOrderId",
    "status",
    "totalPrice",
    "requestTotalPrice",
    "paymentPrice",
    "userEmail",
    "storeId",
    "createdAt",
    "totalQty",
    "isPreorder",
    "preorderReleaseDate",
    "products",
}
ORDER_PRODUCT_FIELDS = {
    "kinguinId",
    "productId",
    "offerId",
    "qty",
    "name",
    "price",
    "totalPrice",
    "requestPrice",
    "isPreorder",
    "releaseDate",
    "keyType",
    "keys",
}
KEY_FIELDS = {"id", "serial", "type", "name", "kinguinId", "offerId", "productId"}
INVOICE_FIELDS = {
    "id",
    "token_id",
    "order_id",
    "order_description",
    "price_amount",
    "price_currency",
    "pay_currency",
    "ipn_callback_url",
    "invoice_url",
    "success_url",
    "cancel_url",
    "partially_paid_url",
    "payout_currency",
    "created_at",
    "updated_at",
    "is_fixed_rate",
    "is_fee_paid_by_user",
}
IPN_FIELDS = {
    "payment_id",
    "parent_payment_id",
    "invoice_id",
    "payment_status",
    "pay_address",
    "payin_extra_id",
    "price_amount",
    "price_currency",
    "pay_amount",
    "actually_paid",
    "actually_paid_at_fiat",
    "pay_currency",
    "order_id",
    "order_description",
    "purchase_id",
    "outcome_amount",
    "outcome_currency",
    "payment_extra_ids",
    "fee",
}
PAYMENT_FIELDS = {
    "payment_id",
    "invoice_id",
    "payment_status",
    "pay_address",
    "price_amount",
    "price_currency",
    "pay_amount",
    "actually_paid",
    "pay_currency",
    "order_id",
    "order_description",
    "purchase_id",
    "outcome_amount",
    "outcome_currency",
    "created_at",
    "updated_at",
}

ORDER_ID = re.compile(r"^[A-Z0-9]{11}$")
HEX_24 = re.compile(r"^[0-9a-f]{24}$")
SERIAL = re.compile(r"^[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}$")
ORDER_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
PRODUCT_ID = "5c9b5f6b2539a4e8f172916a"  # Counter-Strike: Source, offers at 5.79 and 6.49
CHEAPEST_PRICE = 5.79


@dataclass(frozen=True)
class Delivery:
    """One request the test receiver got: path, lower-cased headers, raw body."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Stack:
    """The served app: its base URL and what its webhook receiver recorded."""

    base_url: str
    deliveries: list[Delivery]

    def received(self, path: str) -> list[Delivery]:
        """Deliveries that reached ``path``."""
        return [delivery for delivery in list(self.deliveries) if delivery.path == path]

    def kinguin(self, api_key: str | None = KINGUIN_KEY) -> httpx.Client:
        """A client for the Kinguin sandbox, as the adapter would build it."""
        headers = {"X-Api-Key": api_key} if api_key is not None else {}
        return httpx.Client(base_url=f"{self.base_url}/sandbox/kinguin", headers=headers)

    def nowpayments(self, api_key: str | None = NOWPAYMENTS_KEY) -> httpx.Client:
        """A client for the NOWPayments sandbox (vendor API part and control routes)."""
        headers = {"x-api-key": api_key} if api_key is not None else {}
        return httpx.Client(base_url=f"{self.base_url}/sandbox/nowpayments", headers=headers)


@contextmanager
def sandboxes(delay_s: float = 0.2, *, kinguin_webhook_url: str | None = None) -> Iterator[Stack]:
    """Serve both sandboxes plus a recording webhook receiver on a free loopback port."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    deliveries: list[Delivery] = []

    @post([KINGUIN_HOOK, IPN_HOOK], status_code=204)
    async def receive(request: Request[Any, Any, Any]) -> None:
        body = await request.body()
        deliveries.append(Delivery(request.url.path, dict(request.headers), body))

    kinguin = KinguinSandboxConfig(
        api_key=KINGUIN_KEY,
        webhook_secret=WEBHOOK_SECRET,
        webhook_url=kinguin_webhook_url or f"{base_url}{KINGUIN_HOOK}",
        delay_s=delay_s,
    )
    nowpayments = NowPaymentsSandboxConfig(
        api_key=NOWPAYMENTS_KEY, ipn_secret=IPN_SECRET, public_base_url=base_url
    )
    app = Litestar([kinguin_sandbox(kinguin), nowpayments_sandbox(nowpayments), receive])
    with serving(app, port=port) as url:
        yield Stack(url, deliveries)


@pytest.fixture
def stack() -> Iterator[Stack]:
    """Fresh sandboxes whose Kinguin orders complete after 0.2 s."""
    with sandboxes() as served:
        yield served


@pytest.fixture
def kinguin(stack: Stack) -> Iterator[httpx.Client]:
    """An authorised Kinguin sandbox client."""
    with stack.kinguin() as client:
        yield client


@pytest.fixture
def nowpayments(stack: Stack) -> Iterator[httpx.Client]:
    """An authorised NOWPayments sandbox client."""
    with stack.nowpayments() as client:
        yield client


def wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll ``condition`` until it holds; fail at the deadline."""
    if not wait_until(condition, timeout_s):
        pytest.fail(f"condition not met within {timeout_s} s")


def order_body(qty: int = 1, external_id: str | None = None, **line: object) -> dict[str, object]:
    """A v2 place-order body with one product line."""
    body: dict[str, object] = {
        "products": [{"productId": PRODUCT_ID, "qty": qty, "price": CHEAPEST_PRICE, **line}]
    }
    if external_id is not None:
        body["orderExternalId"] = external_id
    return body


def place(client: httpx.Client, body: dict[str, object]) -> dict[str, Any]:
    """Place an order and return the Order object (asserting 201)."""
    response = client.post("/v2/order", json=body)
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


def create_invoice(
    client: httpx.Client, stack: Stack, *, with_callback: bool = True
) -> dict[str, Any]:
    """Create an invoice whose IPNs go to the test receiver."""
    body: dict[str, object] = {
        "price_amount": 19.99,
        "price_currency": "usd",
        "order_id": "ORD-1",
        "order_description": "2 keys",
    }
    if with_callback:
        body["ipn_callback_url"] = f"{stack.base_url}{IPN_HOOK}"
    response = client.post("/v1/invoice", json=body)
    assert response.status_code == 200, response.text
    invoice: dict[str, Any] = response.json()
    return invoice


def simulate(client: httpx.Client, invoice_id: str, status: str) -> dict[str, Any]:
    """Drive the invoice's payment to ``status`` and return the control answer (asserting 200)."""
    response = client.post(f"/payments/{invoice_id}/simulate", json={"status": status})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# --- Kinguin ---------------------------------------------------------------------------------


@pytest.mark.parametrize("api_key", [None, "wrong-key"])
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v2/order"), ("GET", "/v1/order"), ("GET", "/v1/order/X"), ("GET", "/v1/balance")],
)
def test_kinguin_rejects_bad_api_key(
    stack: Stack, api_key: str | None, method: str, path: str
) -> None:
    """A missing or wrong X-Api-Key gets Kinguin's documented 401 body on every route."""
    with stack.kinguin(api_key) as client:
        response = client.request(method, path, json=order_body())
    assert response.status_code == 401
    assert response.json() == KINGUIN_UNAUTHORIZED


def test_place_order_answers_201_with_a_processing_order(kinguin: httpx.Client) -> None:
    """POST /v2/order answers 201 with the documented Order object in status processing."""
    order = place(kinguin, order_body(qty=2, external_id="ext-201", keyType="text"))
    assert set(order) == ORDER_FIELDS
    assert ORDER_ID.match(order["orderId"])
    assert order["orderExternalId"] == "ext-201"
    assert order["status"] == "processing"
    assert ORDER_TIME.match(order["createdAt"])
    assert order["totalQty"] == 2
    assert order["totalPrice"] == order["requestTotalPrice"] == order["paymentPrice"] == 11.58
    assert order["isPreorder"] is False
    assert order["preorderReleaseDate"] is None
    [product] = order["products"]
    assert set(product) == ORDER_PRODUCT_FIELDS
    assert product["productId"] == PRODUCT_ID
    assert (product["qty"], product["price"], product["totalPrice"]) == (2, 5.79, 11.58)
    assert HEX_24.match(product["offerId"])
    assert len(product["keys"]) == 2
    assert all(HEX_24.match(key["id"]) and key["status"] for key in product["keys"])


def test_place_order_keeps_the_requested_offer(kinguin: httpx.Client) -> None:
    """An explicit offerId buys that offer, at its price, and is echoed on the product line."""
    offers = kinguin.get(f"/v2/products/{PRODUCT_ID}").json()["offers"]
    dearest = max(offers, key=lambda offer: offer["price"])
    order = place(kinguin, order_body(price=dearest["price"], offerId=dearest["offerId"]))
    [line] = order["products"]
    assert (line["offerId"], line["price"]) == (dearest["offerId"], dearest["price"])


def test_duplicate_external_id_is_rejected_and_search_finds_one(kinguin: httpx.Client) -> None:
    """A reused orderExternalId answers 400 ConstraintViolation; search still finds one order."""
    first = place(kinguin, order_body(external_id="ext-dup"))
    response = kinguin.post("/v2/order", json=order_body(external_id="ext-dup"))
    assert response.status_code == 400
    error = response.json()
    assert set(error) >= KINGUIN_ERROR_FIELDS
    assert (error["kind"], error["status"]) == ("ConstraintViolation", 400)
    assert error["detail"] == "orderExternalId already used"
    found = kinguin.get("/v1/order", params={"orderExternalId": "ext-dup"}).json()
    assert found["item_count"] == 1
    assert [order["orderId"] for order in found["results"]] == [first["orderId"]]


@pytest.mark.parametrize(
    "body",
    [
        order_body(qty=10),
        order_body(qty=0),
        {"products": []},
        {"products": [{"productId": PRODUCT_ID, "qty": 1, "price": 1.0}] * 11},
        order_body(price=-1),
        order_body(price="5.79"),
        {"products": [{"qty": 1, "price": 1.0}]},
    ],
    ids=["qty-10", "qty-0", "no-products", "11-products", "negative-price", "price-str", "no-id"],
)
def test_invalid_order_is_a_constraint_violation(
    kinguin: httpx.Client, body: dict[str, object]
) -> None:
    """Payload limits (qty 1..9, 1..10 products, price >= 0) answer 400 ConstraintViolation."""
    response = kinguin.post("/v2/order", json=body)
    assert response.status_code == 400
    error = response.json()
    assert set(error) >= KINGUIN_ERROR_FIELDS
    assert (error["kind"], error["status"], error["method"]) == ("ConstraintViolation", 400, "POST")
    assert error["path"].endswith("/v2/order")


def test_malformed_json_is_a_kinguin_error(kinguin: httpx.Client) -> None:
    """A body that is not JSON answers 400 with Kinguin's error body."""
    response = kinguin.post(
        "/v2/order", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert set(response.json()) >= KINGUIN_ERROR_FIELDS


def test_keys_are_empty_while_processing() -> None:
    """Before delivery the keys endpoint answers an empty array and keys are not DELIVERED."""
    with sandboxes(delay_s=60) as served, served.kinguin() as client:
        order = place(client, order_body(qty=3))
        keys = client.get(f"/v2/order/{order['orderId']}/keys")
        fetched = client.get(f"/v1/order/{order['orderId']}").json()
    assert keys.status_code == 200
    assert keys.json() == []
    assert fetched["status"] == "processing"
    assert all(key["status"] != "DELIVERED" for key in fetched["products"][0]["keys"])


def test_order_completes_with_two_webhooks_and_paginated_keys(
    stack: Stack, kinguin: httpx.Client
) -> None:
    """After the delay: order completed, order.status processing then completed, keys 4, 4, 1."""
    order = place(kinguin, order_body(qty=9, external_id="ext-done"))
    order_id = order["orderId"]
    wait_for(lambda: len(stack.received(KINGUIN_HOOK)) == 2)

    hooks = stack.received(KINGUIN_HOOK)
    for hook in hooks:
        assert hook.headers["content-type"] == "application/json"
        assert hook.headers["x-event-name"] == "order.status"
        assert hook.headers["x-event-secret"] == WEBHOOK_SECRET
    processing, completed = (json.loads(hook.body) for hook in hooks)
    for event in (processing, completed):
        assert set(event) == {"orderId", "orderExternalId", "status", "updatedAt"}
        assert (event["orderId"], event["orderExternalId"]) == (order_id, "ext-done")
        assert EVENT_TIME.match(event["updatedAt"])
    assert (processing["status"], completed["status"]) == ("processing", "completed")
    assert processing["updatedAt"] < completed["updatedAt"]

    fetched = kinguin.get(f"/v1/order/{order_id}").json()
    assert fetched["status"] == "completed"
    order_keys = [key for product in fetched["products"] for key in product["keys"]]
    assert {key["status"] for key in order_keys} == {"DELIVERED"}

    pages = [
        kinguin.get(f"/v2/order/{order_id}/keys", params={"page": page, "limit": 4}).json()
        for page in (1, 2, 3, 4)
    ]
    assert [len(page) for page in pages] == [4, 4, 1, 0]
    keys = [key for page in pages for key in page]
    assert {key["id"] for key in keys} == {key["id"] for key in order_keys}
    for key in keys:
        assert set(key) == KEY_FIELDS
        assert SERIAL.match(key["serial"])
        assert (key["type"], key["productId"]) == ("text/plain", PRODUCT_ID)
    assert len({key["serial"] for key in keys}) == 9
    time.sleep(0.3)  # nothing else is scheduled: make sure no third webhook follows
    assert len(stack.received(KINGUIN_HOOK)) == 2


def test_keys_limit_above_100_is_rejected(kinguin: httpx.Client) -> None:
    """The keys endpoint caps limit at 100 like the vendor."""
    order = place(kinguin, order_body())
    response = kinguin.get(f"/v2/order/{order['orderId']}/keys", params={"limit": 101})
    assert response.status_code == 400
    assert response.json()["kind"] == "ConstraintViolation"


def test_unknown_order_is_order_not_found(kinguin: httpx.Client) -> None:
    """Get and keys of an unknown order answer 404 OrderNotFound."""
    for path in ("/v1/order/NOSUCHORDER", "/v2/order/NOSUCHORDER/keys"):
        response = kinguin.get(path)
        assert response.status_code == 404
        assert response.json()["kind"] == "OrderNotFound"


def test_search_filters_and_paginates() -> None:
    """GET /v1/order filters by orderId and status and counts all matches across pages (orders
    that stay processing for the whole test: a slow machine must not see them complete)."""
    with sandboxes(delay_s=30) as stack, stack.kinguin() as kinguin:
        _search_filters_and_paginates(kinguin)


def _search_filters_and_paginates(kinguin: httpx.Client) -> None:
    placed = [place(kinguin, order_body(external_id=f"ext-search-{n}")) for n in range(3)]
    page = kinguin.get("/v1/order", params={"limit": 2, "status": "processing"}).json()
    assert set(page) == {"results", "item_count"}
    assert page["item_count"] == 3
    assert len(page["results"]) == 2
    by_id = kinguin.get("/v1/order", params={"orderId": placed[1]["orderId"]}).json()
    assert [order["orderId"] for order in by_id["results"]] == [placed[1]["orderId"]]
    assert kinguin.get("/v1/order", params={"status": "completed"}).json()["item_count"] == 0


def test_balance_is_a_float(kinguin: httpx.Client) -> None:
    """GET /v1/balance answers {"balance": float}."""
    assert isinstance(kinguin.get("/v1/balance").json()["balance"], float)


def test_unreachable_webhook_receiver_does_not_break_the_sandbox() -> None:
    """With the webhook receiver down the order still completes and the sandbox keeps serving."""
    dead_url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    with sandboxes(delay_s=0, kinguin_webhook_url=dead_url) as served, served.kinguin() as client:
        order = place(client, order_body(qty=2))
        path = f"/v1/order/{order['orderId']}"
        wait_for(lambda: client.get(path).json()["status"] == "completed")
        assert len(client.get(f"/v2/order/{order['orderId']}/keys").json()) == 2


def test_each_router_has_its_own_state(kinguin: httpx.Client) -> None:
    """Two sandbox instances share nothing: an order of one is unknown to the other."""
    order = place(kinguin, order_body())
    with sandboxes() as other, other.kinguin() as client:
        assert client.get(f"/v1/order/{order['orderId']}").status_code == 404


# --- NOWPayments -----------------------------------------------------------------------------


@pytest.mark.parametrize("api_key", [None, "wrong-key"])
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/status"), ("POST", "/v1/invoice"), ("GET", "/v1/payment/1234567890")],
)
def test_nowpayments_rejects_bad_api_key(
    stack: Stack, api_key: str | None, method: str, path: str
) -> None:
    """A missing or wrong x-api-key gets 403 INVALID_API_KEY on the vendor API part."""
    with stack.nowpayments(api_key) as client:
        response = client.request(method, path, json={"price_amount": 1, "price_currency": "usd"})
    assert response.status_code == 403
    assert response.json() == NOWPAYMENTS_FORBIDDEN


def test_status_is_ok(nowpayments: httpx.Client) -> None:
    """GET /v1/status answers {"message": "OK"}."""
    assert nowpayments.get("/v1/status").json() == {"message": "OK"}


def test_invoice_has_the_vendor_shape(stack: Stack, nowpayments: httpx.Client) -> None:
    """POST /v1/invoice answers the vendor's fields; price_amount is a string; the URL works."""
    invoice = create_invoice(nowpayments, stack)
    assert set(invoice) == INVOICE_FIELDS
    assert invoice["id"].isdigit()
    assert invoice["price_amount"] == "19.99"
    assert (invoice["price_currency"], invoice["order_id"]) == ("usd", "ORD-1")
    assert invoice["pay_currency"] is None
    assert invoice["ipn_callback_url"] == f"{stack.base_url}{IPN_HOOK}"
    expected_url = f"{stack.base_url}/sandbox/nowpayments/payment/?iid={invoice['id']}"
    assert invoice["invoice_url"] == expected_url
    assert (invoice["is_fixed_rate"], invoice["is_fee_paid_by_user"]) == (False, False)
    with httpx.Client() as browser:
        page = browser.get(invoice["invoice_url"])
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f"/sandbox/nowpayments/payments/{invoice['id']}/simulate" in page.text


@pytest.mark.parametrize(
    "body",
    [
        {"price_currency": "usd"},
        {"price_amount": 10},
        {"price_amount": "ten", "price_currency": "usd"},
        {"price_amount": 0, "price_currency": "usd"},
    ],
    ids=["no-amount", "no-currency", "amount-str", "amount-zero"],
)
def test_invalid_invoice_is_invalid_request_params(
    nowpayments: httpx.Client, body: dict[str, object]
) -> None:
    """Missing or invalid required invoice fields answer 400 INVALID_REQUEST_PARAMS."""
    response = nowpayments.post("/v1/invoice", json=body)
    assert response.status_code == 400
    error = response.json()
    assert set(error) == {"status", "statusCode", "code", "message"}
    assert (error["status"], error["statusCode"]) == (False, 400)
    assert error["code"] == "INVALID_REQUEST_PARAMS"


def test_simulate_finished_sends_a_signed_ipn(stack: Stack, nowpayments: httpx.Client) -> None:
    """simulate finished POSTs an IPN whose signature covers exactly the canonical body."""
    invoice = create_invoice(nowpayments, stack)
    result = simulate(nowpayments, invoice["id"], "finished")
    assert result["invoice_id"] == invoice["id"]
    assert isinstance(result["payment_id"], int)
    assert result["payment_status"] == "finished"
    assert result["ipn_callback_url"] == invoice["ipn_callback_url"]
    assert result["ipn_status_code"] == 204

    [ipn] = stack.received(IPN_HOOK)
    signature = ipn.headers["x-nowpayments-sig"]
    assert ipn.headers["content-type"] == "application/json"
    assert verify(IPN_SECRET, ipn.body, signature)
    assert not verify("another-secret", ipn.body, signature)
    payload = json.loads(ipn.body)
    assert ipn.body == canonical_body(payload)
    assert signature == sign(IPN_SECRET, canonical_body(payload))

    assert set(payload) == IPN_FIELDS
    assert set(payload["fee"]) == {"currency", "depositFee", "withdrawalFee", "serviceFee"}
    assert payload["payment_id"] == result["payment_id"]
    assert payload["invoice_id"] == int(invoice["id"])
    assert payload["payment_status"] == "finished"
    assert payload["parent_payment_id"] is None
    assert (payload["price_amount"], payload["price_currency"]) == (19.99, "usd")
    assert payload["pay_currency"] == "btc"
    assert payload["actually_paid"] == payload["pay_amount"] > 0
    assert payload["order_id"] == "ORD-1"
    assert isinstance(payload["purchase_id"], str)


def test_payment_id_is_stable_across_simulations(stack: Stack, nowpayments: httpx.Client) -> None:
    """Every simulate of one invoice reuses its payment_id; each sends one IPN."""
    invoice = create_invoice(nowpayments, stack)
    waiting = simulate(nowpayments, invoice["id"], "waiting")
    finished = simulate(nowpayments, invoice["id"], "finished")
    assert waiting["payment_id"] == finished["payment_id"]
    ipns = [json.loads(delivery.body) for delivery in stack.received(IPN_HOOK)]
    assert [ipn["payment_status"] for ipn in ipns] == ["waiting", "finished"]
    assert {ipn["payment_id"] for ipn in ipns} == {waiting["payment_id"]}
    assert {ipn["invoice_id"] for ipn in ipns} == {int(invoice["id"])}
    assert ipns[0]["actually_paid"] == 0


def test_partially_paid_pays_about_half(stack: Stack, nowpayments: httpx.Client) -> None:
    """A partially_paid IPN carries about half of pay_amount as actually_paid."""
    invoice = create_invoice(nowpayments, stack)
    simulate(nowpayments, invoice["id"], "partially_paid")
    [ipn] = [json.loads(delivery.body) for delivery in stack.received(IPN_HOOK)]
    assert ipn["actually_paid"] == pytest.approx(ipn["pay_amount"] / 2)


def test_get_payment_has_the_vendor_shape(stack: Stack, nowpayments: httpx.Client) -> None:
    """GET /v1/payment/{id} returns the simulated payment with a numeric payment_id."""
    invoice = create_invoice(nowpayments, stack)
    result = simulate(nowpayments, invoice["id"], "confirming")
    response = nowpayments.get(f"/v1/payment/{result['payment_id']}")
    assert response.status_code == 200
    payment = response.json()
    assert set(payment) >= PAYMENT_FIELDS
    assert payment["payment_id"] == result["payment_id"]
    assert payment["invoice_id"] == int(invoice["id"])
    assert payment["payment_status"] == "confirming"
    assert (payment["price_amount"], payment["order_id"]) == (19.99, "ORD-1")


def test_unknown_payment_is_not_found(nowpayments: httpx.Client) -> None:
    """GET /v1/payment of an unknown id answers 404 NOT_FOUND in the vendor's error body."""
    response = nowpayments.get("/v1/payment/1234567890")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert response.json()["status"] is False


def test_simulate_without_callback_reports_no_ipn(stack: Stack, nowpayments: httpx.Client) -> None:
    """An invoice without ipn_callback_url gets its status set and no IPN is sent."""
    invoice = create_invoice(nowpayments, stack, with_callback=False)
    result = simulate(nowpayments, invoice["id"], "finished")
    assert (result["ipn_callback_url"], result["ipn_status_code"]) == (None, None)
    assert stack.received(IPN_HOOK) == []


def test_simulate_unknown_invoice_or_status_is_a_problem(
    stack: Stack, nowpayments: httpx.Client
) -> None:
    """Unknown invoice answers a 404 problem, unknown status a 400 problem."""
    unknown = nowpayments.post("/payments/999/simulate", json={"status": "finished"})
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    invoice = create_invoice(nowpayments, stack)
    bad = nowpayments.post(f"/payments/{invoice['id']}/simulate", json={"status": "paid"})
    assert bad.status_code == 400
    assert bad.json()["status"] == 400


def test_simulate_with_dead_receiver_reports_no_status(
    stack: Stack, nowpayments: httpx.Client
) -> None:
    """When the IPN receiver is unreachable simulate still answers, with ipn_status_code null."""
    body = {
        "price_amount": 5,
        "price_currency": "eur",
        "pay_currency": "ltc",
        "ipn_callback_url": f"http://127.0.0.1:{free_port()}/nobody-listens",
    }
    invoice = nowpayments.post("/v1/invoice", json=body).json()
    assert invoice["price_amount"] == "5"
    result = simulate(nowpayments, invoice["id"], "finished")
    assert result["ipn_status_code"] is None
    payment = nowpayments.get(f"/v1/payment/{result['payment_id']}").json()
    assert (payment["payment_status"], payment["pay_currency"]) == ("finished", "ltc")
