"""The background loop shared by the log followers and the projection runners: run a batch of
work; go again at once while batches come back full, else wait for a wake-up or the poll
interval; survive a failing batch (log, pause, retry); and, when given a lock, work only while
this process holds it, standing by otherwise (one worker per job across processes)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

log = logging.getLogger(__name__)

Lock = Callable[[str], AbstractContextManager[bool]]
STAND_BY_S = 2.0  # how often a process without the lock asks for it again
PAUSE_AFTER_FAILURE_S = 1.0


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
    ) -> None:
        self._name = name
        self._step = step
        self._batch_size = batch_size
        self._poll_interval = poll_interval
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
        if self._lock is None:
            self._loop()
            return
        while not self._stopping.is_set():
            with self._lock(self._name) as held:
                if held:
                    self._loop()
            self._stopping.wait(STAND_BY_S)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                handled = self._step()
            except Exception:  # a loop must outlive a bad batch: log it, pause, try again
                log.exception("%s: batch failed; retrying", self._name)
                handled = 0
                self._stopping.wait(PAUSE_AFTER_FAILURE_S)
            if handled < self._batch_size:
                self._wake.wait(self._poll_interval)
                self._wake.clear()
