"""The process manager: turns recorded events into background work.

It follows the event log from a tracked position and only sends messages; the actors decide
from the order's current state, so a message sent twice (after a restart) does no harm.
"""

from __future__ import annotations

from datetime import datetime

from application.ports import Dispatcher
from domain.events import (
    AttemptFailed,
    DomainEvent,
    FulfillmentRetried,
    KeysReserved,
    OrderFulfilled,
    OrderPaid,
    SupplierOrderStatusChanged,
    WebhookDeliveryRecorded,
)
from domain.webhooks import product_of_key


class ProcessManager:
    """Paid orders are reserved; reserved orders whose purchase completed are delivered; retried
    orders resume where they failed; a failed attempt is tried again at its time; fulfilled
    orders' owners are told; products Kinguin says changed are read again."""

    topics: tuple[type[DomainEvent], ...] = (
        OrderPaid,
        KeysReserved,
        SupplierOrderStatusChanged,
        FulfillmentRetried,
        OrderFulfilled,
        WebhookDeliveryRecorded,
        AttemptFailed,
    )

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher

    def handle(self, event: DomainEvent) -> None:
        """React to one event of the log."""
        match event:
            case OrderPaid():
                self._dispatcher.reserve(event.originator_id)
            case KeysReserved():
                self._dispatcher.deliver(event.originator_id)
            case SupplierOrderStatusChanged(status="completed"):
                self._dispatcher.deliver(event.originator_id)
            case FulfillmentRetried(resume_from="paid"):
                self._dispatcher.reserve(event.originator_id)
            case FulfillmentRetried():
                self._dispatcher.deliver(event.originator_id)
            case OrderFulfilled():
                self._dispatcher.notify(event.originator_id)
            case AttemptFailed(retry_at=datetime() as retry_at):
                self._retry(event, (retry_at - event.timestamp).total_seconds())
            case WebhookDeliveryRecorded(event_name="product.update"):
                product_id = product_of_key(event.natural_key)
                if product_id is not None:
                    self._dispatcher.refresh_product(product_id)

    def _retry(self, failed: AttemptFailed, delay_s: float) -> None:
        """Send a failed step again at its retry time (the actor checks that time, too)."""
        if failed.step == "reserve":
            self._dispatcher.reserve(failed.originator_id, delay_s=delay_s)
        else:
            self._dispatcher.deliver(failed.originator_id, delay_s=delay_s)
