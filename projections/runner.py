"""Running projections: follow the log in batches, write rows and position in one transaction,
rebuild a fresh generation beside the live one and swap when it has caught up, and stop (not
skip) on a failing event until an admin retries or skips it.

One runner per projection across processes: on PostgreSQL it runs only while holding an
advisory lock named after the projection. A running runner keeps its state in memory (read
again every ``STATE_REFRESH_S``, and after a failure or a command of its own), so with nothing
new in the log a wake-up costs one read of the head. Past events of other topics only, its
position moves on in memory and is written at most once every ``IDLE_WRITE_S`` (a restart reads
those events again and finds nothing to apply in them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from adapters.batch_loop import BatchLoop
from adapters.eventstore import RecorderEventStore, topic_of
from adapters.outages import log_failure, unavailable
from adapters.views import Tx, ViewDatabase
from domain.events import DomainEvent
from projections.base import Change, Projection, table_name

log = logging.getLogger(__name__)

STATE_TABLE = "projection_state"
STATE_REFRESH_S = 1.0  # how soon a running projection sees another process's command
IDLE_WRITE_S = 1.0  # how often a position moved past nothing of the projection's is written
_STATE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} ("
    "name TEXT PRIMARY KEY, generation INTEGER NOT NULL, position BIGINT NOT NULL, "
    "state TEXT NOT NULL, error TEXT, error_position BIGINT, "
    "rebuild_generation INTEGER, rebuild_position BIGINT, rebuild_target BIGINT, "
    "last_event_at TEXT, updated_at TEXT NOT NULL)"
)
_COLUMNS = (
    "generation, position, state, error, error_position, "
    "rebuild_generation, rebuild_position, rebuild_target, last_event_at"
)


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


class ProjectionFailed(Exception):
    """An event could not be applied; the projection stops at it."""

    def __init__(self, position: int, event: DomainEvent, cause: Exception) -> None:
        super().__init__(
            f"{type(event).__name__} of {event.originator_id} at position {position}: {cause!r}"
        )
        self.position = position


_SELECT_STATE = f"SELECT {_COLUMNS} FROM {STATE_TABLE} WHERE name = %s"  # noqa: S608


def read_state(views: ViewDatabase, name: str) -> ProjectionState | None:
    """The stored state of a projection, if it has one."""
    return _decode_state(name, views.query(_SELECT_STATE, (name,)))


def _state_in(tx: Tx, name: str) -> ProjectionState | None:
    return _decode_state(name, tx.execute(_SELECT_STATE, (name,)))


def _decode_state(name: str, rows: list[Any]) -> ProjectionState | None:
    if not rows:
        return None
    fields = dict(zip([c.strip() for c in _COLUMNS.split(",")], rows[0], strict=True))
    return msgspec.convert({"name": name, **fields}, ProjectionState)


def current_table(views: ViewDatabase, name: str) -> str:
    """The table readers should use: the live generation's."""
    state = read_state(views, name)
    return table_name(name, state.generation if state else 1)


class ProjectionRunner:
    """Keeps one projection up to date with the log."""

    def __init__(
        self,
        store: RecorderEventStore,
        views: ViewDatabase,
        projection: Projection,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.25,
        publish: Callable[[Change], None] | None = None,
    ) -> None:
        self.projection = projection
        self._publish = publish
        self._store = store
        self._views = views
        self._topics = [topic_of(t) for t in projection.topics]
        self._batch_size = batch_size
        self._known: ProjectionState | None = None  # the state as this runner last saw it
        self._known_at = 0.0
        self._written_at = 0.0  # when this runner last wrote its live position
        self._eager = False  # catching up: every position is written
        self._loop = BatchLoop(
            f"projection:{projection.name}",
            self.run_once,
            batch_size=batch_size,
            poll_interval=poll_interval,
            lock=views.try_lock,
        )
        store.on_append(self._loop.wake)

    @property
    def name(self) -> str:
        """The projection's name."""
        return self.projection.name

    # -- set-up and control (any process) --------------------------------------------------

    def ensure(self) -> ProjectionState:
        """Create the state row and the live table if missing."""
        with self._views.transaction() as tx:
            tx.execute(_STATE_DDL)
            tx.execute(
                f"INSERT INTO {STATE_TABLE} (name, generation, position, state, updated_at) "  # noqa: S608
                "VALUES (%s, 1, 0, 'live', %s) ON CONFLICT (name) DO NOTHING",
                (self.name, _now()),
            )
        state = self.state()
        with self._views.transaction() as tx:
            self._create_tables(tx, state.generation)
        return state

    def state(self) -> ProjectionState:
        """The stored state (``ensure`` first)."""
        state = read_state(self._views, self.name)
        if state is None:
            raise LookupError(f"projection {self.name} has no state yet")
        return state

    def request_rebuild(self) -> ProjectionState:
        """Start building a new generation from position 0 beside the live one."""
        self._known = None
        state = self.state()
        if state.rebuild_generation is not None:
            return state
        new = state.generation + 1
        with self._views.transaction() as tx:
            # The generation before the live one has had no readers since the last swap.
            tx.execute(f"DROP TABLE IF EXISTS {table_name(self.name, state.generation - 1)}")
            tx.execute(f"DROP TABLE IF EXISTS {table_name(self.name, new)}")
            self._create_tables(tx, new)
            self._update(
                tx,
                rebuild_generation=new,
                rebuild_position=0,
                rebuild_target=self._store.head(),
                error=None,
                error_position=None,
            )
            # Read inside the transaction: the runner cannot have swapped yet, so the answer
            # always names the generation being built.
            requested = _state_in(tx, self.name)
        self.wake()
        return requested or self.state()

    def cancel_rebuild(self, reason: str | None = None) -> None:
        """Abandon a rebuild in progress; the live generation carries on untouched."""
        self._known = None
        state = self.state()
        if state.rebuild_generation is None:
            return
        with self._views.transaction() as tx:
            tx.execute(f"DROP TABLE IF EXISTS {table_name(self.name, state.rebuild_generation)}")
            self._update(
                tx,
                rebuild_generation=None,
                rebuild_position=None,
                rebuild_target=None,
                error=reason,
            )

    def retry(self) -> None:
        """Try the failed event again."""
        self._known = None
        with self._views.transaction() as tx:
            self._update(tx, state="live", error=None, error_position=None)
        self.wake()

    def skip(self) -> None:
        """Give up on the failed event and carry on after it."""
        self._known = None
        state = self.state()
        if state.error_position is None:
            return
        with self._views.transaction() as tx:
            self._update(
                tx, state="live", position=state.error_position, error=None, error_position=None
            )
        self.wake()

    # -- processing (the runner's thread, or tests) ----------------------------------------

    def run_once(self) -> int:
        """Process one live batch and one rebuild batch; return how many events were applied.
        With nothing new in the log and no rebuild, it reads the head and nothing else."""
        state = self._running_state()
        if state.state != "live":
            return 0
        head = self._store.head()
        if state.position >= head and state.rebuild_generation is None:
            return 0
        try:
            applied = self._live_batch(state, head) if state.position < head else 0
            if state.rebuild_generation is not None:
                self._known = None
                applied += self._rebuild_batch(self.state(), head)
        except Exception:
            self._known = None  # read it again: the batch may or may not have committed
            raise
        return applied

    def _running_state(self) -> ProjectionState:
        """The state as this runner last wrote it, read again from the database every
        ``STATE_REFRESH_S`` (a command of another process: rebuild, retry, skip) and after a
        command of this one."""
        now = time.monotonic()
        if self._known is None or now - self._known_at >= STATE_REFRESH_S:
            self._known, self._known_at = self.state(), now
        return self._known

    def catch_up(self) -> None:
        """Run until nothing is left to do and the position is written (tests, CLI)."""
        self._known, self._eager = None, True
        try:
            while self.run_once():
                pass
        finally:
            self._eager = False

    def _live_batch(self, state: ProjectionState, head: int) -> int:
        batch = self._store.notifications(state.position, self._batch_size, self._topics, head)
        table = table_name(self.name, state.generation)
        advance = self._advance("position", batch, head)
        if not batch and not self._eager and time.monotonic() - self._written_at < IDLE_WRITE_S:
            if self._known is not None:  # nothing of ours: move on in memory only
                self._known = msgspec.structs.replace(self._known, **advance)
            return 0
        try:
            with self._views.transaction() as tx:
                changes = self._apply_all(tx, table, batch)
                self._update(tx, **advance)
        except ProjectionFailed:
            self._known = None
            self._apply_one_by_one(state, table, batch)
            return len(batch)
        self._written_at = time.monotonic()
        if self._known is not None:
            self._known = msgspec.structs.replace(self._known, **advance)
        self._announce(changes)
        return len(batch)

    def _announce(self, changes: list[Change]) -> None:
        """Tell live subscribers, after the commit (never during a rebuild)."""
        if self._publish is None:
            return
        for change in changes:
            try:
                self._publish(change)
            except Exception as failure:  # noqa: BLE001 - logged; live updates are best effort
                what = f"projection {self.name}: live update not published"
                log_failure(log, failure, what, "its subscribers miss it")

    def _apply_one_by_one(
        self, state: ProjectionState, table: str, batch: Sequence[tuple[Any, DomainEvent]]
    ) -> None:
        """Commit the good events before the bad one, then record the failure."""
        for notification, event in batch:
            try:
                with self._views.transaction() as tx:
                    changes = self._apply_all(tx, table, [(notification, event)])
                    self._update(tx, position=notification.id)
                self._announce(changes)
            except ProjectionFailed as failure:
                log.exception("projection %s stopped at position %d", self.name, failure.position)
                with self._views.transaction() as tx:
                    self._update(
                        tx, state="failed", error=str(failure), error_position=failure.position
                    )
                self._announce([{"projection": self.name, "state": "failed"}])
                return
        log.info(
            "projection %s: batch recovered event by event (gen %d)", self.name, state.generation
        )

    def _rebuild_batch(self, state: ProjectionState, head: int) -> int:
        generation = state.rebuild_generation
        if generation is None:
            return 0
        start = state.rebuild_position or 0
        batch = self._store.notifications(start, self._batch_size, self._topics, head)
        try:
            with self._views.transaction() as tx:
                self._apply_all(tx, table_name(self.name, generation), batch)
                advance = self._advance("rebuild_position", batch, head)
                self._update(tx, **advance)
                swapped = len(batch) < self._batch_size
                if swapped:
                    self._swap(tx, state, generation, advance["rebuild_position"])
        except ProjectionFailed as failure:
            log.exception("projection %s: rebuild abandoned", self.name)
            self.cancel_rebuild(f"rebuild abandoned: {failure}")
            self._announce([{"projection": self.name, "state": "live", "rebuild": "abandoned"}])
            return 0
        if swapped:
            self._announce([{"projection": self.name, "version": generation, "state": "live"}])
        return len(batch)

    def _swap(self, tx: Tx, state: ProjectionState, generation: int, position: int) -> None:
        """The rebuilt generation has caught up: readers switch to it in this transaction."""
        self._update(
            tx,
            generation=generation,
            position=max(position, state.position),
            rebuild_generation=None,
            rebuild_position=None,
            rebuild_target=None,
        )
        log.info("projection %s: generation %d is live", self.name, generation)

    def _apply_all(
        self, tx: Tx, table: str, batch: Sequence[tuple[Any, DomainEvent]]
    ) -> list[Change]:
        """Apply a batch at once; a failure names the batch's first event (the runner then
        goes event by event to find the one that fails). An outage of the database is no fault
        of an event: it propagates as it is, and the loop tries the batch again."""
        if not batch:
            return []
        try:
            return self.projection.apply_records(tx, table, batch)
        except Exception as cause:  # any other failure of a handler stops the projection, named
            if unavailable(cause) is not None:
                raise
            raise ProjectionFailed(batch[0][0].id, batch[0][1], cause) from cause

    def _advance(
        self, column: str, batch: Sequence[tuple[Any, DomainEvent]], head: int
    ) -> dict[str, Any]:
        """A short batch means everything up to ``head`` was seen."""
        position = head if len(batch) < self._batch_size else batch[-1][0].id
        changes: dict[str, Any] = {column: position}
        if batch and column == "position":
            changes["last_event_at"] = batch[-1][1].timestamp.isoformat()
        return changes

    def _update(self, tx: Tx, **changes: Any) -> None:
        assignments = ", ".join(f"{column} = %s" for column in changes)
        tx.execute(
            f"UPDATE {STATE_TABLE} SET {assignments}, updated_at = %s WHERE name = %s",  # noqa: S608
            (*changes.values(), _now(), self.name),
        )

    def _create_tables(self, tx: Tx, generation: int) -> None:
        for statement in self.projection.schema:
            tx.execute(statement.replace("{t}", table_name(self.name, generation)))

    # -- the background thread -------------------------------------------------------------

    def wake(self) -> None:
        """Look at the log now."""
        self._loop.wake()

    def start(self) -> None:
        """Run in a background thread (while this process holds the projection's lock)."""
        self._loop.start()

    def stop(self) -> None:
        """Stop after the current batch."""
        self._loop.stop()


def _now() -> str:
    return datetime.now(UTC).isoformat()
