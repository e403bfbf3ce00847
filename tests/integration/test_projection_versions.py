"""A projection's schema version: an engine that starts on a live table of another version
rebuilds it beside the live one by itself, and swaps it in when it has caught up; the same
version starts as before."""

from __future__ import annotations

import logging

import pytest

from adapters.eventstore import RecorderEventStore
from adapters.views import Tx, ViewDatabase
from domain.events import DomainEvent, OrderPlaced
from projections.base import Change, Projection
from projections.runner import ProjectionRunner
from projections.state import current_table
from tests.integration.test_projections import backend, order_events

__all__ = ["backend"]  # the fixture, on SQLite and PostgreSQL


class Placed(Projection):
    """Version 1: the orders placed."""

    name = "placed"
    topics = (OrderPlaced,)
    schema = ("CREATE TABLE IF NOT EXISTS {t} (order_id TEXT PRIMARY KEY)",)

    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> Change | None:
        del position
        tx.execute(f"INSERT INTO {table} (order_id) VALUES (%s)", (str(event.originator_id),))  # noqa: S608
        return None


class PlacedWithOwner(Placed):
    """Version 2: each with its owner, in a column of its own."""

    version = 2
    schema = ("CREATE TABLE IF NOT EXISTS {t} (order_id TEXT PRIMARY KEY, owner TEXT NOT NULL)",)

    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> Change | None:
        del position
        assert isinstance(event, OrderPlaced)
        tx.execute(
            f"INSERT INTO {table} (order_id, owner) VALUES (%s, %s)",  # noqa: S608
            (str(event.originator_id), event.owner),
        )
        return None


def started(
    backend: tuple[RecorderEventStore, ViewDatabase], projection: Projection
) -> ProjectionRunner:
    """A runner as an engine's start-up makes it (``ensure``), run until it has caught up."""
    store, views = backend
    runner = ProjectionRunner(store, views, projection, retire_after=0)
    runner.ensure()
    runner.catch_up()
    return runner


def test_a_new_version_rebuilds_by_itself_and_the_same_one_does_not(
    backend: tuple[RecorderEventStore, ViewDatabase], caplog: pytest.LogCaptureFixture
) -> None:
    store, views = backend
    for _ in range(3):
        store.save(order_events("created"))
    assert started(backend, Placed()).state().generation == 1

    with caplog.at_level(logging.WARNING, logger="projections.runner"):
        runner = ProjectionRunner(store, views, PlacedWithOwner(), retire_after=0)
        asked = runner.ensure()
    assert (asked.generation, asked.rebuild_generation) == (1, 2)  # the live one still serves
    assert "table is of version 1, this engine's is 2; rebuilding" in caplog.text
    runner.catch_up()
    assert runner.state().generation == 2
    rows = views.query(f"SELECT owner FROM {current_table(views, 'placed')}")  # noqa: S608
    assert [row[0] for row in rows] == ["alice"] * 3

    again = ProjectionRunner(store, views, PlacedWithOwner()).ensure()
    assert (again.generation, again.rebuild_generation) == (2, None)


def test_a_table_built_before_versions_were_kept_is_version_1(
    backend: tuple[RecorderEventStore, ViewDatabase],
) -> None:
    """An engine of this release starting on read models an earlier release built (no version
    recorded) rebuilds nothing whose version is still 1."""
    store, views = backend
    store.save(order_events("created"))
    started(backend, Placed())
    with views.transaction() as tx:
        tx.execute("DELETE FROM projection_versions")
    state = ProjectionRunner(store, views, Placed()).ensure()
    assert (state.generation, state.rebuild_generation) == (1, None)
