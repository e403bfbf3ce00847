"""Running projections: follow the log in batches, write rows and position in one transaction,
rebuild a fresh generation beside the live one and swap when it has caught up, and stop (not
skip) on a failing event until an admin retries or skips it.

In the engine, the process's log reader (``adapters.log_reader``) feeds every runner from one
read of the log (``wants``, ``take``, and ``work`` for a rebuild's batches); ``run_once`` and
``catch_up`` read for themselves (tests, the CLI). One runner per projection across processes:
it runs only while its process holds the lock named after the projection (an advisory lock on
PostgreSQL). A running runner keeps its state in memory (read again every ``STATE_REFRESH_S``,
and after a failure or a command of its own). Past events of other topics only, its position
moves on in memory and is written at most once every ``IDLE_WRITE_S`` (a restart reads those
events again and finds nothing to apply in them).

The state in memory may be stale (another process's command); it is never acted on as it is.
Each batch first reads the stored state inside its transaction (``projections.state``) and
gives the batch up quietly when the generation it would write is no longer the one the state
names; each command reads and changes the state in one such transaction. A swap retires the old
generation, whose table is dropped ``retire_after`` seconds later (readers may still hold its
name), by the runner's next look at the retired list (every ``REAP_EVERY_S``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from adapters.eventstore import RecorderEventStore, topics_of
from adapters.outages import log_failure, unavailable
from adapters.views import Tx, ViewDatabase
from domain.events import DomainEvent
from projections.base import Change, Projection, drop_generation, table_name
from projections.state import (
    RETIRED_DDL,
    STATE_DDL,
    STATE_TABLE,
    ProjectionState,
    drop_retired_due,
    locked_state,
    now_text,
    read_state,
    retire,
    still_building,
    write_state,
)
from projections.versions import BEFORE_VERSIONS, VERSIONS_DDL, built_version, record_version

log = logging.getLogger(__name__)

STATE_REFRESH_S = 1.0  # how soon a running projection sees another process's command
IDLE_WRITE_S = 1.0  # how often a position moved past nothing of the projection's is written
RETIRE_AFTER_S = 60.0  # a retired generation outlives the swap this long: readers hold its name
REAP_EVERY_S = 30.0  # how often the runner looks for retired generations past their grace


class ProjectionFailed(Exception):
    """An event could not be applied; the projection stops at it."""

    def __init__(self, position: int, event: DomainEvent, cause: Exception) -> None:
        super().__init__(
            f"{type(event).__name__} of {event.originator_id} at position {position}: {cause!r}"
        )
        self.position = position


class ProjectionRunner:
    """Keeps one projection up to date with the log."""

    def __init__(
        self,
        store: RecorderEventStore,
        views: ViewDatabase,
        projection: Projection,
        *,
        batch_size: int = 500,
        wake: Callable[[], None] = lambda: None,
        publish: Callable[[Change], None] | None = None,
        retire_after: float = RETIRE_AFTER_S,
        state_refresh: float = STATE_REFRESH_S,
    ) -> None:
        self.projection = projection
        self._publish = publish
        self._store = store
        self._views = views
        self._topics = topics_of(projection.topics)
        self._batch_size = batch_size
        self._retire_after = retire_after
        self._state_refresh = state_refresh
        self._known: ProjectionState | None = None  # the state as this runner last saw it
        self._known_at = 0.0
        self._written_at = 0.0  # when this runner last wrote its live position
        self._eager = False  # catching up: every position is written
        self._superseded = False  # the last batch was given up: the state had moved on
        self._reap_at = 0.0  # when to look for retired generations past their grace next
        self._offered: ProjectionState | None = None  # the state ``wants`` answered from
        self._wake = wake

    @property
    def name(self) -> str:
        """The projection's name."""
        return self.projection.name

    @property
    def lock_name(self) -> str:
        """One runner per projection across processes: the lock it runs under."""
        return f"projection:{self.name}"

    @property
    def topics(self) -> Sequence[str]:
        """The topics of the events the projection applies."""
        return self._topics

    # -- set-up and control (any process) --------------------------------------------------

    def ensure(self) -> ProjectionState:
        """Create the state row and the live table if missing; a live table built at another
        version of the projection is rebuilt beside (``projections.versions``)."""
        with self._views.transaction() as tx:
            for ddl in (STATE_DDL, RETIRED_DDL, VERSIONS_DDL):
                tx.execute(ddl)
            existed = locked_state(tx, self._views.dialect, self.name) is not None
            tx.execute(
                f"INSERT INTO {STATE_TABLE} (name, generation, position, state, updated_at) "  # noqa: S608
                "VALUES (%s, 1, 0, 'live', %s) ON CONFLICT (name) DO NOTHING",
                (self.name, now_text()),
            )
        with self._views.transaction() as tx:
            state = self._lock(tx)
            built = built_version(tx, self.name, state.generation)
            if built is None:
                built = BEFORE_VERSIONS if existed else self.projection.version
            self._create_tables(tx, state.generation, built)
            if state.generation > 1:  # an engine before the retired list left the one before
                retire(tx, self.name, state.generation - 1, time.time() + self._retire_after)
        if built == self.projection.version or state.rebuild_generation is not None:
            return state
        log.warning("projection %s: its table is of version %d, this engine's is %d; "
                    "rebuilding it beside the live one", self.name, built,
                    self.projection.version)  # fmt: skip
        return self.request_rebuild()

    def state(self) -> ProjectionState:
        """The stored state (``ensure`` first)."""
        state = read_state(self._views, self.name)
        if state is None:
            raise LookupError(f"projection {self.name} has no state yet")
        return state

    def request_rebuild(self) -> ProjectionState:
        """Start building a new generation from position 0 beside the live one; asked while
        one is being built, this joins it. Returns the state, naming the generation built."""
        self._known = None
        with self._views.transaction() as tx:
            state = self._lock(tx)
            if state.rebuild_generation is None:
                new = state.generation + 1  # above every generation ever live: no reader has it
                self._drop(tx, new)  # a cancelled one
                self._create_tables(tx, new, self.projection.version)
                cleared = {"error": None} if state.state == "live" else {}  # keep a failure's
                state = self._update(
                    tx,
                    state,
                    rebuild_generation=new,
                    rebuild_position=0,
                    rebuild_target=self._store.head(),
                    **cleared,
                )
        self.wake()
        return state

    def cancel_rebuild(self, reason: str | None = None) -> ProjectionState:
        """Abandon a rebuild in progress; the live generation carries on untouched."""
        self._known = None
        with self._views.transaction() as tx:
            state = self._lock(tx)
            if state.rebuild_generation is not None:
                state = self._drop_rebuild(tx, state, reason)
        return state

    def retry(self) -> ProjectionState:
        """Try the failed event again."""
        self._known = None
        with self._views.transaction() as tx:
            state = self._update(tx, self._lock(tx), state="live", error=None, error_position=None)
        self.wake()
        return state

    def skip(self) -> ProjectionState:
        """Give up on the failed event and carry on after it (nothing to skip: no change)."""
        self._known = None
        with self._views.transaction() as tx:
            state = self._lock(tx)
            if state.error_position is not None:
                state = self._update(
                    tx,
                    state,
                    state="live",
                    position=max(state.error_position, state.position),
                    error=None,
                    error_position=None,
                )
        self.wake()
        return state

    def _drop_rebuild(self, tx: Tx, state: ProjectionState, reason: str | None) -> ProjectionState:
        """Drop the generation being built (never live, so no reader has its name); ``reason``
        becomes the last rebuild's error, unless a failure's error is there (stopped)."""
        if state.rebuild_generation is not None:
            self._drop(tx, state.rebuild_generation)
        noted = {"error": reason} if state.state == "live" else {}
        return self._update(
            tx,
            state,
            rebuild_generation=None,
            rebuild_position=None,
            rebuild_target=None,
            **noted,
        )

    # -- processing (the runner's thread, or tests) ----------------------------------------

    def run_once(self) -> int:
        """Process one live batch and one rebuild batch; return how many events were applied.
        With nothing new in the log and no rebuild, it reads the head and nothing else (and,
        every ``REAP_EVERY_S``, the list of retired generations)."""
        self._superseded = False
        if time.monotonic() >= self._reap_at:
            self.drop_retired()
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

    # -- as a consumer of the process's log reader (adapters.log_reader) ------------------

    def work(self) -> int:
        """Look for retired generations now and then; run a rebuild's next batch."""
        self._superseded = False
        if time.monotonic() >= self._reap_at:
            self.drop_retired()
        state = self._running_state()
        if state.state != "live" or state.rebuild_generation is None:
            return 0
        self._known = None
        try:
            return self._rebuild_batch(self.state(), self._store.head())
        finally:
            self._known = None

    def resume(self) -> None:
        """Read the state again (its lock was just taken)."""
        self._known = None

    def wants(self) -> int | None:
        """The live position, unless the projection is stopped at a failing event."""
        state = self._running_state()
        self._offered = state if state.state == "live" else None
        return self._offered.position if self._offered else None

    def take(self, batch: Sequence[tuple[Any, DomainEvent]], upto: int) -> None:
        """Apply the reader's batch to the live generation; the position moves to ``upto``."""
        state, self._offered = self._offered, None
        if state is None:
            return
        try:
            self._apply_live(state, batch, upto)
        except Exception:
            self._known = None
            raise

    def _running_state(self) -> ProjectionState:
        """The state as this runner last wrote it, read again from the database every
        ``state_refresh`` seconds (a command of another process: rebuild, retry, skip) and
        after a command of this one."""
        now = time.monotonic()
        if self._known is None or now - self._known_at >= self._state_refresh:
            self._known, self._known_at = self.state(), now
        return self._known

    def catch_up(self) -> None:
        """Run until nothing is left to do and the position is written (tests, CLI)."""
        self._known, self._eager = None, True
        try:
            while self.run_once() or self._superseded:
                pass
        finally:
            self._eager = False

    def _live_batch(self, state: ProjectionState, head: int) -> int:
        batch = self._store.notifications(state.position, self._batch_size, self._topics, head)
        return self._apply_live(state, batch, self._upto(batch, head))

    def _apply_live(
        self, state: ProjectionState, batch: Sequence[tuple[Any, DomainEvent]], upto: int
    ) -> int:
        table = table_name(self.name, state.generation)
        advance = self._advance("position", batch, max(upto, state.position))  # never back
        if not batch and not self._eager and time.monotonic() - self._written_at < IDLE_WRITE_S:
            self._move_on(advance)  # nothing of ours: in memory only
            return 0
        try:
            with self._views.transaction(durable=False) as tx:
                if not self._writes_live(tx, state.generation):
                    return self._give_up()
                changes = self._apply_all(tx, table, batch)
                self._write(tx, **advance)
        except ProjectionFailed:
            self._known = None
            self._apply_one_by_one(state, table, batch)
            return len(batch)
        self._written_at = time.monotonic()
        self._move_on(advance)
        self._announce(changes)
        return len(batch)

    def _move_on(self, advance: dict[str, Any]) -> None:
        """The state in memory, moved on (unless a command has just made it be read again:
        another thread may set it to None at any moment, hence the one read of it)."""
        known = self._known
        if known is not None:
            self._known = msgspec.structs.replace(known, **advance)

    def _writes_live(self, tx: Tx, generation: int) -> bool:
        """Whether the state, held for this transaction, still runs ``generation`` live."""
        stored = self._lock(tx)
        return stored.state == "live" and stored.generation == generation

    def _give_up(self) -> int:
        """A batch read before another change to the state: nothing is written; the state is
        read again and the work done over (at once, or at the next wake-up)."""
        self._known, self._superseded = None, True
        return 0

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
                with self._views.transaction(durable=False) as tx:
                    if not self._writes_live(tx, state.generation):
                        self._give_up()
                        return
                    changes = self._apply_all(tx, table, [(notification, event)])
                    self._write(tx, position=notification.id)
                self._announce(changes)
            except ProjectionFailed as failure:
                self._stop_at(state.generation, failure)
                return
        log.info(
            "projection %s: batch recovered event by event (gen %d)", self.name, state.generation
        )

    def _stop_at(self, generation: int, failure: ProjectionFailed) -> None:
        """Record the failing event: the projection stops there until retried or skipped."""
        with self._views.transaction() as tx:
            if not self._writes_live(tx, generation):
                self._give_up()
                return
            log.exception("projection %s stopped at position %d", self.name, failure.position)
            self._write(tx, state="failed", error=str(failure), error_position=failure.position)
        self._announce([{"projection": self.name, "state": "failed"}])

    def _rebuild_batch(self, state: ProjectionState, head: int) -> int:
        generation = state.rebuild_generation
        if generation is None:
            return 0
        start = state.rebuild_position or 0
        batch = self._store.notifications(start, self._batch_size, self._topics, head)
        try:
            with self._views.transaction(durable=False) as tx:
                stored = self._lock(tx)
                if not still_building(stored, generation, start):
                    return self._give_up()
                self._apply_all(tx, table_name(self.name, generation), batch)
                advance = self._advance("rebuild_position", batch, self._upto(batch, head))
                self._write(tx, **advance)
                swapped = len(batch) < self._batch_size
                if swapped:
                    self._swap(tx, stored, generation, advance["rebuild_position"])
        except ProjectionFailed as failure:
            self._abandon(generation, failure)
            return 0
        if swapped:
            self._announce([{"projection": self.name, "version": generation, "state": "live"}])
        return len(batch)

    def _abandon(self, generation: int, failure: ProjectionFailed) -> None:
        """A rebuild's event failed: drop that rebuild (unless it was replaced meanwhile)."""
        log.exception("projection %s: rebuild abandoned", self.name)
        with self._views.transaction() as tx:
            state = self._lock(tx)
            if state.rebuild_generation != generation:
                return
            self._drop_rebuild(tx, state, f"rebuild abandoned: {failure}")
        self._known = None
        self._announce([{"projection": self.name, "state": "live", "rebuild": "abandoned"}])

    def _swap(self, tx: Tx, state: ProjectionState, generation: int, position: int) -> None:
        """The rebuilt generation has caught up: readers switch to it in this transaction; the
        one they leave is retired (dropped after ``retire_after``: a reader may hold its name)."""
        self._write(
            tx,
            generation=generation,
            position=max(position, state.position),
            rebuild_generation=None,
            rebuild_position=None,
            rebuild_target=None,
        )
        retire(tx, self.name, state.generation, time.time() + self._retire_after)
        self._reap_at = min(self._reap_at, time.monotonic() + self._retire_after)
        log.info("projection %s: generation %d is live", self.name, generation)

    def drop_retired(self) -> None:
        """Drop the retired generations whose grace has passed (``run_once`` does it every
        ``REAP_EVERY_S``)."""
        self._reap_at = time.monotonic() + REAP_EVERY_S
        drop_retired_due(self._views, self.name, time.time(), self.projection.side_tables)

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

    def _upto(self, batch: Sequence[tuple[Any, DomainEvent]], head: int) -> int:
        """How far a batch read up to ``head`` has seen: a short batch saw everything."""
        return head if len(batch) < self._batch_size else batch[-1][0].id

    @staticmethod
    def _advance(
        column: str, batch: Sequence[tuple[Any, DomainEvent]], upto: int
    ) -> dict[str, Any]:
        changes: dict[str, Any] = {column: upto}
        if batch and column == "position":
            changes["last_event_at"] = batch[-1][1].timestamp.isoformat()
        return changes

    def _lock(self, tx: Tx) -> ProjectionState:
        """The state, held until ``tx`` ends (``ensure`` first)."""
        state = locked_state(tx, self._views.dialect, self.name)
        if state is None:
            raise LookupError(f"projection {self.name} has no state yet")
        return state

    def _update(self, tx: Tx, held: ProjectionState, /, **changes: Any) -> ProjectionState:
        """Write changes to the state ``tx`` holds; return it as it now stands."""
        self._write(tx, **changes)
        return msgspec.structs.replace(held, **changes)

    def _write(self, tx: Tx, **changes: Any) -> None:
        write_state(tx, self.name, changes)

    def _drop(self, tx: Tx, generation: int) -> None:
        drop_generation(tx, self.name, generation, self.projection.side_tables)

    def _create_tables(self, tx: Tx, generation: int, version: int) -> None:
        for statement in self.projection.schema:
            tx.execute(statement.replace("{t}", table_name(self.name, generation)))
        record_version(tx, self.name, generation, version)

    def wake(self) -> None:
        """Have the process's log reader look at the log now (after a command)."""
        self._wake()
