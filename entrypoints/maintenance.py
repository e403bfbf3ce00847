"""Operator commands behind ``bitloot keys``, ``bitloot projections``, ``bitloot replay``,
``bitloot verify`` and ``bitloot evidence export``: each builds the engine, does one job and
prints what it did."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from typing import Any, TextIO
from uuid import UUID

import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from application.orders import Viewer
from domain import order as rules
from domain.event_types import EVENT_TYPES
from domain.events import DomainEvent, KeyDelivered, OrderPlaced
from domain.evidence import SET_FORMAT
from entrypoints.bootstrap import Engine
from entrypoints.http.views import history_view
from projections.merkle import NAME as MERKLE
from projections.state import read_live

PAGE = 500


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A ``rich`` progress bar on stderr, for as long as the block runs; the block reports
    ``(done, total)`` through the function it is given."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, done))

        yield update


def order_ids(engine: Engine, event_type: type[DomainEvent]) -> list[UUID]:
    """Every order that has an event of this type, in log order, each once."""
    return list(dict.fromkeys(engine.store.originators(event_type)))


def rotate_keys(engine: Engine) -> int:
    """Re-wrap every order's and every customer's data key, and the lookup key, under the newest
    master key; resumable (keys already under it are skipped). Returns how many were
    re-wrapped."""
    orders = order_ids(engine, KeyDelivered)
    customers = sorted(_customers(engine))
    jobs: list[Callable[[], bool]] = [partial(engine.keys.rotate, o) for o in orders]
    jobs += [partial(engine.customers.rotate, c) for c in customers]
    jobs.append(engine.customers.rotate_lookup)
    rewrapped = 0
    with progress_bar("re-wrapping data keys") as progress:
        progress(0, len(jobs))
        for done, job in enumerate(jobs, start=1):
            rewrapped += job()
            progress(done, len(jobs))
    return rewrapped


def _customers(engine: Engine) -> set[str]:
    """Every customer who placed an order."""
    placed = _log(engine, EVENT_TYPES.selected_names(OrderPlaced))
    return {event.owner for _, event in placed if isinstance(event, OrderPlaced)}


def shred_keys(engine: Engine, order_id: UUID, by: str) -> str:
    """Destroy one order's data key."""
    return engine.keys.shred(order_id, Viewer(sub=by, role="admin")).status.value


def rebuild_projection(engine: Engine, name: str, timeout: float = 3600.0) -> None:
    """Rebuild a projection with a progress bar; runs it here unless a running engine owns
    it, in which case the engine does the work and this command follows its progress."""
    runner = engine.projections[name]
    runner.request_rebuild()
    with (
        engine.views.try_lock(f"projection:{name}") as held,
        progress_bar(f"rebuilding {name}") as progress,
    ):
        deadline = time.monotonic() + timeout
        while (state := runner.state()).rebuild_generation is not None:
            if held:
                runner.run_once()
            else:
                time.sleep(0.2)
            progress(state.rebuild_position or 0, state.rebuild_target or 0)
            if time.monotonic() > deadline:
                raise TimeoutError(f"rebuild of {name} did not finish in {timeout:.0f} s")
        state = runner.state()
        progress(state.position, state.position)


def replay(engine: Engine, out: TextIO, *, order_id: UUID | None, since: datetime | None) -> int:
    """Print the history (JSON lines) of one order, or of every event since a time."""
    encoder = msgspec.json.Encoder()
    count = 0
    if order_id is not None:
        events = engine.store.load(order_id)
    else:
        events = [e for _, e in _log(engine, []) if since is None or e.timestamp >= since]
    owners: dict[UUID, str] = {}
    for event in events:
        owner = owners.setdefault(event.originator_id, _owner(engine, event.originator_id))
        line: dict[str, Any] = {
            "order_id": str(event.originator_id),
            **history_view([event], owner=owner)[0],
        }
        out.write(encoder.encode(line).decode() + "\n")
        count += 1
    return count


def _owner(engine: Engine, aggregate_id: UUID) -> str:
    first = engine.store.load(aggregate_id, until_version=1)
    return first[0].owner if first and isinstance(first[0], OrderPlaced) else "engine"


def verify_log(engine: Engine, out: TextIO) -> int:
    """Check every stored event against the log's tree and every checkpoint; print each
    difference and return how many there were."""
    _catch_up(engine, MERKLE)

    def report(line: str) -> None:
        out.write(line + "\n")

    return engine.evidence.audit_log(report)


def export_evidence(
    engine: Engine, out: TextIO, *, order_id: UUID | None, since: datetime | None
) -> int:
    """Write one order's evidence bundle, or a set of the bundles of every order with events
    since a time; return how many."""
    _catch_up(engine, MERKLE)
    if order_id is not None:
        out.write(json.dumps(engine.evidence.bundle(order_id), indent=1) + "\n")
        return 1
    changed = {
        e.originator_id for _, e in _log(engine, []) if since is None or e.timestamp >= since
    }
    wanted = [i for i in order_ids(engine, OrderPlaced) if i in changed]
    bundles = [engine.evidence.bundle(i) for i in wanted]
    out.write(json.dumps({"format": SET_FORMAT, "bundles": bundles}, indent=1) + "\n")
    return len(bundles)


def _catch_up(engine: Engine, name: str) -> None:
    """Bring a projection up to date here, unless a running engine owns it."""
    with engine.views.try_lock(f"projection:{name}") as held:
        if held:
            engine.projections[name].catch_up()


def verify(engine: Engine, out: TextIO) -> int:
    """Fold every order from its events and compare with the orders projection; print and
    count mismatches."""
    _catch_up(engine, "orders")
    viewed = read_live(
        engine.views,
        "orders",
        lambda table: engine.views.query(f"SELECT order_id, status, version FROM {table}"),  # noqa: S608
    )
    rows = {UUID(r[0]): (r[1], r[2]) for r in viewed}
    mismatches = 0
    for order_id in order_ids(engine, OrderPlaced):
        order = rules.fold(engine.store.load(order_id))
        expected = (order.status.value, order.version)
        if rows.pop(order_id, None) != expected:
            mismatches += 1
            out.write(f"order {order_id}: events say {expected}, view says differently\n")
    for order_id in rows:
        mismatches += 1
        out.write(f"order {order_id}: in the view but has no events\n")
    return mismatches


def _log(engine: Engine, topics: Sequence[str]) -> Iterator[tuple[Any, DomainEvent]]:
    position = 0
    while True:
        batch = engine.store.notifications(position, PAGE, topics)
        yield from batch
        if len(batch) < PAGE:
            return
        position = batch[-1][0].id
