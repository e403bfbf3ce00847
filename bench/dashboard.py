"""The console's dashboard with N orders in the store (100,000 by default), on the embedded
default: how long the engine takes to build its read models from the log, what
``GET /admin/dashboard`` costs, and the time to the dashboard's first paint in Chromium.

The orders are written straight through the engine's store, spread over the last 30 days: each
placed, invoiced, paid, reserved and fulfilled (with one key whose vault reference is made up:
nothing reads it), or, one in thirty, failed at the supplier. Then ``bitloot serve`` starts on
that store and builds every projection from the first event; the time until all are caught up is
printed. The dashboard's answer is timed over HTTP (median of 20, by hour and by day) against the
same figures computed as the dashboard computed them before the ``sales`` read model (one scan of
every fulfilled order, in this process, on the same read-model database). Chromium then signs in,
opens the dashboard and reports its first contentful paint and when the five charts are drawn.
The page's weight is every byte it loads.

    .venv/bin/python bench/dashboard.py [-n 100000] [--keep DIR] [--screenshot PNG]

With ``--keep DIR`` the store is kept, and a second run on the same folder serves it again
without filling it (its read models then are already built).
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

from adapters.views import SQLiteViews
from domain import order as rules
from domain import payments, supply
from domain.events import DomainEvent, LineItem
from domain.order import DeliveredKey
from domain.payments import PaymentNotice
from projections.state import current_table

if not __package__:  # run as ``python bench/dashboard.py``: the repository is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.shop import write_orders

BITLOOT = str(Path(sys.executable).with_name("bitloot"))
NOW = datetime.now(UTC)
PRICE = Decimal("6.99")
ITEMS = [LineItem(product_id="p", quantity=1, unit_price=PRICE, priced_cost=Decimal("5.79"))]
ASSETS = ("admin.css", "admin.js", "blocks.js", "live.js", "catalog.js", "attention.js",
          "actions.js", "dashboard.js", "charts.js", "favicon.svg")  # fmt: skip


def main() -> None:
    """Fill, serve, time; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--orders", type=int, default=100_000)
    parser.add_argument("--keep", help="fill this folder (kept afterwards), not a temporary one")
    parser.add_argument("--screenshot", help="save the dashboard as this PNG (1280 px wide)")
    args = parser.parse_args()
    with _folder(args.keep) as folder:
        env = {**os.environ, "VAR_DIR": f"{folder}/var", "JWT_SECRET": "bench-" + "x" * 40,
               "PORT": "18931", "CATALOG_SYNC_INTERVAL_S": "3600"}  # fmt: skip
        if (Path(env["VAR_DIR"]) / "bitloot.db").exists():
            print(f"serving the store already in {folder}")
        else:
            started = time.perf_counter()
            events = fill(env, args.orders)
            print(f"filled: {args.orders:,} orders, {events:,} events in "
                  f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        with serving(env) as (url, built_s):
            print(f"read models built from the log at start: {built_s:.0f} s")
            token = _token(env)
            with httpx.Client(base_url=url, timeout=60,
                              headers={"Authorization": f"Bearer {token}"}) as admin:  # fmt: skip
                for by in ("hour", "day"):
                    answer = timed_get(admin, "/admin/dashboard", by)
                    print(f"GET /admin/dashboard?by={by}: median {answer * 1000:.1f} ms (20 runs)")
            baseline = scan_of_orders(Path(env["VAR_DIR"]))
            print(f"the same figures by a scan of every fulfilled order (before): "
                  f"median {baseline * 1000:.1f} ms (5 runs, in process, no HTTP)")  # fmt: skip
            weights(url, token)
            first_paint(url, token, args.screenshot)


@contextmanager
def _folder(keep: str | None) -> Iterator[str]:
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="bitloot-dashboard-") as folder:
        yield folder


def fill(env: dict[str, str], orders: int) -> int:
    """Write ``orders`` orders over the last 30 days through the engine's store."""
    rng = random.Random(7)  # noqa: S311 - made-up orders, not secrets
    return write_orders(env, orders, lambda _engine: lambda: an_order(rng))


def an_order(rng: random.Random) -> list[DomainEvent]:
    """Placed some time in the last 30 days; fulfilled 50 ms to a few seconds after payment,
    or (one in thirty) failed at the supplier."""
    order_id = uuid.uuid4()
    placed = NOW - timedelta(seconds=rng.uniform(60, 30 * 86400))
    paid_at = placed + timedelta(seconds=rng.uniform(5, 120))
    done_at = paid_at + timedelta(milliseconds=rng.lognormvariate(5.5, 0.8))
    events = rules.place(order_id, owner=f"c{rng.randrange(5000)}", email="bench@example.com",
                         currency="eur", items=ITEMS, now=placed)  # fmt: skip
    events += payments.invoice_created(rules.fold(events), invoice_id="i", invoice_url="u",
                                       now=placed)  # fmt: skip
    events += payments.payment_notified(rules.fold(events), _paid(), paid_at)
    if rng.random() < 1 / 30:
        return events + supply.supplier_failed(rules.fold(events), reason="gone", now=done_at)
    key = DeliveredKey(key_id="k1", product_id="p", vault_ref=f"bench/{order_id}",
                       fingerprint="0" * 64, content_type="text/plain")  # fmt: skip
    return events + supply.reserved(rules.fold(events), supplier_order_id="K", now=done_at,
                                    receipts=[key])  # fmt: skip


def _paid() -> PaymentNotice:
    return PaymentNotice(payment_id="1", payment_status="finished", invoice_id="i",
                         price_amount=PRICE, price_currency="eur", actually_paid=PRICE,
                         pay_amount=PRICE)  # fmt: skip


@contextmanager
def serving(env: dict[str, str]) -> Iterator[tuple[str, float]]:
    """``bitloot serve`` on the filled store; its URL once every projection has caught up,
    and how long that took from the start of the process."""
    log = Path(env["VAR_DIR"]) / "serve.log"
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen([BITLOOT, "serve"], env=env, stdout=out, stderr=out)  # noqa: S603
    url = f"http://127.0.0.1:{env['PORT']}"
    try:
        token = _token(env)
        with httpx.Client(base_url=url, timeout=10,
                          headers={"Authorization": f"Bearer {token}"}) as admin:  # fmt: skip
            while not _caught_up(admin):
                if process.poll() is not None:
                    raise SystemExit(f"bitloot serve stopped; see {log}")
                time.sleep(1)
        yield url, time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=30)


def _caught_up(admin: httpx.Client) -> bool:
    try:
        states = admin.get("/admin/projections").json()
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(states, list) and all(
        s["state"] == "live" and s["lag_events"] == 0 for s in states
    )


def _token(env: dict[str, str]) -> str:
    made = subprocess.run([BITLOOT, "token", "--sub", "ops", "--role", "admin"], env=env,  # noqa: S603
                          capture_output=True, text=True, check=True)  # fmt: skip
    return made.stdout.strip().splitlines()[-1]


def timed_get(admin: httpx.Client, path: str, by: str) -> float:
    times = []
    for _ in range(20):
        start = time.perf_counter()
        answer = admin.get(path, params={"by": by})
        times.append(time.perf_counter() - start)
        answer.raise_for_status()
    return statistics.median(times)


def scan_of_orders(var_dir: Path) -> float:
    """The dashboard's figures as computed before the sales read model: every fulfilled
    order's row read and its latency computed, on each request."""
    views = SQLiteViews(var_dir / "views.db")
    table = current_table(views, "orders")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        rows = views.query(f"SELECT currency, total, paid_at, fulfilled_at FROM {table} "  # noqa: S608
                           "WHERE status = 'fulfilled'")  # fmt: skip
        revenue: dict[str, Decimal] = {}
        latencies = []
        for currency, total, paid_at, fulfilled_at in rows:
            revenue[currency] = revenue.get(currency, Decimal(0)) + Decimal(total)
            elapsed = datetime.fromisoformat(fulfilled_at) - datetime.fromisoformat(paid_at)
            latencies.append(elapsed.total_seconds() * 1000)
        ordered = sorted(latencies)
        statistics.median(ordered)
        times.append(time.perf_counter() - start)
    views.close()
    return statistics.median(times)


def weights(url: str, token: str) -> None:
    """Every byte the console loads once signed in: its page and each asset, as sent and as
    gzip would."""
    total = packed = 0
    bearer = {"Authorization": f"Bearer {token}"}  # without it, /admin is the sign-in page
    for path in ("/admin", *(f"/admin/static/{name}" for name in ASSETS)):
        answer = httpx.get(url + path, headers=bearer)
        answer.raise_for_status()
        total, packed = total + len(answer.content), packed + len(gzip.compress(answer.content))
    print(f"page weight: {total / 1024:.1f} KiB in {1 + len(ASSETS)} files "
          f"({packed / 1024:.1f} KiB gzipped; served uncompressed)")  # fmt: skip


def first_paint(url: str, token: str, screenshot: str | None) -> None:
    """Chromium signs in and opens the dashboard: first contentful paint, and the time at
    which its five charts are drawn (both from the start of the page's navigation)."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - a development dependency

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium",
                                         args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        paints, drawn = [], []
        for _ in range(5):
            page = browser.new_context(
                base_url=url, viewport={"width": 1280, "height": 900}
            ).new_page()
            page.goto("/admin")
            page.get_by_label("Admin token").fill(token)
            with page.expect_navigation():
                page.get_by_role("button", name="Sign in").click()
            page.locator("#dash-charts svg").nth(4).wait_for()
            drawn.append(page.evaluate("performance.now()"))
            paints.append(page.evaluate(
                "performance.getEntriesByName('first-contentful-paint')[0].startTime"))  # fmt: skip
            if screenshot:
                page.screenshot(path=screenshot, full_page=True)
            page.context.close()
        browser.close()
    print(f"dashboard in Chromium: first contentful paint median {statistics.median(paints):.0f} "
          f"ms, charts drawn at {statistics.median(drawn):.0f} ms (5 loads)")  # fmt: skip


if __name__ == "__main__":
    main()
