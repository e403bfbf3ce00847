"""The sweeper re-drives stuck orders: paid ones are reserved again, reserved ones delivered."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from application.sweeper import Sweeper
from tests.fakes import RecordingDispatcher

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


class StuckList:
    def __init__(self, stuck: list[tuple[UUID, str]]) -> None:
        self.stuck = stuck
        self.asked: list[datetime] = []

    def stuck_orders(self, changed_before: datetime) -> list[tuple[UUID, str]]:
        self.asked.append(changed_before)
        return self.stuck


def test_sweep_redispatches_by_status_and_age() -> None:
    """Orders older than the threshold get the work their status needs."""
    paid, reserved, unannounced = uuid4(), uuid4(), uuid4()
    stuck = StuckList([(paid, "paid"), (reserved, "reserved"), (unannounced, "fulfilled")])
    dispatcher = RecordingDispatcher()
    assert Sweeper(stuck, dispatcher, FixedClock(), after_s=60).sweep() == 3
    assert dispatcher.sent == [("reserve", paid), ("deliver", reserved), ("notify", unannounced)]
    assert stuck.asked == [datetime(2026, 11, 28, 11, 59, tzinfo=UTC)]


def test_nothing_stuck_sends_nothing() -> None:
    """An empty sweep dispatches nothing."""
    dispatcher = RecordingDispatcher()
    assert Sweeper(StuckList([]), dispatcher, FixedClock(), after_s=60).sweep() == 0
    assert dispatcher.sent == []
