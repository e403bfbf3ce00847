"""One writer per order: a Kinguin ``order.status`` webhook is recorded in the inbox and never
writes the order; it only says whether the ``deliver`` step must run (``deliver queued``), and
``deliver`` asks Kinguin itself and records its answer."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast
from uuid import UUID, uuid4

import pytest

from adapters import kinguin, nowpayments
from adapters.eventstore import open_event_store
from application.fulfillment import Fulfillment
from application.orders import Orders
from application.ports import SupplierKey, SupplierOrder
from application.webhooks import (
    DELIVER_QUEUED,
    NO_CHANGE,
    UNKNOWN_ORDER,
    Delivery,
    Readers,
    WebhookInbox,
)
from domain import payments
from domain.events import LineItem
from domain.order import Status
from domain.supply import SupplierNotice
from tests.fakes import FixedClock
from tests.unit.test_order import NOW, notice, placed, step
from tests.unit.test_reserve import Vault


class Kinguin:
    """A Kinguin whose purchase is processing until the test says what became of it."""

    def __init__(self) -> None:
        self.status = "processing"

    def balance(self, *, fresh: bool = False) -> Decimal:  # noqa: ARG002 - the port
        return Decimal(1000)

    def place_order(self, external_id: str, items: Sequence[LineItem]) -> SupplierOrder:
        del items
        return SupplierOrder(order_id="K1", external_id=external_id, status="processing")

    def get_order(self, supplier_order_id: str) -> SupplierOrder:
        return SupplierOrder(order_id=supplier_order_id, external_id=None, status=self.status)

    def fetch_keys(self, supplier_order_id: str) -> list[SupplierKey]:
        assert supplier_order_id == "K1"
        if self.status != "completed":
            return []
        return [
            SupplierKey(id=f"k{i}", serial=f"S-{i}", content_type="text/plain", product_id="p1")
            for i in range(2)
        ]


class Shop:
    """A reserved order of two keys whose purchase is processing, an inbox and ``deliver``."""

    def __init__(self) -> None:
        order, events = placed()
        invoice = payments.invoice_created(order, invoice_id="42", invoice_url="u", now=NOW)
        order = step(order, invoice)
        paid = payments.payment_notified(order, notice("finished"), NOW)
        self.orders = Orders(open_event_store({"PERSISTENCE_MODULE": "eventsourcing.popo"}))
        self.orders.save([*events, *invoice, *paid])
        self.kinguin = Kinguin()
        self.fulfillment = Fulfillment(
            orders=self.orders, catalog=cast(Any, None), supplier=cast(Any, self.kinguin),
            payments=cast(Any, None), custody=cast(Any, Vault(down=False)),
            customers=cast(Any, None), clock=FixedClock(NOW),
        )  # fmt: skip
        readers = Readers(nowpayments, kinguin, refresh_product=lambda _product: None)
        self.inbox = WebhookInbox(self.orders, FixedClock(NOW), self.fulfillment.deliver, readers)
        self.order_id = order.id

    def webhook(self, status: str, supplier_order_id: str = "K1", to: UUID | None = None) -> str:
        """Kinguin's ``order.status`` webhook, as the HTTP layer hands it to the inbox."""
        said = SupplierNotice(
            supplier_order_id=supplier_order_id, status=status, updated_at=f"{uuid4()}"
        )
        delivery = Delivery(
            provider="kinguin",
            natural_key=f"{supplier_order_id}:{status}:{said.updated_at}",
            event_name="order.status",
            body="{}",
        )
        return self.inbox.supplier_notified(to or self.order_id, said, delivery)


@pytest.fixture
def shop() -> Shop:
    return Shop()


def test_a_webhook_before_the_reservation_is_left_to_reserve(shop: Shop) -> None:
    """While the order is being bought, ``reserve`` owns it: the webhook changes nothing."""
    version = shop.orders.load(shop.order_id).version
    assert shop.webhook("completed") == NO_CHANGE
    assert shop.orders.load(shop.order_id).version == version
    assert shop.webhook("completed", to=uuid4()) == UNKNOWN_ORDER


def test_a_completed_webhook_wakes_deliver_which_fulfils_the_order(shop: Shop) -> None:
    """Reserved, keys still coming: ``processing`` or another purchase's news wakes nothing;
    ``completed`` is recorded as ``deliver queued`` without a write to the order, and
    ``deliver`` then reads the keys and fulfils it."""
    shop.fulfillment.reserve(shop.order_id)
    reserved = shop.orders.load(shop.order_id)
    assert reserved.status is Status.RESERVED
    assert shop.webhook("processing") == NO_CHANGE
    assert shop.webhook("completed", supplier_order_id="K9") == NO_CHANGE
    shop.kinguin.status = "completed"
    assert shop.webhook("completed") == DELIVER_QUEUED
    assert shop.orders.load(shop.order_id).version == reserved.version
    shop.fulfillment.deliver(shop.order_id)
    fulfilled = shop.orders.load(shop.order_id)
    assert (fulfilled.status, fulfilled.supplier_status) == (Status.FULFILLED, "completed")
    assert len(fulfilled.keys) == 2


def test_a_canceled_purchase_fails_the_order_through_deliver(shop: Shop) -> None:
    """Kinguin cancels the purchase: the webhook wakes ``deliver``, which asks Kinguin and
    fails the order for an admin with the supplier's reason."""
    shop.fulfillment.reserve(shop.order_id)
    shop.kinguin.status = "canceled"
    assert shop.webhook("canceled") == DELIVER_QUEUED
    shop.fulfillment.deliver(shop.order_id)
    failed = shop.orders.load(shop.order_id)
    assert failed.status is Status.FULFILLMENT_FAILED
    assert failed.failure_reason == "supplier order canceled"
