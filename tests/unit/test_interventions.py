"""The admins' interventions, decided with plain values: resuming a held purchase, settling
flagged payments, abandoning a key return that never finished, resending the delivery e-mail;
what the console offers for each order, and what the queue calls each."""

from __future__ import annotations

from decimal import Decimal
from uuid import uuid4

import msgspec
import pytest

from application.process_manager import ProcessManager
from domain import access, payments, refunds, supply
from domain.actions import admin_actions, attention
from domain.errors import TransitionRefused
from domain.events import PaymentFlagged, PurchaseResumed
from domain.order import Order, Stamper
from tests.fakes import RecordingDispatcher
from tests.unit.test_order import NOW, paid, step
from tests.unit.test_refunds import fulfilled

OFFERED = ("resend_email", "resolve_flags", "resume", "finish_return", "abandon_return")


def held() -> Order:
    order = paid()
    return step(
        order,
        supply.held(order, reason="insufficient_balance", needed=Decimal(5), balance=None, now=NOW),
    )


def flagged(*reasons: str) -> Order:
    order = paid()
    stamp = Stamper(order.id, order.version, NOW)
    return step(order, [stamp(PaymentFlagged, payment_id="p", reason=r) for r in reasons])


def allowed(order: Order) -> set[str]:
    return {name for name in OFFERED if admin_actions(order, NOW)[name] is None}


def test_a_held_purchase_is_resumed_once() -> None:
    order = held()
    assert (attention(order), allowed(order)) == ("held", {"resume"})
    order = step(order, supply.purchase_resumed(order, by="ops", now=NOW))
    assert order.held is None
    assert attention(order) is None
    with pytest.raises(TransitionRefused, match="not waiting"):
        supply.purchase_resumed(order, by="ops", now=NOW)


def test_a_resumed_purchase_is_reserved_by_the_process_manager() -> None:
    dispatcher = RecordingDispatcher()
    manager = ProcessManager(dispatcher)
    resumed = PurchaseResumed(originator_id=uuid4(), originator_version=9, timestamp=NOW, by="ops")
    manager.look_ahead([resumed])
    manager.handle(resumed)
    assert dispatcher.sent == [("reserve", resumed.originator_id)]
    assert PurchaseResumed in manager.topics


def test_flags_are_settled_with_a_note_and_new_ones_stay() -> None:
    order = flagged("late money", "re-deposit")
    assert (attention(order), allowed(order)) == ("flagged", {"resolve_flags"})
    events = payments.flags_resolved(order, by="ops", note="sent back", now=NOW)
    assert msgspec.structs.asdict(events[0])["flags"] == ("late money", "re-deposit")
    later = Stamper(order.id, order.version, NOW)(PaymentFlagged, payment_id="p", reason="new")
    order = step(order, [later, *events])  # a flag raised meanwhile is not cleared
    assert order.flags == ("new",)
    with pytest.raises(TransitionRefused, match="no payment flag"):
        payments.flags_resolved(paid(), by="ops", note="n", now=NOW)


def test_an_unfinished_key_return_is_abandoned_and_the_keys_read_again() -> None:
    order = fulfilled()
    order = step(order, refunds.return_started(order, by="ops", now=NOW))
    assert attention(order) == "returning"
    assert allowed(order) == {"finish_return", "abandon_return"}  # no e-mail while returning
    order = step(order, refunds.return_abandoned(order, by="ops", reason="kept", now=NOW))
    assert (order.returning, attention(order)) == (False, None)
    assert allowed(order) == {"resend_email"}
    with pytest.raises(TransitionRefused, match="no key return"):
        refunds.return_abandoned(order, by="ops", reason="again", now=NOW)


def test_the_delivery_email_is_resent_only_for_readable_keys() -> None:
    order = fulfilled()
    [resent] = access.email_resent(order, by="ops", message_id="m2", now=NOW)
    assert msgspec.structs.asdict(resent) | {"by": "ops", "message_id": "m2"} == (
        msgspec.structs.asdict(resent)
    )
    after = step(order, [resent])
    assert (after.version, after.status, after.keys) == (
        order.version + 1,
        order.status,
        order.keys,
    )
    order = after
    shredded = step(order, access.shredded(order, who="ops", now=NOW))
    for refused in (paid(), shredded):
        with pytest.raises(TransitionRefused):
            access.email_resent(refused, by="ops", message_id="m3", now=NOW)
