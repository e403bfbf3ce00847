"""Orders read order streams only: the store holds every aggregate (products, pricing, webhook
deliveries, customers), and an id of one of those is no order to anyone, staff included."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from adapters.eventstore import RecorderEventStore
from application.orders import Orders, Viewer
from domain import order as rules
from domain.errors import OrderNotFound
from domain.events import LineItem
from domain.webhooks import delivery_recorded

NOW = datetime(2026, 12, 1, tzinfo=UTC)
READERS = [Viewer(sub="ops", role="admin"), Viewer(sub="ivy", role="auditor")]


def test_a_stream_that_is_no_order_is_not_found(store: RecorderEventStore) -> None:
    """An admin and an auditor read an order's history; a webhook delivery's id (a uuid5
    anyone can compute) is not found for them, at any version."""
    orders = Orders(store)
    placed = rules.place(
        uuid4(), owner="olga", email="o@example.com", currency="eur",
        items=[LineItem(product_id="p", quantity=1, unit_price=Decimal("2.00"))], now=NOW,
    )  # fmt: skip
    delivery = delivery_recorded(
        provider="nowpayments", natural_key="5:finished", event_name="ipn", order_id=None,
        body='{"payment_status": "finished"}', outcome="unknown order", now=NOW,
    )  # fmt: skip
    orders.save([*placed, delivery])
    for viewer in READERS:
        assert orders.history(placed[0].originator_id, viewer) == placed
        for until in (None, 1):
            with pytest.raises(OrderNotFound):
                orders.history(delivery.originator_id, viewer, until_version=until)
    with pytest.raises(OrderNotFound):
        orders.load(delivery.originator_id)
