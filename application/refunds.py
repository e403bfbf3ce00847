"""Refunds and key returns, for admins: refund a paid order that was not delivered; return a
delivered order's unrevealed keys to Kinguin within its 24-hour window, destroy our copies and
refund the customer."""

from __future__ import annotations

import logging
from uuid import UUID, uuid4

from application.errors import NotAllowed, SupplierError
from application.orders import Orders, Viewer
from application.ports import Clock, KeyCustody, Supplier
from domain import refunds
from domain.errors import TransitionRefused
from domain.order import Order

log = logging.getLogger(__name__)


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
        _admin_only(viewer)
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
        _admin_only(viewer)
        order = self._orders.decide(
            order_id, lambda o: refunds.return_started(o, by=viewer.sub, now=self._clock.now())
        )
        supplier_order = order.supplier_order_id or ""
        try:
            key_ids = self._supplier.return_keys(supplier_order)
        except SupplierError as refusal:
            reason = str(refusal)
            log.warning("key return of order %s refused: %s", order_id, reason)
            self._orders.decide(
                order_id, lambda o: refunds.return_refused(o, reason=reason, now=self._clock.now())
            )
            raise TransitionRefused(f"Kinguin refused the key return: {reason}") from None
        self._custody.shred(order_id)
        return self._orders.decide(
            order_id,
            lambda o: refunds.return_confirmed(
                o,
                by=viewer.sub,
                key_ids=tuple(key_ids),
                reference=f"kinguin-return:{supplier_order}",
                now=self._clock.now(),
            ),
        )


def _admin_only(viewer: Viewer) -> None:
    if not viewer.is_admin:
        raise NotAllowed("only admins refund orders")
