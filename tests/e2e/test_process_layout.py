"""The process layouts of ``bitloot serve`` (``entrypoints.processes``): on PostgreSQL + Redis it
starts the API here and a ``bitloot worker --followers`` per usable core but one, restarts a
worker that dies, and takes its workers with it when it stops, gracefully or killed; the log
followers then run in the workers, and an order's websocket on the API still hears every status
(through Redis); ``--workers 0`` is one process; the embedded default refuses worker
processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.e2e.conftest import (
    BITLOOT,
    E2E_REDIS_URL,
    JWT_SECRET,
    RunningEngine,
    distributed_env,
    pay_in_full,
    start_process,
    stop_processes,
    wait_healthy,
)
from tests.e2e.test_catalog import await_status, paid_order
from tests.e2e.test_live import listen, open_socket
from tests.e2e.test_pipeline import place_and_pay
from tests.support import free_port

RESTARTED_WITHIN_S = 10
STOPPED_WITHIN_S = 15
DIE_WITH_PARENT_WITHIN_S = 5


@pytest.fixture
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningEngine]:
    """The settings of an engine on PostgreSQL + Redis (its own schema and Redis namespace);
    not started: each test starts ``bitloot serve`` with the flags it checks."""
    port = free_port()
    env = {**os.environ, "VAR_DIR": str(tmp_path / "var"), "PORT": str(port),
           "JWT_SECRET": JWT_SECRET, "KINGUIN_SANDBOX_DELAY": "0.1",
           **distributed_env(request, f"layout-{port}")}  # fmt: skip
    yield RunningEngine(url=f"http://127.0.0.1:{port}", env=env, logs=[], wiring="postgresql")
    _clear_namespace(f"bitloot-{env['DATABASE_SCHEMA']}")


@contextmanager
def serving(shop: RunningEngine, *flags: str) -> Iterator[subprocess.Popen[bytes]]:
    """``bitloot serve FLAGS`` on ``shop``'s settings, healthy; stopped (with its children)
    afterwards whatever happened."""
    log = Path(shop.env["VAR_DIR"]).parent / f"serve-{len(shop.logs)}.log"
    shop.logs.append(log)
    process = start_process([BITLOOT, "serve", *flags], shop.env, log)
    try:
        wait_healthy(shop.url, process, log)
        yield process
    finally:
        left = worker_children(process.pid)
        stop_processes([process])
        for pid in left:  # only if the parent failed to stop them: the test says so anyway
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_serve_starts_worker_processes_and_replaces_a_dead_one(shop: RunningEngine) -> None:
    """No flag: one worker process per usable core but one, which also follow the log; an
    order is fulfilled by them, and its owner's socket on the API hears paid, reserved and
    fulfilled (published by a worker, through Redis); a worker killed is replaced within 10 s
    (one WARNING line) and the next order is fulfilled; SIGTERM stops the API and its workers
    within 15 s, without a traceback."""
    expected = max(1, len(os.sched_getaffinity(0)) - 1)
    with serving(shop) as api, shop.client("kim") as kim:
        first = await_children(api.pid, lambda pids: len(pids) == expected)
        started = shop.logged().decode()
        assert f"with {expected} worker process" in started
        assert "the log followers in the worker processes" in started
        assert statuses_heard(shop, kim)[-3:] == ["paid", "reserved", "fulfilled"]
        os.kill(first[0], signal.SIGKILL)
        await_children(api.pid, lambda pids: len(pids) == expected and first[0] not in pids,
                       RESTARTED_WITHIN_S)  # fmt: skip
        await_status(kim, paid_order(kim), "fulfilled")
        children = worker_children(api.pid)
        api.send_signal(signal.SIGTERM)
        assert api.wait(timeout=STOPPED_WITHIN_S) == 0
        await_gone(children, 1)  # waited for by the API before it exited
    logged = shop.logged().decode()
    warnings = [line for line in logged.splitlines() if f"worker process {first[0]} " in line]
    assert len(warnings) == 1, warnings
    assert "WARNING" in warnings[0]
    assert "exit code -9 (SIGKILL)" in warnings[0]
    assert "Traceback" not in logged


def statuses_heard(shop: RunningEngine, kim: httpx.Client) -> list[str]:
    """The statuses an order's owner hears on its socket from its payment to its end."""
    heard: list[dict[str, Any]] = []
    order, payment = place_and_pay(kim)
    with open_socket(shop.url, f"/ws/orders/{order['id']}", shop.token("kim")) as socket:
        listening = listen(socket, heard, "fulfilled")
        pay_in_full(kim, payment)
        listening.join(40)
    return [m["status"] for m in heard]


def test_workers_0_is_one_process(shop: RunningEngine) -> None:
    """``--workers 0`` on PostgreSQL + Redis: the actors run in the API process, as before."""
    with serving(shop, "--workers", "0") as api, shop.client("lou") as lou:
        await_status(lou, paid_order(lou), "fulfilled")
        assert worker_children(api.pid) == []
    assert "in one process with 8 actor threads" in shop.logged().decode()


def test_the_workers_die_with_a_killed_api(shop: RunningEngine) -> None:
    """SIGKILL of the API takes its workers with it within seconds. With ``--no-followers``
    the workers run the log followers (the catalog import that ``serving`` waits for among
    them), with the ``--threads`` given."""
    with serving(shop, "--workers", "2", "--no-followers", "--threads", "3") as api:
        children = await_children(api.pid, lambda pids: len(pids) == 2)
        for pid in children:
            assert _cmdline(pid)[-5:] == ["--threads", "3", "--parent-pid", str(api.pid),
                                          "--followers"]  # fmt: skip
        api.send_signal(signal.SIGKILL)
        api.wait()
        try:
            await_gone(children, DIE_WITH_PARENT_WITHIN_S)
        finally:  # a worker that outlived its API would hold its connections for the suite
            for pid in children:
                if not gone(pid):
                    os.kill(pid, signal.SIGKILL)


def test_the_embedded_default_refuses_worker_processes(tmp_path: Path) -> None:
    """No PostgreSQL and Redis: ``--workers 1`` exits 2 at once with a message."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"VAR_DIR": str(tmp_path / "var"), "PORT": str(free_port())}
    done = subprocess.run(  # noqa: S603
        [BITLOOT, "serve", "--workers", "1"], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert b"--workers N needs Redis" in done.stderr


def worker_children(parent: int) -> list[int]:
    """The pids of ``parent``'s ``bitloot worker`` children (read from ``/proc``)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == parent and fields[0] != "Z" and "worker" in _cmdline(stat.parent.name):
            children.append(int(stat.parent.name))
    return sorted(children)


def await_children(
    parent: int, wanted: Callable[[list[int]], bool], timeout: float = 30
) -> list[int]:
    """``parent``'s worker children once ``wanted`` holds of them."""
    deadline = time.monotonic() + timeout
    while not wanted(children := worker_children(parent)):
        assert time.monotonic() < deadline, f"worker processes now: {children}"
        time.sleep(0.1)
    return children


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie no one reaped yet counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def await_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while left := [pid for pid in pids if not gone(pid)]:
        assert time.monotonic() < deadline, f"still running: {left}"
        time.sleep(0.05)


def _cmdline(pid: int | str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]
    except OSError:
        return []


def _clear_namespace(namespace: str) -> None:
    """This test's Redis keys only: other engines may be using the e2e database."""
    client = redis.Redis.from_url(E2E_REDIS_URL)
    for key in client.scan_iter(f"{namespace}*"):
        client.delete(key)
    client.close()
