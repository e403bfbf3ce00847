"""The Kinguin and NOWPayments clients against the built-in sandboxes over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from uuid import uuid4

import httpx
import pytest
from litestar import Litestar, Request, post

from adapters.kinguin import KinguinClient
from adapters.nowpayments import NowPaymentsClient
from application.errors import PaymentGatewayError, SupplierRejected, SupplierUnavailable
from domain.events import LineItem
from sandboxes.kinguin import KinguinSandboxConfig, kinguin_sandbox
from sandboxes.nowpayments import NowPaymentsSandboxConfig, nowpayments_sandbox
from tests.support import free_port, serving

KINGUIN_KEY = "kinguin-test-key"
NOWPAYMENTS_KEY = "nowpayments-test-key"


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    @post("/hooks", status_code=204)
    async def hooks(request: Request[Any, Any, Any]) -> None:
        await request.body()

    app = Litestar(
        route_handlers=[
            hooks,
            kinguin_sandbox(KinguinSandboxConfig(KINGUIN_KEY, "whsec", f"{base}/hooks", 0.2)),
            nowpayments_sandbox(NowPaymentsSandboxConfig(NOWPAYMENTS_KEY, "ipnsec", base)),
        ]
    )
    with serving(app, port) as url:
        yield url


@pytest.fixture
def kinguin(sandbox_url: str) -> Iterator[KinguinClient]:
    with httpx.Client(
        base_url=f"{sandbox_url}/sandbox/kinguin", headers={"X-Api-Key": KINGUIN_KEY}
    ) as http:
        yield KinguinClient(http, keys_page_size=4)


def items(quantity: int = 3) -> list[LineItem]:
    return [
        LineItem(
            product_id="5c9b5f6b2539a4e8f172916a", quantity=quantity, unit_price=Decimal("6.99")
        )
    ]


def test_place_order_then_repeat_buys_once(kinguin: KinguinClient) -> None:
    """A repeated purchase with the same orderExternalId resolves to the first one."""
    external = str(uuid4())
    first = kinguin.place_order(external, items())
    again = kinguin.place_order(external, items())
    assert first.status == "processing"
    assert again.order_id == first.order_id
    assert kinguin.find_by_external_id(external) == again


def test_keys_are_fetched_across_pages_once_completed(kinguin: KinguinClient) -> None:
    """After completion every key comes back, through several pages."""
    purchase = kinguin.place_order(str(uuid4()), [*items(9), *items(2)])
    deadline = time.monotonic() + 10
    while kinguin.get_order(purchase.order_id).status != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    keys = kinguin.fetch_keys(purchase.order_id)
    assert len(keys) == 11
    assert len({k.id for k in keys}) == 11
    assert all(k.serial and k.content_type == "text/plain" for k in keys)


def test_refusals_are_permanent(kinguin: KinguinClient, sandbox_url: str) -> None:
    """A quantity over Kinguin's limit, or a bad API key, is a SupplierRejected."""
    with pytest.raises(SupplierRejected, match="ConstraintViolation"):
        kinguin.place_order(str(uuid4()), items(10))
    with (
        httpx.Client(
            base_url=f"{sandbox_url}/sandbox/kinguin", headers={"X-Api-Key": "wrong"}
        ) as http,
        pytest.raises(SupplierRejected, match="Authorization"),
    ):
        KinguinClient(http).get_order("ABC")


def test_unreachable_supplier_is_transient() -> None:
    """No answer at all is a SupplierUnavailable (retry later)."""
    unreachable = f"http://127.0.0.1:{free_port()}"
    with httpx.Client(base_url=unreachable, timeout=1) as http, pytest.raises(SupplierUnavailable):
        KinguinClient(http).get_order("ABC")


def test_invoice_creation(sandbox_url: str) -> None:
    """An invoice comes back with its id and payment page."""
    with httpx.Client(
        base_url=f"{sandbox_url}/sandbox/nowpayments/v1", headers={"x-api-key": NOWPAYMENTS_KEY}
    ) as http:
        client = NowPaymentsClient(http, f"{sandbox_url}/hooks")
        invoice = client.create_invoice(
            order_id="o1", amount=Decimal("19.99"), currency="eur", description="d"
        )
        assert invoice.invoice_id.isdigit()
        assert invoice.invoice_url.endswith(f"iid={invoice.invoice_id}")
    with (
        httpx.Client(
            base_url=f"{sandbox_url}/sandbox/nowpayments/v1", headers={"x-api-key": "bad"}
        ) as http,
        pytest.raises(PaymentGatewayError),
    ):
        NowPaymentsClient(http, "x").create_invoice(
            order_id="o", amount=Decimal(1), currency="eur", description="d"
        )
