"""Reading the dashboard's charts from the ``sales`` read model: the last 48 hours hour by hour,
or the last 30 days day by day, every period present (a quiet one as zeros), so that a chart's
x axis is continuous."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from adapters.views import Row, ViewDatabase
from projections.sales import COUNTS, HOUR_COLUMNS, Hour, hour_from_row, hour_of, percentile, summed
from projections.state import query_live, read_live

PERIODS = {"hour": (timedelta(hours=1), 48), "day": (timedelta(days=1), 30)}
"""Each period the charts come in: its length, and how many of them are drawn."""


class UnknownPeriod(ValueError):
    """The charts were asked for by a period other than ``hour`` or ``day``."""


def series(views: ViewDatabase, by: str, now: datetime) -> list[dict[str, Any]]:
    """One point per period, oldest first, ending with the one holding ``now``."""
    if by not in PERIODS:
        raise UnknownPeriod(f"by must be one of {', '.join(PERIODS)}")
    step, count = PERIODS[by]
    starts = _period_starts(now, step, count)
    rows = query_live(
        views,
        "sales",
        f"SELECT hour, currency, {', '.join(HOUR_COLUMNS)} FROM {{t}} WHERE hour >= %s",  # noqa: S608
        (starts[0].isoformat(),),
    )
    return _points(starts, step, rows)


def totals(views: ViewDatabase) -> tuple[dict[str, Hour], Decimal | None, str | None]:
    """The all-time figures by currency, and the last balance observed with its hour."""

    def read(table: str) -> tuple[list[Row], list[Row]]:
        columns = ", ".join(HOUR_COLUMNS)
        kept = views.query(f"SELECT currency, {columns} FROM {table}_totals")  # noqa: S608
        seen = views.query(
            f"SELECT hour, balance FROM {table} WHERE balance IS NOT NULL "  # noqa: S608
            "ORDER BY hour DESC LIMIT 1"
        )
        return kept, seen

    kept, seen = read_live(views, "sales", read)
    by_currency = {row[0]: hour_from_row(row[1:]) for row in kept}
    if not seen:
        return by_currency, None, None
    return by_currency, Decimal(seen[0][1]), seen[0][0]


def latency_figures(hour: Hour) -> dict[str, float | int | None]:
    """Paid→fulfilled median and 95th percentile (ms, a bucket's upper bound) and the count."""
    return {
        "median": percentile(hour.latency, 0.5),
        "p95": percentile(hour.latency, 0.95),
        "count": sum(hour.latency.values()),
    }


def _period_starts(now: datetime, step: timedelta, count: int) -> list[datetime]:
    last = datetime.fromisoformat(hour_of(now))
    if step >= timedelta(days=1):
        last = last.replace(hour=0)
    return [last - step * back for back in range(count - 1, -1, -1)]


def _points(
    starts: list[datetime], step: timedelta, rows: Sequence[Sequence[Any]]
) -> list[dict[str, Any]]:
    periods: list[dict[str, Hour]] = [{} for _ in starts]
    first = starts[0]
    for row in rows:
        index = int((datetime.fromisoformat(row[0]) - first) / step)
        if 0 <= index < len(starts):
            periods[index].setdefault(row[1], Hour()).add(hour_from_row(row[2:]))
    return [_point(start, period) for start, period in zip(starts, periods, strict=True)]


def _point(start: datetime, period: dict[str, Hour]) -> dict[str, Any]:
    every = summed(period.values())
    settled = every.fulfilled + every.failed
    return {
        "at": start.isoformat(),
        **{column: getattr(every, column) for column in COUNTS},
        "revenue": {currency: str(h.revenue) for currency, h in sorted(period.items())},
        "margin": {currency: str(h.margin) for currency, h in sorted(period.items())},
        "failure_rate": None if settled == 0 else round(every.failed / settled, 4),
        "latency_ms": latency_figures(every),
        "balance": None if every.balance is None else str(every.balance),
    }
