"""A redacted evidence leaf cannot be guessed: the owner's bundle withholds an event's bytes but
keeps its leaf hash, and every stored event carries a random salt, so trying the fields the
owner does not know (here, the admin who retried the order) finds nothing."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec

from domain.events import FulfillmentRetried
from domain.evidence import entry, leaf_hash
from tests.e2e.conftest import embedded_engine
from tests.e2e.test_catalog import await_status, paid_order, set_faults

DEAD = "00000000000000000000dead"
ADMIN = "ops-lead"
GUESSES = [f"ops-{i}" for i in range(999)] + [ADMIN]  # the right name among 1,000


def test_a_thousand_guesses_do_not_find_a_redacted_leaf(tmp_path: Path) -> None:
    """The owner knows everything of the retry but the admin's name; none of 1,000 names,
    the right one included, hashes to the leaf. Without its salt the right one would."""
    with (
        embedded_engine(tmp_path, KINGUIN_SANDBOX_DELAY="0.1") as shop,
        shop.client("una") as una,
        shop.client(ADMIN, "admin") as admin,
    ):
        set_faults(shop.url, out_of_stock=[DEAD])
        order_id = paid_order(una, DEAD)
        await_status(una, order_id, "fulfillment_failed")
        set_faults(shop.url)
        assert admin.post(f"/admin/orders/{order_id}/retry").status_code == 202
        await_status(una, order_id, "fulfilled")
        seen = _retry(una.get(f"/orders/{order_id}/history").json())
        leaf = _retry(una.get(f"/orders/{order_id}/evidence").json()["leaves"])
        stored = base64.b64decode(
            _retry(admin.get(f"/orders/{order_id}/evidence").json()["leaves"])["state"]
        )
    assert (leaf["state"], leaf["redacted"]) == (None, True)
    found = {_guess(order_id, leaf["topic"], seen, name) for name in GUESSES}
    assert leaf["leaf_hash"] not in found
    assert _hash(order_id, leaf["topic"], seen["version"], stored) == leaf["leaf_hash"]
    unsalted = re.sub(rb',"_salt":"[^"]*"', b"", stored)
    assert unsalted != stored
    assert _hash(order_id, leaf["topic"], seen["version"], unsalted) in found


def _retry(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in entries if e["type"] == "FulfillmentRetried")


def _guess(order_id: str, topic: str, seen: dict[str, Any], name: str) -> str:
    """The leaf hash the event would have if ``name`` had retried it (and it had no salt)."""
    event = FulfillmentRetried(
        originator_id=UUID(order_id),
        originator_version=seen["version"],
        timestamp=datetime.fromisoformat(seen["timestamp"]),
        by=name,
        resume_from=seen["data"]["resume_from"],
    )
    return _hash(order_id, topic, seen["version"], msgspec.json.encode(event))


def _hash(order_id: str, topic: str, version: int, state: bytes) -> str:
    return leaf_hash(entry(topic, order_id, version, state)).hex()
