"""The composition root takes the outside world as parameters: an engine built with a fake
supplier, payment gateway and mailer (and its own store, views and vault, on SQLite and files)
syncs its catalog from the fake, prices and invoices an order through it, buys the keys from it
and e-mails them through the fake mailer — no HTTP anywhere."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from application.orders import Viewer
from application.ports import (
    Invoice,
    ProductPage,
    SupplierKey,
    SupplierOrder,
)
from application.webhooks import Delivery
from domain.catalog import LineRequest
from domain.events import LineItem, SupplierProduct
from domain.payments import PaymentNotice
from entrypoints.bootstrap import bootstrap
from entrypoints.settings import load_settings
from tests.fakes import FixedClock

NOW = datetime.fromisoformat("2026-12-07T10:00:00+00:00")
PRODUCT = SupplierProduct(
    product_id="p1", kinguin_id=1, name="A Game", platform="Steam", region="Region free",
    qty=10, text_qty=10, cost=Decimal("5.00"), cheapest_offer_ids=("o1",),
)  # fmt: skip


class Kinguin:
    """The supplier port, in memory: one product, and purchases completed at once."""

    def __init__(self) -> None:
        self.bought: list[str] = []

    def products(self, *, page: int, limit: int, updated_since: Any = None) -> ProductPage:  # noqa: ARG002
        return ProductPage(products=[PRODUCT] if page == 1 else [], total=1)

    def product(self, product_id: str) -> SupplierProduct | None:
        return PRODUCT if product_id == PRODUCT.product_id else None

    def balance(self, *, fresh: bool = False) -> Decimal:  # noqa: ARG002
        return Decimal(1000)

    def place_order(self, external_id: str, items: Sequence[LineItem]) -> SupplierOrder:  # noqa: ARG002
        self.bought.append(external_id)
        return SupplierOrder(order_id="K1", external_id=external_id, status="completed")

    def get_order(self, supplier_order_id: str) -> SupplierOrder:
        return SupplierOrder(order_id=supplier_order_id, external_id=None, status="completed")

    def find_by_external_id(self, external_id: str) -> SupplierOrder | None:  # noqa: ARG002
        return None

    def fetch_keys(self, supplier_order_id: str) -> list[SupplierKey]:  # noqa: ARG002
        return [SupplierKey(id="k1", serial="AAAA-BBBB", content_type="text/plain",
                            product_id=PRODUCT.product_id)]  # fmt: skip

    def return_keys(self, supplier_order_id: str) -> list[str]:  # noqa: ARG002
        return ["k1"]


class Gateway:
    """The payment gateway port, in memory."""

    def __init__(self) -> None:
        self.invoiced: list[tuple[str, str, str]] = []

    def create_invoice(
        self, *, order_id: str, amount: Decimal, currency: str, description: str
    ) -> Invoice:
        self.invoiced.append((order_id, f"{amount} {currency}", description))
        return Invoice(invoice_id="i1", invoice_url="https://pay.example/i1")


class Mailbox:
    """The mailer port, in memory."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:  # noqa: ARG002
        self.sent.append((to, text))
        return f"m{len(self.sent)}"


def test_an_order_runs_on_the_fakes_handed_to_bootstrap(tmp_path: Path) -> None:
    kinguin, gateway, mailbox = Kinguin(), Gateway(), Mailbox()
    engine = bootstrap(
        load_settings({"VAR_DIR": str(tmp_path)}),
        clock=FixedClock(NOW), supplier=kinguin, payments=gateway, mailer=mailbox,
    )  # fmt: skip
    try:
        assert engine.catalog.sync().seen == 1
        alice = Viewer(sub="alice", role="user")
        line = LineRequest(product_id=PRODUCT.product_id, quantity=1)
        order = engine.fulfillment.place_order(
            alice, email="alice@shop.example", currency="eur", lines=[line]
        )
        order = engine.fulfillment.create_payment(order.id, alice)
        [(invoiced, amount, description)] = gateway.invoiced
        assert (invoiced, amount) == (str(order.id), f"{order.total} eur")
        assert description
        assert order.invoice_url == "https://pay.example/i1"
        _paid(engine, order.id)
        engine.fulfillment.reserve(order.id)
        assert kinguin.bought == [str(order.id)]
        assert engine.fulfillment.order(order.id, alice).status.value == "fulfilled"
        engine.notifier.order_fulfilled(order.id)
        [(to, text)] = mailbox.sent
        assert to == "alice@shop.example"
        assert "AAAA-BBBB" not in text  # a link to the keys, never a key
    finally:
        engine.stop()


def _paid(engine: Any, order_id: UUID) -> None:
    """The payment, recorded by the inbox as a verified IPN would be."""
    order = engine.fulfillment.order(order_id, Viewer(sub="root", role="admin"))
    notice = PaymentNotice(
        payment_id="1", payment_status="finished", invoice_id="i1", price_amount=order.total,
        price_currency="eur", actually_paid=order.total, pay_amount=order.total,
    )  # fmt: skip
    delivery = Delivery.of("nowpayments", "1:finished", "ipn", b"{}", {})
    assert engine.inbox.payment_notified(order_id, notice, delivery) == "OrderPaid"
