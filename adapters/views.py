"""The read-model database: where projections keep their tables and positions.

SQLite (a file beside the event store) in the embedded wiring, PostgreSQL (the events' database
and schema) in production. Both are driven with the same SQL: ``%s`` placeholders (rewritten to
``?`` for SQLite), ``INSERT … ON CONFLICT``, TEXT timestamps in ISO 8601 UTC.
"""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from adapters.outages import unavailable

Row = tuple[Any, ...]
POOL_TIMEOUT_S = 5.0  # a query waits this long for a connection, then fails (the database is down)
MISSING_TABLE_ERRORS = (psycopg.errors.UndefinedTable, sqlite3.OperationalError)
# A lock's connection idles for as long as its part runs: TCP keepalives find one whose peer is
# gone without a word (about 10 + 3 x 5 s), and keep a NAT or load balancer from dropping it.
LOCK_KEEPALIVES = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5",
                   "keepalives_count": "3"}  # fmt: skip
"""What a statement on a table that does not exist raises (``missing_table`` tells which)."""


def missing_table(error: BaseException) -> bool:
    """Whether ``error`` says a statement named a table that does not exist (PostgreSQL's
    ``UndefinedTable``, SQLite's ``no such table``)."""
    if isinstance(error, psycopg.errors.UndefinedTable):
        return True
    return isinstance(error, sqlite3.OperationalError) and "no such table" in str(error)


class Tx(Protocol):
    """One open transaction."""

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; return its rows (empty for statements without any)."""
        ...

    def execute_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters."""
        ...


class ViewDatabase(Protocol):
    """A database of read models."""

    dialect: str

    def transaction(self, *, durable: bool = True) -> Any:
        """A context manager yielding a ``Tx``; commits on success, rolls back on error.
        ``durable=False``: the commit does not wait for the disk (see ``PostgresViews``)."""
        ...

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one read in its own transaction."""
        ...

    def try_lock(self, name: str) -> Any:
        """A context manager yielding a ``HeldLock``: whether this process holds ``name``'s
        runner lock (and a check that it still does)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class HeldLock:
    """Whether a runner lock was taken; ``verify`` raises once it is no longer held."""

    def __init__(self, taken: bool, probe: Callable[[], object] | None = None) -> None:
        self.taken = taken
        self._probe = probe

    def __bool__(self) -> bool:
        return self.taken

    def verify(self) -> None:
        """Raise if the lock was lost (on PostgreSQL: its connection is gone)."""
        if self.taken and self._probe is not None:
            self._probe()


class _SQLiteTx:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(statement.replace("%s", "?"), tuple(params))
        return self._cursor.fetchall() if self._cursor.description else []

    def execute_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(statement.replace("%s", "?"), [tuple(r) for r in rows])


class SQLiteViews:
    """Read models in an SQLite file; one writer at a time inside this process."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._locks = path.parent / "locks"
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Tx]:  # noqa: ARG002 - one kind
        """BEGIN IMMEDIATE … COMMIT, serialised within the process."""
        with self._lock:
            cursor = self._conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTx(cursor)
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """Read with the shared connection."""
        with self._lock:
            cursor = self._conn.cursor()
            return _SQLiteTx(cursor).execute(statement, params)

    @contextmanager
    def try_lock(self, name: str) -> Iterator[HeldLock]:
        """An exclusive lock file per name (so a CLI command and a running engine never both
        run the same projection)."""
        self._locks.mkdir(exist_ok=True)
        with (self._locks / f"{name.replace(':', '-')}.lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield HeldLock(taken=False)
                return
            try:
                yield HeldLock(taken=True)
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


class _PostgresTx:
    def __init__(self, cursor: psycopg.Cursor[Row]) -> None:
        self._cursor = cursor

    def execute(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(statement.encode(), tuple(params))
        return self._cursor.fetchall() if self._cursor.description else []

    def execute_many(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(statement.encode(), [tuple(r) for r in rows])


class PostgresViews:
    """Read models in PostgreSQL, in the given schema.

    A pooled connection is checked as it is handed out, so that connections a database restart
    cut are replaced instead of failing the next statement; while the database is down, a query
    waits ``POOL_TIMEOUT_S`` for a connection and then raises ``PoolTimeout``."""

    dialect = "postgres"

    def __init__(self, conninfo: str, schema: str | None) -> None:
        search_path = f"-c search_path={schema}" if schema else ""
        self._lock_prefix = f"bitloot:{schema or 'public'}:"  # one engine per schema
        self._conninfo = conninfo
        self._pool = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=8,
            kwargs={"options": search_path},
            check=ConnectionPool.check_connection,
            timeout=POOL_TIMEOUT_S,
            open=True,
        )

    @contextmanager
    def transaction(self, *, durable: bool = True) -> Iterator[Tx]:
        """One pooled connection, one transaction. ``durable=False`` commits without waiting
        for the disk (``synchronous_commit = off``, for this transaction only): for what can
        be derived again from the log, a projection's rows with its position. A database
        crash may then forget the last few hundred milliseconds of such commits, always rows
        and position together, so the projection reads those events again; and any durable
        commit after them (an event saved, a checkpoint) makes them durable too."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
            if not durable:
                cursor.execute(b"SET LOCAL synchronous_commit TO off")
            yield _PostgresTx(cursor)

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """Read in a short transaction; a read whose connection a database restart cut is
        tried once more on a fresh one (reads are harmless to repeat)."""
        try:
            with self.transaction() as tx:
                return tx.execute(statement, params)
        except psycopg.OperationalError as failure:
            if unavailable(failure) is None or isinstance(failure, PoolTimeout):
                raise  # not a cut connection, or no connection to be had at all
        with self.transaction() as tx:
            return tx.execute(statement, params)

    @contextmanager
    def try_lock(self, name: str) -> Iterator[HeldLock]:
        """Hold a session advisory lock named after ``name`` while the block runs, if free.

        The lock lives on a connection of its own, outside the pool: a long-held lock must not
        take a connection that queries need. Closing it (or the process dying) releases it, and
        so does a database restart: ``verify`` then raises (the connection is gone).
        """
        key = sql.SQL("SELECT pg_try_advisory_lock(hashtext({}))").format(
            sql.Literal(self._lock_prefix + name)
        )
        conninfo = make_conninfo(self._conninfo, **LOCK_KEEPALIVES)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            row = conn.execute(key).fetchone()
            yield HeldLock(taken=bool(row and row[0]), probe=_LockProbe(conn))

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()


class _LockProbe:
    """Raises once a lock's connection has been cut. The server says nothing to an idle session
    until it ends it (a restart, a terminated backend), and its word may not have reached the
    socket yet when the socket is looked at, so each look sends ``SELECT 1``: on a cut session
    it fails. A peer that vanished without a word (a host gone, a dropped flow) is found by the
    connection's TCP keepalives, which end the connection and so fail the statement too."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn

    def __call__(self) -> None:
        if self._conn.closed:
            raise psycopg.OperationalError("the lock's connection is closed")
        self._conn.execute("SELECT 1")


@contextmanager
def schema_lock(conninfo: str | None, schema: str | None) -> Iterator[None]:
    """On PostgreSQL, one process of a deployment at a time creates or updates its tables (the
    event store's, the tracking table, the read models'): processes starting together would
    otherwise run the same DDL at once, which PostgreSQL refuses (``tuple concurrently
    updated``). A no-op on SQLite, whose writers are serialised anyway."""
    if conninfo is None:
        yield
        return
    key = sql.SQL("SELECT pg_advisory_lock(hashtext({}))").format(
        sql.Literal(f"bitloot:{schema or 'public'}:schema")
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(key)
        yield  # closing the connection releases the lock
