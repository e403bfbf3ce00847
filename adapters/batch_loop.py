"""The background loop of the log reader and the periodic jobs (sweeper, catalog sync, audit
checkpoints): run a batch of work; go again at once while batches come back full, else wait for
a wake-up or the poll interval; survive a failing batch (log, pause, retry); and, when given a
lock, work only while this process holds it, standing by otherwise (one worker per job across
processes).

An outage of the database or Redis (``adapters.outages``) is expected: the failed batch, the
lock that could not be taken and the lock that was lost are each one WARNING line saying when
the loop tries again; anything else keeps its traceback. A lock whose connection died (a
database restart, ``pg_terminate_backend``) is no longer held, so the loop makes sure it still
holds its lock before every batch (a look at the lock's own connection, ``HeldLock.verify``)
and stands by as soon as it is gone rather than working beside its successor."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from adapters.outages import log_failure

log = logging.getLogger(__name__)

STAND_BY_S = 2.0  # how often a process without the lock asks for it again
PAUSE_AFTER_FAILURE_S = 1.0


class Held(Protocol):
    """What a lock yields: whether it was taken, and a check that it still is."""

    def __bool__(self) -> bool:
        """Whether this process took the lock."""
        ...

    def verify(self) -> None:
        """Raise if the lock has been lost since it was taken (its connection died)."""
        ...


Lock = Callable[[str], AbstractContextManager[Held]]


class BatchLoop:
    """Runs ``step`` (which returns how many items it handled) in a background thread."""

    def __init__(
        self,
        name: str,
        step: Callable[[], int],
        *,
        batch_size: int,
        poll_interval: float,
        lock: Lock | None = None,
        min_interval: float = 0.0,
        finish: Callable[[], None] | None = None,
    ) -> None:
        self._name = name
        self._step = step
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._min_interval = min_interval
        self._finish = finish  # run in the loop's thread as it ends
        self._lock = lock
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Run the next batch now rather than at the next poll."""
        self._wake.set()

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current batch and wait for the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            self._run_until_stopped()
        finally:
            if self._finish is not None:
                self._finish()

    def _run_until_stopped(self) -> None:
        if self._lock is None:
            self._loop(None)
            return
        while not self._stopping.is_set():
            try:
                with self._lock(self._name) as held:
                    if held:
                        self._loop(held)
            except Exception as failure:  # noqa: BLE001 - logged; the thread outlives its lock
                self._failed("cannot take its lock", failure, f"asking again in {STAND_BY_S:g} s")
            self._stopping.wait(STAND_BY_S)

    def _loop(self, held: Held | None) -> None:
        while not self._stopping.is_set():
            if held is not None and not self._still_held(held):
                return
            started = time.monotonic()
            try:
                handled = self._step()
            except Exception as failure:  # noqa: BLE001 - logged; the loop outlives a bad batch
                self._failed("batch failed", failure, f"retrying in {PAUSE_AFTER_FAILURE_S:g} s")
                handled = 0
                self._stopping.wait(PAUSE_AFTER_FAILURE_S)
            if handled < self._batch_size:
                self._wake.wait(self._poll_interval)
                self._wake.clear()
                self._pace(started)

    def _pace(self, started: float) -> None:
        """Start the next batch no sooner than ``min_interval`` after the last one started:
        under a stream of wake-ups the batches grow instead of the passes multiplying (each
        pass has a fixed cost); after a quiet spell the next one starts at once."""
        rest = self._min_interval - (time.monotonic() - started)
        if rest > 0:
            self._stopping.wait(rest)

    def _still_held(self, held: Held) -> bool:
        try:
            held.verify()
        except Exception as failure:  # noqa: BLE001 - logged; a lost lock means stand by
            self._failed("lost its lock", failure, f"standing by, asking again in {STAND_BY_S:g} s")
            return False
        return True

    def _failed(self, what: str, failure: Exception, then: str) -> None:
        log_failure(log, failure, f"{self._name}: {what}", then)
