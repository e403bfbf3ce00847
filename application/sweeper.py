"""The sweeper: re-drives orders that sit in ``paid`` or ``reserved`` too long, and fulfilled
orders whose customer was not yet told, so that a lost broker message or a lost Kinguin webhook
never strands an order. Re-dispatching is safe: the
actors decide from the order's state, and ``deliver`` asks Kinguin when no webhook came."""

from __future__ import annotations

import logging
from datetime import timedelta

from application.ports import Clock, Dispatcher, StuckOrders

log = logging.getLogger(__name__)


class Sweeper:
    """Finds stuck orders and sends their work again."""

    def __init__(
        self, stuck: StuckOrders, dispatcher: Dispatcher, clock: Clock, after_s: float
    ) -> None:
        self._stuck = stuck
        self._dispatcher = dispatcher
        self._clock = clock
        self._after = timedelta(seconds=after_s)

    def sweep(self) -> int:
        """Re-dispatch every stuck order once; return how many there were."""
        stuck = self._stuck.stuck_orders(self._clock.now() - self._after)
        for order_id, status in stuck:
            if status == "paid":
                self._dispatcher.reserve(order_id)
            elif status == "reserved":
                self._dispatcher.deliver(order_id)
            else:
                self._dispatcher.notify(order_id)
        if stuck:
            log.info("sweeper re-dispatched %d stuck order(s)", len(stuck))
        return len(stuck)
