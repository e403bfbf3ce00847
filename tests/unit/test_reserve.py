"""``reserve`` with keys Kinguin has already delivered: fulfilled in the same run, or, when the
keys cannot be sealed, reserved all the same (a bought purchase must never look unbought)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import pytest

from adapters.eventstore import open_event_store
from application.fulfillment import Fulfillment
from application.orders import Orders
from application.ports import SealedKey, SupplierKey, SupplierOrder
from domain import payments
from domain.events import LineItem
from domain.order import Status
from tests.fakes import FixedClock
from tests.unit.test_order import NOW, notice, placed, step


class InStock:
    """A Kinguin that accepts the purchase with every key already delivered."""

    def balance(self, *, fresh: bool = False) -> Decimal:  # noqa: ARG002 - the port
        return Decimal(1000)

    def place_order(self, external_id: str, items: Sequence[LineItem]) -> SupplierOrder:
        del items
        return SupplierOrder(order_id="K1", external_id=external_id, status="processing")

    def fetch_keys(self, supplier_order_id: str) -> list[SupplierKey]:
        assert supplier_order_id == "K1"
        return [
            SupplierKey(
                id=f"k{i}", serial=f"SERIAL-{i}", content_type="text/plain", product_id="p1"
            )
            for i in range(2)
        ]


class Vault:
    """Key custody that seals, or fails as a vault outage does."""

    def __init__(self, *, down: bool) -> None:
        self.down = down

    def seal(self, order_id: UUID, key_id: str, plaintext: bytes) -> SealedKey:
        del plaintext
        if self.down:
            raise OSError("vault unreachable")
        return SealedKey(vault_ref=f"orders/{order_id}/keys/{key_id}", fingerprint="f")


def reserve_with(vault: Vault) -> tuple[Orders, UUID]:
    """A paid order of two keys, and ``reserve`` run once on it."""
    order, events = placed()
    invoice = payments.invoice_created(order, invoice_id="42", invoice_url="u", now=NOW)
    order = step(order, invoice)
    paid = payments.payment_notified(order, notice("finished"), NOW)
    orders = Orders(open_event_store({"PERSISTENCE_MODULE": "eventsourcing.popo"}))
    orders.save([*events, *invoice, *paid])
    fulfillment = Fulfillment(
        orders=orders, catalog=cast(Any, None), supplier=cast(Any, InStock()),
        payments=cast(Any, None), custody=cast(Any, vault), customers=cast(Any, None),
        clock=FixedClock(NOW),
    )  # fmt: skip
    fulfillment.reserve(order.id)
    return orders, order.id


def test_keys_already_delivered_fulfil_the_order_in_the_reserve_run() -> None:
    """Every key there when the purchase is accepted: sealed, and the order fulfilled."""
    orders, order_id = reserve_with(Vault(down=False))
    order = orders.load(order_id)
    assert (order.status, order.supplier_order_id, len(order.keys)) == (Status.FULFILLED, "K1", 2)


def test_keys_that_cannot_be_sealed_leave_the_purchase_reserved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The vault is down: the purchase is recorded, one WARNING line, and ``deliver`` follows."""
    with caplog.at_level(logging.WARNING):
        orders, order_id = reserve_with(Vault(down=True))
    order = orders.load(order_id)
    assert (order.status, order.supplier_order_id, order.keys) == (Status.RESERVED, "K1", ())
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "keys not sealed with the purchase (OSError: vault unreachable)" in warnings[0]
