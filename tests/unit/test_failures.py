"""Failure codes: every failed order shows a code from the documented set, derived from its
status and staff reason, never the reason itself."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import msgspec
import pytest

from domain.events import LineItem
from domain.failures import FAILURE_CODES, failure_code, supplier_code
from domain.order import Order, Status

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def order(status: Status, reason: str | None = None, flags: tuple[str, ...] = ()) -> Order:
    line = LineItem(product_id="p", quantity=1, unit_price=Decimal("6.99"))
    return Order(
        id=uuid4(), version=5, owner="ann", email="", currency="eur", items=(line,),
        total=Decimal("6.99"), status=status, placed_at=NOW, updated_at=NOW,
        failure_reason=reason, flags=flags,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("supplier_price_changed", "price_changed"),
        ("ProductUnavailable (400): Product is not available", "out_of_stock"),
        ("reserve failed 12 times; last error: SupplierUnavailable: 503", "supplier_unavailable"),
        ("deliver gave up after 12 retries", "supplier_unavailable"),
        ("supplier order canceled", "supplier_canceled"),
        ("supplier_order_lost: OrderNotFound (404): gone", "supplier_refused"),
        ("ConstraintViolation (400): orderExternalId already used", "supplier_refused"),
    ],
)
def test_fulfilment_failures_have_a_code(reason: str, code: str) -> None:
    """Each kind of supplier reason maps to its code."""
    assert failure_code(order(Status.FULFILLMENT_FAILED, reason)) == code
    assert supplier_code(reason) == code


def test_payment_failures_and_mismatches_have_a_code() -> None:
    """Failed, expired and refunded payments, underpayment and a flagged payment each have
    one; a healthy order has none."""
    assert failure_code(order(Status.PAYMENT_FAILED, "expired")) == "payment_expired"
    assert failure_code(order(Status.PAYMENT_FAILED, "refunded")) == "payment_refunded"
    assert failure_code(order(Status.PAYMENT_FAILED, "failed")) == "payment_failed"
    assert failure_code(order(Status.UNDERPAID)) == "underpaid"
    flagged = order(Status.PENDING_PAYMENT, flags=("price 1 is below the order's total 6.99",))
    assert failure_code(flagged) == "payment_mismatch"
    assert failure_code(order(Status.FULFILLED)) is None
    assert failure_code(msgspec.structs.replace(flagged, status=Status.PAID)) is None


def test_every_code_is_documented() -> None:
    """The codes the domain hands out are the documented set."""
    reasons = ["supplier_price_changed", "ProductUnavailable", "reserve failed", "supplier order x",
               "anything else"]  # fmt: skip
    codes = {supplier_code(r) for r in reasons} | {"payment_failed", "payment_expired",
             "payment_refunded", "underpaid", "payment_mismatch"}  # fmt: skip
    assert codes == set(FAILURE_CODES)
