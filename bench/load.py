"""Load: many customers buying at once, against a running engine, measured from outside.

Each customer places an order (``POST /orders``), creates its invoice (``POST /payments/create``)
and has NOWPayments confirm it: the script sends the signed ``finished`` IPN itself, as the real
provider would, then waits until its order ends. Two modes:

- ``saturation``: N customers from C concurrent clients, as fast as the engine takes them;
- ``open``: customers arrive at a fixed rate (orders per second), whatever the engine's pace.

Two ways of waiting (``--watch``):

- ``feed`` (the default), as a shop front end: one admin websocket (``WS /ws/admin``, the token
  offered as ``Sec-WebSocket-Protocol: bearer, <JWT>``) open for the run, see ``bench/watch.py``;
  a customer learns that its order has ended from the feed (a message naming the order with a
  terminal status) and, as a fallback, polls ``GET /fulfillment/{id}/status`` every ``--poll``
  seconds (default 1.0) while its order is pending;
- ``poll``: each customer polls ``GET /fulfillment/{id}/status`` every ``--poll`` seconds
  (default 0.05), the first time right after its IPN.

It prints fulfilled orders per second, the server-side paid→fulfilled time (from the order's
own ``OrderPaid`` and ``OrderFulfilled`` timestamps) and the client-side IPN→"fulfilled seen"
time (seen: when the feed's message or the poll's answer came in; p50 and p99 of each), the
status polls made, with ``--watch feed`` how each end was seen (feed or poll), the feed's delay
(event time → message received, p50 and p99), its message count and anything unexpected it
sent, the event-loop lag p99 of the API process over the run (from its ``/metrics``), each
projection's largest lag in events (the log's Merkle tree among them, sampled every 0.5 s from
``/admin/projections``), the RSS of every ``bitloot`` process on this machine (at the end, and
when half of the orders had ended) and the CPU each used during the run (in cores, and ms per
fulfilled order), and, with ``--database``, the raw single-row INSERT+commit rate of that
PostgreSQL measured in the same run (the baseline for events appended per second).

The engine must mount the built-in sandboxes and let one address place many orders:

    KINGUIN_SANDBOX_DELAY=0 ORDERS_PER_MINUTE=1000000 ORDERS_PER_MINUTE_PER_IP=1000000 make run
    .venv/bin/python bench/load.py saturation -n 2000 -c 64
    .venv/bin/python bench/load.py open --rate 50 -n 1000
    .venv/bin/python bench/load.py saturation -n 2000 -c 64 --watch poll --poll 0.05

The secrets (JWT_SECRET, NOWPAYMENTS_IPN_SECRET) are read from ``--var-dir`` (default ./var,
where ``make run`` generates them) unless given in the environment. Only loopback URLs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from adapters.nowpayments_signature import canonical_body, sign
from entrypoints.http.auth import mint_token

if not __package__:  # run as ``python bench/load.py``: the repository is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import cpu_seconds_by_process, raw_insert_rate, rss_by_process
from bench.watch import Ended, Feed, FeedError, watching

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
PRODUCT_ID = "5c9b5f6b2539a4e8f172916a"
TERMINAL = frozenset({"fulfilled", "fulfillment_failed", "payment_failed", "underpaid"})
EVENTS_PER_ORDER = 14  # placed … notified, for the events-per-second figure
LAG = "bitloot_event_loop_lag_seconds"
DEFAULT_POLL_S = {"feed": 1.0, "poll": 0.05}


class BenchError(Exception):
    """The run could not be carried out."""


@dataclass
class Customer:
    """One customer's order and what the client saw of it."""

    index: int
    order_id: str = ""
    ipn_sent: float = 0.0
    fulfilled_seen: float = 0.0
    status: str = ""
    seen_via: str = ""  # "feed" or "poll"
    feed_delay_s: float | None = None
    polls: int = 0
    paid_at: datetime | None = None
    fulfilled_at: datetime | None = None


@dataclass
class Run:
    """The settings of a run and its customers."""

    url: str
    jwt_secret: str
    ipn_secret: str
    poll_s: float
    deadline: float
    customers: list[Customer] = field(default_factory=list)
    feed: Feed | None = None  # None: --watch poll


def main(argv: list[str] | None = None) -> int:
    """Run the load and print the figures."""
    args = _parser().parse_args(argv)
    try:
        _check_loopback(args.url)
        keys = _secrets(Path(args.var_dir))
        run = Run(
            args.url.rstrip("/"),
            keys["JWT_SECRET"],
            keys["NOWPAYMENTS_IPN_SECRET"],
            DEFAULT_POLL_S[args.watch] if args.poll is None else args.poll,
            time.monotonic() + args.deadline,
        )
        figures = asyncio.run(_measure(run, args))
    except (BenchError, FeedError, httpx.HTTPError) as failure:
        print(f"load failed: {failure!r}", file=sys.stderr)
        return 1
    for name, value in figures:
        print(f"{name}: {value}")
    return 0


def _check_loopback(url: str) -> None:
    if urlsplit(url).hostname not in LOOPBACK:
        raise BenchError(f"--url must be a loopback address, not {url!r}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("saturation", "open"))
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("-n", "--orders", type=int, default=2000, help="customers (1-20000)")
    parser.add_argument("-c", "--clients", type=int, default=64, help="saturation: concurrency")
    parser.add_argument("--rate", type=float, default=50.0, help="open: orders per second")
    parser.add_argument(
        "--watch", choices=("feed", "poll"), default="feed", help="how customers learn of the end"
    )
    parser.add_argument(
        "--poll", type=float, help="status poll interval, seconds (feed: 1.0, poll: 0.05)"
    )
    parser.add_argument("--deadline", type=float, default=600.0, help="overall limit, seconds")
    parser.add_argument("--var-dir", default="var", help="where make run keeps its secrets")
    parser.add_argument("--database", help="postgresql:// URL for the raw INSERT baseline")
    return parser


def _secrets(var_dir: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    path = var_dir / "secrets.json"
    if path.exists():
        found |= json.loads(path.read_text())
    for name in ("JWT_SECRET", "NOWPAYMENTS_IPN_SECRET"):
        found[name] = os.environ.get(name) or found.get(name, "")
        if not found[name]:
            raise BenchError(f"{name}: set it, or point --var-dir at the engine's VAR_DIR")
    return found


async def _measure(run: Run, args: argparse.Namespace) -> list[tuple[str, str]]:
    count = min(max(args.orders, 1), 20_000)
    run.customers = [Customer(i) for i in range(count)]
    # idle connections dropped before the server's keep-alive timeout (uvicorn: 5 s) closes them
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256, keepalive_expiry=2)
    async with httpx.AsyncClient(
        base_url=run.url, timeout=30, limits=limits, trust_env=False
    ) as http:
        await _await_catalog(http)
        async with _watcher(run, args.watch) as run.feed:
            figures = await _load(run, http, args)
    if args.database:
        rate = raw_insert_rate(args.database)
        fulfilled_per_s = float(dict(figures)["fulfilled_per_second"])
        figures.append(("raw_insert_commit_per_second", f"{rate:.0f}"))
        figures.append(
            ("events_per_second_vs_raw_insert", f"{fulfilled_per_s * EVENTS_PER_ORDER / rate:.3f}")
        )
    return figures


def _watcher(run: Run, watch: str) -> contextlib.AbstractAsyncContextManager[Feed | None]:
    """The admin feed open for the run (``--watch feed``), else nothing."""
    if watch == "poll":
        return contextlib.nullcontext(None)
    return watching(run.url, lambda: mint_token(run.jwt_secret, "load-feed", "admin"), TERMINAL)


async def _load(
    run: Run, http: httpx.AsyncClient, args: argparse.Namespace
) -> list[tuple[str, str]]:
    """Run the customers; the figures measured over the run."""
    halfway: dict[str, float] = {}
    lag_before = await _lag_buckets(http)
    cpu_before = cpu_seconds_by_process()
    started = time.monotonic()
    sampler = asyncio.create_task(_sample_rss(run, halfway))
    lags: dict[str, int] = {}
    lag_sampler = asyncio.create_task(_sample_projection_lag(run, http, lags))
    if args.mode == "saturation":
        await _saturate(run, http, min(max(args.clients, 1), 512))
    else:
        await _arrive(run, http, max(args.rate, 0.1))
    elapsed = time.monotonic() - started
    cpu_used = {n: t - cpu_before.get(n, 0.0) for n, t in cpu_seconds_by_process().items()}
    sampler.cancel()
    lag_sampler.cancel()
    at_end = await _projection_lag(run, http)
    lag_p99 = _quantile(_delta(await _lag_buckets(http), lag_before), 0.99)
    await _read_timestamps(run, http)
    figures = _figures(run, elapsed, args) + _feed_figures(run)
    figures.append(("event_loop_lag_p99_ms", "n/a" if lag_p99 is None else f"{lag_p99 * 1000:.1f}"))
    figures += [
        (f"rss_mb[{name}]", f"{mb:.0f} (halfway {halfway.get(name, math.nan):.0f})")
        for name, mb in rss_by_process()
    ]
    figures += [
        (f"projection_lag_max_events[{name}]", f"{lags.get(name, 0)} (at the end {lag})")
        for name, lag in at_end.items()
    ]
    fulfilled = sum(1 for c in run.customers if c.status == "fulfilled")
    figures += [
        (f"cpu[{name}]", f"{used / elapsed:.2f} cores, {used * 1000 / fulfilled:.1f} ms per order")
        for name, used in sorted(cpu_used.items())
    ]
    engine = sum(used for name, used in cpu_used.items() if not name.startswith("sandbox"))
    figures.append(
        ("cpu[engine]", f"{engine / elapsed:.2f} cores, {engine * 1000 / fulfilled:.1f} ms per "
                        "order (every serve and worker process; a sandbox of its own apart)")
    )  # fmt: skip
    return figures


async def _sample_projection_lag(run: Run, http: httpx.AsyncClient, lags: dict[str, int]) -> None:
    """Every 0.5 s, the largest lag (events) of each projection so far (the log's tree too)."""
    while True:
        for name, lag in (await _projection_lag(run, http)).items():
            lags[name] = max(lags.get(name, 0), lag)
        await asyncio.sleep(0.5)


async def _projection_lag(run: Run, http: httpx.AsyncClient) -> dict[str, int]:
    token = mint_token(run.jwt_secret, "bench-admin", "admin")
    answer = await http.get("/admin/projections", headers={"Authorization": f"Bearer {token}"})
    return {p["name"]: int(p["lag_events"]) for p in answer.json()}


async def _await_catalog(http: httpx.AsyncClient, seconds: float = 60.0) -> None:
    """A freshly started engine imports its catalog in the background: wait for the product."""
    end = time.monotonic() + seconds
    while (await http.get(f"/products/{PRODUCT_ID}")).status_code != 200:
        if time.monotonic() > end:
            raise BenchError(f"product {PRODUCT_ID} not in the catalog after {seconds:.0f} s")
        await asyncio.sleep(0.2)


async def _saturate(run: Run, http: httpx.AsyncClient, clients: int) -> None:
    queue: asyncio.Queue[Customer] = asyncio.Queue()
    for customer in run.customers:
        queue.put_nowait(customer)

    async def client() -> None:
        while not queue.empty():
            await _buy(run, http, queue.get_nowait())

    await asyncio.gather(*(client() for _ in range(clients)))


async def _arrive(run: Run, http: httpx.AsyncClient, rate: float) -> None:
    begun = time.monotonic()
    tasks = []
    for customer in run.customers:
        await asyncio.sleep(max(begun + customer.index / rate - time.monotonic(), 0))
        tasks.append(asyncio.create_task(_buy(run, http, customer)))
    await asyncio.gather(*tasks)


async def _buy(run: Run, http: httpx.AsyncClient, customer: Customer) -> None:
    """Order, invoice, IPN; then wait until the order ends."""
    token = mint_token(run.jwt_secret, f"load-{customer.index}", "user")
    user = {"Authorization": f"Bearer {token}"}
    body = {"email": "load@example.com", "items": [{"product_id": PRODUCT_ID, "quantity": 1}]}
    order = _ok(await http.post("/orders", json=body, headers=user))
    customer.order_id = order["id"]
    invoice = _ok(await http.post("/payments/create", json={"order_id": order["id"]}, headers=user))
    ipn = canonical_body({
        "payment_id": 10**9 + secrets.randbelow(10**9), "invoice_id": int(invoice["payment_id"]),
        "payment_status": "finished", "order_id": order["id"],
        "price_amount": float(order["total"]), "price_currency": order["currency"],
        "pay_currency": "btc", "actually_paid": 0.0002, "pay_amount": 0.0002,
    })  # fmt: skip
    customer.ipn_sent = time.monotonic()
    headers = {"x-nowpayments-sig": sign(run.ipn_secret, ipn), "content-type": "application/json"}
    _ok(await http.post("/webhooks/nowpayments/ipn", content=ipn, headers=headers))
    await _await_end(run, http, customer, user)


async def _await_end(
    run: Run, http: httpx.AsyncClient, customer: Customer, user: dict[str, str]
) -> None:
    """With the feed: wait for it to name the order's end, polling the status every
    ``poll_s`` meanwhile; without: poll every ``poll_s``, the first time at once."""
    while time.monotonic() < run.deadline:
        if run.feed is not None:
            wait = min(run.poll_s, run.deadline - time.monotonic())
            ended = await run.feed.wait(customer.order_id, wait)
            if ended is not None:
                _ended(customer, ended.status, "feed", ended)
                return
        customer.polls += 1
        answer = await http.get(f"/fulfillment/{customer.order_id}/status", headers=user)
        status = _ok(answer)["status"]
        if status in TERMINAL:
            _ended(customer, status, "poll", None)
            return
        if run.feed is None:
            await asyncio.sleep(run.poll_s)
    customer.status = "deadline"


def _ended(customer: Customer, status: str, via: str, told: Ended | None) -> None:
    customer.status = status
    customer.seen_via = via
    customer.fulfilled_seen = time.monotonic() if told is None else told.seen
    customer.feed_delay_s = None if told is None else told.delay_s


async def _read_timestamps(run: Run, http: httpx.AsyncClient) -> None:
    """Each fulfilled order's own OrderPaid and OrderFulfilled times (after the run)."""
    admin = {"Authorization": f"Bearer {mint_token(run.jwt_secret, 'load-admin', 'admin')}"}
    semaphore = asyncio.Semaphore(16)

    async def read(customer: Customer) -> None:
        async with semaphore:
            history = _ok(await http.get(f"/orders/{customer.order_id}/history", headers=admin))
        stamps = {e["type"]: datetime.fromisoformat(e["timestamp"]) for e in history}
        customer.paid_at = stamps.get("OrderPaid")
        customer.fulfilled_at = stamps.get("OrderFulfilled")

    await asyncio.gather(*(read(c) for c in run.customers if c.status == "fulfilled"))


def _figures(run: Run, elapsed: float, args: argparse.Namespace) -> list[tuple[str, str]]:
    fulfilled = [c for c in run.customers if c.status == "fulfilled"]
    server = sorted(
        (c.fulfilled_at - c.paid_at).total_seconds() * 1000
        for c in fulfilled
        if c.paid_at and c.fulfilled_at
    )
    client = sorted((c.fulfilled_seen - c.ipn_sent) * 1000 for c in fulfilled)
    if not server:
        raise BenchError("no order was fulfilled")
    mode = f"saturation, C={args.clients}" if args.mode == "saturation" else f"open, {args.rate}/s"
    mode += f", watch {args.watch} (poll every {run.poll_s:g} s)"
    return [
        ("mode", mode),
        ("orders", str(len(run.customers))),
        ("fulfilled", str(len(fulfilled))),
        ("run_seconds", f"{elapsed:.1f}"),
        ("fulfilled_per_second", f"{len(fulfilled) / elapsed:.1f}"),
        ("paid_to_fulfilled_p50_ms", f"{statistics.median(server):.0f}"),
        ("paid_to_fulfilled_p99_ms", f"{_rank(server, 0.99):.0f}"),
        ("ipn_to_fulfilled_seen_p50_ms", f"{statistics.median(client):.0f}"),
        ("ipn_to_fulfilled_seen_p99_ms", f"{_rank(client, 0.99):.0f}"),
        ("status_polls", str(sum(c.polls for c in run.customers))),
    ]


def _feed_figures(run: Run) -> list[tuple[str, str]]:
    """How the ends were seen, the feed's delay, and what it sent that was not expected."""
    if run.feed is None:
        return []
    via = {way: sum(1 for c in run.customers if c.seen_via == way) for way in ("feed", "poll")}
    delays = sorted(c.feed_delay_s * 1000 for c in run.customers if c.feed_delay_s is not None)
    notes = "; ".join(f"{note} x{count}" for note, count in run.feed.notes.most_common())
    figures = [("ended_seen_via", f"feed {via['feed']}, poll {via['poll']}")]
    if delays:
        figures.append(("feed_delay_p50_ms", f"{statistics.median(delays):.0f}"))
        figures.append(("feed_delay_p99_ms", f"{_rank(delays, 0.99):.0f}"))
    figures.append(("feed_messages", str(run.feed.messages)))
    figures.append(("feed_notes", notes or "none"))
    return figures


def _rank(ordered: list[float], fraction: float) -> float:
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


async def _lag_buckets(http: httpx.AsyncClient) -> dict[float, float]:
    """The API process's event-loop lag histogram: cumulative count by upper bound."""
    text = (await http.get("/metrics")).text
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == LAG:
            for sample in family.samples:
                if sample.name == f"{LAG}_bucket":
                    buckets[float(sample.labels["le"])] = sample.value
    return buckets


def _delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def _quantile(buckets: dict[float, float], fraction: float) -> float | None:
    """The upper bound of the bucket holding the quantile (Prometheus' buckets are
    cumulative); ``None`` without samples."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    wanted = fraction * buckets[bounds[-1]]
    return next(bound for bound in bounds if buckets[bound] >= wanted)


async def _sample_rss(run: Run, halfway: dict[str, float]) -> None:
    """Keep the RSS of every engine process as it was when half of the orders had ended."""
    while not halfway:
        if sum(1 for c in run.customers if c.status) * 2 >= len(run.customers):
            halfway.update(rss_by_process())
        await asyncio.sleep(0.5)


def _ok(response: httpx.Response) -> Any:
    if response.is_error:
        raise BenchError(f"{response.request.method} {response.request.url.path}: "
                         f"{response.status_code} {response.text[:200]}")  # fmt: skip
    return response.json()


if __name__ == "__main__":
    raise SystemExit(main())
