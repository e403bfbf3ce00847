"""Watching the supplier balance: read it from Kinguin every few minutes and record what it
said, so that the dashboard draws its trend from the log and a rebuild draws the same."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from application.errors import ConcurrencyConflict, SupplierError
from application.ports import Clock, EventStore, Supplier
from domain.account import ACCOUNT_ID, balance_observed, observation_due

log = logging.getLogger(__name__)

BALANCE_EVERY_S = 300.0
RETRY_S = 15.0  # after Kinguin did not answer


class BalanceWatch:
    """Records ``SupplierBalanceObserved`` at most once per ``every_s`` across processes.
    ``step`` is driven by a background loop that polls it often; between observations it asks
    nothing (the first one waits ``first_after_s``: the embedded sandbox starts just after)."""

    def __init__(
        self,
        store: EventStore,
        supplier: Supplier,
        clock: Clock,
        *,
        every_s: float = BALANCE_EVERY_S,
        first_after_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._supplier = supplier
        self._clock = clock
        self._every = every_s
        self._monotonic = monotonic
        self._due = monotonic() + first_after_s

    def step(self) -> int:
        """Observe the balance when due; return how many observations were recorded. A
        supplier outage is one WARNING line and a retry in ``RETRY_S``; a race with another
        process's observation records nothing."""
        if self._monotonic() < self._due:
            return 0
        last = self._store.latest(ACCOUNT_ID)
        now = self._clock.now()
        if not observation_due(last, now, timedelta(seconds=self._every)):
            waited = (now - last.timestamp).total_seconds() if last else 0.0
            self._due = self._monotonic() + max(0.0, self._every - waited)
            return 0
        try:
            balance = self._supplier.balance(fresh=True)
        except SupplierError as failure:
            log.warning("the supplier balance could not be read (%s); retrying in %.0f s",
                        failure, RETRY_S)  # fmt: skip
            self._due = self._monotonic() + RETRY_S
            return 0
        self._due = self._monotonic() + self._every
        try:
            self._store.save(balance_observed(last, balance, now))
        except ConcurrencyConflict:
            return 0
        return 1
