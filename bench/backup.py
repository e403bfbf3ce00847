"""Backup and restore of a shop of N fulfilled orders, on the embedded default and, with
``--database``, on PostgreSQL (a schema of its own). The file vault on both, so that the
figures are the store's and the archive's; with ``--s3``, the embedded store again with the S3
vault on a local ``moto_server`` (the test suite's S3 server: the figures are its, not R2's).

The orders are written straight through the engine's store and key custody (placed, invoiced,
paid, reserved, one key sealed into the vault, fulfilled: 9 events and 2 vault objects each),
then ``bitloot backup --out`` and ``bitloot restore`` run as the operator runs them, and
``bitloot verify --log`` checks the restored log; wall times are printed.

    .venv/bin/python bench/backup.py -n 10000 [--s3] \\
        [--database postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg

from adapters.crypto import MasterKeys
from adapters.custody import EnvelopeCustody
from domain import order as rules
from domain import payments, supply
from domain.events import DomainEvent, LineItem
from domain.order import DeliveredKey
from domain.payments import PaymentNotice
from entrypoints.bootstrap import Engine

if not __package__:  # run as ``python bench/backup.py``: the repository is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.shop import write_orders
from harness.servers import moto_server

BITLOOT = str(Path(sys.executable).with_name("bitloot"))
NOW = datetime(2026, 12, 7, tzinfo=UTC)
PRICE = Decimal("6.99")
ITEMS = [LineItem(product_id="p", quantity=1, unit_price=PRICE)]


def main() -> None:
    """Parse arguments, fill, back up, restore, verify; print the times."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--orders", type=int, default=10_000)
    parser.add_argument("--database", help="a postgresql:// URL: measure that wiring too")
    parser.add_argument("--s3", action="store_true", help="and the S3 vault on a moto_server")
    args = parser.parse_args()
    print("| wiring | orders | events | archive | backup | restore | verify --log |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    run("embedded", {}, args.orders)
    if args.s3:
        with moto_server() as endpoint:
            run("embedded, S3 vault", s3_vault(endpoint), args.orders, buckets=True)
    if args.database:
        schemas = [f"bench_backup_{uuid.uuid4().hex[:8]}" for _ in range(2)]
        with psycopg.connect(args.database, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
        try:
            wiring = {"DATABASE_URL": args.database, "REDIS_URL": "redis://127.0.0.1:6379/5"}
            run("PostgreSQL", wiring, args.orders, schemas)
        finally:
            with psycopg.connect(args.database, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())


def run(
    name: str,
    wiring: dict[str, str],
    orders: int,
    schemas: list[str] | None = None,
    *,
    buckets: bool = False,
) -> None:
    with tempfile.TemporaryDirectory(prefix="bitloot-bench-") as folder:
        source = {**os.environ, **wiring, "VAR_DIR": f"{folder}/source"}
        target = {**os.environ, **wiring, "VAR_DIR": f"{folder}/target"}
        if schemas:
            source["DATABASE_SCHEMA"], target["DATABASE_SCHEMA"] = schemas
        if buckets:  # the engine makes each bucket at its start
            source["R2_BUCKET"], target["R2_BUCKET"] = (
                f"bench-{uuid.uuid4().hex[:8]}" for _ in "st"
            )
        events = fill(source, orders)
        archive = Path(folder) / "shop.tar.gz"
        backup = timed(source, "backup", "--out", str(archive))
        restore = timed(target, "restore", str(archive))
        verify = timed(target, "verify", "--log")
        size = archive.stat().st_size / 1e6
        print(f"| {name} | {orders:,} | {events:,} | {size:.1f} MB | {backup:.1f} s "
              f"| {restore:.1f} s | {verify:.1f} s |")  # fmt: skip
        sys.stdout.flush()


def s3_vault(endpoint: str) -> dict[str, str]:
    return {"R2_ENDPOINT": endpoint, "R2_ACCESS_KEY_ID": "bench", "R2_SECRET_ACCESS_KEY": "bench"}


def fill(env: dict[str, str], orders: int) -> int:
    """Write ``orders`` fulfilled orders through the engine's store and custody."""

    def maker(engine: Engine) -> Callable[[], list[DomainEvent]]:
        custody = EnvelopeCustody(engine.vault, MasterKeys(engine.settings.master_keys))
        return lambda: fulfilled_order(custody)

    return write_orders(env, orders, maker)


def fulfilled_order(custody: EnvelopeCustody) -> list[DomainEvent]:
    order_id = uuid.uuid4()
    events = rules.place(order_id, owner="bench", email="bench@example.com", currency="eur",
                         items=ITEMS, now=NOW)  # fmt: skip
    events += payments.invoice_created(rules.fold(events), invoice_id="i", invoice_url="u",
                                       now=NOW)  # fmt: skip
    events += payments.payment_notified(rules.fold(events), paid(), NOW)
    receipt = sealed_key(custody, order_id)
    events += supply.reserved(rules.fold(events), supplier_order_id="K", now=NOW,
                              receipts=[receipt])  # fmt: skip
    return events


def paid() -> PaymentNotice:
    return PaymentNotice(payment_id="1", payment_status="finished", invoice_id="i",
                         price_amount=PRICE, price_currency="eur", actually_paid=PRICE,
                         pay_amount=PRICE)  # fmt: skip


def sealed_key(custody: EnvelopeCustody, order_id: uuid.UUID) -> DeliveredKey:
    """One key sealed into the vault (a data key for the order, then the key)."""
    sealed = custody.seal(order_id, "k1", b"AAAAA-BBBBB-CCCCC")
    return DeliveredKey(key_id="k1", product_id="p", vault_ref=sealed.vault_ref,
                        fingerprint=sealed.fingerprint, content_type="text/plain")  # fmt: skip


def timed(env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([BITLOOT, *args], env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"bitloot {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
