"""Tamper evidence on SQLite and PostgreSQL: the log's tree kept by its follower, signed
checkpoints, bundles, and an audit that names every event edited, deleted or swapped directly in
the database; a bundle exported before stays valid, and a tree rebuilt over the edited log no
longer extends the checkpoints signed before."""

from __future__ import annotations

import base64
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
import psycopg
import pytest

from adapters.checkpoints import CheckpointTable
from adapters.eventstore import RecorderEventStore
from adapters.signing import Ed25519Signer, new_seed
from adapters.views import ViewDatabase
from application.evidence import Evidence
from domain.evidence import verify_bundle, verify_consistency
from projections.merkle import MerkleTreeProjection, TreeTable
from projections.runner import ProjectionRunner
from tests.conftest import POSTGRES_URL
from tests.fakes import FixedClock
from tests.integration.test_projections import backend, order_events  # noqa: F401 - a fixture

SIGNER = Ed25519Signer.from_text(new_seed())


class Shop:
    """A store with its tree follower, checkpoints and evidence, and SQL behind their back."""

    def __init__(self, store: RecorderEventStore, views: ViewDatabase, tmp_path: Path) -> None:
        self.store, self.views = store, views
        self.tree = ProjectionRunner(store, views, MerkleTreeProjection())
        self.tree.ensure()
        checkpoints = CheckpointTable(views)
        checkpoints.ensure()
        clock = FixedClock(datetime(2026, 12, 6, tzinfo=UTC))
        self.evidence = Evidence(store, TreeTable(views), checkpoints, SIGNER, clock)
        self._sqlite = tmp_path / "es.db"

    def order(self, status: str = "paid") -> UUID:
        events = order_events(status)
        self.store.save(events)
        self.tree.catch_up()
        return events[0].originator_id

    def audit(self) -> list[str]:
        lines: list[str] = []
        self.evidence.audit_log(lines.append)
        return [line for line in lines if not line.startswith("note:")]

    def positions(self, order_id: UUID) -> list[int]:
        """The log positions of the order's events, by version."""
        return [leaf.position for leaf in TreeTable(self.views).leaves_of(order_id)]

    def sql(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        """Run one statement on the events table (``{events}``), as someone with write access."""
        if self.views.dialect == "sqlite":
            with sqlite3.connect(self._sqlite) as conn:
                conn.execute(statement.format(events="stored_events", id="rowid"), params)
            return
        table = self.store.recorder.events_table_name  # type: ignore[attr-defined]
        schema = self.store.recorder.datastore.schema  # type: ignore[attr-defined]
        with psycopg.connect(POSTGRES_URL, options=f"-c search_path={schema}") as conn:
            sql = statement.format(events=table, id="notification_id").replace("?", "%s")
            conn.execute(sql.encode(), params)

    def edit_owner(self, position: int, owner: str) -> None:
        if self.views.dialect == "sqlite":
            change = "CAST(REPLACE(CAST(state AS TEXT), '\"alice\"', ?) AS BLOB)"
        else:
            change = "convert_to(replace(convert_from(state, 'UTF8'), '\"alice\"', ?), 'UTF8')"
        statement = f"UPDATE {{events}} SET state = {change} WHERE {{id}} = ?"  # noqa: S608
        self.sql(statement, (owner, position))

    def swap(self, first: int, second: int) -> None:
        for old, new in ((first, -1), (second, first), (-1, second)):
            self.sql("UPDATE {events} SET {id} = ? WHERE {id} = ?", (new, old))


@pytest.fixture
def shop(backend: tuple[RecorderEventStore, ViewDatabase], tmp_path: Path) -> Shop:  # noqa: F811
    store, views = backend
    return Shop(store, views, tmp_path)


def test_bundles_verify_and_checkpoints_extend_each_other(shop: Shop) -> None:
    first = shop.order()
    checkpoint = shop.evidence.checkpoint()
    bundle = shop.evidence.bundle(first)
    assert checkpoint is not None
    assert verify_bundle(bundle, SIGNER.public_key) == []
    size = checkpoint.tree_size  # one order's events
    assert [leaf["version"] for leaf in bundle["leaves"]] == list(range(1, size + 1))

    second = shop.order()
    later = shop.evidence.bundle(second)  # signs a checkpoint that covers the new order
    assert later["checkpoint"]["tree_size"] == 2 * size
    assert verify_bundle(later, SIGNER.public_key) == []
    assert shop.evidence.checkpoint() == shop.evidence.latest()  # nothing new: no new signature
    proof = shop.evidence.consistency(size, 2 * size)
    assert proof["first_root"] == checkpoint.root_hash
    newer = bytes.fromhex(later["checkpoint"]["root_hash"])
    assert verify_consistency(
        size, 2 * size, bytes.fromhex(checkpoint.root_hash), newer,
        [bytes.fromhex(h) for h in proof["proof"]],
    )  # fmt: skip
    assert shop.audit() == []


def test_after_a_key_change_bundles_carry_a_checkpoint_of_the_new_key(shop: Shop) -> None:
    order_id = shop.order()
    old = shop.evidence.bundle(order_id)
    new_key = Ed25519Signer.from_text(new_seed())
    clock = FixedClock(datetime(2026, 12, 7, tzinfo=UTC))
    checkpoints = CheckpointTable(shop.views)
    renewed = Evidence(shop.store, TreeTable(shop.views), checkpoints, new_key, clock)
    bundle = renewed.bundle(order_id)
    assert verify_bundle(bundle, new_key.public_key) == []
    assert bundle["checkpoint"]["root_hash"] == old["checkpoint"]["root_hash"]
    assert verify_bundle(old, SIGNER.public_key) == []  # the one signed before still holds
    lines: list[str] = []
    assert renewed.audit_log(lines.append) == 0  # the earlier key's checkpoint: a note
    assert any("signed with an earlier key" in line for line in lines)


def test_a_checkpoint_row_with_a_forged_signature_is_named(shop: Shop) -> None:
    shop.order()
    signed = shop.evidence.checkpoint()
    assert signed is not None
    forged = msgspec.structs.replace(signed, signature=base64.b64encode(bytes(64)).decode())
    kept = CheckpointTable(shop.views).add(forged)
    assert shop.audit() == [
        f"checkpoint {kept.id} (size {signed.tree_size}): the signature does not hold for the "
        "engine's key"
    ]


def test_edits_deletions_and_swaps_are_named_by_position(shop: Shop) -> None:
    orders = [shop.order() for _ in range(4)]
    before = shop.evidence.checkpoint()
    exported = shop.evidence.bundle(orders[1])
    assert before is not None

    edited = shop.positions(orders[1])[0]
    shop.edit_owner(edited, '"mallory"')
    assert_named(shop.audit(), [(edited, "edited", orders[1])])
    assert verify_bundle(exported, SIGNER.public_key) == []  # exported before: still holds
    assert verify_bundle(shop.evidence.bundle(orders[1]), SIGNER.public_key) != []

    deleted = shop.positions(orders[2])[3]
    shop.sql("DELETE FROM {events} WHERE {id} = ?", (deleted,))
    assert_named(shop.audit(), [(edited, "edited", orders[1]), (deleted, "deleted", orders[2])])

    one, other = shop.positions(orders[3])[1], shop.positions(orders[0])[2]
    shop.swap(one, other)
    assert_named(
        shop.audit(),
        [
            (other, "reordered", orders[0]),
            (edited, "edited", orders[1]),
            (deleted, "deleted", orders[2]),
            (one, "reordered", orders[3]),
        ],
    )

    # Whoever edited the log rebuilds the tree over it: the checkpoints signed since no longer
    # extend the one signed before.
    shop.tree.request_rebuild()
    shop.tree.catch_up()
    shop.order()
    after = shop.evidence.checkpoint()
    assert after is not None
    assert after.tree_size > before.tree_size
    proof = shop.evidence.consistency(before.tree_size, after.tree_size)
    assert not verify_consistency(
        before.tree_size, after.tree_size, bytes.fromhex(before.root_hash),
        bytes.fromhex(after.root_hash), [bytes.fromhex(h) for h in proof["proof"]],
    )  # fmt: skip
    assert any(f"checkpoint {before.id}" in line for line in shop.audit())


def assert_named(lines: list[str], expected: list[tuple[int, str, UUID]]) -> None:
    """Each difference at its log position, with its kind and order, in log order; then the
    signed checkpoint the store no longer matches."""
    differences = [line for line in lines if not line.startswith("checkpoint")]
    assert len(differences) == len(expected), lines
    for line, (position, kind, order_id) in zip(differences, expected, strict=True):
        assert f"log position {position}," in line, line
        assert kind in line, line
        assert str(order_id) in line, line
    assert any("the store's first" in line for line in lines), lines
