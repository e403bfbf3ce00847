"""Refunds, key returns, holds, moved supplier prices and failed attempts, decided with plain
values."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import msgspec
import pytest

from application.fulfillment import RetryPolicy
from domain import access, refunds, supply
from domain.errors import TransitionRefused
from domain.events import CostCapRaised, FulfillmentRetried, KeysShredded, OrderRefunded
from domain.order import Order, Status
from tests.unit.test_order import NOW, paid, receipts, reserved, step


def fulfilled() -> Order:
    order = reserved()
    return step(order, supply.keys_delivered(order, receipts(2), NOW))


def test_refund_of_a_failed_order_is_terminal() -> None:
    """A fulfillment_failed order is refunded with a reference; a second refund is refused."""
    order = paid()
    order = step(order, supply.supplier_failed(order, reason="gone", now=NOW))
    order = step(order, refunds.refunded(order, by="admin", reason="r", reference="R1", now=NOW))
    assert (order.status, order.refund_reference) == (Status.REFUNDED, "R1")
    with pytest.raises(TransitionRefused):
        refunds.refunded(order, by="admin", reason="r", reference="R2", now=NOW)


def test_no_refund_while_the_purchase_may_be_under_way_or_after_delivery() -> None:
    """A paid order being bought, and a fulfilled one, are not refunded (return its keys)."""
    for order in (paid(), fulfilled()):
        with pytest.raises(TransitionRefused):
            refunds.refunded(order, by="admin", reason="r", reference="R", now=NOW)


def test_a_held_order_can_be_refunded() -> None:
    """An order waiting for a supplier top-up may be refunded instead."""
    order = paid()
    order = step(
        order,
        supply.held(order, reason="insufficient_balance", needed=Decimal(1), balance=None, now=NOW),
    )
    assert order.held == "insufficient_balance"
    assert supply.held(order, reason="insufficient_balance", needed=Decimal(1), balance=None,
                       now=NOW) == []  # fmt: skip
    order = step(order, refunds.refunded(order, by="admin", reason="r", reference="R", now=NOW))
    assert order.status is Status.REFUNDED


def test_return_within_a_day_shreds_and_refunds() -> None:
    """Started, confirmed: keys returned, shredded, order refunded; reads refused meanwhile."""
    order = fulfilled()
    later = NOW + timedelta(hours=23)
    order = step(order, refunds.return_started(order, by="admin", now=later))
    with pytest.raises(TransitionRefused, match="returned"):
        access.revealed(order, who="alice", ip="1", user_agent="ua", how="reveal", now=later)
    events = refunds.return_confirmed(order, by="admin", key_ids=("k0", "k1"), reference="K",
                                      now=later)  # fmt: skip
    assert any(isinstance(e, KeysShredded) for e in events)
    assert isinstance(events[-1], OrderRefunded)
    assert step(order, events).status is Status.REFUNDED


@pytest.mark.parametrize("case", ["revealed", "late", "preorder", "twice"])
def test_each_return_refusal_names_its_reason(case: str) -> None:
    """After a reveal, after 24 hours, a pre-order, or while a return is under way."""
    order = fulfilled()
    now = NOW + timedelta(hours=1)
    if case == "revealed":
        order = step(order, access.revealed(order, who="a", ip="1", user_agent="u", how="reveal",
                                            now=NOW))  # fmt: skip
    elif case == "late":
        now = NOW + timedelta(hours=25)
    elif case == "preorder":
        items = tuple(msgspec.structs.replace(i, preorder=True) for i in order.items)
        order = msgspec.structs.replace(order, items=items)
    else:
        order = step(order, refunds.return_started(order, by="admin", now=now))
    with pytest.raises(TransitionRefused) as refused:
        refunds.return_started(order, by="admin", now=now)
    assert {"revealed": "revealed", "late": "24 hours", "preorder": "pre-order",
            "twice": "under way"}[case] in str(refused.value)  # fmt: skip


def test_price_change_fails_the_order_and_retry_raises_the_cap() -> None:
    """A moved supplier price fails as supplier_price_changed; the admin's retry records the
    new cap with the margin it leaves, and sends the order to be bought again."""
    order = paid()
    order = step(order, supply.price_changed(order, {"p1": Decimal("12.00")}, NOW))
    assert (order.status, order.failure_reason) == (Status.FULFILLMENT_FAILED, supply.PRICE_CHANGED)
    events = supply.retried(order, by="admin", now=NOW, new_costs={"p1": Decimal("12.00")})
    raised, retried = events
    assert isinstance(raised, CostCapRaised)
    assert (raised.new_cap, raised.margin) == (Decimal("12.00"), Decimal("-2.01"))
    assert isinstance(retried, FulfillmentRetried)
    again = step(order, events)
    assert (again.status, again.items[0].cost_cap) == (Status.PAID, Decimal("12.00"))


def test_failed_attempts_count_once_and_end_in_failure_at_the_budget() -> None:
    """Each failed attempt is counted once with its next time; the last one fails the order."""
    order = paid()
    for attempt in range(1, 3):
        events = supply.attempt_failed(
            order, step="reserve", error="SupplierUnavailable: 503",
            attempts_seen=order.attempts, budget=3, delay_s=2, now=NOW,
        )  # fmt: skip
        repeat = supply.attempt_failed(order, step="reserve", error="e",
                                       attempts_seen=order.attempts - 1, budget=3, delay_s=2,
                                       now=NOW)  # fmt: skip
        assert repeat == []  # a run that began before the last failure counts nothing
        order = step(order, events)
        assert (order.attempts, order.retry_at) == (attempt, NOW + timedelta(seconds=2))
        assert supply.too_early(order, NOW + timedelta(seconds=1))
        assert not supply.too_early(order, NOW + timedelta(seconds=2))
    assert supply.attempt_failed(order, step="deliver", error="e", attempts_seen=2, budget=3,
                                 delay_s=2, now=NOW) == []  # fmt: skip
    last = supply.attempt_failed(order, step="reserve", error="SupplierUnavailable: 503",
                                 attempts_seen=2, budget=3, delay_s=2, now=NOW)  # fmt: skip
    order = step(order, last)
    assert order.status is Status.FULFILLMENT_FAILED
    assert order.failure_reason == "reserve failed 3 times; last error: SupplierUnavailable: 503"
    retried = step(order, supply.retried(order, by="admin", now=NOW))
    assert (retried.status, retried.attempts, retried.retry_at) == (Status.PAID, 0, None)


def test_retry_delays_grow_capped_with_jitter() -> None:
    """Backoff doubles per attempt, never beyond the cap, jittered between half and all."""
    policy = RetryPolicy(budget=5, base_s=1.0, cap_s=8.0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (4, 8.0), (9, 8.0)):
        assert ceiling / 2 <= policy.delay_s(attempt) <= ceiling
