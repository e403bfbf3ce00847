"""What the console offers on an order's page: each action allowed, or refused with the reason
its command would give."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain import access, refunds, supply
from domain.actions import admin_actions, attention
from domain.errors import TransitionRefused
from projections.catalog import NAMES, all_projections
from tests.unit.test_order import NOW, paid, step
from tests.unit.test_refunds import fulfilled


def test_a_fresh_delivery_may_go_back_or_be_destroyed_but_not_refunded_or_retried() -> None:
    actions = admin_actions(fulfilled(), NOW)
    assert actions["return_keys"] is None
    assert actions["shred"] is None
    assert "only paid orders that were not delivered" in (actions["refund"] or "")
    assert "only fulfillment_failed orders" in (actions["retry"] or "")
    later = admin_actions(fulfilled(), NOW + timedelta(days=2))
    assert later["return_keys"] == "keys can be returned within 24 hours of delivery only"


def test_a_failed_order_may_be_refunded_or_retried_and_each_refusal_is_the_commands() -> None:
    order = paid()
    assert admin_actions(order, NOW)["refund"] == (
        "order is being bought from the supplier; refund it if that fails"
    )
    with pytest.raises(TransitionRefused, match="being bought from the supplier"):
        refunds.refunded(order, by="a", reason="r", reference="R", now=NOW)
    assert admin_actions(order, NOW)["shred"] == "order is paid; its keys are still on their way"
    failed = step(order, supply.supplier_failed(order, reason="gone", now=NOW))
    actions = admin_actions(failed, NOW)
    assert (actions["refund"], actions["retry"]) == (None, None)


def test_destroyed_keys_cannot_be_destroyed_again() -> None:
    order = fulfilled()
    order = step(order, access.shredded(order, who="a", now=NOW))
    actions = admin_actions(order, NOW)
    assert actions["shred"] == "the keys were already destroyed"
    assert actions["return_keys"] == "the keys were destroyed"


def test_the_projection_names_are_those_of_the_projections() -> None:
    assert tuple(p.name for p in all_projections(personal=None)) == NAMES  # type: ignore[arg-type]


def test_what_an_order_waits_for() -> None:
    order = paid()
    assert attention(order) is None
    failed = step(order, supply.supplier_failed(order, reason="gone", now=NOW))
    assert attention(failed) == "failed"
    assert attention(fulfilled()) is None
