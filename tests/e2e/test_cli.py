"""Operator commands against a running engine's data: replay, verify (and catching a corrupted
view), rebuild, key rotation and shredding."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from uuid import UUID

import psycopg
import pytest

from adapters import crypto
from adapters.custody import EnvelopeCustody
from adapters.vault import FileVault
from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import BITLOOT, RunningEngine
from tests.e2e.test_admin import fulfilled_and_revealed


def bitloot(
    engine: RunningEngine, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [BITLOOT, *args],
        env=env or engine.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def corrupt_orders_view(engine: RunningEngine, order_id: str) -> None:
    """Change a status behind the projection's back."""
    statement = "UPDATE orders_g1 SET status = 'created' WHERE order_id = %s"
    if engine.wiring.startswith("postgresql"):
        with psycopg.connect(
            POSTGRES_URL, options=f"-c search_path={engine.env['DATABASE_SCHEMA']}"
        ) as conn:
            conn.execute(statement.encode(), (order_id,))
        return
    with sqlite3.connect(Path(engine.env["VAR_DIR"]) / "views.db") as conn:
        conn.execute(statement.replace("%s", "?"), (order_id,))


def test_replay_verify_and_rebuild(engine: RunningEngine) -> None:
    """replay prints the history; verify finds an injected corruption; a rebuild repairs it."""
    with engine.client("gina") as gina:
        order_id = fulfilled_and_revealed(engine, gina)
    replayed = bitloot(engine, "replay", "--order", order_id)
    assert replayed.returncode == 0, replayed.stderr
    lines = [json.loads(line) for line in replayed.stdout.splitlines()]
    assert [line["type"] for line in lines][:2] == ["OrderPlaced", "PaymentInvoiceCreated"]
    assert "OrderFulfilled" in [line["type"] for line in lines]
    assert all(line["order_id"] == order_id for line in lines)

    assert bitloot(engine, "verify").returncode == 0
    corrupt_orders_view(engine, order_id)
    broken = bitloot(engine, "verify")
    assert broken.returncode == 1
    assert order_id in broken.stdout

    rebuilt = bitloot(engine, "projections", "rebuild", "orders")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilding orders" in rebuilt.stderr
    assert bitloot(engine, "verify").returncode == 0


@pytest.mark.parametrize("engine", ["sqlite+in-process"], indirect=True)
def test_key_rotation_rewraps_under_the_new_master_key(engine: RunningEngine) -> None:
    """After rotation the old master key can be dropped (the order's keys and the e-mail
    lookup key open under the new one alone); a second run has nothing to do."""
    with engine.client("hank") as hank, engine.client("root", "admin") as admin:
        order_id = fulfilled_and_revealed(engine, hank)
        history = admin.get(f"/orders/{order_id}/history").json()  # with the vault references
    old = json.loads((Path(engine.env["VAR_DIR"]) / "secrets.json").read_text())[
        "KEY_ENCRYPTION_KEY"
    ]
    new = base64.b64encode(os.urandom(32)).decode()
    env = {**engine.env, "KEY_ENCRYPTION_KEY": f"{new},{old}"}
    first = bitloot(engine, "keys", "rotate", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().split()[0] != "0"
    assert bitloot(engine, "keys", "rotate", env=env).stdout.startswith("0 data key(s)")

    delivered = next(e for e in history if e["type"] == "KeyDelivered")["data"]
    only_new = EnvelopeCustody(
        FileVault(Path(engine.env["VAR_DIR"]) / "vault"), crypto.MasterKeys([base64.b64decode(new)])
    )
    assert only_new.open(UUID(order_id), delivered["key_id"], delivered["vault_ref"])
    # the e-mail search's lookup key was re-wrapped too: the same digests under the new key alone
    assert (Path(engine.env["VAR_DIR"]) / "vault" / "lookup").is_dir()
    assert only_new.lookup_digest("Hank@example.com") == only_new.lookup_digest("hank@example.com")


def test_shred_from_the_command_line(engine: RunningEngine) -> None:
    """`bitloot keys shred` makes the keys unreadable over HTTP (410)."""
    with engine.client("ivy") as ivy:
        order_id = fulfilled_and_revealed(engine, ivy)
        done = bitloot(engine, "keys", "shred", order_id, "--by", "dpo")
        assert done.returncode == 0, done.stderr
        assert ivy.post(f"/fulfillment/{order_id}/reveal").status_code == 410
        assert ivy.get(f"/orders/{order_id}/history").json()[-1]["data"]["who"] == "staff"
        with engine.client("root", "admin") as admin:
            assert admin.get(f"/orders/{order_id}/history").json()[-1]["data"]["who"] == "dpo"
