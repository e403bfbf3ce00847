"""The webhook inbox: verified provider deliveries, read, stored exactly once, and replayable by
admins. The HTTP layer verifies the caller (a signature, a shared secret) and hands the raw body
here; the providers' readers (``PaymentsReader``, ``SupplierReader``: the NOWPayments and Kinguin
adapters) turn it into what the domain decides on, or raise ``UnreadableDelivery``.

A NOWPayments IPN is decided on the order in the same transaction (nothing else writes an order
waiting for its money). A Kinguin ``order.status`` webhook is stored alone: the order it names
is written by the ``deliver`` step only, which the process manager sends when the delivery's
outcome says so (``DELIVER_QUEUED``), and which asks Kinguin itself. Webhooks and actors never
race on an order's versions."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol
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
PRODUCT_REFRESHED = "product refreshed"
DELIVER_QUEUED = "deliver queued"
IGNORED = "ignored"


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A verified webhook delivery: who sent it, its idempotency key, and its body."""

    provider: str
    natural_key: str
    event_name: str
    body: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    @classmethod
    def of(
        cls,
        provider: str,
        natural_key: str,
        event_name: str,
        raw_body: bytes,
        headers: Mapping[str, str] | None,
    ) -> Delivery:
        """A delivery as received: its body kept as text, the headers that matter."""
        body = raw_body.decode(errors="replace")
        return cls(provider=provider, natural_key=natural_key, event_name=event_name,
                   body=body, headers=dict(headers or {}))  # fmt: skip


class PaymentsReader(Protocol):
    """Reads NOWPayments' IPN bodies (the module ``adapters.nowpayments`` is one)."""

    def read_ipn(
        self, raw_body: bytes, headers: Mapping[str, str] | None = None, /
    ) -> tuple[UUID | None, PaymentNotice, Delivery]:
        """The order an IPN names, the notice, the delivery; or ``UnreadableDelivery``."""
        ...


class SupplierReader(Protocol):
    """Reads Kinguin's webhook bodies (the module ``adapters.kinguin`` is one)."""

    def read_order_status(
        self, raw_body: bytes, headers: Mapping[str, str] | None = None, /
    ) -> tuple[UUID | None, SupplierNotice, Delivery]:
        """The order an ``order.status`` names, the notice, the delivery."""
        ...

    def read_product_update(
        self, raw_body: bytes, headers: Mapping[str, str] | None = None, /
    ) -> tuple[str, Delivery]:
        """The product a ``product.update`` names, and the delivery."""
        ...


class SignatureCheck(Protocol):
    """NOWPayments' ``x-nowpayments-sig`` under the engine's secrets, checked in two steps:
    ``as_sent`` is cheap; ``when_sorted`` parses the body (work an anonymous caller controls),
    so it runs only where ``worth_sorting`` says, off the event loop."""

    def as_sent(self, raw_body: bytes, signature: str | None) -> bool:
        """Signed over the bytes as sent."""
        ...

    def worth_sorting(self, raw_body: bytes, signature: str | None) -> bool:
        """Whether the costly check may run at all."""
        ...

    def when_sorted(self, raw_body: bytes, signature: str | None) -> bool:
        """Signed over a sorted form of the body."""
        ...


class Readers(NamedTuple):
    """What the inbox reads deliveries with, and runs on an admin's replay."""

    payments: PaymentsReader
    supplier: SupplierReader
    refresh_product: Callable[[str], None]
    """The catalog's read of one product from Kinguin, run in place by a replay."""


class WebhookInbox:
    """Records NOWPayments and Kinguin notifications."""

    def __init__(
        self, orders: Orders, clock: Clock, deliver: Callable[[UUID], None], readers: Readers
    ) -> None:
        self._orders = orders
        self._clock = clock
        self._deliver = deliver  # the ``deliver`` step, run in place by an admin's replay
        self._readers = readers

    def receive_ipn(self, raw_body: bytes, headers: Mapping[str, str]) -> str:
        """Read a verified IPN and record it once; what it did."""
        order_id, notice, delivery = self._readers.payments.read_ipn(raw_body, headers)
        return self.payment_notified(order_id, notice, delivery)

    def receive_kinguin(self, event_name: str, raw_body: bytes, headers: Mapping[str, str]) -> str:
        """Read a verified Kinguin webhook and record it once: an ``order.status`` or a
        ``product.update``; any other event is logged and left (``IGNORED``)."""
        supplier = self._readers.supplier
        if event_name == "product.update":
            _, delivery = supplier.read_product_update(raw_body, headers)
            return self.product_notified(delivery)
        if event_name != "order.status":
            log.info("kinguin webhook %r accepted and logged: %r", event_name, raw_body[:500])
            return IGNORED
        order_id, notice, delivery = supplier.read_order_status(raw_body, headers)
        return self.supplier_notified(order_id, notice, delivery)

    def replay(self, delivery_id: UUID) -> str:
        """Handle a stored delivery again (an admin's replay); a repeat changes nothing. An IPN
        is decided on its order again, an ``order.status`` runs ``deliver`` in place, a
        ``product.update`` reads the product again."""
        stored = self.delivery(delivery_id)
        raw = stored.body.encode()
        if stored.provider == "nowpayments":
            order_id, notice, _ = self._readers.payments.read_ipn(raw)
            return self.replay_payment(order_id, notice)
        if stored.event_name == "product.update":
            product_id, _ = self._readers.supplier.read_product_update(raw)
            self._readers.refresh_product(product_id)
            return PRODUCT_REFRESHED
        order_id, _, _ = self._readers.supplier.read_order_status(raw)
        return self.replay_supplier(order_id)

    def payment_notified(
        self, order_id: UUID | None, notice: PaymentNotice, delivery: Delivery
    ) -> str:
        """Record a verified IPN once; return what it did ("duplicate" for a repeat)."""
        return self._record(delivery, order_id, self._payment_decision(notice))

    def supplier_notified(
        self, order_id: UUID | None, notice: SupplierNotice, delivery: Delivery
    ) -> str:
        """Record a verified Kinguin ``order.status`` once, and whether it wakes ``deliver``
        (``DELIVER_QUEUED``); the order itself is not written here."""
        order = self._orders.find(order_id)
        if order is None:
            outcome = UNKNOWN_ORDER
        else:
            outcome = DELIVER_QUEUED if supply.wakes_delivery(order, notice) else NO_CHANGE
        return self._store_once(self._delivery_event(delivery, order, outcome))

    def product_notified(self, delivery: Delivery) -> str:
        """Record a verified Kinguin ``product.update`` once; following the log, the process
        manager then has the product read again from Kinguin (no supplier call here)."""
        return self._store_once(self._delivery_event(delivery, None, PRODUCT_REFRESH))

    def delivery(self, delivery_id: UUID) -> WebhookDeliveryRecorded:
        """A stored webhook delivery."""
        events = self._orders.store.load(delivery_id)
        if not events or not isinstance(events[0], WebhookDeliveryRecorded):
            raise DeliveryNotFound(str(delivery_id))
        return events[0]

    def replay_payment(self, order_id: UUID | None, notice: PaymentNotice) -> str:
        """Re-run the handling of a stored IPN; the domain makes a repeat change nothing."""
        decide = self._payment_decision(notice)
        return self._replay(order_id, lambda o: self._orders.decide(o.id, decide))

    def replay_supplier(self, order_id: UUID | None) -> str:
        """Re-run the handling of a stored Kinguin webhook: the ``deliver`` step, in place."""
        return self._replay(order_id, lambda o: self._deliver(o.id))

    def _payment_decision(self, notice: PaymentNotice) -> Decision:
        return lambda o: payments.payment_notified(o, notice, self._clock.now())

    def _store_once(self, recorded: WebhookDeliveryRecorded) -> str:
        """Save a delivery that changes no order; a repeat collides on its id."""
        try:
            self._orders.save([recorded])
        except ConcurrencyConflict:
            log.info("%s delivery %s repeated", recorded.provider, recorded.natural_key)
            return DUPLICATE
        return recorded.outcome

    def _record(self, delivery: Delivery, order_id: UUID | None, decide: Decision) -> str:
        """Save the delivery and its effect on the order in one transaction, exactly once.

        A delivery naming no known order is stored all the same, for an admin to see. The
        delivery's id is derived from its natural key, so a repeat collides in the store.
        """
        for _ in range(MAX_ATTEMPTS):
            order = self._orders.find(order_id)
            events = decide(order) if order else []
            outcome = (_effects(events) or NO_CHANGE) if order else UNKNOWN_ORDER
            recorded = self._delivery_event(delivery, order, outcome)
            try:
                self._orders.save([recorded, *events])
            except ConcurrencyConflict:
                if self._orders.store.load(recorded.originator_id):
                    log.info("%s delivery %s repeated", delivery.provider, delivery.natural_key)
                    return DUPLICATE
                continue
            return recorded.outcome
        raise ConcurrencyConflict(f"delivery {delivery.natural_key}: too many concurrent writers")

    def _replay(self, order_id: UUID | None, run: Callable[[Order], object]) -> str:
        """Run a delivery's handling again on its order; say what it changed."""
        before = self._orders.find(order_id)
        if before is None:
            return UNKNOWN_ORDER
        run(before)
        return _effects(self._orders.store.load(before.id)[before.version :]) or NO_CHANGE

    def _delivery_event(
        self, delivery: Delivery, order: Order | None, outcome: str
    ) -> WebhookDeliveryRecorded:
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
