"""Kinguin hands out keys in stock as soon as it accepts their purchase. The ``reserve`` step
then reads them at once: the order is reserved, its keys sealed and delivered, and it is
fulfilled in one decision, with no ``deliver`` step after it. Keys that are still coming are
left to ``deliver``, as before (the other end-to-end tests run the sandbox with a delay)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import embedded_engine
from tests.e2e.test_catalog import await_status, paid_order

PRODUCT = "5c9b5f6b2539a4e8f172916a"  # text keys, in stock


def test_keys_already_delivered_are_delivered_with_the_reservation(tmp_path: Path) -> None:
    """Sandbox without delay: ``KeysReserved``, a ``KeyDelivered`` per key and
    ``OrderFulfilled`` are one save (consecutive versions, one time), and the owner reads the
    keys."""
    with embedded_engine(tmp_path, KINGUIN_SANDBOX_DELAY="0") as shop, shop.client("ada") as ada:
        order_id = paid_order(ada, PRODUCT, quantity=2)
        await_status(ada, order_id, "fulfilled")
        history = ada.get(f"/orders/{order_id}/history").json()
        revealed = ada.post(f"/fulfillment/{order_id}/reveal")
    start = next(i for i, e in enumerate(history) if e["type"] == "KeysReserved")
    decision = history[start : start + 4]
    assert [e["type"] for e in decision] == [
        "KeysReserved", "KeyDelivered", "KeyDelivered", "OrderFulfilled",
    ]  # fmt: skip
    assert len({e["timestamp"] for e in decision}) == 1
    assert [e["type"] for e in history].count("KeyDelivered") == 2
    assert revealed.status_code == 200
    assert len(revealed.json()["keys"]) == 2
