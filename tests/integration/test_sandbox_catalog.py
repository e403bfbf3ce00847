"""The Kinguin sandbox's catalog, price matching, balance, pre-orders and key returns, over HTTP.

The sandbox and a recording webhook receiver run in one Litestar app under uvicorn; the tests talk
to it with httpx as the engine's adapter does. The sandbox's clock is injected (real time plus an
adjustable offset) so the 24-hour return window can be crossed without waiting.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, post

from sandboxes.kinguin import KinguinSandboxConfig, kinguin_sandbox
from sandboxes.kinguin.catalog import (
    DEFAULT_STOCK,
    GENERATED_PRODUCTS,
    PLATFORMS,
    product_view,
)
from sandboxes.kinguin.products import build_catalog
from tests.integration.test_sandbox_contract import (
    EVENT_TIME,
    HEX_24,
    KINGUIN_ERROR_FIELDS,
    SERIAL,
    Delivery,
    wait_for,
)
from tests.support import free_port, serving

API_KEY = "kinguin-catalog-key"
WEBHOOK_SECRET = "kinguin-catalog-secret"
HOOK = "/hooks/kinguin"

CS_SOURCE = "5c9b5f6b2539a4e8f172916a"
PORTAL_2 = "5c9b5f6b2539a4e8f172916b"
TEST_PRODUCT = "00000000000000000000dead"
IMAGE_PRODUCT = "00000000000000000000face"
SOLD_OUT = "0000000000000000000000e0"
PREORDER = "00000000000000000000f00d"
CATALOG_SIZE = 6 + GENERATED_PRODUCTS

PRODUCT_FIELDS = {
    "kinguinId",
    "productId",
    "name",
    "originalName",
    "description",
    "coverImage",
    "developers",
    "publishers",
    "genres",
    "platform",
    "releaseDate",
    "qty",
    "textQty",
    "price",
    "cheapestOfferId",
    "isPreorder",
    "regionalLimitations",
    "regionId",
    "languages",
    "tags",
    "offers",
    "offersCount",
    "totalQty",
    "merchantName",
    "updatedAt",
}
OFFER_FIELDS = {
    "name",
    "offerId",
    "price",
    "qty",
    "textQty",
    "status",
    "isPreorder",
    "releaseDate",
    "merchantName",
}
PRODUCT_UPDATE_FIELDS = {"kinguinId", "productId", "qty", "textQty", "cheapestOfferId", "updatedAt"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class OffsetClock:
    """Real UTC time plus an adjustable offset: the sandbox's injected "now"."""

    offset: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass(frozen=True)
class Served:
    """The served sandbox, its clock and what the receiver recorded."""

    base_url: str
    clock: OffsetClock
    deliveries: list[Delivery]

    def client(self, api_key: str | None = API_KEY) -> httpx.Client:
        """A Kinguin sandbox client (with the API key unless told otherwise)."""
        headers = {"X-Api-Key": api_key} if api_key is not None else {}
        return httpx.Client(base_url=f"{self.base_url}/sandbox/kinguin", headers=headers)

    def events(self, name: str) -> list[dict[str, Any]]:
        """Payloads of the webhooks named ``name`` received so far, in arrival order."""
        return [
            json.loads(delivery.body)
            for delivery in list(self.deliveries)
            if delivery.headers.get("x-event-name") == name
        ]

    def statuses(self, order_id: str) -> list[str]:
        """The ``order.status`` statuses received for ``order_id``."""
        return [e["status"] for e in self.events("order.status") if e["orderId"] == order_id]


@contextmanager
def sandbox(delay_s: float = 0.2, extra_products: int = 0) -> Iterator[Served]:
    """Serve a Kinguin sandbox with an offset clock plus a recording receiver on a free port."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    deliveries: list[Delivery] = []
    clock = OffsetClock()

    @post(HOOK, status_code=204)
    async def receive(request: Request[Any, Any, Any]) -> None:
        body = await request.body()
        deliveries.append(Delivery(request.url.path, dict(request.headers), body))

    config = KinguinSandboxConfig(
        api_key=API_KEY,
        webhook_secret=WEBHOOK_SECRET,
        webhook_url=f"{base_url}{HOOK}",
        delay_s=delay_s,
        extra_products=extra_products,
        clock=clock,
    )
    with serving(Litestar([kinguin_sandbox(config), receive]), port=port) as url:
        yield Served(url, clock, deliveries)


@pytest.fixture
def served() -> Iterator[Served]:
    """A fresh sandbox whose orders complete after 0.2 s."""
    with sandbox() as running:
        yield running


@pytest.fixture
def kinguin(served: Served) -> Iterator[httpx.Client]:
    """An authorised client of the ``served`` sandbox."""
    with served.client() as client:
        yield client


def line(product_id: str, price: float, qty: int = 1, **extra: object) -> dict[str, object]:
    """One ``products[]`` entry of a place-order body."""
    return {"productId": product_id, "qty": qty, "price": price, **extra}


def order(*lines: dict[str, object], external_id: str | None = None) -> dict[str, object]:
    """A place-order body."""
    body: dict[str, object] = {"products": list(lines)}
    if external_id is not None:
        body["orderExternalId"] = external_id
    return body


def place(client: httpx.Client, body: dict[str, object]) -> dict[str, Any]:
    """Place an order (asserting 201) and return it."""
    response = client.post("/v2/order", json=body)
    assert response.status_code == 201, response.text
    placed: dict[str, Any] = response.json()
    return placed


def refused(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """Assert a Kinguin error body with ``status`` and ``kind``; return it."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()
    assert set(error) >= KINGUIN_ERROR_FIELDS
    assert (error["kind"], error["status"]) == (kind, status)
    return error


def listing(client: httpx.Client, **params: str | int) -> dict[str, Any]:
    """``GET /v1/products`` (asserting 200)."""
    response = client.get("/v1/products", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def product(client: httpx.Client, product_id: str) -> dict[str, Any]:
    """``GET /v2/products/{productId}`` (asserting 200)."""
    response = client.get(f"/v2/products/{product_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def balance(client: httpx.Client) -> float:
    """The sandbox balance."""
    value: float = client.get("/v1/balance").json()["balance"]
    return value


def set_faults(client: httpx.Client, faults: dict[str, object]) -> dict[str, Any]:
    """Replace the faults (asserting 200) and return the echoed set."""
    response = client.post("/faults", json=faults)
    assert response.status_code == 200, response.text
    echoed: dict[str, Any] = response.json()
    return echoed


def orders_with(client: httpx.Client, external_id: str) -> int:
    """How many orders carry ``external_id``."""
    count: int = client.get("/v1/order", params={"orderExternalId": external_id}).json()[
        "item_count"
    ]
    return count


def completed(served: Served, client: httpx.Client, body: dict[str, object]) -> dict[str, Any]:
    """Place an order and wait until it is completed; return it as fetched then."""
    order_id = place(client, body)["orderId"]
    wait_for(lambda: client.get(f"/v1/order/{order_id}").json()["status"] == "completed")
    fetched: dict[str, Any] = client.get(f"/v1/order/{order_id}").json()
    return fetched


# --- catalog ---------------------------------------------------------------------------------


def test_catalog_lists_three_dozen_products_in_kinguins_shape(kinguin: httpx.Client) -> None:
    """GET /v1/products lists every product as Kinguin's Product object, by kinguinId."""
    page = listing(kinguin, limit=100)
    assert set(page) == {"results", "item_count"}
    assert page["item_count"] == len(page["results"]) == CATALOG_SIZE
    products = page["results"]
    ids = [item["kinguinId"] for item in products]
    assert ids == sorted(ids)
    assert len({item["productId"] for item in products}) == CATALOG_SIZE
    for item in products:
        assert set(item) == PRODUCT_FIELDS
        assert HEX_24.match(item["productId"])
        assert item["platform"] in PLATFORMS
        assert 1 <= item["offersCount"] == len(item["offers"]) <= 3
        assert item["totalQty"] == sum(offer["qty"] for offer in item["offers"])
        assert item["price"] == min(offer["price"] for offer in item["offers"])
        assert datetime.fromisoformat(item["updatedAt"]).tzinfo is not None
        for offer in item["offers"]:
            assert set(offer) == OFFER_FIELDS
            assert 0.99 <= offer["price"] <= 69.99
            assert offer["price"] == round(offer["price"], 2)
            assert offer["status"] == "ACTIVE"
    assert {item["platform"] for item in products} >= {"Steam", "GOG"}
    in_stock = [item for item in products if item["productId"] != SOLD_OUT]
    assert all(item["qty"] == item["textQty"] == DEFAULT_STOCK for item in in_stock)


def test_fixed_products_exist_as_the_engine_expects(kinguin: httpx.Client) -> None:
    """The fixed ids carry the documented names, prices, stock and release rules."""
    counter_strike = product(kinguin, CS_SOURCE)
    assert (counter_strike["kinguinId"], counter_strike["platform"]) == (1949, "Steam")
    assert counter_strike["name"] == "Counter-Strike: Source Steam CD Key"
    assert sorted(offer["price"] for offer in counter_strike["offers"]) == [5.79, 6.49]
    cheapest = min(counter_strike["offers"], key=lambda offer: offer["price"])
    assert (counter_strike["price"], counter_strike["cheapestOfferId"]) == (
        5.79,
        [cheapest["offerId"]],
    )
    portal = product(kinguin, PORTAL_2)
    assert (portal["kinguinId"], portal["name"], portal["price"]) == (
        1950,
        "Portal 2 Steam CD Key",
        12.49,
    )
    assert product(kinguin, TEST_PRODUCT)["name"] == "Sandbox Test Product"
    assert product(kinguin, TEST_PRODUCT)["price"] == 1.0
    assert product(kinguin, IMAGE_PRODUCT)["price"] == 3.0
    preorder = product(kinguin, PREORDER)
    assert (preorder["name"], preorder["isPreorder"], preorder["price"]) == (
        "Sandbox Pre-order Product",
        True,
        39.99,
    )
    in_30_days = (datetime.now(UTC) + timedelta(days=30)).date()
    assert abs(datetime.fromisoformat(preorder["releaseDate"]).date() - in_30_days).days <= 1
    [sold_out] = listing(kinguin, productId=SOLD_OUT)["results"]
    assert sold_out["name"] == "Sandbox Sold Out Product"
    assert sold_out["qty"] == sold_out["textQty"] == sold_out["totalQty"] == 0
    assert all(offer["qty"] == offer["textQty"] == 0 for offer in sold_out["offers"])


def test_catalog_is_the_same_on_every_start_and_grows_with_extra_products() -> None:
    """Two builds give the same products; extra_products appends without changing the base."""
    started = datetime(2026, 1, 1, tzinfo=UTC)
    first = [product_view(p, 0) for p in build_catalog(started).products.values()]
    again = [product_view(p, 0) for p in build_catalog(started).products.values()]
    bigger = [product_view(p, 0) for p in build_catalog(started, 50).products.values()]
    assert first == again
    assert len(first) == CATALOG_SIZE
    assert len(bigger) == CATALOG_SIZE + 50
    assert bigger[:CATALOG_SIZE] == first
    assert len({p.name for p in bigger}) == len(bigger)


def test_extra_products_are_served() -> None:
    """A sandbox configured with extra_products lists that many more."""
    with sandbox(extra_products=120) as running, running.client() as client:
        assert listing(client, limit=1)["item_count"] == CATALOG_SIZE + 120


def test_listing_paginates(kinguin: httpx.Client) -> None:
    """Pages of 10 cover every product once; past the end is empty; bad page/limit are 400."""
    pages = [listing(kinguin, page=n, limit=10) for n in (1, 2, 3, 4, 5)]
    assert [len(page["results"]) for page in pages] == [10, 10, 10, 6, 0]
    assert {page["item_count"] for page in pages} == {CATALOG_SIZE}
    ids = [item["productId"] for page in pages for item in page["results"]]
    assert len(set(ids)) == CATALOG_SIZE
    assert len(listing(kinguin)["results"]) == 25
    for params in ({"limit": 101}, {"limit": 0}, {"page": 0}, {"page": "x"}):
        refused(kinguin.get("/v1/products", params=params), 400, "ConstraintViolation")


def test_listing_filters(kinguin: httpx.Client) -> None:
    """name, platform, productId, kinguinId and isPreorder filter; item_count counts matches."""
    by_name = listing(kinguin, name="cOuNtEr-stRIKE")
    assert [item["productId"] for item in by_name["results"]] == [CS_SOURCE]
    steam_gog = listing(kinguin, platform="Steam,GOG", limit=100)
    assert steam_gog["item_count"] == len(steam_gog["results"]) > 6
    assert {item["platform"] for item in steam_gog["results"]} <= {"Steam", "GOG"}
    by_ids = listing(kinguin, productId=f"{PORTAL_2},{TEST_PRODUCT}")
    assert {item["productId"] for item in by_ids["results"]} == {PORTAL_2, TEST_PRODUCT}
    by_kinguin_ids = listing(kinguin, kinguinId="1950,1949")
    assert [item["kinguinId"] for item in by_kinguin_ids["results"]] == [1949, 1950]
    preorders = listing(kinguin, isPreorder="yes")
    assert [item["productId"] for item in preorders["results"]] == [PREORDER]
    assert listing(kinguin, isPreorder="no")["item_count"] == CATALOG_SIZE - 1
    assert listing(kinguin, name="no such game")["item_count"] == 0


@pytest.mark.parametrize(
    "params",
    [
        {"name": "ab"},
        {"kinguinId": "1949,abc"},
        {"isPreorder": "true"},
        {"updatedSince": "yesterday"},
        {"updatedTo": "2026-13-45"},
        {"sortBy": "popularity"},
        {"sortType": "up"},
    ],
    ids=["short-name", "kinguin-id", "preorder", "since", "to", "sort-by", "sort-type"],
)
def test_bad_listing_parameters_are_constraint_violations(
    kinguin: httpx.Client, params: dict[str, str]
) -> None:
    """Invalid filters answer 400 ConstraintViolation naming the parameter."""
    error = refused(kinguin.get("/v1/products", params=params), 400, "ConstraintViolation")
    assert error["propertyPath"] == next(iter(params))


@pytest.mark.parametrize("sort_by", ["kinguinId", "updatedAt", "name", "price", "qty"])
@pytest.mark.parametrize("sort_type", ["asc", "desc"])
def test_listing_sorts(kinguin: httpx.Client, sort_by: str, sort_type: str) -> None:
    """sortBy and sortType order the whole listing."""
    results = listing(kinguin, sortBy=sort_by, sortType=sort_type, limit=100)["results"]

    def key(item: dict[str, Any]) -> Any:
        return item[sort_by].casefold() if sort_by == "name" else item[sort_by]

    values = [key(item) for item in results]
    assert values == sorted(values, reverse=sort_type == "desc")


def test_updated_since_finds_what_changed(kinguin: httpx.Client) -> None:
    """A purchase bumps the product's updatedAt; updatedSince/updatedTo split on it, any format."""
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    place(kinguin, order(line(PORTAL_2, 12.49)))
    assert datetime.fromisoformat(product(kinguin, PORTAL_2)["updatedAt"]) >= before
    formats = [
        before.strftime("%Y-%m-%d %H:%M:%S"),
        before.strftime("%Y-%m-%dT%H:%M:%S"),
        before.isoformat(),
        before.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        before.astimezone(timezone(timedelta(hours=2))).isoformat(),
    ]
    for since in formats:
        changed = listing(kinguin, updatedSince=since)
        assert [item["productId"] for item in changed["results"]] == [PORTAL_2], since
    unchanged = listing(kinguin, updatedTo=formats[0], limit=100)
    assert unchanged["item_count"] == CATALOG_SIZE - 1
    assert PORTAL_2 not in {item["productId"] for item in unchanged["results"]}
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert listing(kinguin, updatedSince=tomorrow)["item_count"] == 0
    assert listing(kinguin, updatedSince="2000-01-01")["item_count"] == CATALOG_SIZE


def test_product_lookup_by_kinguin_id_and_product_id(kinguin: httpx.Client) -> None:
    """v1 by kinguinId and v2 by productId return the same Product object."""
    by_kinguin_id = kinguin.get("/v1/products/1949")
    assert by_kinguin_id.status_code == 200
    assert set(by_kinguin_id.json()) == PRODUCT_FIELDS
    assert by_kinguin_id.json() == product(kinguin, CS_SOURCE)


@pytest.mark.parametrize(
    "path",
    ["/v1/products/99999999", "/v1/products/abc", "/v2/products/ffffffffffffffffffffffff"],
)
def test_unknown_product_is_404(kinguin: httpx.Client, path: str) -> None:
    """An unknown product answers 404 ProductUnavailable."""
    refused(kinguin.get(path), 404, "ProductUnavailable")


def test_sold_out_product_is_404_but_listed(kinguin: httpx.Client) -> None:
    """An out-of-stock product answers 404 on both lookups yet stays in the listing."""
    [sold_out] = listing(kinguin, productId=SOLD_OUT)["results"]
    refused(kinguin.get(f"/v1/products/{sold_out['kinguinId']}"), 404, "ProductUnavailable")
    refused(kinguin.get(f"/v2/products/{SOLD_OUT}"), 404, "ProductUnavailable")
    response = kinguin.post("/v2/order", json=order(line(SOLD_OUT, 50)))
    refused(response, 400, "ProductUnavailable")


def test_catalog_routes_need_the_api_key(served: Served) -> None:
    """The catalog routes check X-Api-Key like every API route."""
    with served.client(api_key="wrong") as client:
        for path in ("/v1/products", "/v1/products/1949", f"/v2/products/{CS_SOURCE}"):
            assert client.get(path).status_code == 401


# --- price matching and balance -------------------------------------------------------------------


def test_price_below_the_cheapest_offer_is_unavailable(kinguin: httpx.Client) -> None:
    """A requested price under every offer answers 400 ProductUnavailable; nothing is charged."""
    start = balance(kinguin)
    response = kinguin.post("/v2/order", json=order(line(CS_SOURCE, 5.78), external_id="low"))
    error = refused(response, 400, "ProductUnavailable")
    assert "no offer matches the price" in error["detail"]
    assert orders_with(kinguin, "low") == 0
    assert balance(kinguin) == start


@pytest.mark.parametrize("asked", [5.79, 6.49, 20.0])
def test_the_cheapest_matching_offer_is_charged(kinguin: httpx.Client, asked: float) -> None:
    """At or above the cheapest price the cheapest offer serves and is charged."""
    cheapest_offer = product(kinguin, CS_SOURCE)["cheapestOfferId"][0]
    placed = place(kinguin, order(line(CS_SOURCE, asked, qty=3)))
    [bought] = placed["products"]
    assert (bought["offerId"], bought["price"], bought["requestPrice"]) == (
        cheapest_offer,
        5.79,
        asked,
    )
    assert bought["totalPrice"] == placed["totalPrice"] == placed["paymentPrice"] == 17.37
    assert placed["requestTotalPrice"] == round(asked * 3, 2)


def test_offer_id_selects_the_offer(kinguin: httpx.Client) -> None:
    """offerId buys that offer if its price fits; an unknown or dearer offer is unavailable."""
    offers = product(kinguin, CS_SOURCE)["offers"]
    dear = max(offers, key=lambda offer: offer["price"])
    placed = place(kinguin, order(line(CS_SOURCE, 7, offerId=dear["offerId"])))
    assert (placed["products"][0]["offerId"], placed["totalPrice"]) == (dear["offerId"], 6.49)
    too_cheap = kinguin.post("/v2/order", json=order(line(CS_SOURCE, 6, offerId=dear["offerId"])))
    refused(too_cheap, 400, "ProductUnavailable")
    unknown = kinguin.post("/v2/order", json=order(line(CS_SOURCE, 7, offerId="f" * 24)))
    error = refused(unknown, 400, "ProductUnavailable")
    assert error["propertyPath"] == "products[0].offerId"


def test_unknown_product_cannot_be_ordered(kinguin: httpx.Client) -> None:
    """A productId outside the catalog answers 400 ProductUnavailable."""
    response = kinguin.post("/v2/order", json=order(line("a" * 24, 99)))
    error = refused(response, 400, "ProductUnavailable")
    assert error["propertyPath"] == "products[0].productId"


def test_purchases_draw_down_balance_and_stock(kinguin: httpx.Client) -> None:
    """The charge leaves the balance and the keys leave the offer's stock."""
    start = balance(kinguin)
    assert start == 1_000_000.0
    place(kinguin, order(line(CS_SOURCE, 6, qty=2), line(PORTAL_2, 12.49, qty=1)))
    assert balance(kinguin) == round(start - 2 * 5.79 - 12.49, 2)
    assert product(kinguin, CS_SOURCE)["qty"] == DEFAULT_STOCK - 2
    assert product(kinguin, PORTAL_2)["totalQty"] == DEFAULT_STOCK - 1


def test_insufficient_balance_creates_nothing(kinguin: httpx.Client) -> None:
    """An order above the balance answers 400 InsufficientBalance; no order, stock untouched."""
    set_faults(kinguin, {"balance": 10.0})
    place(kinguin, order(line(CS_SOURCE, 5.79)))
    assert balance(kinguin) == 4.21
    stock = product(kinguin, CS_SOURCE)["totalQty"]
    response = kinguin.post("/v2/order", json=order(line(CS_SOURCE, 5.79), external_id="broke"))
    error = refused(response, 400, "InsufficientBalance")
    assert "4.21" in error["detail"]
    assert orders_with(kinguin, "broke") == 0
    assert product(kinguin, CS_SOURCE)["totalQty"] == stock
    assert balance(kinguin) == 4.21


def test_image_key_product_delivers_images_unless_text_is_asked(
    served: Served, kinguin: httpx.Client
) -> None:
    """The image-key product delivers base64 PNGs; keyType "text" gets text keys instead."""
    images = completed(served, kinguin, order(line(IMAGE_PRODUCT, 3, qty=2)))
    texts = completed(served, kinguin, order(line(IMAGE_PRODUCT, 3, keyType="text")))
    image_keys = kinguin.get(f"/v2/order/{images['orderId']}/keys").json()
    text_keys = kinguin.get(f"/v2/order/{texts['orderId']}/keys").json()
    assert [key["type"] for key in image_keys] == ["image/png", "image/png"]
    assert all(base64.b64decode(key["serial"]).startswith(PNG_MAGIC) for key in image_keys)
    [text_key] = text_keys
    assert text_key["type"] == "text/plain"
    assert SERIAL.match(text_key["serial"])


# --- price jump, balance and product update faults ----------------------------------------------


def test_price_jump_raises_views_and_purchases_until_cleared(kinguin: httpx.Client) -> None:
    """price_jump=10 raises every offer by 10 % (cents); the old price no longer buys."""
    before = product(kinguin, CS_SOURCE)["updatedAt"]
    set_faults(kinguin, {"price_jump": 10})
    raised = product(kinguin, CS_SOURCE)
    assert raised["price"] == 6.37
    assert sorted(offer["price"] for offer in raised["offers"]) == [6.37, 7.14]
    assert raised["updatedAt"] > before
    listed = listing(kinguin, productId=CS_SOURCE)["results"][0]
    assert listed["price"] == 6.37
    refused(kinguin.post("/v2/order", json=order(line(CS_SOURCE, 5.79))), 400, "ProductUnavailable")
    assert place(kinguin, order(line(CS_SOURCE, 6.37)))["totalPrice"] == 6.37
    set_faults(kinguin, {})
    assert product(kinguin, CS_SOURCE)["price"] == 5.79
    assert place(kinguin, order(line(CS_SOURCE, 5.79)))["totalPrice"] == 5.79


def test_balance_fault_sets_the_balance(kinguin: httpx.Client) -> None:
    """A faults set carrying balance sets it; GET /faults shows it; clearing keeps the balance."""
    assert set_faults(kinguin, {"balance": 42.5})["balance"] == 42.5
    assert balance(kinguin) == 42.5
    assert kinguin.get("/faults").json()["balance"] == 42.5
    place(kinguin, order(line(TEST_PRODUCT, 1)))
    assert set_faults(kinguin, {})["balance"] is None
    assert balance(kinguin) == 41.5


def test_product_updates_are_sent_on_purchase_and_price_jump(
    served: Served, kinguin: httpx.Client
) -> None:
    """With product_updates on, a purchase sends product.update for its product, a new
    price_jump one for every product; without it none is sent."""
    place(kinguin, order(line(PORTAL_2, 12.49)))
    set_faults(kinguin, {"product_updates": True})
    place(kinguin, order(line(CS_SOURCE, 5.79, qty=2)))
    wait_for(lambda: len(served.events("product.update")) == 1)
    [update] = served.events("product.update")
    assert set(update) == PRODUCT_UPDATE_FIELDS
    assert (update["kinguinId"], update["productId"]) == (1949, CS_SOURCE)
    assert update["qty"] == update["textQty"] == DEFAULT_STOCK - 2
    assert update["cheapestOfferId"] == product(kinguin, CS_SOURCE)["cheapestOfferId"]
    assert EVENT_TIME.match(update["updatedAt"])
    hook = next(d for d in served.deliveries if d.headers.get("x-event-name") == "product.update")
    assert hook.headers["x-event-secret"] == WEBHOOK_SECRET
    assert hook.headers["content-type"] == "application/json"

    set_faults(kinguin, {"product_updates": True, "price_jump": 5})
    wait_for(lambda: len(served.events("product.update")) == 1 + CATALOG_SIZE)
    jumped = served.events("product.update")[1:]
    assert len({event["productId"] for event in jumped}) == CATALOG_SIZE
    set_faults(kinguin, {})
    place(kinguin, order(line(PORTAL_2, 20)))
    wait_for(lambda: len(served.events("order.status")) >= 4)
    assert len(served.events("product.update")) == 1 + CATALOG_SIZE


# --- pre-orders --------------------------------------------------------------------------------


def test_preorder_waits_for_release_then_completes(served: Served, kinguin: httpx.Client) -> None:
    """A pre-order stays processing with PENDING keys and no webhook until the release control;
    then it completes after the delay and sends its order.status webhooks."""
    release_day = product(kinguin, PREORDER)["releaseDate"]
    placed = place(kinguin, order(line(PREORDER, 39.99), external_id="pre"))
    order_id = placed["orderId"]
    assert (placed["isPreorder"], placed["preorderReleaseDate"]) == (True, release_day)
    assert placed["products"][0]["isPreorder"] is True
    assert {key["status"] for key in placed["products"][0]["keys"]} == {"PENDING"}
    time.sleep(0.6)  # well past the 0.2 s delay
    assert kinguin.get(f"/v1/order/{order_id}").json()["status"] == "processing"
    assert kinguin.get(f"/v2/order/{order_id}/keys").json() == []
    assert served.statuses(order_id) == []

    with served.client(api_key=None) as control:
        released = control.post(f"/products/{PREORDER}/release")
    assert released.status_code == 200
    assert released.json()["isPreorder"] is False
    assert released.json()["releaseDate"] == datetime.now(UTC).date().isoformat()
    wait_for(lambda: served.statuses(order_id) == ["processing", "completed"])
    fetched = kinguin.get(f"/v1/order/{order_id}").json()
    assert fetched["status"] == "completed"
    assert fetched["isPreorder"] is True
    assert fetched["preorderReleaseDate"] == released.json()["releaseDate"]
    assert len(kinguin.get(f"/v2/order/{order_id}/keys").json()) == 1


@pytest.mark.parametrize(
    "body",
    [
        order(line(PREORDER, 40), line(PREORDER, 40)),
        order(line(PREORDER, 40), line(CS_SOURCE, 6)),
        order(line(PREORDER, 40, keyType="text")),
    ],
    ids=["two-preorders", "mixed", "key-type"],
)
def test_preorder_rules(kinguin: httpx.Client, body: dict[str, object]) -> None:
    """One pre-order per request, alone, without keyType; else 400 Preorder and nothing made."""
    start = balance(kinguin)
    refused(kinguin.post("/v2/order", json=body), 400, "Preorder")
    assert kinguin.get("/v1/order").json()["item_count"] == 0
    assert balance(kinguin) == start


def test_release_of_an_unknown_product_is_a_404_problem(served: Served) -> None:
    """The release control answers a problem document for an unknown product."""
    with served.client(api_key=None) as control:
        response = control.post("/products/nope/release")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


# --- key returns -------------------------------------------------------------------------------


def test_key_return_refunds_and_restocks(served: Served, kinguin: httpx.Client) -> None:
    """A return marks every key RETURNED, refunds the order, credits the balance, restocks and
    sends a refunded order.status webhook."""
    done = completed(served, kinguin, order(line(CS_SOURCE, 6, qty=2), external_id="ret"))
    order_id = done["orderId"]
    credit_before = balance(kinguin)
    response = kinguin.post(f"/v2/order/{order_id}/keys/return")
    assert response.status_code == 200, response.text
    key_ids = [key["id"] for key in done["products"][0]["keys"]]
    assert response.json() == [{"id": key_id, "status": "RETURNED"} for key_id in key_ids]
    fetched = kinguin.get(f"/v1/order/{order_id}").json()
    assert fetched["status"] == "refunded"
    assert {key["status"] for key in fetched["products"][0]["keys"]} == {"RETURNED"}
    assert balance(kinguin) == round(credit_before + 11.58, 2)
    assert product(kinguin, CS_SOURCE)["qty"] == DEFAULT_STOCK
    assert kinguin.get(f"/v2/order/{order_id}/keys").json() == []
    wait_for(lambda: served.statuses(order_id) == ["processing", "completed", "refunded"])
    refunded = [e for e in served.events("order.status") if e["status"] == "refunded"]
    assert refunded[0]["orderExternalId"] == "ret"


def test_keys_are_returned_once(served: Served, kinguin: httpx.Client) -> None:
    """A second return is refused with NoKeysToReturn; the balance is credited once."""
    order_id = completed(served, kinguin, order(line(PORTAL_2, 12.49)))["orderId"]
    assert kinguin.post(f"/v2/order/{order_id}/keys/return").status_code == 200
    credited = balance(kinguin)
    error = refused(kinguin.post(f"/v2/order/{order_id}/keys/return"), 400, "NoKeysToReturn")
    assert "already returned" in error["detail"]
    assert balance(kinguin) == credited


def test_keys_of_an_order_not_completed_cannot_be_returned() -> None:
    """A processing order has no keys to return."""
    with sandbox(delay_s=60) as running, running.client() as client:
        order_id = place(client, order(line(PORTAL_2, 12.49)))["orderId"]
        error = refused(client.post(f"/v2/order/{order_id}/keys/return"), 400, "NoKeysToReturn")
    assert "not completed" in error["detail"]


def test_preorder_keys_cannot_be_returned(served: Served, kinguin: httpx.Client) -> None:
    """Pre-order keys are never returnable, before or after release."""
    order_id = place(kinguin, order(line(PREORDER, 39.99)))["orderId"]
    error = refused(kinguin.post(f"/v2/order/{order_id}/keys/return"), 400, "NoKeysToReturn")
    assert "pre-order" in error["detail"]
    with served.client(api_key=None) as control:
        assert control.post(f"/products/{PREORDER}/release").status_code == 200
    wait_for(lambda: kinguin.get(f"/v1/order/{order_id}").json()["status"] == "completed")
    refused(kinguin.post(f"/v2/order/{order_id}/keys/return"), 400, "NoKeysToReturn")


def test_keys_cannot_be_returned_after_24_hours(served: Served, kinguin: httpx.Client) -> None:
    """Past 24 hours after delivery (by the injected clock) a return is refused."""
    order_id = completed(served, kinguin, order(line(CS_SOURCE, 5.79)))["orderId"]
    served.clock.offset = timedelta(hours=24, seconds=5)
    error = refused(kinguin.post(f"/v2/order/{order_id}/keys/return"), 400, "NoKeysToReturn")
    assert "24 hours" in error["detail"]
    assert kinguin.get(f"/v1/order/{order_id}").json()["status"] == "completed"


def test_return_of_an_unknown_order_is_order_not_found(kinguin: httpx.Client) -> None:
    """Returning the keys of an unknown order answers 404 OrderNotFound."""
    refused(kinguin.post("/v2/order/NOSUCHORDER/keys/return"), 404, "OrderNotFound")
