"""A shop of many orders written straight through the engine's store, for the benchmarks that
need history rather than traffic (``backup.py``, ``dashboard.py``)."""

from __future__ import annotations

from collections.abc import Callable

from domain.events import DomainEvent
from entrypoints.bootstrap import Engine, bootstrap
from entrypoints.settings import load_settings

BATCH = 2000  # events appended in one save


def write_orders(
    env: dict[str, str], orders: int, maker: Callable[[Engine], Callable[[], list[DomainEvent]]]
) -> int:
    """Write ``orders`` orders, each the events ``maker(engine)()`` returns, through the store
    of the engine these settings build; how many events were written."""
    engine = bootstrap(load_settings(env))
    make = maker(engine)
    written, batch = 0, list[DomainEvent]()
    try:
        for _ in range(orders):
            batch += make()
            if len(batch) >= BATCH:
                engine.store.save(batch)
                written, batch = written + len(batch), []
        if batch:
            engine.store.save(batch)
            written += len(batch)
    finally:
        engine.stop()
    return written
