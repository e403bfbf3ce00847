"""Catalog import speed against the built-in Kinguin sandbox, next to the raw speed of reading it.

Serves the Kinguin sandbox in-process over real HTTP (uvicorn in a thread) with about N products,
then, for each repeat and with a fresh event store (PostgreSQL schema or SQLite file), measures:

- reading the whole catalog page by page over HTTP (``GET /v1/products``, 100 a page) with httpx
  and decoding it (the baseline: no import can be faster than this);
- a first ``Catalog.sync(full=True)``: every product is new and written;
- a second ``sync(full=True)``: every product is compared, nothing is written;
- an incremental ``sync()`` (only what changed since the last sync started);
- the products projection catching up from position 0.

It prints the medians in products (or events) per second, the events appended, and the
import/raw ratio.

    .venv/bin/python bench/catalog.py --products 5000
    .venv/bin/python bench/catalog.py --products 5000 --database postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec
import psycopg
from litestar import Litestar

from adapters.eventstore import RecorderEventStore, open_event_store
from adapters.kinguin import KinguinClient
from adapters.views import PostgresViews, SQLiteViews, ViewDatabase
from application.catalog import Catalog, SyncReport
from entrypoints.settings import postgres_env
from projections.products import ProductsProjection
from projections.runner import ProjectionRunner
from sandboxes.kinguin import KinguinSandboxConfig, kinguin_sandbox

if not __package__:  # run as ``python bench/catalog.py``: the repository is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.servers import serving

BASE_PRODUCTS = 36  # the sandbox's own catalog, before ``extra_products``
PAGE = 100
TOLERANCE_PERCENT = Decimal(2)


class UtcClock:
    """The system's time, aware UTC."""

    def now(self) -> datetime:
        """Now."""
        return datetime.now(UTC)


@dataclass
class Run:
    """The figures of one repeat: seconds per phase, products seen, events appended."""

    raw_s: float = 0.0
    raw_products: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    appended: dict[str, int] = field(default_factory=dict)
    projection_s: float = 0.0
    projection_events: int = 0


def main() -> None:
    """Parse arguments, serve the sandbox, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--database", default="sqlite", help="'sqlite' or a postgresql:// URL")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.INFO)  # no per-request or per-sync log lines among the figures
    key = secrets.token_hex(16)
    config = KinguinSandboxConfig(
        api_key=key,
        webhook_secret=secrets.token_hex(16),
        webhook_url="http://127.0.0.1:9/unused",
        delay_s=0.0,
        extra_products=max(0, args.products - BASE_PRODUCTS),
    )
    app = Litestar(route_handlers=[kinguin_sandbox(config)])
    runs: list[Run] = []
    with serving(app) as url:
        base = f"{url}/sandbox/kinguin"
        for _ in range(args.repeat):
            with open_backend(args.database) as (store, views):
                runs.append(measure(base, key, store, views))
    report(runs, args.database)


@contextmanager
def open_backend(database: str) -> Iterator[tuple[RecorderEventStore, ViewDatabase]]:
    """A fresh store and view database, removed on exit."""
    if database == "sqlite":
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            env = {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": str(folder / "es.db"),
            }
            with _opened(open_event_store(env), SQLiteViews(folder / "views.db")) as pair:
                yield pair
        return
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        env = postgres_env(database, schema)
        with _opened(open_event_store(env), PostgresViews(database, schema)) as pair:
            yield pair
    finally:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def _opened(
    store: RecorderEventStore, views: ViewDatabase
) -> Iterator[tuple[RecorderEventStore, ViewDatabase]]:
    try:
        yield store, views
    finally:
        views.close()
        store.close()


def measure(base: str, key: str, store: RecorderEventStore, views: ViewDatabase) -> Run:
    """One repeat: raw read, the three syncs, the projection catch-up."""
    run = Run()
    with httpx.Client(base_url=base, headers={"X-Api-Key": key}, timeout=30) as http:
        started = time.perf_counter()
        run.raw_products = read_all(http)
        run.raw_s = time.perf_counter() - started
        catalog = Catalog(store, KinguinClient(http), UtcClock(), TOLERANCE_PERCENT)
        phases: list[tuple[str, Callable[[], SyncReport]]] = [
            ("first full sync", lambda: catalog.sync(full=True)),
            ("second full sync", lambda: catalog.sync(full=True)),
            ("incremental sync", catalog.sync),
        ]
        for name, work in phases:
            head = store.head()
            started = time.perf_counter()
            done = work()
            run.seconds[name] = time.perf_counter() - started
            run.seen[name] = done.seen
            run.appended[name] = store.head() - head
    runner = ProjectionRunner(store, views, ProductsProjection())
    runner.ensure()
    started = time.perf_counter()
    runner.catch_up()
    run.projection_s = time.perf_counter() - started
    run.projection_events = store.head()
    return run


def read_all(http: httpx.Client) -> int:
    """Read and decode every page of the catalog; return how many products came."""
    seen, page = 0, 1
    while True:
        response = http.get(
            "/v1/products", params={"page": page, "limit": PAGE, "sortBy": "kinguinId"}
        )
        response.raise_for_status()
        body = msgspec.json.decode(response.content)
        results, total = body["results"], body["item_count"]
        seen += len(results)
        if len(results) < PAGE or seen >= total:
            return seen
        page += 1


def report(runs: list[Run], database: str) -> None:
    """Print the medians of every figure."""
    n = len(runs)
    backend = "sqlite" if database == "sqlite" else "postgresql"
    products = runs[0].raw_products
    print(f"{products} products in the sandbox, {backend} store, median of {n} repeats")
    raw_rate = statistics.median(r.raw_products / r.raw_s for r in runs)
    print(f"raw HTTP read + decode:  {raw_rate:>10,.0f} products/s")
    first_rate = 0.0
    for name in ("first full sync", "second full sync", "incremental sync"):
        rate = statistics.median(_rate(r, name) for r in runs)
        seconds = statistics.median(r.seconds[name] for r in runs)
        seen = statistics.median(r.seen[name] for r in runs)
        appended = statistics.median(r.appended[name] for r in runs)
        first_rate = first_rate or rate
        figure = f"{rate:>10,.0f} products/s" if seen else f"{'-':>10} (nothing changed)"
        print(
            f"{name + ':':<24} {figure}  ({seen:,.0f} seen in {seconds * 1000:,.0f} ms, "
            f"{appended:,.0f} events appended)"
        )
    print(f"first import / raw read: {first_rate / raw_rate:>10.2f}")
    rate = statistics.median(r.projection_events / r.projection_s for r in runs)
    events = statistics.median(r.projection_events for r in runs)
    seconds = statistics.median(r.projection_s for r in runs)
    print(f"products projection:     {rate:>10,.0f} events/s  ({events:,.0f} in {seconds:.2f} s)")


def _rate(run: Run, name: str) -> float:
    seconds = run.seconds[name]
    return run.seen[name] / seconds if seconds else 0.0


if __name__ == "__main__":
    main()
