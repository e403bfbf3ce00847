"""The supplier balance is observed once per interval and recorded on the account's aggregate;
an outage records nothing and says so once; a second process's race records nothing twice."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from adapters.eventstore import open_event_store
from application.balance import RETRY_S, BalanceWatch
from application.errors import SupplierUnavailable
from domain.account import ACCOUNT_ID
from domain.events import SupplierBalanceObserved

START = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Clock:
    """The wall clock and the monotonic one, moved together by the test."""

    def __init__(self) -> None:
        self.at = START

    def now(self) -> datetime:
        return self.at

    def monotonic(self) -> float:
        return (self.at - START).total_seconds()


class Account:
    """The supplier port's balance, nothing else."""

    def __init__(self) -> None:
        self.balances = [Decimal("100.00"), Decimal("91.50")]
        self.down = False
        self.asked = 0

    def balance(self, *, fresh: bool = False) -> Decimal:  # noqa: ARG002 - the port
        self.asked += 1
        if self.down:
            raise SupplierUnavailable("Kinguin answered 503")
        return self.balances[min(self.asked - 1, len(self.balances) - 1)]


def test_observed_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    store = open_event_store({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    clock, account = Clock(), Account()
    watch, other = (
        BalanceWatch(store, account, clock, every_s=300, first_after_s=0, monotonic=clock.monotonic)  # type: ignore[arg-type]
        for _ in range(2)
    )
    assert watch.step() == 1
    assert (watch.step(), other.step()) == (0, 0)  # not due: Kinguin not asked again
    clock.at += timedelta(seconds=299)
    assert (watch.step(), other.step()) == (0, 0)
    assert account.asked == 1
    clock.at += timedelta(seconds=1)
    account.down = True
    with caplog.at_level(logging.WARNING):
        assert watch.step() == 0
        assert watch.step() == 0  # waits RETRY_S before asking again
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "503" in caplog.records[0].getMessage()
    account.down = False
    clock.at += timedelta(seconds=RETRY_S)
    assert watch.step() == 1
    events = store.load(ACCOUNT_ID)
    assert [type(e) for e in events] == [SupplierBalanceObserved] * 2
    assert [e.balance for e in events if isinstance(e, SupplierBalanceObserved)] == [
        Decimal("100.00"),
        Decimal("91.50"),
    ]
    assert events[1].timestamp == START + timedelta(seconds=300 + RETRY_S)


class StaleLatest:
    """A store whose look at the account is from before another process's observation."""

    def __init__(self, store: object) -> None:
        self._store = store

    def latest(self, aggregate_id: object) -> None:  # noqa: ARG002 - the port's signature
        return None

    def save(self, events: object) -> object:
        return self._store.save(events)  # type: ignore[attr-defined]


def test_a_race_with_another_process_records_once() -> None:
    store = open_event_store({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    clock, account = Clock(), Account()
    assert BalanceWatch(store, account, clock, first_after_s=0).step() == 1  # type: ignore[arg-type]
    late = BalanceWatch(StaleLatest(store), account, clock, first_after_s=0)  # type: ignore[arg-type]
    assert late.step() == 0
    assert len(store.load(ACCOUNT_ID)) == 1
