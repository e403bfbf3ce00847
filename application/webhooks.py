"""The webhook inbox: verified provider deliveries, stored exactly once with their effect on the
order in the same transaction, and replayable by admins."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from uuid import UUID

import msgspec

from application.errors import ConcurrencyConflict, DeliveryNotFound
from application.orders import MAX_ATTEMPTS, Decision, Orders
from application.ports import Clock
from domain import payments, supply
from domain.events import (
    DomainEvent,
    PaymentStatusChanged,
    WebhookDeliveryRecorded,
    WebhookReceived,
)
from domain.order import Order
from domain.payments import PaymentNotice
from domain.supply import SupplierNotice
from domain.webhooks import delivery_recorded

log = logging.getLogger(__name__)
UNKNOWN_ORDER = "unknown order"
NO_CHANGE = "no change"
DUPLICATE = "duplicate"
PRODUCT_REFRESH = "product refresh queued"


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A verified webhook delivery: who sent it, its idempotency key, and its body."""

    provider: str
    natural_key: str
    event_name: str
    body: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)


class WebhookInbox:
    """Records NOWPayments and Kinguin notifications."""

    def __init__(self, orders: Orders, clock: Clock) -> None:
        self._orders = orders
        self._clock = clock

    def payment_notified(
        self, order_id: UUID | None, notice: PaymentNotice, delivery: Delivery
    ) -> str:
        """Record a verified IPN once; return what it did ("duplicate" for a repeat)."""
        return self._record(delivery, order_id, self._payment_decision(notice))

    def supplier_notified(
        self, order_id: UUID | None, notice: SupplierNotice, delivery: Delivery
    ) -> str:
        """Record a verified Kinguin ``order.status`` once; return what it did to the order."""
        return self._record(delivery, order_id, self._supplier_decision(notice))

    def product_notified(self, delivery: Delivery) -> str:
        """Record a verified Kinguin ``product.update`` once; following the log, the process
        manager then has the product read again from Kinguin (no supplier call here)."""
        recorded = self._delivery_event(delivery, None, [])
        recorded = msgspec.structs.replace(recorded, outcome=PRODUCT_REFRESH)
        try:
            self._orders.save([recorded])
        except ConcurrencyConflict:
            log.info("kinguin delivery %s repeated", delivery.natural_key)
            return DUPLICATE
        return recorded.outcome

    def delivery(self, delivery_id: UUID) -> WebhookDeliveryRecorded:
        """A stored webhook delivery."""
        events = self._orders.store.load(delivery_id)
        if not events or not isinstance(events[0], WebhookDeliveryRecorded):
            raise DeliveryNotFound(str(delivery_id))
        return events[0]

    def replay_payment(self, order_id: UUID | None, notice: PaymentNotice) -> str:
        """Re-run the handling of a stored IPN; the domain makes a repeat change nothing."""
        return self._replay(order_id, self._payment_decision(notice))

    def replay_supplier(self, order_id: UUID | None, notice: SupplierNotice) -> str:
        """Re-run the handling of a stored Kinguin webhook."""
        return self._replay(order_id, self._supplier_decision(notice))

    def _payment_decision(self, notice: PaymentNotice) -> Decision:
        return lambda o: payments.payment_notified(o, notice, self._clock.now())

    def _supplier_decision(self, notice: SupplierNotice) -> Decision:
        return lambda o: supply.supplier_notified(o, notice, self._clock.now())

    def _record(self, delivery: Delivery, order_id: UUID | None, decide: Decision) -> str:
        """Save the delivery and its effect on the order in one transaction, exactly once.

        A delivery naming no known order is stored all the same, for an admin to see. The
        delivery's id is derived from its natural key, so a repeat collides in the store.
        """
        for _ in range(MAX_ATTEMPTS):
            order = self._orders.find(order_id)
            events = decide(order) if order else []
            recorded = self._delivery_event(delivery, order, events)
            try:
                self._orders.save([recorded, *events])
            except ConcurrencyConflict:
                if self._orders.store.load(recorded.originator_id):
                    log.info("%s delivery %s repeated", delivery.provider, delivery.natural_key)
                    return DUPLICATE
                continue
            return recorded.outcome
        raise ConcurrencyConflict(f"delivery {delivery.natural_key}: too many concurrent writers")

    def _replay(self, order_id: UUID | None, decide: Decision) -> str:
        before = self._orders.find(order_id)
        if before is None:
            return UNKNOWN_ORDER
        self._orders.decide(before.id, decide)
        return _effects(self._orders.store.load(before.id)[before.version :]) or NO_CHANGE

    def _delivery_event(
        self, delivery: Delivery, order: Order | None, events: list[DomainEvent]
    ) -> WebhookDeliveryRecorded:
        outcome = (_effects(events) or NO_CHANGE) if order else UNKNOWN_ORDER
        return delivery_recorded(
            provider=delivery.provider,
            natural_key=delivery.natural_key,
            event_name=delivery.event_name,
            order_id=order.id if order else None,
            body=delivery.body,
            outcome=outcome,
            now=self._clock.now(),
            headers=delivery.headers,
        )


def _effects(events: Sequence[DomainEvent]) -> str:
    """The names of the events that changed something, audit lines left out."""
    audit = (WebhookReceived, PaymentStatusChanged)
    return ", ".join(type(e).__name__ for e in events if not isinstance(e, audit))
