"""Payments checked like money, with plain values: complete IPNs only, the amount received
against the total, money an order can no longer take flagged, refunds of what was paid."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from adapters.nowpayments import MalformedNotification, read_ipn
from domain import payments, refunds, supply
from domain.events import OrderPaid, PaymentFlagged, RefundRequested
from domain.order import Order, Status
from domain.payments import PaymentNotice, amount_received
from tests.unit.test_order import ASKED, NOW, PRICE, invoiced, notice, paid, receipts, step


def told(order: Order, ipn: PaymentNotice) -> Order:
    """The order after the IPN."""
    return step(order, payments.payment_notified(order, ipn, NOW))


def flags_after(order: Order, ipn: PaymentNotice) -> tuple[str, ...]:
    """The flags the IPN added."""
    return told(order, ipn).flags[len(order.flags) :]


def refunded(order: Order) -> Order:
    return step(order, refunds.refunded(order, by="admin", reason="r", reference="R", now=NOW))


def test_received_is_converted_at_the_invoices_rate() -> None:
    """actually_paid x price_amount / pay_amount, kept to 8 places and rounded down."""
    assert amount_received(notice("finished")) == PRICE
    assert amount_received(notice("finished", paid=ASKED / 3)) == Decimal("6.66")
    odd = notice("finished", paid=Decimal("0.0001"))
    assert amount_received(odd) == Decimal("6.50009759")  # 6.500097599... rounded down


def test_received_falls_back_to_the_fiat_amount_only_without_pay_amount() -> None:
    """actually_paid_at_fiat counts when pay_amount is missing; zero there (as real IPNs often
    send) says nothing; nothing at all is None."""
    base = msgspec.structs.replace(notice("finished"), pay_amount=None)
    assert amount_received(msgspec.structs.replace(base, actually_paid_at_fiat=Decimal(7))) == 7
    assert amount_received(msgspec.structs.replace(base, actually_paid_at_fiat=Decimal(0))) is None
    assert amount_received(base) is None
    with_both = msgspec.structs.replace(notice("finished"), actually_paid_at_fiat=Decimal(1))
    assert amount_received(with_both) == PRICE  # the invoice's rate wins


def test_a_finished_payment_records_what_it_brought() -> None:
    """OrderPaid carries the amount received, and the order remembers it."""
    order = invoiced()
    events = payments.payment_notified(order, notice("finished", paid=ASKED * 2), NOW)
    [event] = [e for e in events if isinstance(e, OrderPaid)]
    assert event.amount_received == PRICE * 2
    assert step(order, events).amount_paid == PRICE * 2


@pytest.mark.parametrize("status", ["finished", "partially_paid"])
@pytest.mark.parametrize(
    ("field", "named"),
    [
        ("invoice_id", "invoice_id"),
        ("price_amount", "price_amount"),
        ("price_currency", "price_currency"),
        ("actually_paid", "amount paid"),
        ("pay_amount", "amount paid"),
    ],
)
def test_an_incomplete_money_ipn_is_flagged(status: str, field: str, named: str) -> None:
    """A finished or partially_paid IPN without invoice, price, currency or amount paid moves
    nothing and is flagged, naming what it lacks."""
    order = invoiced()
    incomplete = msgspec.structs.replace(notice(status), **{field: None})
    after = told(order, incomplete)
    assert after.status is Status.PENDING_PAYMENT
    [flag] = after.flags
    assert "lacks" in flag
    assert named in flag


def test_an_incomplete_failure_ipn_moves_nothing_and_is_not_flagged() -> None:
    """An expired IPN without the invoice cannot fail the order; no money, so no flag."""
    order = invoiced()
    after = told(order, msgspec.structs.replace(notice("expired"), invoice_id=None))
    assert (after.status, after.flags) == (Status.PENDING_PAYMENT, ())


def test_a_finished_ipn_short_of_the_total_leaves_the_order_unpaid_and_flagged() -> None:
    """finished for less than the total: not paid, flagged with both amounts; no tolerance."""
    order = invoiced()
    for short in (ASKED / 2, ASKED - Decimal("0.00000001")):
        after = told(order, notice("finished", paid=short))
        assert after.status is Status.PENDING_PAYMENT
        [flag] = after.flags
        assert "below the order's total 19.98" in flag
        assert f"{amount_received(notice('finished', paid=short))} eur received" in flag


def test_a_short_finished_after_partial_payment_is_flagged_not_paid() -> None:
    """An underpaid order stays underpaid when its payment finishes still short."""
    order = told(invoiced(), notice("partially_paid"))
    assert order.status is Status.UNDERPAID
    after = told(order, notice("finished", paid=ASKED * 3 / 4))
    assert after.status is Status.UNDERPAID
    assert len(after.flags) == 1


@pytest.mark.parametrize("stage", ["paid", "reserved", "fulfilled"])
def test_a_second_payment_for_a_paid_order_is_flagged(stage: str) -> None:
    """Another payment's money for an order already paid is flagged, naming the first."""
    order = paid()
    if stage != "paid":
        order = step(order, supply.reserved(order, supplier_order_id="K1", now=NOW))
    if stage == "fulfilled":
        order = step(order, supply.keys_delivered(order, receipts(2), NOW))
    [flag] = flags_after(order, notice("finished", payment_id="888"))
    assert f"received for an order that is {stage}; the order's payment is 777" in flag
    assert told(order, notice("finished", payment_id="888")).status == order.status


def test_the_paying_ipn_again_is_not_new_money() -> None:
    """A replay or late copy of the payment that paid the order adds no flag, also once the
    order is refunded; nor does its earlier partially_paid arriving late."""
    order = paid()
    assert flags_after(order, notice("finished")) == ()
    assert flags_after(order, notice("partially_paid")) == ()
    order = step(order, supply.supplier_failed(order, reason="gone", now=NOW))
    assert flags_after(refunded(order), notice("finished")) == ()


@pytest.mark.parametrize("status", ["finished", "partially_paid"])
def test_money_after_a_refund_is_flagged(status: str) -> None:
    """A refunded order that receives money (a new payment, or more on the refunded one)
    gets a flag; it stays refunded."""
    order = told(invoiced(), notice("partially_paid"))
    order = refunded(order)
    for late in (notice(status, payment_id="999"), notice("finished")):
        after = told(order, late)
        assert after.status is Status.REFUNDED
        [flag] = after.flags
        assert "received for an order that is refunded" in flag


def test_money_after_the_payment_expired_is_flagged() -> None:
    """finished after expired: the order stays payment_failed, and an admin is told."""
    order = told(invoiced(), notice("expired", paid=Decimal(0)))
    assert order.status is Status.PAYMENT_FAILED
    after = told(order, notice("finished"))
    assert after.status is Status.PAYMENT_FAILED
    [flag] = after.flags
    assert f"{PRICE} eur received for an order that is payment_failed" in flag


def test_a_further_partial_payment_of_an_underpaid_order_is_flagged() -> None:
    """A second payment that is also partial does not pay; it is flagged."""
    order = told(invoiced(), notice("partially_paid"))
    [flag] = flags_after(order, notice("partially_paid", payment_id="888"))
    assert "further partial payment" in flag


def test_a_replayed_flagged_ipn_flags_once() -> None:
    """The same short payment told twice (an admin replay) leaves one flag."""
    order = told(invoiced(), notice("finished", paid=ASKED / 2))
    again = payments.payment_notified(order, notice("finished", paid=ASKED / 2), NOW)
    assert not any(isinstance(e, PaymentFlagged) for e in again)


def test_refund_of_an_underpaid_order_gives_back_what_was_paid() -> None:
    """RefundRequested and OrderRefunded carry the half that arrived, not the total."""
    order = told(invoiced(), notice("partially_paid"))
    assert order.amount_paid == PRICE / 2
    events = refunds.refunded(order, by="admin", reason="short", reference="R", now=NOW)
    requested = next(e for e in events if isinstance(e, RefundRequested))
    assert (requested.amount, requested.currency) == (PRICE / 2, "eur")
    assert step(order, events).status is Status.REFUNDED
    assert [getattr(e, "amount", None) for e in events] == [PRICE / 2, PRICE / 2]


def test_refund_of_an_order_paid_before_amounts_were_recorded_gives_back_the_total() -> None:
    """An OrderPaid without amount_received (older events) refunds the total."""
    order = paid()
    legacy = msgspec.structs.replace(order, amount_paid=None)
    legacy = step(legacy, supply.supplier_failed(legacy, reason="gone", now=NOW))
    events = refunds.refunded(legacy, by="admin", reason="r", reference="R", now=NOW)
    assert next(e for e in events if isinstance(e, RefundRequested)).amount == PRICE


def test_an_ipn_body_is_read_with_exact_amounts() -> None:
    """Amounts are read as written (no float rounding); ids become strings; empty amounts are
    absent."""
    body = (
        b'{"payment_id":5077125051,"payment_status":"finished","invoice_id":4522625843,'
        b'"order_id":"ORD-1","price_amount":19.98,"price_currency":"eur","pay_amount":0.00030738,'
        b'"actually_paid":"0.00030738","actually_paid_at_fiat":"","pay_currency":"btc",'
        b'"outcome_amount":1e-7,"outcome_currency":"btc"}'
    )
    _, ipn, delivery = read_ipn(body)
    assert (ipn.payment_id, ipn.invoice_id) == ("5077125051", "4522625843")
    assert (ipn.price_amount, ipn.pay_amount, ipn.actually_paid) == (PRICE, ASKED, ASKED)
    assert ipn.actually_paid_at_fiat is None
    assert ipn.outcome_amount == Decimal("1e-7")
    assert amount_received(ipn) == PRICE
    assert delivery.natural_key == "5077125051:finished"


@pytest.mark.parametrize(
    "amount", ['"lots"', "-1", "1e16", "NaN", "Infinity", "true", "[1]", "0.0000000000000000001"]
)
def test_an_ipn_amount_that_is_not_money_is_unreadable(amount: str) -> None:
    """Text, negative, huge, not finite, not a number or finer than 18 places: 400 material."""
    body = b'{"payment_id":1,"payment_status":"finished","order_id":"o","pay_amount":%s}'
    with pytest.raises(MalformedNotification, match="pay_amount"):
        read_ipn(body % amount.encode())


def test_an_ipn_body_nested_too_deeply_is_unreadable() -> None:
    """A body past the decoder's recursion limit is a MalformedNotification, not a
    RecursionError."""
    with pytest.raises(MalformedNotification, match="nested too deeply"):
        read_ipn(b"[" * 100_000 + b"]" * 100_000)


def test_more_money_on_the_underpaying_payment_is_remembered() -> None:
    """NOWPayments reports a payment's running total: a larger partially_paid on the same
    payment keeps the order underpaid with the new amount (and a refund gives all of it back);
    the same or a smaller amount again changes nothing; nothing is flagged."""
    order = told(invoiced(), notice("partially_paid", paid=ASKED / 4))
    more = told(order, notice("partially_paid", paid=ASKED * 3 / 4))
    assert (more.status, more.amount_paid, more.flags) == (Status.UNDERPAID, PRICE * 3 / 4, ())
    assert told(more, notice("partially_paid", paid=ASKED / 4)).version == more.version + 2
    events = refunds.refunded(more, by="admin", reason="short", reference="R", now=NOW)
    assert next(e for e in events if isinstance(e, RefundRequested)).amount == PRICE * 3 / 4


def test_another_payment_paying_an_underpaid_order_flags_the_partial_one() -> None:
    """The order is paid by the new payment in full; the partial payment received before is
    flagged as money to refund, with its amount."""
    order = told(invoiced(), notice("partially_paid"))
    after = told(order, notice("finished", payment_id="888"))
    assert (after.status, after.payment_id, after.amount_paid) == (Status.PAID, "888", PRICE)
    [flag] = after.flags
    assert f"payment 777 partially_paid: {PRICE / 2} eur received before payment 888" in flag
