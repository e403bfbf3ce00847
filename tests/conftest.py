"""Shared fixtures: real PostgreSQL schemas, real Redis namespaces, event stores per backend."""

from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import psycopg
import pytest
import redis

from adapters.eventstore import RecorderEventStore, open_event_store
from entrypoints.settings import postgres_env as engine_postgres_env
from harness.servers import moto_server

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(autouse=True)
def _take_turns(request: pytest.FixtureRequest) -> Iterator[None]:
    """Under pytest-xdist (``make test``), a test marked ``alone`` runs while no other test
    does: it starts a deployment of several engine processes, or cuts shared parts, and with
    another test beside it PostgreSQL's 100 connections and this machine's two cores do not
    suffice. Other tests share. A test waiting to run alone lets no new test start before it
    (a turnstile), so it is never starved."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        yield
        return
    alone = request.node.get_closest_marker("alone") is not None
    base = Path(tempfile.gettempdir()) / f"bitloot-tests-{run}"
    turnstile = _flock(base.with_suffix(".turnstile"), fcntl.LOCK_EX)
    turn = _flock(base.with_suffix(".lock"), fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
    turnstile.close()
    try:
        yield
    finally:
        turn.close()


def _flock(path: Path, mode: int) -> TextIO:
    """``path`` opened and locked (``flock``); closing it releases the lock."""
    handle = path.open("a")
    fcntl.flock(handle, mode)
    return handle


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    yield name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def redis_namespace() -> Iterator[str]:
    """A Redis key namespace of its own, cleared afterwards."""
    namespace = f"bitloot-test-{uuid.uuid4().hex[:8]}"
    yield namespace
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(f"{namespace}*"):
        client.delete(key)
    client.close()


def postgres_env(schema: str) -> dict[str, str]:
    """``eventsourcing`` settings for the test database (``TEST_DATABASE_URL``) and
    ``schema``, as the engine makes them but with the library's own pool sizes."""
    env = engine_postgres_env(POSTGRES_URL, schema)
    for pool_size in ("POSTGRES_POOL_SIZE", "POSTGRES_MAX_OVERFLOW"):
        del env[pool_size]
    return env


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[RecorderEventStore]:
    """The event store on each backend the engine supports."""
    if request.param == "memory":
        env = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    elif request.param == "sqlite":
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": f"{tmp_path}/es.db"}
    else:
        env = postgres_env(request.getfixturevalue("pg_schema"))
    event_store = open_event_store(env)
    yield event_store
    event_store.close()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server for the session."""
    with moto_server() as endpoint:
        yield endpoint
