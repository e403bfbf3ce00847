"""End-to-end benchmark: N orders from placement to fulfilment against a running engine.

The engine must serve the built-in sandboxes (``KINGUIN_BASE_URL`` and ``NOWPAYMENTS_BASE_URL``
unset). The script places N orders, creates their invoices, makes the NOWPayments sandbox send a
``finished`` IPN for each, then polls every order's status from a bounded thread pool until all
are fulfilled or the deadline passes. It prints plain-text figures:

- the IPN→fulfilled latency of each order, read from the order's own events (``OrderFulfilled``
  timestamp minus ``OrderPaid`` timestamp, both stamped by the engine when it recorded them), so
  polling granularity does not inflate it;
- fulfilled orders per second over the whole run (first ``POST /orders`` to the last
  ``OrderFulfilled``);
- as a baseline from the same run, the median round trip of ``GET /healthz``.

Only loopback URLs are accepted: the figures compare the engine's clock with this machine's.

    .venv/bin/python bench/e2e.py --url http://127.0.0.1:8000 -n 50 --jwt-secret "$JWT_SECRET"
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TERMINAL = frozenset({"fulfilled", "fulfillment_failed", "payment_failed", "underpaid"})
PRODUCT_ID = "5c9b5f6b2539a4e8f172916a"

T = TypeVar("T")
R = TypeVar("R")


class BenchError(Exception):
    """The run could not be carried out (refused URL, missing token, failing request)."""


@dataclass(frozen=True)
class Outcome:
    """How one order ended: its last status and, when fulfilled, its event timestamps."""

    order_id: str
    status: str
    paid_at: datetime | None = None
    fulfilled_at: datetime | None = None

    @property
    def latency_ms(self) -> float | None:
        """IPN (``OrderPaid``) to ``OrderFulfilled``, in milliseconds."""
        if self.paid_at is None or self.fulfilled_at is None:
            return None
        return (self.fulfilled_at - self.paid_at).total_seconds() * 1000


class Deadline:
    """One overall time limit shared by every loop of the run."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        """Seconds remaining (never negative)."""
        return max(0.0, self._end - time.monotonic())

    def passed(self) -> bool:
        """Whether the time is up."""
        return self.left() == 0.0


class Phases:
    """Wall time of each phase of the run, for reading the figures."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.figures: list[tuple[str, str]] = []

    def mark(self, name: str) -> None:
        """End the current phase under ``name`` and start the next."""
        now = time.perf_counter()
        self.figures.append((name, f"{now - self._last:.2f}"))
        self._last = now


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    args = _parser().parse_args(argv)
    try:
        _check_loopback(args.url)
        token = _token(args)
        figures = run(args, token)
    except (BenchError, httpx.HTTPError) as failure:
        print(f"benchmark failed: {failure!r}", file=sys.stderr)
        return 1
    for name, value in figures:
        print(f"{name}: {value}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="engine base URL")
    parser.add_argument("-n", "--orders", type=int, default=50, help="orders to place (1-1000)")
    parser.add_argument(
        "--jwt-secret",
        default=os.environ.get("JWT_SECRET"),
        help="the engine's JWT_SECRET, to mint a user token (default: env JWT_SECRET)",
    )
    parser.add_argument("--token", help="a bearer token to use instead of minting one")
    parser.add_argument("--admin-token", help="an admin token (the payment simulator needs one)")
    parser.add_argument("--workers", type=int, default=8, help="thread pool size (1-64)")
    parser.add_argument("--deadline", type=float, default=120.0, help="overall limit, seconds")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between polls")
    parser.add_argument("--healthz-samples", type=int, default=200, help="baseline requests")
    return parser


def _check_loopback(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK_HOSTS:
        raise BenchError(f"--url must be an http(s) loopback address, not {url!r}")


def _token(args: argparse.Namespace, role: str = "user") -> str:
    given = args.token if role == "user" else args.admin_token
    if given:
        return str(given)
    if not args.jwt_secret:
        raise BenchError(f"give --{'admin-' if role == 'admin' else ''}token, or --jwt-secret")
    from entrypoints.http.auth import mint_token  # noqa: PLC0415 - only when minting

    return mint_token(args.jwt_secret, f"bench-{secrets.token_hex(4)}", role)


def run(args: argparse.Namespace, token: str) -> list[tuple[str, str]]:
    """Baseline, then place → pay → simulate → poll; return the figures as (name, value)."""
    count = min(max(args.orders, 1), 1000)
    workers = min(max(args.workers, 1), 64)
    deadline = Deadline(args.deadline)
    limits = httpx.Limits(max_connections=workers + 2, max_keepalive_connections=workers + 2)
    with (
        httpx.Client(
            base_url=args.url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(15.0),
            limits=limits,
            trust_env=False,
        ) as http,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bench") as pool,
    ):
        healthz_ms = _healthz_median(http, min(max(args.healthz_samples, 1), 10_000), deadline)
        started = datetime.now(UTC)
        phases = Phases()
        order_ids = _map(pool, lambda _i: _place(http), range(count), deadline)
        phases.mark("place_seconds")
        invoice_ids = _map(pool, lambda oid: _pay(http, oid), order_ids, deadline)
        phases.mark("payments_create_seconds")
        admin = {"Authorization": f"Bearer {_token(args, 'admin')}"}
        _map(pool, lambda iid: _simulate(http, iid, admin), invoice_ids, deadline)
        phases.mark("ipn_send_seconds")
        poll = max(args.poll_interval, 0.01)
        outcomes = _map(pool, lambda oid: _await(http, oid, poll, deadline), order_ids, deadline)
    return [*_figures(count, outcomes, started, healthz_ms), *phases.figures]


def _map(
    pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T], deadline: Deadline
) -> list[R]:
    """Run ``fn`` over ``items`` in the pool; every result, in order, before the deadline."""
    futures = [pool.submit(fn, item) for item in items]
    try:
        return [future.result(timeout=deadline.left()) for future in futures]
    except TimeoutError:
        for future in futures:
            future.cancel()
        raise BenchError("deadline passed") from None


def _healthz_median(http: httpx.Client, samples: int, deadline: Deadline) -> float:
    timings: list[float] = []
    for _ in range(samples):
        if deadline.passed():
            break
        begun = time.perf_counter()
        _ok(http.get("/healthz"))
        timings.append((time.perf_counter() - begun) * 1000)
    if not timings:
        raise BenchError("deadline passed before the baseline")
    return statistics.median(timings)


def _place(http: httpx.Client) -> str:
    body = {
        "email": "bench@example.com",
        "currency": "eur",
        "items": [{"product_id": PRODUCT_ID, "quantity": 1}],
    }
    return str(_ok(http.post("/orders", json=body))["id"])


def _pay(http: httpx.Client, order_id: str) -> str:
    return str(_ok(http.post("/payments/create", json={"order_id": order_id}))["payment_id"])


def _simulate(http: httpx.Client, invoice_id: str, admin: dict[str, str]) -> None:
    path = f"/sandbox/nowpayments/payments/{invoice_id}/simulate"
    result = _ok(http.post(path, json={"status": "finished"}, headers=admin))
    if result.get("ipn_status_code") != 200:
        raise BenchError(f"IPN for invoice {invoice_id} answered {result.get('ipn_status_code')}")


def _await(http: httpx.Client, order_id: str, interval: float, deadline: Deadline) -> Outcome:
    """Poll the order until it ends or the deadline passes; read its timestamps if fulfilled."""
    status = ""
    while not deadline.passed():
        status = str(_ok(http.get(f"/fulfillment/{order_id}/status"))["status"])
        if status in TERMINAL:
            break
        time.sleep(min(interval, deadline.left()))
    if status != "fulfilled":
        return Outcome(order_id, status or "unknown")
    stamps = {
        event["type"]: datetime.fromisoformat(event["timestamp"])
        for event in _ok(http.get(f"/orders/{order_id}/history"))
    }
    return Outcome(order_id, status, stamps.get("OrderPaid"), stamps.get("OrderFulfilled"))


def _figures(
    count: int, outcomes: list[Outcome], started: datetime, healthz_ms: float
) -> list[tuple[str, str]]:
    latencies = sorted(o.latency_ms for o in outcomes if o.latency_ms is not None)
    ends = [o.fulfilled_at for o in outcomes if o.fulfilled_at is not None]
    if not latencies or not ends:
        raise BenchError("no order was fulfilled before the deadline")
    span = (max(ends) - started).total_seconds()
    return [
        ("orders", str(count)),
        ("fulfilled", str(len(latencies))),
        ("ipn_to_fulfilled_median_ms", f"{statistics.median(latencies):.1f}"),
        ("ipn_to_fulfilled_p99_ms", f"{_nearest_rank(latencies, 0.99):.1f}"),
        ("run_seconds", f"{span:.2f}"),
        ("fulfilled_per_second", f"{len(latencies) / span:.1f}"),
        ("healthz_median_ms", f"{healthz_ms:.2f}"),
    ]


def _nearest_rank(ordered: list[float], fraction: float) -> float:
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def _ok(response: httpx.Response) -> Any:
    if response.is_error:
        request = response.request
        raise BenchError(f"{request.method} {request.url.path}: {response.status_code}")
    return response.json()


if __name__ == "__main__":
    raise SystemExit(main())
