"""The backup and restore drill, on both wirings: a backup of a running shop, restored into an
empty store, vault and ``VAR_DIR``, gives a log whose tree and checkpoints verify, read models
that rebuild to the same order, and keys their owner can still reveal."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import (
    BITLOOT,
    RunningEngine,
    start_process,
    stop_processes,
    wait_healthy,
)
from tests.e2e.test_admin import eventually, fulfilled_and_revealed
from tests.support import free_port

pytestmark = pytest.mark.alone  # two deployments of the PostgreSQL wiring at once


def bitloot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [BITLOOT, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def empty_target(engine: RunningEngine, tmp_path: Path) -> dict[str, str]:
    """The settings of an empty shop: a new VAR_DIR, and on PostgreSQL a new schema and bucket."""
    env = {**engine.env, "VAR_DIR": str(tmp_path / "restored"), "PORT": str(free_port())}
    if engine.wiring.startswith("postgresql"):
        schema = f"{engine.env['DATABASE_SCHEMA']}_restored"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
        env |= {"DATABASE_SCHEMA": schema, "R2_BUCKET": f"{engine.env['R2_BUCKET']}-restored"}
    return env


def drop_target(env: dict[str, str], engine: RunningEngine) -> None:
    if env.get("DATABASE_SCHEMA") != engine.env.get("DATABASE_SCHEMA"):
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{env["DATABASE_SCHEMA"]}" CASCADE'.encode())


def test_a_backup_of_a_running_shop_restores_into_an_empty_one(
    engine: RunningEngine, tmp_path: Path
) -> None:
    with engine.client("ada") as ada:
        order_id = fulfilled_and_revealed(engine, ada)
        keys = ada.post(f"/fulfillment/{order_id}/reveal").json()["keys"]
        history = ada.get(f"/orders/{order_id}/history").json()
    archive = tmp_path / "shop.tar.gz"
    made = bitloot(engine.env, "backup", "--out", str(archive))  # the engine still running
    assert made.returncode == 0, made.stderr
    assert "secrets included" in made.stdout
    assert (Path(engine.env["VAR_DIR"]) / "last-backup.json").is_file()  # the banner's warning
    assert archive.stat().st_mode & 0o077 == 0  # it holds the master key
    with tarfile.open(archive) as members:
        names = members.getnames()
    assert {"manifest.json", "events.jsonl", "checkpoints.jsonl", "secrets.json"} <= set(names)
    assert any(name.startswith("vault/") for name in names)
    stop_processes(engine.processes)

    target = empty_target(engine, tmp_path)
    try:
        restored = bitloot(target, "restore", str(archive))
        assert restored.returncode == 0, restored.stderr
        verified = bitloot(target, "verify", "--log")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "0 difference(s)" in verified.stdout
        again = bitloot(target, "restore", str(archive))
        assert again.returncode == 2
        assert "not empty" in again.stderr
        assert_serves_the_same(target, tmp_path, order_id, keys, history)
    finally:
        drop_target(target, engine)


def assert_serves_the_same(
    env: dict[str, str], tmp_path: Path, order_id: str, keys: Any, history: Any
) -> None:
    """The restored shop, started: the owner reads the same history and keys; the orders
    read model rebuilt from the log lists the order as fulfilled."""
    log = tmp_path / "restored.log"
    serve = [BITLOOT, "serve", "--workers", "0"] if "DATABASE_URL" in env else [BITLOOT, "serve"]
    process = start_process(serve, env, log)
    url = f"http://127.0.0.1:{env['PORT']}"
    restored = RunningEngine(url=url, env=env, logs=[log], wiring="restored", processes=[process])
    try:
        wait_healthy(url, process, log)
        with restored.client("ada") as ada, restored.client("ops", "admin") as admin:
            assert ada.get(f"/orders/{order_id}/history").json() == history
            assert ada.post(f"/fulfillment/{order_id}/reveal").json()["keys"] == keys
            listed = eventually(
                lambda: admin.get("/admin/orders", params={"status": "fulfilled"}).json(),
                lambda page: bool(page["items"]),
            )
            assert [o["order_id"] for o in listed["items"]] == [order_id]
    finally:
        stop_processes([process])
