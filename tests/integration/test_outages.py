"""On a real PostgreSQL: every connection of the engine carries its application name; a runner
whose lock connection is terminated (as by a database restart) notices that it no longer holds
the lock, says so in one WARNING line, and takes the lock again; of two runners of one job only
one works, before and after the holder's lock connection is killed; processes starting together
create the schema one at a time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from adapters import batch_loop
from adapters.batch_loop import BatchLoop
from adapters.eventstore import RecorderEventStore, open_event_store
from adapters.outages import unavailable
from adapters.views import PostgresViews, schema_lock
from entrypoints.settings import Settings, load_settings
from tests.conftest import POSTGRES_URL


@pytest.fixture
def settings(pg_schema: str, tmp_path: Path) -> Settings:
    return load_settings(
        {"VAR_DIR": str(tmp_path), "DATABASE_URL": POSTGRES_URL, "DATABASE_SCHEMA": pg_schema}
    )


@pytest.fixture
def views(settings: Settings, pg_schema: str) -> Iterator[PostgresViews]:
    conninfo = settings.postgres_conninfo()
    assert conninfo is not None
    opened = PostgresViews(conninfo, pg_schema)
    yield opened
    opened.close()


@pytest.fixture
def store(settings: Settings) -> Iterator[RecorderEventStore]:
    opened = open_event_store(settings.eventsourcing_env())
    yield opened
    opened.close()


def _backends(name: str) -> list[tuple[int, str]]:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, backend_type FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            (name,),
        ).fetchall()
    return [(int(pid), str(kind)) for pid, kind in rows]


def _terminate(name: str) -> int:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        return len(
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s",
                (name,),
            ).fetchall()
        )


def test_the_engine_names_its_connections(
    store: RecorderEventStore, views: PostgresViews, pg_schema: str
) -> None:
    """The event store's pool, the read models' pool and a runner's lock all show up as
    ``bitloot:<schema>`` in pg_stat_activity (operators and the restart tests find them so)."""
    store.head()
    views.query("SELECT 1")
    with views.try_lock("projection:orders") as held:
        assert held
        assert len(_backends(f"bitloot:{pg_schema}")) >= 3


def test_a_terminated_lock_connection_is_noticed_and_the_lock_taken_again(
    views: PostgresViews, pg_schema: str, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(batch_loop, "STAND_BY_S", 0.1)
    monkeypatch.setattr(batch_loop, "PAUSE_AFTER_FAILURE_S", 0.1)
    with views.try_lock("x") as held:
        _terminate(f"bitloot:{pg_schema}")
        with pytest.raises(psycopg.OperationalError) as lost:
            held.verify()
        assert unavailable(lost.value) == "database"

    loop = BatchLoop("sweeper", lambda: 0, batch_size=1, poll_interval=0.05, lock=views.try_lock)
    loop.start()
    try:
        time.sleep(0.5)
        assert _terminate(f"bitloot:{pg_schema}") >= 1
        deadline = time.monotonic() + 5
        while not any("lost its lock" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # stand by, then take the lock again on a new connection
        with views.try_lock("sweeper") as other:
            assert not other, "the loop holds its lock again"
    finally:
        loop.stop()
    lines = [r for r in caplog.records if r.name == "adapters.batch_loop"]
    assert lines
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in lines)


def test_after_its_lock_connection_is_killed_only_one_runner_works(
    views: PostgresViews, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runners of one job (as in two processes), each with its own lock connection: the one
    holding the lock works, the other stands by. Its lock connection killed, the first stops
    before its next batch; the second takes over, and from then on only the second works."""
    monkeypatch.setattr(batch_loop, "STAND_BY_S", 0.1)
    batches: list[tuple[str, float]] = []

    def runner(name: str) -> BatchLoop:
        def step() -> int:
            batches.append((name, time.monotonic()))
            time.sleep(0.01)
            return 0

        return BatchLoop("projection:orders", step, batch_size=1, poll_interval=0.01,
                         lock=views.try_lock)  # fmt: skip

    first = runner("first")
    first.start()
    _eventually(lambda: any(n == "first" for n, _ in batches))
    second = runner("second")
    second.start()
    try:
        time.sleep(0.5)
        assert {n for n, _ in batches} == {"first"}, "one holder while the lock holds"
        killed_at = time.monotonic()
        assert _terminate(f"bitloot:{pg_schema}") >= 1
        _eventually(lambda: any(n == "second" for n, _ in batches))
        time.sleep(1.0)
    finally:
        second.stop()
        first.stop()
    took_over = min(t for n, t in batches if n == "second")
    after = [n for n, t in batches if t >= took_over]
    assert set(after) == {"second"}, "the first runner worked beside its successor"
    assert [t for n, t in batches if n == "first" and t > killed_at + 0.1] == []


def _eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_processes_starting_together_create_the_schema_one_at_a_time(
    settings: Settings, pg_schema: str
) -> None:
    """Workers starting at once on a new schema each create the event store's tables (its
    ``CREATE OR REPLACE FUNCTION`` among them), which PostgreSQL refuses to run concurrently
    ("tuple concurrently updated"): under the schema lock every one of them starts."""
    conninfo = settings.postgres_conninfo()
    failures: list[BaseException] = []
    stores: list[RecorderEventStore] = []

    def start() -> None:
        try:
            with schema_lock(conninfo, pg_schema):
                store = open_event_store(settings.eventsourcing_env())
                store.tracking_recorder()
            stores.append(store)
        except Exception as failure:  # noqa: BLE001 - collected for the assertion
            failures.append(failure)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert failures == []
    assert len(stores) == 6
