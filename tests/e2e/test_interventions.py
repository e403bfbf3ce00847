"""What an admin does for the orders that wait for a person, over real HTTP against an embedded
engine and its sandboxes: resume a purchase held for the supplier balance, finish or abandon a key
return that Kinguin never answered, settle a flagged payment, resend the delivery e-mail, sync the
catalog now. Each action is refused (409, with the reason) where the order does not allow it, and
each is recorded with who did it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningEngine, embedded_engine, local_secret, sandbox_admin
from tests.e2e.test_admin import eventually
from tests.e2e.test_admin_pages import ordered, paid_partly
from tests.e2e.test_catalog import await_status, paid_order, set_faults


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEngine]:
    """An embedded engine whose sweeper leaves held orders alone for a minute."""
    tmp = tmp_path_factory.mktemp("interventions")
    with embedded_engine(tmp, KINGUIN_SANDBOX_DELAY="0", STUCK_ORDER_AFTER_S="60") as running:
        yield running


def history(admin: httpx.Client, order_id: str) -> list[dict[str, Any]]:
    answer = admin.get(f"/orders/{order_id}/history")
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()
    return events


def event(admin: httpx.Client, order_id: str, kind: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [e["data"] for e in history(admin, order_id) if e["type"] == kind]
    assert found, f"no {kind} in order {order_id}"
    return found[-1]


def queued(admin: httpx.Client, order_id: str) -> dict[str, Any] | None:
    """The order's row in the admins' queue, if it is there."""
    items = admin.get("/admin/attention").json()["items"]
    return next((row for row in items if row["order_id"] == order_id), None)


def until(read: Callable[[], Any]) -> Any:
    """What ``read`` gives once it gives something (neither None nor False), within 20 s."""
    return eventually(read, lambda found: found is not None and found is not False, timeout=20)


def test_a_held_purchase_resumes_when_an_admin_says_so(shop: RunningEngine) -> None:
    """No balance: the order is held and queued; resuming before a top-up holds it again;
    after one, it is bought and fulfilled, and the history says who resumed it."""
    with shop.client("hana") as hana, shop.client("root", "admin") as admin:
        set_faults(shop.url, balance=0)
        order_id = paid_order(hana)
        row = until(lambda: queued(admin, order_id))
        assert (row["kind"], row["actions"]["resume"]) == ("held", None)
        assert admin.post(f"/admin/orders/{order_id}/resume").status_code == 202
        until(lambda: sum(e["type"] == "PurchaseHeld" for e in history(admin, order_id)) == 2)
        set_faults(shop.url, balance=1000)
        assert admin.post(f"/admin/orders/{order_id}/resume").status_code == 202
        await_status(hana, order_id, "fulfilled")
        assert event(admin, order_id, "PurchaseResumed") == {"by": "root"}
        refused = admin.post(f"/admin/orders/{order_id}/resume")
        assert refused.status_code == 409
        assert "not waiting" in refused.json()["detail"]
        assert hana.post(f"/admin/orders/{order_id}/resume").status_code == 403


def test_a_key_return_kinguin_never_answered_is_abandoned_or_finished(shop: RunningEngine) -> None:
    """Kinguin fails while the keys go back: the return stays under way (reads stop) and waits
    in the queue. Abandoned, the customer reads the keys again; finished, the order is refunded;
    finished after Kinguin did take them (its answer lost), that is recorded, and abandoning
    such a return is refused."""
    with shop.client("ivan") as ivan, shop.client("root", "admin") as admin:
        kept, returned, taken = (paid_order(ivan) for _ in range(3))
        for order_id in (kept, returned, taken):
            await_status(ivan, order_id, "fulfilled")
        set_faults(shop.url, error_rate=1.0)
        for order_id in (kept, returned, taken):
            assert admin.post(f"/admin/orders/{order_id}/return-keys").status_code == 502
        set_faults(shop.url)
        row = queued(admin, kept)
        assert row is not None
        assert (row["kind"], row["actions"]["finish_return"]) == ("returning", None)
        assert ivan.post(f"/fulfillment/{kept}/reveal").status_code == 409

        abandoned = admin.post(f"/admin/orders/{kept}/abandon-return", json={"reason": "kept"})
        assert abandoned.status_code == 200, abandoned.text
        assert event(admin, kept, "KeyReturnAbandoned") == {"by": "root", "reason": "kept"}
        assert ivan.post(f"/fulfillment/{kept}/reveal").status_code == 200
        assert queued(admin, kept) is None

        finished = admin.post(f"/admin/orders/{returned}/finish-return")
        assert finished.status_code == 200, finished.text
        assert finished.json()["status"] == "refunded"

        supplier_order = admin.get(f"/admin/orders/{taken}").json()["supplier_order_id"]
        kinguin = {"X-Api-Key": local_secret(shop.env, "KINGUIN_API_KEY")}
        took = admin.post(
            f"/sandbox/kinguin/v2/order/{supplier_order}/keys/return", headers=kinguin
        )
        assert took.status_code == 200, took.text
        refused = admin.post(f"/admin/orders/{taken}/abandon-return")
        assert refused.status_code == 409
        assert "finish the return" in refused.json()["detail"]
        finished = admin.post(f"/admin/orders/{taken}/finish-return")
        assert finished.json()["status"] == "refunded"
        assert event(admin, taken, "KeysReturned")["key_ids"] == [
            e["data"]["key_id"] for e in history(admin, taken) if e["type"] == "KeyDelivered"
        ]
        again = admin.post(f"/admin/orders/{taken}/finish-return")
        assert again.status_code == 409
        assert "no key return" in again.json()["detail"]


def test_a_flagged_payment_is_settled_with_a_note(shop: RunningEngine) -> None:
    """Money for a refunded order is flagged; the admin resolves it with a note (required),
    which clears the flag and stays in the history."""
    with shop.client("june") as june, shop.client("root", "admin") as admin:
        order_id, invoice = ordered(june, "june@shop.example")
        paid_partly(june, invoice)
        await_status(june, order_id, "underpaid")
        assert admin.post(f"/admin/orders/{order_id}/refund").status_code == 200
        late = june.post(
            f"/sandbox/nowpayments/payments/{invoice['payment_id']}/simulate",
            json={"status": "finished"},
            headers=sandbox_admin(),
        )
        assert late.json()["ipn_status_code"] == 200, late.text
        row = until(lambda: queued(admin, order_id))
        assert row["kind"] == "flagged"
        assert "received for an order that is refunded" in row["flags"]
        assert admin.post(f"/admin/orders/{order_id}/resolve-flags", json={}).status_code == 400
        note = "sent back through NOWPayments, refund 4711"
        settled = admin.post(f"/admin/orders/{order_id}/resolve-flags", json={"note": note})
        assert settled.status_code == 200, settled.text
        assert settled.json()["flags"] == []
        resolved = event(admin, order_id, "PaymentFlagsResolved")
        assert (resolved["by"], resolved["note"]) == ("root", note)
        until(lambda: queued(admin, order_id) is None)
        again = admin.post(f"/admin/orders/{order_id}/resolve-flags", json={"note": note})
        assert again.status_code == 409


def test_the_delivery_email_is_sent_again_with_a_fresh_link(shop: RunningEngine) -> None:
    """A second e-mail with a new link, recorded with who asked; refused for an order that is
    not fulfilled and once the customer's address is erased."""
    with shop.client("kai") as kai, shop.client("root", "admin") as admin:
        order_id = paid_order(kai)
        await_status(kai, order_id, "fulfilled")
        outbox = Path(shop.env["VAR_DIR"]) / "outbox"

        def mails() -> list[str]:
            return [p.read_text() for p in outbox.glob("*.eml") if order_id in p.read_text()]

        until(lambda: len(mails()) == 1)
        resent = admin.post(f"/admin/orders/{order_id}/resend-email")
        assert resent.status_code == 200, resent.text
        assert len(mails()) == 2
        assert event(admin, order_id, "DeliveryEmailResent")["by"] == "root"
        links = [e["data"]["link_id"] for e in history(admin, order_id)
                 if e["type"] == "DownloadLinkIssued"]  # fmt: skip
        assert len(set(links)) == 2
        unpaid = kai.post("/orders", json={"email": "k@shop.example", "items": [
            {"product_id": "5c9b5f6b2539a4e8f172916a", "quantity": 1}]}).json()["id"]  # fmt: skip
        assert admin.post(f"/admin/orders/{unpaid}/resend-email").status_code == 409
        assert admin.post("/admin/customers/kai/erase").status_code == 200
        erased = admin.post(f"/admin/orders/{order_id}/resend-email")
        assert erased.status_code == 409
        assert "erased" in erased.json()["detail"]


def test_the_catalog_syncs_now(shop: RunningEngine) -> None:
    """``POST /admin/catalog/sync`` reads what changed since the last sync, and says so in the
    catalog's ``last_sync``."""
    with shop.client("root", "admin") as admin:
        synced = admin.post("/admin/catalog/sync")
        assert synced.status_code == 200, synced.text
        assert synced.json()["mode"] == "incremental"
        last = admin.get("/admin/catalog").json()["last_sync"]
        assert (last["mode"], last["seen"]) == ("incremental", synced.json()["seen"])
