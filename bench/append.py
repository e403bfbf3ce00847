"""Appends: K threads saving distinct orders through the engine's one save path
(``RecorderEventStore.save``, with its group commit), against K threads doing raw psycopg
single-row INSERT + commit into a plain table of the same database, in the same run.

Each save is one ``OrderPlaced`` of a new order (one event, one row), so both sides write one
row per commit request. Three runs each, medians printed, and the ratio save ÷ raw.

    .venv/bin/python bench/append.py --database postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/append.py --database postgresql://… --threads 8 --seconds 5
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
from psycopg import sql

from adapters.eventstore import RecorderEventStore, open_event_store
from domain import order as rules
from domain.events import LineItem
from entrypoints.settings import postgres_env

RUNS = 3
EMAIL = "bench@example.com"
ITEMS = [LineItem(product_id="p", quantity=1, unit_price=Decimal("6.99"))]


def main() -> None:
    """Parse arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="a postgresql:// URL")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    schema = f"append_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.database, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        admin.execute(
            sql.SQL("CREATE TABLE {}.raw (id bigserial primary key, body bytea)").format(
                sql.Identifier(schema)
            )
        )
        store = open_event_store(postgres_env(args.database, schema))
        try:
            measure(store, args.database, schema, args.threads, args.seconds)
        finally:
            store.close()
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def measure(
    store: RecorderEventStore, database: str, schema: str, threads: int, seconds: float
) -> None:
    """Alternate raw and engine runs; print each and the medians."""
    raw_rates, save_rates = [], []
    for run in range(1, RUNS + 1):
        raw_rates.append(rate(threads, seconds, lambda: _raw_writer(database, schema)))
        save_rates.append(rate(threads, seconds, lambda: _engine_writer(store)))
        print(f"run {run}: raw {raw_rates[-1]:.0f}/s, save {save_rates[-1]:.0f}/s")
    raw, save = statistics.median(raw_rates), statistics.median(save_rates)
    print(f"threads: {threads}")
    print(f"raw_insert_commit_per_second: {raw:.0f}")
    print(f"engine_saves_per_second: {save:.0f}")
    print(f"ratio_save_to_raw: {save / raw:.2f}")


Writer = tuple[Callable[[], None], Callable[[], None]]  # write once; close


def rate(threads: int, seconds: float, writer: Callable[[], Writer]) -> float:
    """Writes per second of ``threads`` threads, each calling its own writer until time is up."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()

    def work(index: int) -> None:
        write, close = writer()
        start.wait()
        while not stop.is_set():
            write()
            counts[index] += 1
        close()

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.monotonic()
    time.sleep(seconds)
    stop.set()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.monotonic() - began)


def _raw_writer(database: str, schema: str) -> Writer:
    conn = psycopg.connect(database)
    insert = sql.SQL("INSERT INTO {}.raw (body) VALUES (%s)").format(sql.Identifier(schema))
    body = b"x" * 400

    def write() -> None:
        conn.execute(insert, (body,))
        conn.commit()

    return write, conn.close


def _engine_writer(store: RecorderEventStore) -> Writer:
    def write() -> None:
        now = datetime.now(UTC)
        store.save(
            rules.place(
                uuid.uuid4(), owner="bench", email=EMAIL, currency="eur", items=ITEMS, now=now
            )
        )

    return write, lambda: None


if __name__ == "__main__":
    main()
