"""Random sequences of commands and (duplicate, late, reordered) notifications keep the order's
invariants: status never moves back, paid at most once, reserved at most once, no key before
the reservation, versions contiguous."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain import access, payments, supply
from domain import order as rules
from domain.errors import TransitionRefused
from domain.events import (
    DomainEvent,
    KeyDelivered,
    KeysReserved,
    LineItem,
    OrderFulfilled,
    OrderPaid,
)
from domain.order import DeliveredKey, Order, Status
from domain.payments import PaymentNotice
from domain.supply import SupplierNotice

FORWARD: dict[Status, set[Status]] = {
    Status.CREATED: {Status.PENDING_PAYMENT, Status.UNDERPAID, Status.PAID, Status.PAYMENT_FAILED},
    Status.PENDING_PAYMENT: {Status.UNDERPAID, Status.PAID, Status.PAYMENT_FAILED},
    Status.UNDERPAID: {Status.PAID, Status.PAYMENT_FAILED},
    Status.PAID: {Status.RESERVED, Status.FULFILLMENT_FAILED},
    Status.RESERVED: {Status.FULFILLED, Status.FULFILLMENT_FAILED},
    Status.FULFILLED: set(),
    Status.PAYMENT_FAILED: set(),
    Status.FULFILLMENT_FAILED: set(),
}
RETRY = {Status.FULFILLMENT_FAILED: {Status.PAID, Status.RESERVED}}  # only by an admin's retry
PAYMENT_STATUSES = [
    "waiting", "confirming", "confirmed", "sending", "partially_paid", "finished",
    "failed", "expired", "refunded",
]  # fmt: skip
SUPPLIER_STATUSES = ["processing", "completed", "canceled", "refunded"]
START = datetime(2026, 1, 1, tzinfo=UTC)
ASKED = Decimal("0.00015")  # what an invoice asks in BTC


class OrderLifecycle(RuleBasedStateMachine):
    """Drives one order with any sequence of commands and notifications."""

    @initialize(quantity=st.integers(1, 3))
    def place(self, quantity: int) -> None:
        self.events: list[DomainEvent] = rules.place(
            uuid4(),
            owner="alice",
            email="alice@example.com",
            currency="eur",
            items=[LineItem(product_id="p", quantity=quantity, unit_price=Decimal("5.00"))],
            now=START,
        )
        self.order: Order = rules.fold(self.events)
        self.notices: list[PaymentNotice] = []
        self.clock = 0

    def _apply(self, new: list[DomainEvent], *, admin: bool = False) -> None:
        before = self.order.status
        for event in new:
            self.order = rules.apply(self.order, event)
        self.events.extend(new)
        after = self.order.status
        allowed = FORWARD[before] | (RETRY.get(before, set()) if admin else set())
        assert after == before or after in allowed, f"{before} -> {after}"

    def _now(self) -> datetime:
        self.clock += 1
        return START + timedelta(seconds=self.clock)

    @rule()
    def invoice(self) -> None:
        try:
            self._apply(
                payments.invoice_created(
                    self.order, invoice_id="inv", invoice_url="u", now=self._now()
                )
            )
        except TransitionRefused:
            assert self.order.status not in rules.AWAITING_PAYMENT

    @rule(
        status=st.sampled_from(PAYMENT_STATUSES),
        payment=st.sampled_from(["1", "2"]),
        share=st.sampled_from([Decimal(1), Decimal("0.5"), Decimal("1.5")]),
    )
    def ipn(self, status: str, payment: str, share: Decimal) -> None:
        notice = PaymentNotice(
            payment_id=payment,
            payment_status=status,
            invoice_id=self.order.invoice_id,
            price_amount=self.order.total,
            price_currency="eur",
            pay_amount=ASKED,
            actually_paid=ASKED * share,
            pay_currency="btc",
        )
        self.notices.append(notice)
        self._apply(payments.payment_notified(self.order, notice, self._now()))

    @rule(data=st.data())
    def repeated_ipn(self, data: st.DataObject) -> None:
        if self.notices:
            notice = data.draw(st.sampled_from(self.notices))
            self._apply(payments.payment_notified(self.order, notice, self._now()))

    @rule()
    def reserve(self) -> None:
        self._apply(supply.reserved(self.order, supplier_order_id="K1", now=self._now()))

    @rule(
        status=st.sampled_from(SUPPLIER_STATUSES),
        minute=st.integers(0, 5),
        supplier=st.sampled_from(["K1", "K2"]),
    )
    def supplier_webhook(self, status: str, minute: int, supplier: str) -> None:
        notice = SupplierNotice(
            supplier_order_id=supplier,
            status=status,
            updated_at=f"2026-01-01T00:0{minute}:00.000+00:00",
        )
        self._apply(supply.supplier_polled(self.order, notice, self._now()))

    @rule()
    def give_up(self) -> None:
        self._apply(supply.gave_up(self.order, reason="retries exhausted", now=self._now()))

    @rule()
    def admin_retry(self) -> None:
        try:
            self._apply(supply.retried(self.order, by="admin", now=self._now()), admin=True)
        except TransitionRefused:
            assert self.order.status is not Status.FULFILLMENT_FAILED

    @rule()
    def deliver(self) -> None:
        keys = [
            DeliveredKey(
                key_id=f"k{i}",
                product_id="p",
                vault_ref=f"r{i}",
                fingerprint="f",
                content_type="text/plain",
            )
            for i in range(self.order.quantity)
        ]
        self._apply(supply.keys_delivered(self.order, keys, self._now()))

    @rule()
    def reveal(self) -> None:
        try:
            self._apply(
                access.revealed(
                    self.order, who="alice", ip="ip", user_agent="ua", how="reveal", now=self._now()
                )
            )
        except TransitionRefused:
            assert self.order.status is not Status.FULFILLED

    @invariant()
    def paid_once_and_reserved_once_per_purchase_attempt(self) -> None:
        assert sum(isinstance(e, OrderPaid) for e in self.events) <= 1
        reservations = sum(isinstance(e, KeysReserved) for e in self.events)
        assert reservations <= self.order.purchase_attempt + 1

    @invariant()
    def paid_only_when_the_money_covers_the_total(self) -> None:
        for event in self.events:
            if isinstance(event, OrderPaid):
                assert event.amount_received is not None
                assert event.amount_received >= self.order.total

    @invariant()
    def delivered_only_once(self) -> None:
        assert sum(isinstance(e, OrderFulfilled) for e in self.events) <= 1

    @invariant()
    def no_key_before_reservation(self) -> None:
        reserved_at = next(
            (i for i, e in enumerate(self.events) if isinstance(e, KeysReserved)), None
        )
        for i, event in enumerate(self.events):
            if isinstance(event, KeyDelivered):
                assert reserved_at is not None
                assert reserved_at < i

    @invariant()
    def versions_are_contiguous_and_fold_agrees(self) -> None:
        assert [e.originator_version for e in self.events] == list(range(1, len(self.events) + 1))
        assert rules.fold(self.events) == self.order


OrderLifecycle.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestOrderLifecycle = OrderLifecycle.TestCase
