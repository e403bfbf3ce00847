"""The process manager's messages: one per event on its own; over a batch looked at whole, a step
asked for twice is sent once, a step a later event shows done is not sent, and a retry at its
time is always sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

from application.process_manager import ProcessManager
from application.webhooks import DELIVER_QUEUED, NO_CHANGE
from domain.events import (
    AttemptFailed,
    DomainEvent,
    FulfillmentRetried,
    KeysReserved,
    OrderFulfilled,
    OrderPaid,
    WebhookDeliveryRecorded,
)
from domain.webhooks import delivery_recorded
from tests.fakes import RecordingDispatcher

NOW = datetime(2026, 12, 6, tzinfo=UTC)
E = TypeVar("E", bound=DomainEvent)


class Story:
    """The events of one order, each at the order's next version."""

    def __init__(self) -> None:
        self.order_id = uuid4()
        self._version = 3

    def _event(self, kind: type[E], **fields: Any) -> E:
        self._version += 1
        return kind(
            originator_id=self.order_id, originator_version=self._version, timestamp=NOW, **fields
        )

    def paid(self) -> OrderPaid:
        return self._event(OrderPaid, payment_id="p")

    def reserved(self) -> KeysReserved:
        return self._event(KeysReserved, supplier_order_id="k")

    def completed(self, outcome: str = DELIVER_QUEUED) -> WebhookDeliveryRecorded:
        """Kinguin's ``completed`` webhook, recorded in a stream of its own."""
        return delivery_recorded(
            provider="kinguin",
            natural_key=f"k-{self.order_id}:completed:t",
            event_name="order.status",
            order_id=self.order_id,
            body="{}",
            outcome=outcome,
            now=NOW,
        )

    def fulfilled(self) -> OrderFulfilled:
        return self._event(OrderFulfilled, key_count=1)

    def retried(self, resume_from: str) -> FulfillmentRetried:
        return self._event(FulfillmentRetried, by="admin", resume_from=resume_from)

    def whole_life(self) -> list[DomainEvent]:
        """Paid, reserved, its purchase completed, fulfilled."""
        return [self.paid(), self.reserved(), self.completed(), self.fulfilled()]

    def failed_attempt(self, step: str) -> AttemptFailed:
        retry_at = NOW + timedelta(seconds=2)
        return self._event(AttemptFailed, step=step, attempt=1, error="e", retry_at=retry_at)


def handled(batch: list[DomainEvent], *, whole: bool = True) -> list[tuple[str, UUID | str]]:
    """What the manager sends for a batch, looked at whole first or not."""
    dispatcher = RecordingDispatcher()
    manager = ProcessManager(dispatcher)
    if whole:
        manager.look_ahead(batch)
    for event in batch:
        manager.handle(event)
    return dispatcher.sent


def test_each_event_on_its_own_sends_its_message() -> None:
    story = Story()
    batch = story.whole_life()
    assert handled(batch, whole=False) == [
        ("reserve", story.order_id),
        ("deliver", story.order_id),
        ("deliver", story.order_id),
        ("notify", story.order_id),
    ]


def test_a_purchase_completed_in_the_same_batch_is_delivered_once() -> None:
    story = Story()
    assert handled([story.reserved(), story.completed()]) == [("deliver", story.order_id)]


def test_a_webhook_that_wakes_no_step_sends_nothing() -> None:
    """Kinguin's webhook for an order not waiting for its keys (still being bought, or
    already fulfilled) is recorded as ``no change``: ``deliver`` is not sent for it."""
    story = Story()
    assert handled([story.completed(NO_CHANGE)]) == []


def test_a_step_a_later_event_shows_done_is_not_sent() -> None:
    story = Story()
    batch = story.whole_life()
    assert handled(batch) == [("notify", story.order_id)]


def test_other_orders_and_a_later_retry_keep_their_messages() -> None:
    """A retry from ``paid`` after the keys were reserved earlier in the batch is sent; so is
    every other order's step, and a failed attempt's retry at its time."""
    one, two = Story(), Story()
    batch: list[DomainEvent] = [
        one.paid(), two.reserved(), one.reserved(), one.retried("paid"),
        two.failed_attempt("deliver"), two.completed(),
    ]  # fmt: skip
    assert handled(batch) == [
        ("deliver", two.order_id),
        ("deliver", one.order_id),
        ("reserve", one.order_id),
        ("deliver after 2 s", two.order_id),
    ]


def test_a_new_batch_forgets_what_the_last_one_left_out() -> None:
    story = Story()
    dispatcher = RecordingDispatcher()
    manager = ProcessManager(dispatcher)
    reserved, completed = story.reserved(), story.completed()
    manager.look_ahead([reserved, completed])
    manager.look_ahead([completed])  # the batch read again (after a failure)
    manager.handle(completed)
    assert dispatcher.sent == [("deliver", story.order_id)]
