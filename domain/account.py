"""The shop's account with Kinguin: its balance, observed now and then so that its trend is in
the log (one aggregate, ``ACCOUNT_ID``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid5

from domain.events import DomainEvent, SupplierBalanceObserved

ACCOUNT_ID = uuid5(UUID("6f1c2d55-3a0e-4c1b-9a57-0d7f0f3e1b42"), "kinguin-account")


def observation_due(last: DomainEvent | None, now: datetime, every: timedelta) -> bool:
    """Whether the balance is to be read again: never read, or last read ``every`` ago."""
    return last is None or now - last.timestamp >= every


def balance_observed(
    last: DomainEvent | None, balance: Decimal, now: datetime
) -> list[DomainEvent]:
    """Record the balance Kinguin reported, after the account's last event."""
    version = 1 if last is None else last.originator_version + 1
    return [
        SupplierBalanceObserved(
            originator_id=ACCOUNT_ID, originator_version=version, timestamp=now, balance=balance
        )
    ]
