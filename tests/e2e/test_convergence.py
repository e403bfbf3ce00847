"""Failures that converge: a transient supplier failure is retried within the order's own
budget (counted in its history, whatever the sweeper re-sends), then fails the order visibly; a
permanent one fails its order at once and leaves the others alone. Handled failures are one
WARNING line each, never a traceback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningEngine, embedded_engine
from tests.e2e.test_catalog import CS_SOURCE, await_status, paid_order, set_faults, types_of

BUDGET = 4
DEAD = "00000000000000000000dead"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[RunningEngine]:
    """A small retry budget, short backoff, and a sweeper re-sending every second."""
    with embedded_engine(
        tmp_path,
        KINGUIN_SANDBOX_DELAY="0.1",
        STUCK_ORDER_AFTER_S="1",
        FULFILLMENT_ATTEMPTS=str(BUDGET),
        RETRY_BACKOFF_S="0.2",
        RETRY_BACKOFF_MAX_S="0.5",
    ) as running:
        yield running


def test_a_supplier_failing_for_ever_spends_the_budget_exactly(shop: RunningEngine) -> None:
    """Kinguin answers 5xx to everything: the order fails after BUDGET attempts, no more."""
    with shop.client("fay") as fay, shop.client("root", "admin") as admin:
        set_faults(shop.url, error_rate=1.0)
        order_id = paid_order(fay)
        await_status(fay, order_id, "fulfillment_failed")
        time.sleep(3)  # the sweeper and the retry messages keep coming: nothing more counts
        types = types_of(admin, order_id)
        assert types.count("AttemptFailed") == BUDGET
        assert types[-1] == "FulfillmentFailed"
        reason = admin.get(f"/orders/{order_id}").json()["failure_reason"]
        assert reason.startswith(f"reserve failed {BUDGET} times; last error: SupplierUnavailable")
        failed = admin.get("/admin/orders", params={"status": "fulfillment_failed"}).json()
        assert [o["order_id"] for o in failed["items"]] == [order_id]
        set_faults(shop.url)
        assert admin.post(f"/admin/orders/{order_id}/retry").status_code == 202
        await_status(fay, order_id, "fulfilled")
    log = shop.logged()
    assert b"Traceback" not in log
    assert log.count(b"attempt 1 of 4 failed") == 1


def test_a_permanent_refusal_fails_one_order_at_once(shop: RunningEngine) -> None:
    """Kinguin refuses one product: that order fails with the reason after one attempt, and
    the others are bought and delivered."""
    with shop.client("gus") as gus, shop.client("root", "admin") as admin:
        set_faults(shop.url, out_of_stock=[DEAD])
        refused = paid_order(gus, DEAD)
        fine = [paid_order(gus, CS_SOURCE) for _ in range(2)]
        await_status(gus, refused, "fulfillment_failed")
        for order_id in fine:
            await_status(gus, order_id, "fulfilled")
        assert "AttemptFailed" not in types_of(admin, refused)
        reason = admin.get(f"/orders/{refused}").json()["failure_reason"]
        assert "ProductUnavailable" in reason
    assert b"Traceback" not in shop.logged()
