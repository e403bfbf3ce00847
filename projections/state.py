"""Where each projection stands, and which table its readers use.

One row per projection in ``projection_state``: the live generation, its position, a rebuild in
progress, a failure. Everything that changes the row — the runner's batches and swap, and the
admin's commands (rebuild, cancel, retry, skip) — first reads it with ``locked_state`` inside its
own transaction (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already lets
one writer in at a time), so no change acts on a state another one has just replaced.

Readers are not locked out: they read the live generation's name, then its table. A generation
that a swap retires is listed in ``projection_retired`` and dropped only once ``drop_after`` has
passed, so a reader that fetched its name a moment ago still finds it; ``read_live`` reads the
name again and retries should the table be gone all the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import psycopg

from adapters.views import MISSING_TABLE_ERRORS, Row, Tx, ViewDatabase, missing_table
from projections.base import drop_generation, table_name

log = logging.getLogger(__name__)

T = TypeVar("T")

STATE_TABLE = "projection_state"
RETIRED_TABLE = "projection_retired"
READ_ATTEMPTS = 3  # a reader whose table was dropped under it reads the live name again, twice
DROP_LOCK_TIMEOUT_MS = 2000  # a retired table a reader still holds is dropped at a later look
STATE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} ("
    "name TEXT PRIMARY KEY, generation INTEGER NOT NULL, position BIGINT NOT NULL, "
    "state TEXT NOT NULL, error TEXT, error_position BIGINT, "
    "rebuild_generation INTEGER, rebuild_position BIGINT, rebuild_target BIGINT, "
    "last_event_at TEXT, updated_at TEXT NOT NULL)"
)
RETIRED_DDL = (
    f"CREATE TABLE IF NOT EXISTS {RETIRED_TABLE} ("
    "name TEXT NOT NULL, generation INTEGER NOT NULL, drop_after DOUBLE PRECISION NOT NULL, "
    "PRIMARY KEY (name, generation))"
)
_COLUMNS = (
    "generation, position, state, error, error_position, "
    "rebuild_generation, rebuild_position, rebuild_target, last_event_at"
)
_FIELDS = [c.strip() for c in _COLUMNS.split(",")]
_SELECT_STATE = f"SELECT {_COLUMNS} FROM {STATE_TABLE} WHERE name = %s"  # noqa: S608


class ProjectionState(msgspec.Struct, frozen=True, kw_only=True):
    """Where a projection stands."""

    name: str
    generation: int
    position: int
    state: str
    error: str | None = None
    error_position: int | None = None
    rebuild_generation: int | None = None
    rebuild_position: int | None = None
    rebuild_target: int | None = None
    last_event_at: str | None = None


def read_state(views: ViewDatabase, name: str) -> ProjectionState | None:
    """The stored state of a projection, if it has one (a plain read: for showing it)."""
    return _decode_state(name, views.query(_SELECT_STATE, (name,)))


def locked_state(tx: Tx, dialect: str, name: str) -> ProjectionState | None:
    """The state, read inside ``tx`` and held until it ends: no other command, batch or swap
    changes it meanwhile (PostgreSQL locks the row; an SQLite write transaction is alone)."""
    lock = " FOR UPDATE" if dialect == "postgres" else ""
    return _decode_state(name, tx.execute(_SELECT_STATE + lock, (name,)))


def _decode_state(name: str, rows: list[Any]) -> ProjectionState | None:
    if not rows:
        return None
    fields = dict(zip(_FIELDS, rows[0], strict=True))
    return msgspec.convert({"name": name, **fields}, ProjectionState)


def current_table(views: ViewDatabase, name: str) -> str:
    """The table readers should use: the live generation's."""
    state = read_state(views, name)
    return table_name(name, state.generation if state else 1)


def read_live(views: ViewDatabase, name: str, read: Callable[[str], T]) -> T:
    """``read`` the live generation's table (``read`` is given its name). Should the table be
    gone by the time ``read`` reaches it (a swap retired it and its grace has passed — a read
    that took very long), the live name is read again and ``read`` run once more, twice at most."""
    attempts = READ_ATTEMPTS
    while True:
        table = current_table(views, name)
        try:
            return read(table)
        except MISSING_TABLE_ERRORS as failure:
            attempts -= 1
            if attempts == 0 or not missing_table(failure):
                raise
            log.debug("projection %s: %s was dropped under a reader; reading again", name, table)


def query_live(
    views: ViewDatabase, name: str, statement: str, params: Sequence[Any] = ()
) -> list[Row]:
    """One read of the projection's live table (``read_live``), written with ``{t}`` for its
    name."""
    return read_live(
        views, name, lambda table: views.query(statement.replace("{t}", table), params)
    )


def retire(tx: Tx, name: str, generation: int, drop_after: float) -> None:
    """List a generation readers no longer switch to, to be dropped after ``drop_after``
    (seconds since the epoch)."""
    tx.execute(
        f"INSERT INTO {RETIRED_TABLE} (name, generation, drop_after) VALUES (%s, %s, %s) "  # noqa: S608
        "ON CONFLICT (name, generation) DO NOTHING",
        (name, generation, drop_after),
    )


def retired_due(views: ViewDatabase, name: str, now: float) -> list[int]:
    """The retired generations whose grace has passed."""
    rows = views.query(
        f"SELECT generation FROM {RETIRED_TABLE} WHERE name = %s AND drop_after <= %s",  # noqa: S608
        (name, now),
    )
    return sorted(int(row[0]) for row in rows)


def forget_retired(tx: Tx, name: str, generation: int, sides: Sequence[str] = ()) -> None:
    """Drop a retired generation's tables and its listing."""
    drop_generation(tx, name, generation, sides)
    tx.execute(
        f"DELETE FROM {RETIRED_TABLE} WHERE name = %s AND generation = %s",  # noqa: S608
        (name, generation),
    )


def drop_retired_due(views: ViewDatabase, name: str, now: float, sides: Sequence[str] = ()) -> None:
    """Drop the retired generations whose grace has passed. One a reader still holds (on
    PostgreSQL the drop would wait for it) is left for a later look."""
    for generation in retired_due(views, name, now):
        try:
            with views.transaction() as tx:
                if views.dialect == "postgres":
                    tx.execute(f"SET LOCAL lock_timeout = {DROP_LOCK_TIMEOUT_MS}")
                forget_retired(tx, name, generation, sides)
        except psycopg.errors.LockNotAvailable:
            log.warning("projection %s: generation %d is still being read; dropped at a "
                        "later look", name, generation)  # fmt: skip
            return


def now_text() -> str:
    """The time now, as the state table keeps it."""
    return datetime.now(UTC).isoformat()


def write_state(tx: Tx, name: str, changes: dict[str, Any]) -> None:
    """Change these columns of a projection's state (``updated_at`` with them)."""
    assignments = ", ".join(f"{column} = %s" for column in changes)
    tx.execute(
        f"UPDATE {STATE_TABLE} SET {assignments}, updated_at = %s WHERE name = %s",  # noqa: S608
        (*changes.values(), now_text(), name),
    )


def still_building(state: ProjectionState, generation: int, start: int) -> bool:
    """Whether a rebuild batch read from ``start`` of ``generation`` is still the next one (no
    cancel, no new rebuild, no other runner's batch since)."""
    return (
        state.state == "live"
        and state.rebuild_generation == generation
        and (state.rebuild_position or 0) == start
    )
