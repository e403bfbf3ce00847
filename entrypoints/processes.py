"""The process layout of ``bitloot serve``: how many ``bitloot worker`` processes it starts
beside its API, and the supervision of those children (started after the engine's schema
exists, restarted when one dies, stopped with their parent, and never outliving it).

On PostgreSQL + Redis the default is one worker process per usable core but one (at least
one); ``--workers 0`` is the one-process layout, ``--no-worker`` the split one (the operator
runs ``bitloot worker`` themselves). The embedded default is one process."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

from entrypoints.settings import Settings

log = logging.getLogger("bitloot")

FIRST_BACKOFF_S = 1.0  # a dead child is started again after this long ...
MAX_BACKOFF_S = 10.0  # ... doubling up to this while it keeps dying young
STABLE_AFTER_S = 30.0  # a child that lived this long died of something new: back to 1 s
POLL_S = 0.2  # how often the children are looked at
STOP_WAIT_S = 10.0  # how long stopped children may take before SIGKILL
PARENT_CHECK_S = 1.0  # how often a child checks that its parent is still there
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's cpuset
    narrows), or the machine's count where affinity is unknown."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return len(affinity(0))
    return os.cpu_count() or 1


def default_workers(settings: Settings) -> int:
    """How many worker processes ``bitloot serve`` starts when not told: on PostgreSQL + Redis
    one per usable core but the API's (at least one); on any other wiring none."""
    if settings.postgres_conninfo() is None or not settings.redis_url:
        return 0
    return max(1, usable_cores() - 1)


def layout_refusal(settings: Settings, workers: int | None) -> str | None:
    """Why ``bitloot serve --workers N`` cannot run on these settings, or None."""
    if workers is not None and workers < 0:
        return "bitloot serve --workers takes 0 or more"
    if workers and not settings.redis_url:
        return (
            "bitloot serve --workers N needs Redis (REDIS_URL): worker processes take their "
            "messages from Redis; the embedded default runs the actors in this process "
            "(--workers 0)"
        )
    return None


def worker_processes(settings: Settings, workers: int | None, *, no_worker: bool) -> int:
    """How many ``bitloot worker`` children to start: none with ``--no-worker`` (the operator
    runs the workers), ``--workers N`` when given, else the default of the wiring."""
    if no_worker:
        return 0
    return default_workers(settings) if workers is None else workers


def worker_command(threads: int) -> list[str]:
    """``bitloot worker --followers`` as a child of this process (it runs the actors and the
    log followers): the same interpreter and code, through the console script when this
    process was started by it (``ps`` then shows ``bitloot worker``), else through the
    module."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "bitloot" and script.is_file():
        command = [sys.executable, str(script)]
    else:
        command = [sys.executable, "-m", "entrypoints.cli"]
    return [*command, "worker", "--threads", str(threads), "--parent-pid", str(os.getpid()),
            "--followers"]  # fmt: skip


def describe_layout(pids: list[int], *, actors_here: bool, followers: str, threads: int) -> str:
    """The log line naming what runs where; ``followers`` is ``here``, ``workers`` (in the
    worker processes) or ``elsewhere`` (a ``bitloot worker --followers``)."""
    where_followers = {
        "here": "the log followers here",
        "workers": "the log followers in the worker processes",
        "elsewhere": "the log followers left to `bitloot worker --followers`",
    }[followers]
    if pids:
        count = f"{len(pids)} worker process{'es' if len(pids) > 1 else ''}"
        listed = ", ".join(map(str, pids))
        actors = f"{count} (pid{'s' if len(pids) > 1 else ''} {listed}; {threads} threads each)"
        return f"serving the API here with {actors}; {where_followers}"
    if actors_here:
        return (
            f"serving the API here in one process with {threads} actor threads; {where_followers}"
        )
    return f"serving the API here; actors left to `bitloot worker`; {where_followers}"


def _die_with_parent() -> Callable[[], None] | None:
    """What a child runs between fork and exec on Linux so that it gets SIGTERM when the
    thread that started it ends (its parent dying, even by SIGKILL); None elsewhere. Resolved
    here, in the parent: the child only makes the call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent, sigterm = os.getpid(), int(signal.SIGTERM)

    def in_child() -> None:
        prctl(PR_SET_PDEATHSIG, sigterm, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: no signal will come
            os._exit(1)

    return in_child


def watch_parent(parent: int, stopping: threading.Event) -> None:
    """In a child: set ``stopping`` once ``parent`` is no longer this process's parent (the
    fallback of the parent-death signal, and the only guard where there is none)."""

    def watch() -> None:
        while not stopping.wait(PARENT_CHECK_S):
            if os.getppid() != parent:
                log.warning("the serving process %d is gone; stopping", parent)
                stopping.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def exit_status(returncode: int) -> str:
    """``exit code 3``, or ``exit code -9 (SIGKILL)`` for a child a signal ended."""
    if returncode < 0:
        try:
            return f"exit code {returncode} ({signal.Signals(-returncode).name})"
        except ValueError:
            pass
    return f"exit code {returncode}"


@dataclass
class _Slot:
    """One of the children: the process in it now, when it started, and the pause before the
    next start should it die young."""

    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = FIRST_BACKOFF_S
    restart_at: float | None = None


class WorkerProcesses:
    """``count`` children running ``command``, kept running until ``stop``: one that exits is
    started again after a pause (1 s, doubling to 10 s while it keeps dying young), with one
    WARNING line. Start it from the main thread: on Linux a child is signalled when the thread
    that forked it ends (restarts fork from the watching thread, which lives until ``stop``)."""

    def __init__(self, command: list[str], count: int) -> None:
        self._command = command
        self._slots = [_Slot() for _ in range(count)]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="worker-processes", daemon=True)
        self._preexec = _die_with_parent()

    def __enter__(self) -> WorkerProcesses:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every child, then the thread that watches them."""
        with self._lock:
            for slot in self._slots:
                self._spawn(slot)
        self._watcher.start()

    def pids(self) -> list[int]:
        """The pids of the children running now."""
        with self._lock:
            return [s.process.pid for s in self._slots if s.process is not None]

    def stop(self, wait_s: float = STOP_WAIT_S) -> None:
        """Stop watching, send every child SIGTERM, wait up to ``wait_s``, then SIGKILL."""
        self._stopping.set()
        if self._watcher.is_alive():
            self._watcher.join()
        with self._lock:
            running = [s.process for s in self._slots if s.process is not None]
        for process in running:
            process.send_signal(signal.SIGTERM)  # none if it has gone
        deadline = time.monotonic() + wait_s
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker process %d did not stop in %g s: killed", process.pid, wait_s)
                process.kill()
                process.wait()

    def _watch(self) -> None:
        while not self._stopping.wait(POLL_S):
            with self._lock:
                for slot in self._slots:
                    try:
                        self._tend(slot, time.monotonic())
                    except Exception:  # a bug: the watch must go on for the other children
                        log.exception("watching worker processes failed; watching on")

    def _tend(self, slot: _Slot, now: float) -> None:
        """Notice a child that has exited; start one again once its pause is over."""
        process = slot.process
        if process is not None and process.poll() is not None:
            self._buried(slot, process, now)
        if slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
            self._spawn(slot)
            if slot.process is not None:
                log.info("worker process %d started", slot.process.pid)

    def _buried(self, slot: _Slot, process: subprocess.Popen[bytes], now: float) -> None:
        """One WARNING line, and the next start after the slot's pause."""
        if now - slot.started >= STABLE_AFTER_S:
            slot.backoff = FIRST_BACKOFF_S
        log.warning(
            "worker process %d exited unexpectedly (%s); starting another in %g s",
            process.pid, exit_status(process.returncode), slot.backoff,
        )  # fmt: skip
        slot.process, slot.restart_at = None, now + slot.backoff
        slot.backoff = min(slot.backoff * 2, MAX_BACKOFF_S)

    def _spawn(self, slot: _Slot) -> None:
        """Start the slot's child; a failure to fork is retried like a death."""
        slot.started, slot.restart_at = time.monotonic(), None
        try:
            slot.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                self._command,
                stdin=subprocess.DEVNULL,
                preexec_fn=self._preexec,  # noqa: PLW1509 - one prepared C call, no Python locks
                process_group=0,  # a terminal's Ctrl+C reaches the parent only, which stops us
            )
        except OSError as failure:
            log.warning(
                "cannot start a worker process (%s); trying again in %g s", failure, slot.backoff
            )
            slot.restart_at = slot.started + slot.backoff
            slot.backoff = min(slot.backoff * 2, MAX_BACKOFF_S)
            return


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM or SIGINT ends the block (``SystemExit(0)``) the first time, so that the
    children are stopped on the way out; later ones are ignored while they stop. uvicorn
    puts its own handlers in place while it serves and, done, calls this one."""
    fired: list[int] = []  # no Event: a handler must take no lock (it may interrupt its holder)

    def handler(signum: int, _frame: FrameType | None) -> None:
        if not fired:
            fired.append(signum)
            raise SystemExit(0)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
