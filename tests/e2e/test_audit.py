"""Auditors and tamper evidence over HTTP and the command line, on both wirings: the auditor role
reads every order's history, key audit and evidence and nothing else; bundles verify offline
with the published key; ``bitloot verify --log`` names each event edited, deleted or swapped
directly in the database, while a bundle exported before still verifies."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from domain.catalog import PRICING_ID, SYNC_ID, product_aggregate_id
from domain.customers import customer_id
from domain.evidence import read_public_key, verify_bundle, verify_consistency
from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import BITLOOT, RunningEngine, pay_in_full
from tests.e2e.test_admin import eventually, fulfilled_and_revealed
from tests.e2e.test_cli import bitloot
from tests.e2e.test_pipeline import ORDER, place_and_pay


def test_auditors_read_histories_audits_and_evidence_and_nothing_else(
    engine: RunningEngine,
) -> None:
    with (
        engine.client("olga") as owner,
        engine.client("ivy", "auditor") as auditor,
        engine.client("mallory") as stranger,
    ):
        order_id = fulfilled_and_revealed(engine, owner)
        public_key = read_public_key(httpx.get(f"{engine.url}/audit/public-key").text)

        bundle = auditor.get(f"/orders/{order_id}/evidence").json()
        assert verify_bundle(bundle, public_key) == []
        history = auditor.get(f"/orders/{order_id}/history").json()
        assert [leaf["type"] for leaf in bundle["leaves"]] == [e["type"] for e in history]
        assert all(leaf["state"] is not None for leaf in bundle["leaves"])
        assert any("vault_ref" in e["data"] for e in history)  # the full view, as admins see it
        audit_path = f"/fulfillment/{order_id}/audit"
        assert eventually(lambda: auditor.get(audit_path).json()["accesses"], bool)[0]["who"] == (
            "olga"
        )
        checkpoints = auditor.get("/audit/checkpoints").json()["items"]
        latest = auditor.get("/audit/checkpoints/latest").json()
        assert checkpoints
        assert latest["tree_size"] >= checkpoints[0]["tree_size"]
        assert_consistent(auditor, checkpoints[0], latest)

        for method, path in (
            ("POST", f"/fulfillment/{order_id}/reveal"),
            ("GET", f"/fulfillment/{order_id}/download-link"),
            ("GET", f"/fulfillment/{order_id}/status"),
            ("GET", f"/orders/{order_id}"),
            ("GET", "/admin/orders"),
            ("GET", f"/admin/key-audit/{order_id}"),
            ("GET", "/admin/projections"),
            ("POST", f"/admin/orders/{order_id}/retry"),
            ("GET", f"/kinguin/status/{order_id}"),
        ):
            assert auditor.request(method, path).status_code == 403, path
        assert auditor.post("/orders", json=ORDER).status_code == 403
        accesses = owner.get(audit_path).json()["accesses"]
        assert [a["who"] for a in accesses] == ["olga"]  # the auditor read no key

        own = owner.get(f"/orders/{order_id}/evidence").json()
        assert verify_bundle(own, public_key) == []
        hidden = [leaf["type"] for leaf in own["leaves"] if leaf.get("redacted")]
        assert "KeyDelivered" in hidden  # it names a vault reference: proven, not shown
        assert stranger.get(f"/orders/{order_id}/evidence").status_code == 404
        assert stranger.get("/audit/checkpoints").status_code == 403
        assert stranger.get("/audit/consistency", params={"from": 1, "to": 1}).status_code == 403
        bad = auditor.get("/audit/consistency", params={"from": 5, "to": 2})
        assert bad.status_code == 404
        assert bad.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("engine", ["sqlite+in-process"], indirect=True)
def test_order_routes_read_order_streams_only(engine: RunningEngine) -> None:
    """A product, the pricing rules, the catalog sync, a webhook delivery and a customer share
    the store with orders and their ids can be computed: asked for through the order routes
    (history, evidence, key audit, an order as of a version) they answer 404 to auditors and
    admins alike, as an unknown id does; the order itself answers."""
    with (
        engine.client("olga") as owner,
        engine.client("ivy", "auditor") as auditor,
        engine.client("ops", "admin") as admin,
    ):
        order, payment = place_and_pay(owner)
        pay_in_full(owner, payment)
        delivery = eventually(lambda: admin.get("/admin/webhook-logs").json()["items"], bool)[0]
        assert admin.put("/admin/pricing", json=PRICING).status_code == 200
        assert admin.post("/admin/customers/zed/erase").json()["erased"] is True
        streams = [product_aggregate_id("5c9b5f6b2539a4e8f172916a"), PRICING_ID, SYNC_ID,
                   UUID(delivery["delivery_id"]), customer_id("zed")]  # fmt: skip
        for reader in (auditor, admin):
            assert reader.get(f"/orders/{order['id']}/history").status_code == 200
            for stream in streams:
                for path in (f"/orders/{stream}/history", f"/orders/{stream}/evidence",
                             f"/fulfillment/{stream}/audit"):  # fmt: skip
                    answer = reader.get(path)
                    assert answer.status_code == 404, (path, answer.text)
                    assert answer.headers["content-type"].startswith("application/problem+json")
        for stream in streams:
            assert admin.get(f"/orders/{stream}", params={"as_of": "1"}).status_code == 404


PRICING: dict[str, Any] = {
    "margin_percent": "20", "minimum_margin": "0.50", "rounding": None, "overrides": {},
}  # fmt: skip


def assert_consistent(auditor: httpx.Client, old: dict[str, Any], new: dict[str, Any]) -> None:
    sizes = {"from": old["tree_size"], "to": new["tree_size"]}
    proof = auditor.get("/audit/consistency", params=sizes).json()
    assert verify_consistency(
        old["tree_size"], new["tree_size"], bytes.fromhex(old["root_hash"]),
        bytes.fromhex(new["root_hash"]), [bytes.fromhex(h) for h in proof["proof"]],
    )  # fmt: skip


def test_verify_log_names_edited_deleted_and_swapped_events(
    engine: RunningEngine, tmp_path: Path
) -> None:
    with engine.client("olga") as owner:
        first = fulfilled_and_revealed(engine, owner)
        second = fulfilled_and_revealed(engine, owner)
    key_file = tmp_path / "public-key.json"
    key_file.write_text(httpx.get(f"{engine.url}/audit/public-key").text)
    exported = tmp_path / "bundle.json"
    made = bitloot(engine, "evidence", "export", first, "--out", str(exported))
    assert made.returncode == 0, made.stderr
    assert offline_check(exported, key_file).returncode == 0
    assert bitloot(engine, "verify", "--log").returncode == 0
    log = EventTable(engine)
    one, two = log.positions(first), log.positions(second)

    log.edit(one[0], b'"olga"', b'"mallory"')
    assert_named(engine, [one[0]])
    log.delete(two[2])
    assert_named(engine, [one[0], two[2]])
    log.swap(one[3], two[4])
    assert_named(engine, [one[0], two[2], one[3], two[4]])

    assert offline_check(exported, key_file).returncode == 0  # exported before: still holds
    bent = json.loads(exported.read_text())
    state = base64.b64decode(bent["leaves"][0]["state"]).replace(b'"olga"', b'"mallory"')
    bent["leaves"][0]["state"] = base64.b64encode(state).decode()
    exported.write_text(json.dumps(bent))
    refused = offline_check(exported, key_file)
    assert refused.returncode == 1
    assert "FAILED" in refused.stdout


def offline_check(bundle: Path, key_file: Path) -> subprocess.CompletedProcess[str]:
    """``bitloot evidence verify`` with no engine settings at all."""
    return bitloot_offline("evidence", "verify", str(bundle), "--public-key", str(key_file))


def bitloot_offline(*args: str) -> subprocess.CompletedProcess[str]:
    """A ``bitloot`` command run with no settings: no database, no engine, no VAR_DIR."""
    env = {"PATH": os.environ.get("PATH", ""), "VAR_DIR": "/nonexistent/bitloot"}
    return subprocess.run(  # noqa: S603
        [BITLOOT, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_named(engine: RunningEngine, positions: list[int]) -> None:
    checked = bitloot(engine, "verify", "--log")
    assert checked.returncode == 1, checked.stdout + checked.stderr
    for position in positions:
        assert f"log position {position}," in checked.stdout, checked.stdout


class EventTable:
    """The running engine's stored events, changed behind its back with SQL."""

    def __init__(self, engine: RunningEngine) -> None:
        self._engine = engine
        self._postgres = engine.wiring.startswith("postgresql")
        self._id = "notification_id" if self._postgres else "rowid"
        self._table = "bitloot_events" if self._postgres else "stored_events"

    def positions(self, order_id: str) -> list[int]:
        """The log positions of the order's events, by version."""
        rows = self._run(
            f"SELECT {self._id} FROM {self._table} WHERE originator_id = %s "  # noqa: S608
            "ORDER BY originator_version",
            (order_id if self._postgres else UUID(order_id).hex,),
        )
        return [int(row[0]) for row in rows]

    def edit(self, position: int, old: bytes, new: bytes) -> None:
        state = self._run(f"SELECT state FROM {self._table} WHERE {self._id} = %s", (position,))  # noqa: S608
        edited = bytes(state[0][0]).replace(old, new)
        assert edited != bytes(state[0][0])
        self._run(f"UPDATE {self._table} SET state = %s WHERE {self._id} = %s", (edited, position))  # noqa: S608

    def delete(self, position: int) -> None:
        self._run(f"DELETE FROM {self._table} WHERE {self._id} = %s", (position,))  # noqa: S608

    def swap(self, first: int, second: int) -> None:
        for old, new in ((first, -1), (second, first), (-1, second)):
            self._run(f"UPDATE {self._table} SET {self._id} = %s WHERE {self._id} = %s", (new, old))  # noqa: S608

    def _run(self, statement: str, params: tuple[Any, ...]) -> list[Any]:
        if self._postgres:
            schema = self._engine.env["DATABASE_SCHEMA"]
            with psycopg.connect(POSTGRES_URL, options=f"-c search_path={schema}") as conn:
                cursor = conn.execute(statement.encode(), params)
                return cursor.fetchall() if cursor.description else []
        with sqlite3.connect(Path(self._engine.env["VAR_DIR"]) / "bitloot.db") as conn:
            return conn.execute(statement.replace("%s", "?"), params).fetchall()
