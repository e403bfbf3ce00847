"""Kinguin hands out keys in stock as soon as it accepts their purchase. The ``reserve`` step
then reads them at once: the order is reserved, its keys sealed and delivered, and it is
fulfilled in one decision, with no ``deliver`` step after it. Keys that are still coming are
left to ``deliver``, as before (the other end-to-end tests run the sandbox with a delay).

Kinguin's ``order.status`` webhooks are recorded in the webhook log only: they never write the
order, whose one writer at that stage is ``reserve``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import embedded_engine, pay_in_full
from tests.e2e.test_admin import eventually
from tests.e2e.test_live import listen, open_socket
from tests.e2e.test_pipeline import place_and_pay


def test_keys_already_delivered_are_delivered_with_the_reservation(tmp_path: Path) -> None:
    """Sandbox without delay: ``KeysReserved``, the purchase ``completed``, a ``KeyDelivered``
    per key and ``OrderFulfilled`` are one save (consecutive versions, one time); the owner's
    socket still hears paid, reserved and fulfilled, and the owner reads the keys. Kinguin's
    two webhooks are in the webhook log, as changing nothing, and not in the history."""
    heard: list[dict[str, Any]] = []
    with embedded_engine(tmp_path, KINGUIN_SANDBOX_DELAY="0") as shop, shop.client("ada") as ada:
        order, payment = place_and_pay(ada)  # three keys of two products
        with open_socket(shop.url, f"/ws/orders/{order['id']}", shop.token("ada")) as socket:
            listening = listen(socket, heard, "fulfilled")
            pay_in_full(ada, payment)
            listening.join(30)
        with shop.client("root", "admin") as admin:
            hooks = eventually(
                lambda: admin.get(
                    "/admin/webhook-logs", params={"order_id": order["id"], "provider": "kinguin"}
                ).json()["items"],
                lambda items: len(items) == 2,
            )
        history = ada.get(f"/orders/{order['id']}/history").json()
        revealed = ada.post(f"/fulfillment/{order['id']}/reveal")
    assert {hook["outcome"] for hook in hooks} == {"no change"}
    assert [e["type"] for e in history].count("WebhookReceived") == 1  # the IPN's only
    assert [m["status"] for m in heard] == ["pending_payment", "paid", "reserved", "fulfilled"]
    start = next(i for i, e in enumerate(history) if e["type"] == "KeysReserved")
    decision = history[start : start + 6]
    assert [e["type"] for e in decision] == [
        "KeysReserved", "SupplierOrderStatusChanged", "KeyDelivered", "KeyDelivered",
        "KeyDelivered", "OrderFulfilled",
    ]  # fmt: skip
    assert len({e["timestamp"] for e in decision}) == 1
    assert [e["type"] for e in history].count("KeyDelivered") == 3
    assert revealed.status_code == 200
    assert len(revealed.json()["keys"]) == 3
