"""The order aggregate's decisions and transitions, with plain values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import msgspec
import pytest

from domain import access, payments, supply
from domain import order as rules
from domain.errors import InvalidOrder, TransitionRefused
from domain.events import DomainEvent, LineItem, PaymentStatusChanged, WebhookReceived
from domain.order import DeliveredKey, Order, Status
from domain.payments import PaymentNotice
from domain.supply import SupplierNotice

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def placed(quantity: int = 2) -> tuple[Order, list[DomainEvent]]:
    events = rules.place(
        uuid4(),
        owner="alice",
        email="alice@example.com",
        currency="EUR",
        items=[LineItem(product_id="p1", quantity=quantity, unit_price=Decimal("9.99"))],
        now=NOW,
    )
    return rules.fold(events), events


def step(order: Order, events: list[DomainEvent]) -> Order:
    for event in events:
        order = rules.apply(order, event)
    return order


def invoiced() -> Order:
    order, _ = placed()
    return step(order, payments.invoice_created(order, invoice_id="42", invoice_url="u", now=NOW))


PRICE = Decimal("19.98")  # what placed() costs, and what invoice 42 asks
ASKED = Decimal("0.00030738")  # the invoice's price in BTC


def notice(status: str, *, paid: Decimal | None = None, payment_id: str = "777") -> PaymentNotice:
    """A complete IPN for invoice 42, bringing ``paid`` BTC (the price by default; half of it
    for ``partially_paid``)."""
    if paid is None:
        paid = ASKED / 2 if status == "partially_paid" else ASKED
    return PaymentNotice(
        payment_id=payment_id,
        payment_status=status,
        invoice_id="42",
        price_amount=PRICE,
        price_currency="eur",
        pay_amount=ASKED,
        actually_paid=paid,
        pay_currency="btc",
    )


def paid() -> Order:
    order = invoiced()
    return step(order, payments.payment_notified(order, notice("finished"), NOW))


def reserved() -> Order:
    order = paid()
    return step(order, supply.reserved(order, supplier_order_id="K1", now=NOW))


def receipts(n: int) -> list[DeliveredKey]:
    return [
        DeliveredKey(
            key_id=f"k{i}",
            product_id="p1",
            vault_ref=f"r{i}",
            fingerprint="f",
            content_type="text/plain",
        )
        for i in range(n)
    ]


def test_place_sums_total_and_starts_created() -> None:
    """A new order is created with the sum of its lines and a lower-case currency."""
    order, events = placed(quantity=3)
    assert order.status is Status.CREATED
    assert order.total == Decimal("29.97")
    assert order.currency == "eur"
    assert [e.originator_version for e in events] == [1]


@pytest.mark.parametrize(
    ("email", "quantity", "price", "currency"),
    [
        ("not-an-email", 1, "1", "eur"),
        ("a@b.co", 0, "1", "eur"),
        ("a@b.co", 10, "1", "eur"),
        ("a@b.co", 1, "0", "eur"),
        ("a@b.co", 1, "-5", "eur"),
        ("a@b.co", 1, "NaN", "eur"),
        ("a@b.co", 1, "1E+400", "eur"),
        ("a@b.co", 1, "0.000000001", "eur"),
        ("a@b.co", 1, "1", "e1"),
    ],
)
def test_place_refuses_bad_content(email: str, quantity: int, price: str, currency: str) -> None:
    """Bad e-mail, quantity outside 1..9, non-positive price or odd currency are refused."""
    with pytest.raises(InvalidOrder):
        rules.place(
            uuid4(),
            owner="a",
            email=email,
            currency=currency,
            items=[LineItem(product_id="p", quantity=quantity, unit_price=Decimal(price))],
            now=NOW,
        )


def test_place_refuses_empty_and_too_many_lines() -> None:
    """An order has between 1 and 10 lines."""
    line = LineItem(product_id="p", quantity=1, unit_price=Decimal(1))
    for items in ([], [line] * 11):
        with pytest.raises(InvalidOrder):
            rules.place(uuid4(), owner="a", email="a@b.co", currency="eur", items=items, now=NOW)


def test_invoice_moves_to_pending_payment() -> None:
    """An invoice makes the order pending payment and is remembered."""
    order = invoiced()
    assert order.status is Status.PENDING_PAYMENT
    assert order.invoice_id == "42"


def test_finished_payment_pays_once() -> None:
    """`finished` pays the order; a repeat is an audit line only."""
    order = paid()
    assert order.status is Status.PAID
    again = payments.payment_notified(order, notice("finished"), NOW)
    assert [type(e) for e in again] == [WebhookReceived, PaymentStatusChanged]


@pytest.mark.parametrize("status", ["waiting", "confirming", "confirmed", "sending"])
def test_pending_statuses_are_audit_lines(status: str) -> None:
    """In-flight payment statuses change nothing but the audit trail."""
    order = invoiced()
    after = step(order, payments.payment_notified(order, notice(status), NOW))
    assert after.status is Status.PENDING_PAYMENT


def test_partially_paid_is_underpaid_and_later_finished_pays() -> None:
    """`partially_paid` marks the order underpaid; a later `finished` still pays it."""
    order = invoiced()
    order = step(order, payments.payment_notified(order, notice("partially_paid"), NOW))
    assert order.status is Status.UNDERPAID
    order = step(order, payments.payment_notified(order, notice("finished"), NOW))
    assert order.status is Status.PAID


@pytest.mark.parametrize("status", ["failed", "expired", "refunded"])
def test_failures_fail_the_payment_but_not_a_paid_order(status: str) -> None:
    """Failed/expired/refunded end an unpaid order and never undo a paid one."""
    order = invoiced()
    assert (
        step(order, payments.payment_notified(order, notice(status), NOW)).status
        is Status.PAYMENT_FAILED
    )
    done = paid()
    assert step(done, payments.payment_notified(done, notice(status), NOW)).status is Status.PAID


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (msgspec.structs.replace(notice("finished"), invoice_id="other"), "invoice"),
        (msgspec.structs.replace(notice("finished"), price_currency="usd"), "currency"),
        (msgspec.structs.replace(notice("finished"), price_amount=Decimal(1)), "price"),
        (msgspec.structs.replace(notice("finished"), parent_payment_id="1"), "re-deposit"),
    ],
)
def test_mismatched_payments_are_flagged_not_paid(bad: PaymentNotice, reason: str) -> None:
    """Another invoice, currency, a lower price or a re-deposit never pays: it is flagged."""
    order = invoiced()
    after = step(order, payments.payment_notified(order, bad, NOW))
    assert after.status is Status.PENDING_PAYMENT
    assert len(after.flags) == 1
    assert reason in after.flags[0]


def test_admin_retry_resumes_where_the_order_failed() -> None:
    """A refused purchase is tried again under the same reference (a purchase that went through
    is found, not bought twice); a canceled one under a new reference; a failed delivery
    re-delivers."""
    order = paid()
    order = step(order, supply.supplier_failed(order, reason="ProductUnavailable", now=NOW))
    order = step(order, supply.retried(order, by="admin", now=NOW))
    assert order.status is Status.PAID
    assert order.supplier_reference == str(order.id)
    canceled = reserved()
    notice = SupplierNotice(
        supplier_order_id="K1", status="canceled", updated_at="2026-01-02T00:00:00.000+00:00"
    )
    canceled = step(canceled, supply.supplier_polled(canceled, notice, NOW))
    canceled = step(canceled, supply.retried(canceled, by="admin", now=NOW))
    assert canceled.status is Status.PAID
    assert canceled.supplier_reference == f"{canceled.id}.1"
    stuck = reserved()
    stuck = step(stuck, supply.gave_up(stuck, reason="deliver gave up", now=NOW))
    assert stuck.status is Status.FULFILLMENT_FAILED
    stuck = step(stuck, supply.retried(stuck, by="admin", now=NOW))
    assert stuck.status is Status.RESERVED
    assert stuck.supplier_reference == str(stuck.id)
    with pytest.raises(TransitionRefused):
        supply.retried(stuck, by="admin", now=NOW)


def test_reserve_only_when_paid_and_once() -> None:
    """Only a paid order is reserved, and only once."""
    order, _ = placed()
    assert supply.reserved(order, supplier_order_id="K", now=NOW) == []
    order = reserved()
    assert order.status is Status.RESERVED
    assert supply.reserved(order, supplier_order_id="K2", now=NOW) == []


def test_keys_already_there_fulfil_the_order_with_its_reservation() -> None:
    """Every key delivered when the purchase is accepted: reserved, completed (Kinguin's word
    for "all keys delivered") and fulfilled in one decision, versions following on; some of
    them only: reserved, the keys left for later."""
    order = paid()
    events = supply.reserved(order, supplier_order_id="K", now=NOW, receipts=receipts(2))
    assert [type(e).__name__ for e in events] == [
        "KeysReserved", "SupplierOrderStatusChanged", "KeyDelivered", "KeyDelivered",
        "OrderFulfilled",
    ]  # fmt: skip
    assert [e.originator_version for e in events] == list(
        range(order.version + 1, order.version + 6)
    )
    fulfilled = step(order, events)
    assert (fulfilled.status, fulfilled.supplier_order_id) == (Status.FULFILLED, "K")
    assert fulfilled.supplier_status == "completed"
    assert len(fulfilled.keys) == 2
    some = supply.reserved(order, supplier_order_id="K", now=NOW, receipts=receipts(1))
    assert [type(e).__name__ for e in some] == ["KeysReserved"]


def test_supplier_failure_needs_admin() -> None:
    """A refused purchase leaves the order fulfillment_failed with the reason."""
    order = paid()
    order = step(order, supply.supplier_failed(order, reason="ProductUnavailable", now=NOW))
    assert order.status is Status.FULFILLMENT_FAILED
    assert order.failure_reason == "ProductUnavailable"


def test_supplier_notice_stale_and_foreign_are_ignored() -> None:
    """Kinguin answers older than the last one, or about another purchase, change nothing."""
    order = reserved()
    fresh = SupplierNotice(
        supplier_order_id="K1", status="completed", updated_at="2026-01-02T00:00:00.000+00:00"
    )
    order = step(order, supply.supplier_polled(order, fresh, NOW))
    assert order.supplier_status == "completed"
    stale = SupplierNotice(
        supplier_order_id="K1", status="processing", updated_at="2026-01-01T00:00:00.000+00:00"
    )
    foreign = SupplierNotice(
        supplier_order_id="K9", status="canceled", updated_at="2026-01-03T00:00:00.000+00:00"
    )
    for ignored in (stale, foreign):
        assert supply.supplier_polled(order, ignored, NOW) == []


def test_supplier_cancel_fails_a_reserved_order() -> None:
    """A canceled purchase fails the fulfilment."""
    order = reserved()
    cancel = SupplierNotice(
        supplier_order_id="K1", status="canceled", updated_at="2026-01-02T00:00:00.000+00:00"
    )
    assert (
        step(order, supply.supplier_polled(order, cancel, NOW)).status is Status.FULFILLMENT_FAILED
    )


def test_keys_delivered_needs_reservation_and_every_key() -> None:
    """Keys are recorded only for a reserved order and only all of them at once."""
    assert supply.keys_delivered(paid(), receipts(2), NOW) == []
    order = reserved()
    with pytest.raises(TransitionRefused):
        supply.keys_delivered(order, receipts(1), NOW)
    order = step(order, supply.keys_delivered(order, receipts(2), NOW))
    assert order.status is Status.FULFILLED
    assert len(order.keys) == 2
    assert supply.keys_delivered(order, receipts(2), NOW) == []


def test_reveal_only_fulfilled_orders() -> None:
    """Keys can be revealed only once the order is fulfilled; the event names who and where."""
    with pytest.raises(TransitionRefused):
        access.revealed(paid(), who="alice", ip="1.2.3.4", user_agent="ua", how="reveal", now=NOW)
    order = reserved()
    order = step(order, supply.keys_delivered(order, receipts(2), NOW))
    [event] = access.revealed(
        order, who="alice", ip="1.2.3.4", user_agent="ua", how="reveal", now=NOW
    )
    assert (event.who, event.ip, event.how) == ("alice", "1.2.3.4", "reveal")  # type: ignore[attr-defined]


def test_versions_follow_on() -> None:
    """Each decision numbers its events after the order's current version."""
    order = invoiced()
    events = payments.payment_notified(order, notice("finished"), NOW)
    assert [e.originator_version for e in events] == [3, 4, 5]
