"""Refunds and key returns, for admins: refund a paid order that was not delivered; return a
delivered order's unrevealed keys to Kinguin within its 24-hour window, destroy our copies and
refund the customer."""

from __future__ import annotations

import logging
from uuid import UUID, uuid4

from application.errors import SupplierError, SupplierUnavailable
from application.orders import Orders, Viewer
from application.ports import Clock, KeyCustody, Supplier
from domain import refunds
from domain.errors import TransitionRefused
from domain.order import Order

log = logging.getLogger(__name__)

REFUNDED = "refunded"  # Kinguin's status of a purchase whose keys it took back


class Refunds:
    """Giving money (and keys) back."""

    def __init__(
        self, *, orders: Orders, supplier: Supplier, custody: KeyCustody, clock: Clock
    ) -> None:
        self._orders = orders
        self._supplier = supplier
        self._custody = custody
        self._clock = clock

    def refund(
        self, order_id: UUID, viewer: Viewer, *, reason: str, reference: str | None = None
    ) -> Order:
        """Record the refund of a paid, undelivered order (``reference``: the payment
        provider's refund reference, or one made up here)."""
        viewer.must_be_admin("refund orders")
        ref = reference or f"refund-{uuid4().hex[:12]}"
        return self._orders.decide(
            order_id,
            lambda o: refunds.refunded(
                o, by=viewer.sub, reason=reason, reference=ref, now=self._clock.now()
            ),
        )

    def return_keys(self, order_id: UUID, viewer: Viewer) -> Order:
        """Return the order's keys to Kinguin, shred them and refund the order; refused, with
        the reason, after a reveal, after 24 hours or for a pre-order."""
        viewer.must_be_admin("refund orders")
        order = self._orders.decide(
            order_id, lambda o: refunds.return_started(o, by=viewer.sub, now=self._clock.now())
        )
        return self._send_back(order, viewer)

    def finish_return(self, order_id: UUID, viewer: Viewer) -> Order:
        """Finish a key return that never did (the engine stopped on the way): when Kinguin's
        purchase is already ``refunded`` it took the keys, and that is recorded; otherwise
        they are sent back now."""
        viewer.must_be_admin("refund orders")
        order = self._pending_return(order_id)
        purchase = self._supplier.get_order(order.supplier_order_id or "")
        if purchase.status == REFUNDED:
            return self._confirm(order, viewer, tuple(key.key_id for key in order.keys))
        return self._send_back(order, viewer)

    def abandon_return(self, order_id: UUID, viewer: Viewer, reason: str) -> Order:
        """Give up a key return that never finished; refused while Kinguin's purchase says it
        took the keys (finish the return instead)."""
        viewer.must_be_admin("refund orders")
        order = self._pending_return(order_id)
        purchase = self._supplier.get_order(order.supplier_order_id or "")
        if purchase.status == REFUNDED:
            raise TransitionRefused("Kinguin already took the keys back; finish the return")
        return self._orders.decide(
            order_id,
            lambda o: refunds.return_abandoned(
                o, by=viewer.sub, reason=reason, now=self._clock.now()
            ),
        )

    def _pending_return(self, order_id: UUID) -> Order:
        order = self._orders.load(order_id)
        refusal = refunds.pending_return_refusal(order)
        if refusal is not None:
            raise TransitionRefused(refusal)
        return order

    def _send_back(self, order: Order, viewer: Viewer) -> Order:
        """Ask Kinguin to take the keys back; a refusal is recorded and raised. When Kinguin
        does not answer, the return stays under way (reads stay stopped) for an admin to
        finish or abandon from the queue."""
        try:
            key_ids = self._supplier.return_keys(order.supplier_order_id or "")
        except SupplierUnavailable as outage:
            log.warning(
                "key return of order %s waits: Kinguin did not answer (%s)", order.id, outage
            )
            raise
        except SupplierError as refusal:
            reason = str(refusal)
            log.warning("key return of order %s refused: %s", order.id, reason)
            self._orders.decide(
                order.id, lambda o: refunds.return_refused(o, reason=reason, now=self._clock.now())
            )
            raise TransitionRefused(f"Kinguin refused the key return: {reason}") from None
        return self._confirm(order, viewer, tuple(key_ids))

    def _confirm(self, order: Order, viewer: Viewer, key_ids: tuple[str, ...]) -> Order:
        """Kinguin has the keys: destroy our copies and refund the order."""
        self._custody.shred(order.id)
        return self._orders.decide(
            order.id,
            lambda o: refunds.return_confirmed(
                o,
                by=viewer.sub,
                key_ids=key_ids,
                reference=f"kinguin-return:{order.supplier_order_id or ''}",
                now=self._clock.now(),
            ),
        )
