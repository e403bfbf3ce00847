"""``make test`` on a machine with neither PostgreSQL nor Redis: ``scripts/ensure-services.sh``
installs the servers bundled in the locked wheels of ``requirements-services.lock`` and starts
them where TEST_DATABASE_URL and TEST_REDIS_URL say, with the ``test`` database open to
``postgres``. Run here with ``SERVICES=bundled`` on free ports, beside the machine's own."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts" / "ensure-services.sh"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, check=False, env={**os.environ, **env}
    )


@pytest.fixture
def data() -> Iterator[Path]:
    """The servers' data, in a folder the unprivileged user they run as (when the tests run as
    root) can open; the servers started there are stopped afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="bitloot-services-", dir="/var/tmp"))
    folder.chmod(0o755)
    yield folder
    for pid_file in folder.glob("postgres-*/postmaster.pid"):
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)  # a fast shutdown
    for port_file in folder.glob("redis-*.log"):
        port = int(port_file.stem.removeprefix("redis-"))
        with contextlib.suppress(redis.ConnectionError):  # it closes the connection it came on
            redis.Redis(port=port).shutdown(nosave=True)
    shutil.rmtree(folder, ignore_errors=True)


def test_the_bundled_servers_start_where_the_tests_look(data: Path) -> None:
    pg_port, redis_port = free_port(), free_port()
    environment = {
        "SERVICES": "bundled",
        "SERVICES_DATA": str(data),
        "TEST_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{pg_port}/test",
        "TEST_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
    }
    started = run(["bash", str(SCRIPT)], **environment)
    assert started.returncode == 0, started.stderr
    assert f"starting the bundled PostgreSQL on 127.0.0.1:{pg_port}" in started.stdout
    assert f"starting the bundled Redis on 127.0.0.1:{redis_port}" in started.stdout
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg_port}/test") as connection:
        version = connection.execute("SHOW server_version").fetchone()
    assert version is not None
    assert version[0].startswith("16.")
    assert redis.Redis(port=redis_port).ping()
    again = run(["bash", str(SCRIPT)], **environment)
    assert again.returncode == 0
    assert "starting" not in again.stdout  # both answer: nothing is started twice
