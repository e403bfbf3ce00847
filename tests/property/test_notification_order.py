"""Any interleaving of duplicate, late and reordered notifications leaves the order exactly
where the clean sequence does."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

from hypothesis import given
from hypothesis import strategies as st

from domain import order as rules
from domain import payments, supply
from domain.events import LineItem
from domain.order import Order
from domain.payments import PaymentNotice
from domain.supply import SupplierNotice

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PAYMENT = [
    PaymentNotice(
        payment_id="7",
        payment_status=s,
        invoice_id="inv",
        price_amount=Decimal(1),
        price_currency="eur",
        pay_amount=Decimal("0.00001538"),
        actually_paid=Decimal("0.00001538"),
        pay_currency="btc",
    )
    for s in ("waiting", "confirming", "confirmed", "sending", "finished")
]
SUPPLIER = [
    SupplierNotice(
        supplier_order_id="K1", status="processing", updated_at="2026-01-01T00:00:01.000+00:00"
    ),
    SupplierNotice(
        supplier_order_id="K1", status="completed", updated_at="2026-01-01T00:00:02.000+00:00"
    ),
]


def invoiced() -> Order:
    events = rules.place(
        uuid4(), owner="a", email="a@b.co", currency="eur",
        items=[LineItem(product_id="p", quantity=1, unit_price=Decimal(1))], now=NOW,
    )  # fmt: skip
    order = rules.fold(events)
    for event in payments.invoice_created(order, invoice_id="inv", invoice_url="u", now=NOW):
        order = rules.apply(order, event)
    return order


def run(notices: list[PaymentNotice], supplier: list[SupplierNotice]) -> Order:
    """Deliver the payment notices, let the engine reserve, then the supplier's notices."""
    order = invoiced()
    for notice in notices:
        for event in payments.payment_notified(order, notice, NOW):
            order = rules.apply(order, event)
    for event in supply.reserved(order, supplier_order_id="K1", now=NOW):
        order = rules.apply(order, event)
    for supplier_notice in supplier:
        for event in supply.supplier_polled(order, supplier_notice, NOW):
            order = rules.apply(order, event)
    return order


def essence(order: Order) -> tuple[object, ...]:
    """What the order is, leaving out how many audit lines it took to get there."""
    return (
        order.status,
        order.payment_id,
        order.supplier_order_id,
        order.supplier_status,
        order.supplier_updated_at,
        order.flags,
    )


@given(
    st.lists(st.sampled_from(PAYMENT), max_size=6).flatmap(
        lambda extra: st.permutations(PAYMENT + extra)
    ),
    st.lists(st.sampled_from(SUPPLIER), max_size=4).flatmap(
        lambda extra: st.permutations(SUPPLIER + extra)
    ),
)
def test_messy_delivery_ends_like_the_clean_one(
    notices: list[PaymentNotice], supplier: list[SupplierNotice]
) -> None:
    """Duplicates and any order of arrival give the same final state as the clean sequence."""
    assert essence(run(notices, supplier)) == essence(run(PAYMENT, SUPPLIER))
