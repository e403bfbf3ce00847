"""The process manager: turns recorded events into background work.

It follows the event log from a tracked position and only sends messages; the actors decide
from the order's current state, so a message sent twice (after a restart) does no harm.

A batch of the log is looked at whole before its events are handled (``look_ahead``): a message
the batch already sent for the same order is not sent again, and one that a later event of the
batch makes moot is not sent at all (``deliver`` when the order is fulfilled further on,
``reserve`` when its keys are reserved further on). Under load, the reservation of a purchase
and Kinguin's ``completed`` webhook that wakes ``deliver`` for it often share a batch: the
order's keys are then collected by one ``deliver``, not two. A delayed message (a retry at its
time) is always sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from application.ports import Dispatcher
from application.webhooks import DELIVER_QUEUED
from domain.events import (
    AttemptFailed,
    DomainEvent,
    FulfillmentRetried,
    KeysReserved,
    OrderFulfilled,
    OrderPaid,
    PurchaseResumed,
    WebhookDeliveryRecorded,
)
from domain.webhooks import product_of_key


class ProcessManager:
    """Paid orders (and held ones an admin resumed) are reserved; reserved orders whose
    purchase Kinguin says finished (a webhook recorded as ``DELIVER_QUEUED``) are delivered;
    retried orders resume where they failed; a failed attempt is tried again at its time;
    fulfilled orders' owners are told; products Kinguin says changed are read again."""

    topics: tuple[type[DomainEvent], ...] = (
        OrderPaid,
        KeysReserved,
        FulfillmentRetried,
        OrderFulfilled,
        WebhookDeliveryRecorded,
        AttemptFailed,
        PurchaseResumed,
    )

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._moot: set[tuple[UUID, int]] = set()  # events of this batch whose message is not sent

    def look_ahead(self, batch: Sequence[DomainEvent]) -> None:
        """Before a batch is handled: find the events whose step an earlier event of the batch
        already asked for, or a later one shows done."""
        done_at = {done: i for i, e in enumerate(batch) if (done := _done(e)) is not None}
        asked: set[tuple[str, UUID]] = set()
        self._moot = set()
        for index, event in enumerate(batch):
            step = _step(event)
            if step is None:
                continue
            if step in asked or done_at.get(step, -1) > index:
                self._moot.add((event.originator_id, event.originator_version))
            else:
                asked.add(step)

    def handle(self, event: DomainEvent) -> None:
        """React to one event of the log."""
        if (event.originator_id, event.originator_version) in self._moot:
            return
        match _step(event):
            case ("reserve", order_id):
                self._dispatcher.reserve(order_id)
                return
            case ("deliver", order_id):
                self._dispatcher.deliver(order_id)
                return
        match event:
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


def _step(event: DomainEvent) -> tuple[str, UUID] | None:
    """The undelayed order step an event asks for (``reserve`` or ``deliver``), if any."""
    match event:
        case OrderPaid() | FulfillmentRetried(resume_from="paid") | PurchaseResumed():
            return ("reserve", event.originator_id)
        case KeysReserved() | FulfillmentRetried():
            return ("deliver", event.originator_id)
        case WebhookDeliveryRecorded(outcome=outcome, order_id=str() as order_id) if (
            outcome == DELIVER_QUEUED
        ):
            return ("deliver", UUID(order_id))
    return None


def _done(event: DomainEvent) -> tuple[str, UUID] | None:
    """The order step an event shows done: its keys reserved, or the order fulfilled."""
    match event:
        case KeysReserved():
            return ("reserve", event.originator_id)
        case OrderFulfilled():
            return ("deliver", event.originator_id)
    return None
