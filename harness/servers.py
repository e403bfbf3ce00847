"""Servers for the tests and the benchmarks: each started on a free loopback port, waited for,
and stopped on exit. None of them is the engine's: they stand in for what a deployment has."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis
import uvicorn

START_TIMEOUT_S = 10.0


class ServerDidNotStart(RuntimeError):
    """A server of the harness did not answer in time."""


def free_port() -> int:
    """A loopback TCP port that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``condition`` every 10 ms until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class RedisServer:
    """A private ``redis-server`` that keeps nothing on disk, so a restart empties it."""

    def __init__(self, port: int | None = None, log: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = log
        self._process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        command = [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
                   "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]  # fmt: skip
        if self._log is None:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603
        else:
            with self._log.open("ab") as out:
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        if not wait_until(lambda: self._answers(process), START_TIMEOUT_S):
            process.kill()
            raise ServerDidNotStart(f"redis-server on port {self.port} did not start")
        return process

    def _answers(self, process: subprocess.Popen[bytes]) -> bool:
        if process.poll() is not None:
            raise ServerDidNotStart(f"redis-server on port {self.port} exited")
        try:
            return bool(redis.Redis.from_url(self.url).ping())
        except redis.ConnectionError:
            return False

    def restart_empty(self) -> float:
        """SIGKILL, then start again on the same port; the seconds it was away."""
        begun = time.monotonic()
        self.stop()
        self._process = self._start()
        return time.monotonic() - begun

    def stop(self) -> None:
        """SIGKILL: it keeps nothing anyway."""
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()


@contextmanager
def moto_server(timeout: float = 30.0) -> Iterator[str]:
    """A local S3-compatible server (moto's standalone one); its endpoint, until the block ends."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        if not wait_until(lambda: _answers_http(endpoint), timeout):
            raise ServerDidNotStart("moto_server did not start")
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers_http(url: str) -> bool:
    try:
        httpx.get(url, timeout=1, trust_env=False)
    except httpx.HTTPError:
        return False
    return True


@contextmanager
def serving(app: Any, port: int | None = None, **options: Any) -> Iterator[str]:
    """Run an ASGI ``app`` under uvicorn in a thread (with these ``uvicorn.Config`` options
    besides); its base URL, until the block ends."""
    port = port or free_port()
    settings = {"host": "127.0.0.1", "log_level": "warning", "lifespan": "on", **options}
    server = uvicorn.Server(uvicorn.Config(app, **{**settings, "port": port}))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    if not wait_until(lambda: server.started or not thread.is_alive(), START_TIMEOUT_S):
        raise ServerDidNotStart("the app's server did not start")
    if not server.started:
        raise ServerDidNotStart("the app's server stopped at start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
