"""Faults, measured from outside: orders arriving at a steady rate, one fault injected mid-run.

For each scenario the script starts a fresh engine as a real process (``bitloot serve``, as the
end-to-end tests do: a fresh ``VAR_DIR``, and on PostgreSQL + Redis a fresh schema of the local
PostgreSQL, a private ``redis-server`` and a local S3 server for the key vault). N customers
arrive at R a second; each places an order (``POST /orders``), creates its invoice
(``POST /payments/create``) and makes the NOWPayments sandbox send a signed ``finished`` IPN
(``POST /sandbox/nowpayments/payments/{id}/simulate``). F seconds after the first arrival one
fault is injected. A request the fault makes fail (connection refused or cut, timeout, 5xx, 429,
an IPN the engine did not answer 200) is sent again after a short pause, for up to a minute, as
a customer would; a simulated payment is only ever re-sent for the same invoice, which the engine
records once. Then the script waits until no order is ``paid`` or ``reserved`` any more, or
until 120 s after the last payment went through, and reads every order's history.

It prints a Markdown table, one row per fault:

- fulfilled: orders ``fulfilled`` by then, out of the orders whose history has ``OrderPaid``;
- stranded: paid but not fulfilled by then;
- doubled: paid orders bought more than once from the Kinguin sandbox (``item_count`` > 1 for
  their ``orderExternalId``) or with a key delivered twice (a ``KeyDelivered`` key id repeated);
- tracebacks in the log: occurrences of ``Traceback`` in everything the engine logged.

Below it, one line per fault with what happened on the way. PostgreSQL faults use
``pg_ctlcluster`` on the local cluster (port 5432), which must be run as root or ``postgres``;
PostgreSQL is started again on every exit path.

    .venv/bin/python bench/faults.py
    .venv/bin/python bench/faults.py --orders 150 --rate 5 --fault-at 8 --only pg-restart kill
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import psycopg

if not __package__:  # run as ``python bench/faults.py``: the repository is not on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fault_customers import Audit, Customers, counts, settle
from bench.fault_stage import (
    SCENARIOS,
    BenchError,
    Scenario,
    Services,
    progress,
    sleep_until,
    staged,
)
from harness.servers import ServerDidNotStart

# --- one scenario ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table, and what happened on the way."""

    label: str
    cells: tuple[str, str, str, str]
    details: str


def measure(scenario: Scenario, args: argparse.Namespace, services: Services) -> Row:
    """Run one scenario on a fresh engine and audit every order."""
    with (
        tempfile.TemporaryDirectory(prefix=f"faults-{scenario.name}-") as name,
        staged(scenario, services, Path(name)) as stage,
    ):
        customers = Customers(stage.engine.url, args.orders, args.rate)
        customers.start()
        try:
            sleep_until(customers.started + args.fault_at)
            progress(f"{scenario.name}: injecting the fault")
            fault = scenario.inject(stage)
            progress(f"{scenario.name}: {fault}")
            customers.join()
        finally:
            customers.stop.set()
        paid_at = [p.paid_at for p in customers.purchases if p.paid_at is not None]
        last_paid = max(paid_at, default=time.monotonic())
        orders = [p.order_id for p in customers.purchases if p.order_id is not None]
        progress(f"{scenario.name}: {len(paid_at)} paid; waiting for fulfilment")
        statuses, settled_at = settle(stage.engine, orders, last_paid + args.wait)
        audit = Audit.of(stage.engine, orders, statuses)
        total, raised = stage.engine.tracebacks()
        swept = stage.engine.swept()
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix=f"faults-{scenario.name}-logs-"))
            for log in stage.engine.logs:
                shutil.copy(log, kept)
            progress(f"{scenario.name}: logs kept in {kept}")
    settled = (
        f"nothing left in paid/reserved {settled_at - last_paid:.1f} s after the last payment"
        if settled_at is not None
        else f"orders still in paid/reserved {args.wait:.0f} s after the last payment"
    )
    gave_up = Counter(p.gave_up for p in customers.purchases if p.gave_up)
    details = "; ".join(
        part
        for part in (
            f"{len(orders)} orders placed, {audit.paid} paid, {customers.retried} requests re-sent",
            f"{sum(gave_up.values())} customers gave up ({counts(gave_up)})" if gave_up else "",
            f"fault {args.fault_at:g} s in: {fault}",
            settled,
            f"the sweeper re-dispatched {swept} stuck order(s)" if swept else "",
            f"stranded as {counts(audit.stranded)}" if audit.stranded else "",
            f"tracebacks end in {counts(raised)}" if raised else "",
        )
        if part
    )
    cells = (f"{audit.fulfilled}/{audit.paid}", str(sum(audit.stranded.values())),
             str(audit.doubled), str(total))  # fmt: skip
    return Row(scenario.label, cells, details)


# --- the run --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Measure each chosen fault and print the table."""
    args = _parser().parse_args(argv)
    args.orders = min(max(args.orders, 1), 1000)
    args.rate = min(max(args.rate, 0.1), 100.0)
    signal.signal(signal.SIGTERM, _terminate)  # so that PostgreSQL is started again
    chosen = [s for s in SCENARIOS if not args.only or s.name in args.only]
    begun = time.monotonic()
    rows: list[Row] = []
    services = Services()
    try:
        for scenario in chosen:
            reason = services.unavailable(scenario)
            if reason is not None:
                rows.append(Row(scenario.label, (reason, "-", "-", "-"), reason))
                continue
            progress(f"{scenario.name}: {scenario.label}, on {scenario.wiring}")
            try:
                rows.append(measure(scenario, args, services))
            except (BenchError, ServerDidNotStart, OSError, psycopg.Error,
                    subprocess.CalledProcessError) as failed:  # fmt: skip
                progress(f"{scenario.name}: failed: {failed!r}")
                rows.append(Row(scenario.label, ("failed", "-", "-", "-"), f"failed: {failed!r}"))
    finally:
        services.close()
    report(rows, args, time.monotonic() - begun)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=150, help="customers, one order each")
    parser.add_argument("--rate", type=float, default=5.0, help="customers arriving per second")
    parser.add_argument(
        "--fault-at", type=float, default=8.0, help="fault, seconds after the first arrival"
    )
    parser.add_argument(
        "--wait", type=float, default=120.0, help="seconds after the last payment to wait"
    )
    parser.add_argument(
        "--only", nargs="+", choices=[s.name for s in SCENARIOS], metavar="NAME",
        help=f"faults to measure: {', '.join(s.name for s in SCENARIOS)} (default: all)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the engine logs")
    return parser


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def report(rows: list[Row], args: argparse.Namespace, seconds: float) -> None:
    """The table, what happened in each scenario, the command and the run time."""
    print(
        f"{args.orders} orders arriving at {args.rate:g} a second, one fault injected "
        f"{args.fault_at:g} s in; fulfilled within {args.wait:g} s after the last payment\n"
    )
    print("| fault | fulfilled | stranded | doubled | tracebacks in the log |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row.label} | {' | '.join(row.cells)} |")
    print()
    for row in rows:
        print(f"- {row.label}: {row.details}")
    command = " ".join(shlex.quote(part) for part in ["python", "bench/faults.py", *sys.argv[1:]])
    print(f"\ncommand: {command}")
    print(f"run time: {seconds / 60:.1f} min")


if __name__ == "__main__":
    raise SystemExit(main())
