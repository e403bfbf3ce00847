"""Rebuilds never break readers, on SQLite and PostgreSQL: admin commands that meet a swap in
progress act on the state the swap leaves; a reader holding a retired generation's name still
reads it, and one whose table is dropped under it reads the live one; a runner whose state is
stale gives its batch up; skip and retry act on the state they find."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import psycopg
import pytest

from adapters.eventstore import RecorderEventStore, open_event_store
from adapters.views import MISSING_TABLE_ERRORS, PostgresViews, SQLiteViews, Tx, ViewDatabase
from domain.events import DomainEvent
from projections.base import Change, Projection
from projections.orders import OrdersProjection
from projections.queries import ReadModels
from projections.runner import ProjectionRunner
from projections.state import current_table, read_live
from tests.conftest import POSTGRES_URL, postgres_env
from tests.integration.test_projections import Exploding, order_events

Processes = tuple[RecorderEventStore, ViewDatabase, ViewDatabase]
WAIT_S = 10.0


@pytest.fixture(params=["sqlite", "postgres"])
def two_processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Processes]:
    """One event store and two connections to the read models, as two engine processes have
    (the runner's and the admin's)."""
    views: list[ViewDatabase]
    if request.param == "sqlite":
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "e")}
        store = open_event_store(env)
        views = [SQLiteViews(tmp_path / "views.db"), SQLiteViews(tmp_path / "views.db")]
    else:
        schema = request.getfixturevalue("pg_schema")
        store = open_event_store(postgres_env(schema))
        views = [PostgresViews(POSTGRES_URL, schema), PostgresViews(POSTGRES_URL, schema)]
    yield store, views[0], views[1]
    for each in views:
        each.close()
    store.close()


class Gated(Projection):
    """Keeps the positions it saw; holds its transaction open, once, when writing ``hold``."""

    name = "gated"
    topics = OrdersProjection.topics
    schema = ("CREATE TABLE IF NOT EXISTS {t} (position BIGINT PRIMARY KEY)",)

    def __init__(self) -> None:
        self.hold: str | None = None
        self.entered = threading.Event()
        self.release = threading.Event()

    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> None:
        """Not used: ``apply_batch`` writes the whole batch."""

    def apply_batch(
        self, tx: Tx, table: str, batch: Sequence[tuple[int, DomainEvent]]
    ) -> list[Change]:
        """Insert the batch's positions; when it is the table to hold, wait to be released."""
        tx.execute_many(
            f"INSERT INTO {table} VALUES (%s) ON CONFLICT DO NOTHING",  # noqa: S608
            [(position,) for position, _ in batch],
        )
        if table == self.hold:
            self.hold = None
            self.entered.set()
            self.release.wait(WAIT_S)
        return []


def runners(processes: Processes, projection: Projection) -> tuple[ProjectionRunner, ...]:
    """The projection's runner in each process (the first runs it)."""
    store, first, second = processes
    running = ProjectionRunner(store, first, projection, batch_size=100)
    running.ensure()
    return running, ProjectionRunner(store, second, projection, batch_size=100)


def in_thread(work: object) -> threading.Thread:
    assert callable(work)
    thread = threading.Thread(target=work)
    thread.start()
    return thread


def count(views: ViewDatabase, table: str) -> int:
    return int(views.query(f"SELECT COUNT(*) FROM {table}")[0][0])  # noqa: S608


def test_a_cancel_that_meets_a_swap_leaves_the_new_generation_live(
    two_processes: Processes,
) -> None:
    """A cancel sent while the runner swaps waits for the swap, finds no rebuild, changes
    nothing: the new generation stays live with every row (it used to drop the live table)."""
    store, views, _ = two_processes
    for _ in range(5):
        store.save(order_events())
    gated = Gated()
    runner, admin = runners(two_processes, gated)
    runner.catch_up()
    runner.request_rebuild()
    gated.hold = "gated_g2"
    swapping = in_thread(runner.run_once)  # the rebuild's one batch, then the swap
    assert gated.entered.wait(WAIT_S)
    cancelling = in_thread(admin.cancel_rebuild)
    time.sleep(0.3)  # the cancel has read (or waits to read) the state by now
    gated.release.set()
    swapping.join(WAIT_S)
    cancelling.join(WAIT_S)
    state = runner.state()
    assert (state.generation, state.rebuild_generation, state.error) == (2, None, None)
    assert count(views, current_table(views, "gated")) == store.head()
    store.save(order_events())
    runner.catch_up()
    assert count(views, "gated_g2") == store.head()
    assert runner.state().state == "live"


def test_a_reader_holding_a_retired_name_still_reads_it(two_processes: Processes) -> None:
    """A reader that fetched the live name before two rebuilds in a row still finds that
    table (it is dropped only after its grace); one whose table is dropped under it reads the
    live generation instead."""
    store, views, _ = two_processes
    for _ in range(4):
        store.save(order_events())
    runner = ProjectionRunner(store, views, OrdersProjection())
    runner.ensure()
    runner.catch_up()
    held = current_table(views, "orders")
    for _ in range(2):
        runner.request_rebuild()
        runner.catch_up()
    assert runner.state().generation == 3
    assert count(views, held) == 4  # the second rebuild used to drop it

    hasty = ProjectionRunner(store, views, OrdersProjection(), retire_after=0)
    tried: list[str] = []

    def read(table: str) -> int:
        tried.append(table)
        if len(tried) == 1:  # the table is retired and dropped after the name was read
            hasty.request_rebuild()
            hasty.catch_up()
        return count(views, table)

    assert read_live(views, "orders", read) == 4
    assert tried == ["orders_g3", "orders_g4"]
    with pytest.raises(MISSING_TABLE_ERRORS):
        count(views, "orders_g3")
    assert sum(ReadModels(views).counts_by_status().values()) == 4


def test_retired_generations_are_dropped_after_their_grace(two_processes: Processes) -> None:
    """A swap leaves the old generation in place for the grace period; the runner drops it at
    its first look after that."""
    store, views, _ = two_processes
    store.save(order_events())
    runner = ProjectionRunner(store, views, OrdersProjection(), retire_after=0.2)
    runner.ensure()
    runner.request_rebuild()
    runner.catch_up()
    assert count(views, "orders_g1") == 1
    time.sleep(0.3)
    runner.run_once()
    with pytest.raises(MISSING_TABLE_ERRORS):
        count(views, "orders_g1")
    assert count(views, "orders_g2") == 1


def test_a_runner_with_a_stale_state_gives_its_batch_up(two_processes: Processes) -> None:
    """A runner still holding the generation another process swapped out writes nothing into
    it: it reads the state again and applies the new events to the live generation."""
    store, first, second = two_processes
    for _ in range(3):
        store.save(order_events())
    stale = ProjectionRunner(store, first, OrdersProjection(), state_refresh=60)
    stale.ensure()
    stale.catch_up()  # it now knows generation 1, and reads it again only in a minute
    other = ProjectionRunner(store, second, OrdersProjection())
    other.request_rebuild()
    other.catch_up()
    store.save(order_events("created"))
    assert stale.run_once() == 0
    stale.catch_up()
    assert count(first, "orders_g2") == 4
    assert count(first, "orders_g1") == 3
    assert stale.state().position == store.head()


def test_skip_and_retry_act_on_the_state_they_find(two_processes: Processes) -> None:
    """A skip or retry sent after the failure was already dealt with changes nothing; a rebuild
    asked for while the projection is stopped keeps the failure (skip stays possible), and a
    second rebuild request joins the first."""
    store, views, _ = two_processes
    for _ in range(3):
        store.save(order_events())
    exploding = Exploding(fail_at=5)
    runner, admin = runners(two_processes, exploding)
    runner.catch_up()
    assert (runner.state().state, runner.state().error_position) == ("failed", 5)
    requested = admin.request_rebuild()
    assert (requested.state, requested.error_position, requested.rebuild_generation) == (
        "failed",
        5,
        2,
    )
    assert admin.request_rebuild().rebuild_generation == 2
    admin.cancel_rebuild()
    exploding.fail_at = -1  # the handler is fixed; the admin retries
    admin.retry()
    runner.catch_up()
    done = runner.state()
    assert (done.state, done.position) == ("live", store.head())
    for late in (admin.skip, admin.retry, admin.skip):
        assert late().position == store.head()  # nothing moves back: nothing is applied twice
        runner.catch_up()
    assert runner.state().state == "live"
    assert count(views, current_table(views, "exploding")) == store.head()


def test_a_retired_table_a_reader_holds_is_dropped_later(
    pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """On PostgreSQL, a retired table still being read is not waited for: one WARNING line, and
    the runner drops it at a later look."""
    store = open_event_store(postgres_env(pg_schema))
    views = PostgresViews(POSTGRES_URL, pg_schema)
    try:
        store.save(order_events())
        runner = ProjectionRunner(store, views, OrdersProjection(), retire_after=0)
        runner.ensure()
        runner.catch_up()
        options = f"-c search_path={pg_schema}"
        with psycopg.connect(POSTGRES_URL, options=options) as reader:
            reader.execute("SELECT COUNT(*) FROM orders_g1")  # its transaction stays open
            runner.request_rebuild()
            with caplog.at_level(logging.WARNING, logger="projections.state"):
                runner.catch_up()
            assert count(views, "orders_g1") == 1
        assert [r.getMessage() for r in caplog.records if r.name == "projections.state"] == [
            "projection orders: generation 1 is still being read; dropped at a later look"
        ]
        runner.drop_retired()  # the next look, without waiting for it
        with pytest.raises(MISSING_TABLE_ERRORS):
            count(views, "orders_g1")
    finally:
        views.close()
        store.close()
