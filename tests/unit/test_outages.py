"""Outages of the database or Redis are expected: told apart from every other failure in one
place, logged as one WARNING line where they are handled (a loop's batch, its lock, an actor, an
HTTP request), retried on the same backoff; anything else keeps its traceback."""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import dramatiq
import msgspec
import psycopg
import psycopg_pool
import pytest
import redis
from dramatiq.errors import ConnectionClosed
from eventsourcing import persistence
from litestar import Litestar, get, post
from litestar.params import JSONBody
from litestar.testing import TestClient

from adapters import batch_loop
from adapters.batch_loop import BatchLoop
from adapters.broker import QUEUE, DramatiqDispatcher, declare_actors, make_broker
from adapters.eventstore import RecorderEventStore, open_event_store
from adapters.outages import OutagesAsWarnings, log_failure, outage, unavailable
from adapters.vault import VaultError, VaultUnavailable
from adapters.views import HeldLock, SQLiteViews, Tx
from application.errors import ConcurrencyConflict, KeyUnreadable
from domain import order as rules
from domain.events import DomainEvent, LineItem
from entrypoints import bootstrap as composition
from entrypoints.http.problems import exception_handlers
from entrypoints.settings import load_settings
from projections.base import Projection
from projections.orders import OrdersProjection
from projections.runner import ProjectionRunner
from tests.support import serving

CUT = "consuming input failed: server closed the connection unexpectedly"


def _wrapped(cause: BaseException, wrapper: type[Exception]) -> Exception:
    """``wrapper`` raised ``from cause``, as eventsourcing wraps psycopg's errors."""
    wrapped = wrapper(str(cause))
    wrapped.__cause__ = cause
    return wrapped


@pytest.mark.parametrize(
    ("error", "service"),
    [
        (psycopg.OperationalError(CUT), "database"),
        (psycopg.errors.AdminShutdown("terminating connection"), "database"),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), "database"),
        (psycopg.errors.TooManyConnections("sorry, too many clients already"), "database"),
        (psycopg_pool.PoolTimeout("couldn't get a connection after 5.00 sec"), "database"),
        (_wrapped(psycopg.OperationalError(CUT), persistence.OperationalError), "database"),
        (_wrapped(psycopg.errors.AdminShutdown("x"), persistence.OperationalError), "database"),
        (redis.ConnectionError("Error 111 connecting"), "Redis"),
        (redis.TimeoutError("Timeout reading from socket"), "Redis"),
        (ConnectionClosed("Error 111 connecting"), "Redis"),  # type: ignore[no-untyped-call]
        (VaultUnavailable("S3 unreachable: EndpointConnectionError"), "key vault"),
        (_wrapped(VaultUnavailable("S3 error SlowDown"), KeyUnreadable), "key vault"),
        # failures that are not outages keep their tracebacks
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), None),
        (psycopg.errors.LockNotAvailable("could not obtain lock"), None),
        (psycopg.errors.UndefinedTable("relation does not exist"), None),
        (psycopg.InterfaceError("the cursor is closed"), None),
        (psycopg_pool.PoolClosed("the pool is closed"), None),
        (_wrapped(psycopg.errors.QueryCanceled("x"), persistence.OperationalError), None),
        (persistence.OperationalError("Can't do multi-row tracking"), None),
        (redis.AuthenticationError("invalid password"), None),
        (redis.ResponseError("WRONGTYPE"), None),
        (ValueError("a bug"), None),
        (VaultError("invalid vault reference"), None),
    ],
)
def test_what_counts_as_an_outage(error: BaseException, service: str | None) -> None:
    assert unavailable(error) == service


def test_a_handled_failure_is_one_warning_line_or_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.outages")
    log_failure(logger, psycopg.errors.AdminShutdown("terminating connection"), "step", "later")
    log_failure(logger, ValueError("a bug"), "step", "later")
    outage, bug = caplog.records
    assert outage.levelno == logging.WARNING
    assert outage.getMessage() == (
        "step, database unavailable (AdminShutdown: terminating connection); later"
    )
    assert outage.exc_info is None
    assert bug.levelno == logging.ERROR
    assert bug.exc_info is not None
    assert bug.getMessage() == "step; later"


def test_a_library_record_about_an_outage_becomes_a_warning() -> None:
    """Dramatiq logs Redis going away as CRITICAL, or with a traceback: one WARNING line."""
    keep = OutagesAsWarnings()
    error = ConnectionClosed("Error 111 connecting")  # type: ignore[no-untyped-call]
    critical = logging.LogRecord(
        "dramatiq", logging.CRITICAL, __file__, 1, "connection error: %s", (error,), None
    )
    assert keep.filter(critical)
    assert critical.levelname == "WARNING"
    traced = logging.LogRecord(
        "dramatiq", logging.ERROR, __file__, 1, "failed", None, (type(error), error, None)
    )
    assert keep.filter(traced)
    assert traced.exc_info is None
    assert traced.levelno == logging.WARNING
    assert (
        traced.getMessage() == "failed: Redis unavailable (ConnectionClosed: Error 111 connecting)"
    )
    bug = ValueError("a bug")
    other = logging.LogRecord(
        "dramatiq", logging.ERROR, __file__, 1, "failed", None, (ValueError, bug, None)
    )
    assert keep.filter(other)
    assert other.exc_info is not None
    assert other.levelno == logging.ERROR


# -- the background loop ---------------------------------------------------------------------


@pytest.fixture
def quick_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch_loop, "STAND_BY_S", 0.05)
    monkeypatch.setattr(batch_loop, "PAUSE_AFTER_FAILURE_S", 0.05)


def _until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.usefixtures("quick_loops")
def test_a_batch_failing_for_an_outage_is_a_warning_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []
    failures = [psycopg.OperationalError(CUT), ValueError("a bug")]

    def step() -> int:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return 0

    loop = BatchLoop("follower:test", step, batch_size=10, poll_interval=0.01)
    loop.start()
    try:
        _until(lambda: len(calls) >= 3)
    finally:
        loop.stop()
    outage, bug = (r for r in caplog.records if r.name == "adapters.batch_loop")
    assert outage.levelno == logging.WARNING
    assert outage.exc_info is None
    assert outage.getMessage().startswith(
        "follower:test: batch failed, database unavailable (OperationalError: consuming input"
    )
    assert outage.getMessage().endswith("; retrying in 0.05 s")
    assert bug.levelno == logging.ERROR
    assert bug.exc_info is not None


class FlakyLock:
    """A runner lock whose database is down at first, and which is lost once while held."""

    def __init__(self) -> None:
        self.refusals = 2
        self.taken = 0
        self.lost = threading.Event()

    @contextmanager
    def __call__(self, _name: str) -> Iterator[HeldLock]:
        if self.refusals:
            self.refusals -= 1
            raise psycopg.OperationalError("connection failed: Connection refused")
        self.taken += 1
        yield HeldLock(taken=True, probe=self._probe)

    def _probe(self) -> None:
        if self.taken == 1 and not self.lost.is_set():
            self.lost.set()
            raise psycopg.errors.AdminShutdown("terminating connection due to administrator")


@pytest.mark.usefixtures("quick_loops")
def test_a_lock_the_database_refuses_or_loses_is_asked_for_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The loop's thread survives a lock it cannot take, stands by when its lock's connection
    dies (another process may hold it by now), and takes it again."""
    lock = FlakyLock()
    steps: list[int] = []

    def step() -> int:
        steps.append(lock.taken)
        return 0

    loop = BatchLoop("sweeper", step, batch_size=10, poll_interval=0.01, lock=lock)
    loop.start()
    try:
        _until(lambda: lock.taken == 2 and steps and steps[-1] == 2)
    finally:
        loop.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "adapters.batch_loop"]
    assert all(r.exc_info is None for r in caplog.records)
    assert messages == [
        "sweeper: cannot take its lock, database unavailable (OperationalError: connection "
        "failed: Connection refused); asking again in 0.05 s",
    ] * 2 + [
        "sweeper: lost its lock, database unavailable (AdminShutdown: terminating connection "
        "due to administrator); standing by, asking again in 0.05 s",
    ]


# -- projections -----------------------------------------------------------------------------


class DatabaseGone(Projection):
    """A projection whose database connection is cut on its first batch."""

    name = "database_gone"
    topics = OrdersProjection.topics
    schema = ("CREATE TABLE IF NOT EXISTS {t} (position BIGINT PRIMARY KEY)",)

    def __init__(self) -> None:
        self.cuts = 1

    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> None:  # noqa: ARG002
        if self.cuts:
            self.cuts -= 1
            raise psycopg.OperationalError(CUT)
        tx.execute(f"INSERT INTO {table} VALUES (%s)", (position,))  # noqa: S608


def _placed() -> list[DomainEvent]:
    return rules.place(
        uuid4(), owner="alice", email="a@b.co", currency="eur",
        items=[LineItem(product_id="p", quantity=1, unit_price=Decimal("2.50"))],
        now=datetime.now(UTC),
    )  # fmt: skip


def _sqlite_store(tmp_path: Path) -> RecorderEventStore:
    return open_event_store(
        {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "es.db")}
    )


def test_an_outage_mid_batch_does_not_stop_a_projection(tmp_path: Path) -> None:
    """A cut connection is no fault of the event being applied: the projection stays live,
    the batch is tried again, and nothing is skipped."""
    store = _sqlite_store(tmp_path)
    views = SQLiteViews(tmp_path / "views.db")
    for _ in range(3):
        store.save(_placed())
    runner = ProjectionRunner(store, views, DatabaseGone())
    runner.ensure()
    with pytest.raises(psycopg.OperationalError):
        runner.run_once()
    assert runner.state().state == "live"
    assert runner.state().position == 0
    runner.catch_up()
    assert runner.state().position == store.head()
    assert len(views.query("SELECT * FROM database_gone_g1")) == 3
    views.close()
    store.close()


# -- the event store -------------------------------------------------------------------------


class CutConnection:
    """A recorder (with the library's retry around its insert, like the PostgreSQL one) whose
    first insert loses its connection — after the commit, or before it."""

    def __init__(self, inner: Any, *, after_commit: bool) -> None:
        self.inner = inner
        self.after_commit = after_commit
        self.cuts = 1

    def _insert_once(self, stored: Sequence[Any]) -> Sequence[int]:
        if self.cuts and not self.after_commit:
            self.cuts -= 1
            raise persistence.OperationalError(CUT)
        ids: Sequence[int] = self.inner.insert_events(stored)
        if self.cuts:
            self.cuts -= 1
            raise persistence.OperationalError(CUT)
        return ids

    @functools.wraps(_insert_once)
    def insert_events(self, stored: Sequence[Any]) -> Sequence[int]:  # noqa: ARG002
        raise AssertionError("the store retries the insert itself")

    def select_events(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.select_events(*args, **kwargs)


def test_a_save_whose_commit_answer_was_lost_succeeded(tmp_path: Path) -> None:
    """The retry after a cut finds the first try's events: that save succeeded, once."""
    store = _sqlite_store(tmp_path)
    store.recorder = CutConnection(store.recorder, after_commit=True)  # type: ignore[assignment]
    placed = _placed()
    store.save(placed)
    assert store.load(placed[0].originator_id) == placed
    with pytest.raises(ConcurrencyConflict):
        store.save(placed)  # a second save of the same events is a conflict, as ever
    store.close()


def test_a_conflict_after_a_cut_is_still_a_conflict(tmp_path: Path) -> None:
    """Someone else's events at the versions this save wanted, found after a cut: a conflict."""
    store = _sqlite_store(tmp_path)
    theirs = _placed()
    store.save(theirs)
    store.recorder = CutConnection(store.recorder, after_commit=False)  # type: ignore[assignment]
    mine = [msgspec.structs.replace(_placed()[0], originator_id=theirs[0].originator_id)]
    with pytest.raises(ConcurrencyConflict):
        store.save(mine)
    assert store.load(theirs[0].originator_id) == theirs
    store.close()


# -- actors ----------------------------------------------------------------------------------


def test_an_actor_the_database_fails_is_retried_with_one_warning_a_try(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No "Failed to process message … with unhandled exception" traceback: a WARNING line
    naming the step, the order, the retry and when, on Dramatiq's own backoff."""
    caplog.set_level(logging.INFO)
    tries: list[UUID] = []

    def reserve(order_id: UUID) -> None:
        tries.append(order_id)
        if len(tries) <= 2:
            raise _wrapped(
                psycopg.errors.AdminShutdown("terminating"), persistence.OperationalError
            )

    broker = make_broker(None)
    actors = declare_actors(
        broker, reserve, print, print, lambda *_: None, refresh_product=print, min_backoff_ms=10
    )
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        order = uuid4()
        DramatiqDispatcher(actors).reserve(order)
        broker.join(QUEUE)
        worker.join()
    finally:
        worker.stop()
        broker.close()
    assert tries == [order] * 3
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.levelno for r in warnings] == [logging.WARNING] * 2
    assert all(r.exc_info is None for r in caplog.records)
    first = warnings[0].getMessage()
    assert first.startswith(
        f"reserve of order {order}: database unavailable (OperationalError: terminating); "
        "retry 1 of 12 in "
    )
    assert "retry 2 of 12" in warnings[1].getMessage()


# -- HTTP ------------------------------------------------------------------------------------


def test_a_request_during_an_outage_answers_503_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @get("/down", sync_to_thread=False)
    def down() -> None:
        raise psycopg_pool.PoolTimeout("couldn't get a connection after 5.00 sec")

    @get("/bug", sync_to_thread=False)
    def bug() -> None:
        raise RuntimeError("a bug")

    app = Litestar([down, bug], exception_handlers=exception_handlers(outage), logging_config=None)
    with TestClient(app) as client:
        answer = client.get("/down")
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "2"
        assert answer.json()["title"] == "Service unavailable"
        assert client.get("/bug").status_code == 500
    records = [r for r in caplog.records if r.name == "entrypoints.http.problems"]
    warned, unexpected = records
    assert warned.levelno == logging.WARNING
    assert warned.exc_info is None
    assert warned.getMessage() == (
        "GET /down answered 503: database unavailable (PoolTimeout: couldn't get a connection "
        "after 5.00 sec); the client may retry in 2 s"
    )
    assert unexpected.levelno == logging.ERROR
    assert unexpected.exc_info is not None


def test_a_client_hanging_up_before_its_body_arrives_is_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Customers give up during an outage: Litestar's 500 "client disconnected prematurely" is
    no fault of ours and logs one line, not a traceback."""

    @post("/echo", sync_to_thread=False)
    def echo(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        return data

    app = Litestar([echo], exception_handlers=exception_handlers(outage), logging_config=None)
    with serving(app) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"a":'
            )
            time.sleep(0.2)
        _until(lambda: any(r.name == "entrypoints.http.problems" for r in caplog.records))
    (line,) = [r for r in caplog.records if r.name == "entrypoints.http.problems"]
    assert line.levelno == logging.WARNING
    assert line.exc_info is None
    assert line.getMessage() == (
        "POST /echo: the client hung up before sending its body; not answered"
    )


_BUILT = object()  # what the stand-in engine class builds


class _EngineAfterOutages:
    """An engine class whose first ``outages`` constructions find the database away."""

    built = 0

    def __init__(self, outages: int) -> None:
        self.outages = outages

    def __call__(self, *_args: object) -> Any:
        type(self).built += 1
        if type(self).built <= self.outages:
            raise persistence.OperationalError("connection refused") from psycopg.OperationalError(
                "connection failed: Connection refused"
            )
        return _BUILT


def test_a_process_starting_before_its_database_waits_for_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    _EngineAfterOutages.built = 0
    monkeypatch.setattr(composition, "Engine", _EngineAfterOutages(2))
    monkeypatch.setattr(composition, "STARTUP_RETRY_S", 0.0)
    with caplog.at_level(logging.WARNING):
        engine = composition.bootstrap(load_settings({"VAR_DIR": str(tmp_path)}))
    assert engine is _BUILT
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    assert "engine start-up, database unavailable" in caplog.records[0].getMessage()
    assert caplog.records[0].exc_info is None


def test_a_process_whose_database_stays_away_gives_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _EngineAfterOutages.built = 0
    monkeypatch.setattr(composition, "Engine", _EngineAfterOutages(10))
    monkeypatch.setattr(composition, "STARTUP_RETRY_S", 0.0)
    monkeypatch.setattr(composition, "STARTUP_WAIT_S", 0.0)
    with pytest.raises(persistence.OperationalError):
        composition.bootstrap(load_settings({"VAR_DIR": str(tmp_path)}))
    assert _EngineAfterOutages.built == 1
