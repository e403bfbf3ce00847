"""A task run every few seconds in a background thread, optionally only while this process holds
a named lock (so one process in a cluster runs it)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

log = logging.getLogger(__name__)


class Periodic:
    """Calls ``task`` every ``interval`` seconds until stopped."""

    def __init__(
        self,
        name: str,
        interval: float,
        task: Callable[[], object],
        lock: Callable[[str], AbstractContextManager[bool]] | None = None,
    ) -> None:
        self._name = name
        self._interval = interval
        self._task = task
        self._lock = lock
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current run."""
        self._stopping.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            if self._lock is None:
                self._run_task()
                continue
            with self._lock(self._name) as held:
                if held:
                    self._run_task()

    def _run_task(self) -> None:
        try:
            self._task()
        except Exception:  # a periodic task must survive a bad run; the next one retries
            log.exception("%s failed; will run again", self._name)
