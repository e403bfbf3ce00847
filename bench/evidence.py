"""The log's Merkle tree: does its follower keep up with appends, and how long does one order's
evidence bundle take on a large log?

On a fresh event store (PostgreSQL schema or SQLite file), in one run:

1. **Live.** The tree's follower runs in its thread while ``--threads`` threads save orders
   (five events each, one save per order, the engine's save path). It prints the append rate,
   the follower's largest lag while they append, and how long it took to drain after.
2. **Maintenance rate.** The log is filled to ``--events`` events (bulk saves), then the tree
   catches up over everything it has not seen, batch by batch as the follower does. It prints
   that rate and its ratio to the append rate of step 1.
3. **Bundles.** ``--bundles`` random orders of the full log each get their bundle (leaves,
   inclusion proofs, signed checkpoint); it prints the p50 and p99 time and the bundle's size.

    .venv/bin/python -m bench.evidence --events 1000000 --database postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python -m bench.evidence --events 1000000 --database sqlite
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from uuid import UUID

from adapters.checkpoints import CheckpointTable
from adapters.eventstore import RecorderEventStore
from adapters.log_reader import LogReader
from adapters.signing import Ed25519Signer, new_seed
from adapters.views import ViewDatabase
from application.evidence import Evidence

if not __package__:  # run as ``python bench/evidence.py``: the repository is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rebuild import open_backend, paid_order
from entrypoints.bootstrap import SystemClock
from projections.merkle import MerkleTreeProjection, TreeTable
from projections.runner import ProjectionRunner

LIVE_ORDERS = 2_000
BULK_ORDERS_PER_SAVE = 200


def main() -> None:
    """Parse arguments, run the three steps, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="size of the log")
    parser.add_argument("--threads", type=int, default=8, help="threads saving orders (step 1)")
    parser.add_argument("--bundles", type=int, default=200, help="bundles timed (step 3)")
    parser.add_argument("--database", default="sqlite", help="'sqlite' or a postgresql:// URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store, views, cleanup = open_backend(args.database, Path(folder))
        try:
            tree = ProjectionRunner(store, views, MerkleTreeProjection(), batch_size=500)
            tree.ensure()
            append_rate = live(store, tree, args.threads)
            orders = fill(store, args.events)
            maintain(store, tree, append_rate)
            bundles(evidence_of(store, views), orders, args.bundles)
        finally:
            views.close()
            store.close()
            cleanup()


def live(store: RecorderEventStore, tree: ProjectionRunner, threads: int) -> float:
    """Step 1: appends from ``threads`` threads with the follower running; the append rate."""
    lags: list[int] = []
    reader = LogReader(store, [tree])
    reader.start()
    appending = threading.Event()
    appending.set()
    watcher = threading.Thread(target=watch_lag, args=(store, tree, appending, lags), daemon=True)
    watcher.start()
    started = time.perf_counter()
    workers = [
        threading.Thread(target=save_orders, args=(store, LIVE_ORDERS // threads))
        for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    appending.clear()
    watcher.join()
    drained = time.perf_counter()
    while tree.state().position < store.head():
        time.sleep(0.01)
    drain_s = time.perf_counter() - drained
    reader.stop()
    events = store.head()
    rate = events / elapsed
    print(f"live: {threads} threads saved {events:,} events at {rate:,.0f} events/s")
    print(
        f"live: the tree's follower lagged at most {max(lags, default=0):,} events "
        f"(median {statistics.median(lags or [0]):,.0f}); drained {drain_s * 1000:.0f} ms "
        "after the last save"
    )
    return rate


def watch_lag(
    store: RecorderEventStore, tree: ProjectionRunner, appending: threading.Event, lags: list[int]
) -> None:
    """Sample the follower's lag every 0.1 s while the appends go on."""
    while appending.is_set():
        lags.append(store.head() - tree.state().position)
        time.sleep(0.1)


def save_orders(store: RecorderEventStore, count: int) -> None:
    """One save per order, as the engine's use cases do."""
    for _ in range(count):
        store.save(paid_order())


def fill(store: RecorderEventStore, events: int) -> list[UUID]:
    """Fill the log to ``events`` events in bulk saves; the orders' ids."""
    started = time.perf_counter()
    orders: list[UUID] = []
    while store.head() < events:
        batch = [paid_order() for _ in range(BULK_ORDERS_PER_SAVE)]
        store.save([e for order in batch for e in order])
        orders.extend(order[0].originator_id for order in batch)
    elapsed = time.perf_counter() - started
    print(f"fill: the log holds {store.head():,} events ({elapsed:.0f} s of bulk saves)")
    return orders


def maintain(store: RecorderEventStore, tree: ProjectionRunner, append_rate: float) -> None:
    """Step 2: the tree catches up over the filled log, as its follower does."""
    before = tree.state().position
    started = time.perf_counter()
    tree.catch_up()
    elapsed = time.perf_counter() - started
    rate = (store.head() - before) / elapsed
    print(f"tree maintenance: {store.head() - before:,} events at {rate:,.0f} events/s")
    print(f"tree maintenance / live append rate: {rate / append_rate:.1f}")


def evidence_of(store: RecorderEventStore, views: ViewDatabase) -> Evidence:
    checkpoints = CheckpointTable(views)
    checkpoints.ensure()
    signer = Ed25519Signer.from_text(new_seed())
    return Evidence(store, TreeTable(views), checkpoints, signer, SystemClock())


def bundles(evidence: Evidence, orders: list[UUID], count: int) -> None:
    """Step 3: time the bundles of random orders (after one that signs the checkpoint)."""
    sample = random.sample(orders, min(count, len(orders)))
    evidence.bundle(sample[0])  # signs the checkpoint that the others reuse
    times, sizes = [], []
    for order_id in sample:
        started = time.perf_counter()
        bundle = evidence.bundle(order_id)
        times.append(time.perf_counter() - started)
        sizes.append(len(json.dumps(bundle)))
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    leaves = len(bundle["leaves"])
    print(
        f"bundle of one order ({leaves} events) on a log of {bundle['checkpoint']['tree_size']:,}: "
        f"p50 {statistics.median(times) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms "
        f"over {len(times)} orders"
    )
    print(f"bundle size: median {statistics.median(sizes):,.0f} bytes, max {max(sizes):,} bytes")


if __name__ == "__main__":
    main()
