"""The ``bitloot`` command: serve, worker, token, demo, and the operator and auditor commands
(``entrypoints.maintenance``)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

import httpx

from adapters.redaction import redact_credentials
from domain.evidence import bundles_in, read_public_key, verify_bundle
from entrypoints import backup, maintenance, processes
from entrypoints.bootstrap import WORKER_THREADS, Engine, bootstrap
from entrypoints.http.app import create_app
from entrypoints.http.auth import mint_token
from entrypoints.serving import (
    ADMIN_TOKEN_TTL,
    banner,
    confirm_providers,
    run_http,
    sandbox_app,
    sandbox_banner,
    serve_metrics,
)
from entrypoints.settings import ConfigError, Settings, load_settings

log = logging.getLogger("bitloot")
SIGNAL_POLL_S = 0.2  # how soon a worker sees the signal its handler noted


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``bitloot`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if hasattr(args, "prepare"):  # before the settings make anything under VAR_DIR
        args.prepare(args)
    writer = _log_through_a_queue()
    if getattr(args, "offline", False):  # needs no settings: nothing is made under VAR_DIR
        offline: int = args.run(args)
        writer.stop()
        return offline
    try:
        settings = load_settings(os.environ)
    except ConfigError as bad:
        print(f"configuration error: {bad}", file=sys.stderr)
        return 2
    try:
        command: int = args.run(settings, args)
    except ConfigError as bad:  # a setting only a command checks (e.g. what Kinguin answers)
        print(f"configuration error: {bad}", file=sys.stderr)
        return 2
    finally:
        writer.stop()
    return command


def _log_through_a_queue() -> QueueListener:
    """Log lines (uvicorn's access lines too) are written to stderr by a thread of their own:
    the event loop and the actor threads only queue them. A write made on the loop would give
    up the interpreter lock and wait to get it back behind every busy thread, at each line."""
    stderr = logging.StreamHandler()
    stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    queued = QueueHandler(lines)
    queued.setFormatter(logging.Formatter("%(message)s"))  # the line is laid out by ``stderr``
    logging.basicConfig(level=logging.INFO, handlers=[queued], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise here
    writer = QueueListener(lines, stderr)
    writer.start()
    return writer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitloot", description="BitLoot fulfillment engine")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the API (with workers and process manager)")
    layout = serve.add_mutually_exclusive_group()
    layout.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="start N `bitloot worker --followers` processes beside the API, for the actors "
        "and the log followers (PostgreSQL + Redis; default: the usable cores but one, at "
        "least 1); 0 runs them all in this process (the embedded default's only layout)",
    )
    layout.add_argument(
        "--no-worker",
        action="store_true",
        help="run no actors here and start no worker process: leave them to `bitloot worker`",
    )
    serve.add_argument(
        "--no-followers",
        action="store_true",
        help="leave the process manager, projections, sweeper and catalog sync to "
        "`bitloot worker --followers` (PostgreSQL + Redis); with worker processes (--workers, "
        "the default there) they always run in those, never beside the API",
    )
    serve.add_argument(
        "--threads", type=int, default=WORKER_THREADS, help="actor threads (per worker process)"
    )
    serve.set_defaults(run=_serve)
    worker = commands.add_parser("worker", help="run Dramatiq actors (needs REDIS_URL)")
    worker.add_argument("--threads", type=int, default=WORKER_THREADS)
    worker.add_argument(
        "--followers",
        action="store_true",
        help="also run the log followers: process manager, projections, sweeper, catalog sync "
        "(one of each across all processes)",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        help="serve this worker's /metrics (its actors' runs, failures, retries, durations) "
        "on HOST:PORT",
    )
    worker.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # started by `serve`
    worker.set_defaults(run=_worker)
    sandbox = commands.add_parser("sandbox", help="run the Kinguin and NOWPayments sandboxes alone")
    sandbox.set_defaults(run=_sandbox)
    token = commands.add_parser("token", help="print a bearer token for local use")
    token.add_argument("--sub", required=True, help="user id")
    token.add_argument("--role", choices=["user", "admin", "auditor"], default="user")
    token.add_argument(
        "--ttl-hours", type=float, default=None, help="lifetime (default 24 h; 1 h for admins)"
    )
    token.set_defaults(run=_token)
    _maintenance_commands(commands)
    demo = commands.add_parser("demo", help="run one order end to end against a running engine")
    demo.add_argument("--url", help="engine base URL (default PUBLIC_BASE_URL)")
    demo.add_argument("--timeout", type=float, default=60.0)
    demo.set_defaults(run=_demo)
    return parser


def _maintenance_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="key custody: rotate, shred")
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    rotate = key_commands.add_parser("rotate", help="re-wrap data keys under the newest master key")
    rotate.set_defaults(run=_with_engine(_rotate))
    shred = key_commands.add_parser("shred", help="destroy one order's data key")
    shred.add_argument("order_id", type=UUID)
    shred.add_argument("--by", default="cli", help="who is shredding (recorded)")
    shred.set_defaults(run=_with_engine(_shred))
    projections = commands.add_parser("projections", help="read models: rebuild")
    projection_commands = projections.add_subparsers(required=True, metavar="ACTION")
    rebuild = projection_commands.add_parser("rebuild", help="rebuild one projection")
    rebuild.add_argument("name")
    rebuild.set_defaults(run=_with_engine(_rebuild))
    replay = commands.add_parser("replay", help="print event history as JSON lines")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--order", type=UUID, help="one order's history")
    which.add_argument("--since", type=_instant, help="every event since a time (UTC if no offset)")
    replay.set_defaults(run=_with_engine(_replay))
    verify = commands.add_parser("verify", help="check the orders view against the events")
    verify.add_argument(
        "--log", action="store_true", help="check every stored event against the log's tree"
    )
    verify.set_defaults(run=_with_engine(_verify))
    _evidence_commands(commands)
    backup.add_commands(commands, _with_engine)
    catalog = commands.add_parser("catalog", help="the product catalog: sync from Kinguin")
    catalog_commands = catalog.add_subparsers(required=True, metavar="ACTION")
    sync = catalog_commands.add_parser("sync", help="import Kinguin's catalog (all of it)")
    sync.add_argument(
        "--changed", action="store_true", help="only what changed since the last sync"
    )
    sync.set_defaults(run=_with_engine(_catalog_sync))


def _evidence_commands(commands: Any) -> None:
    evidence = commands.add_parser("evidence", help="tamper evidence: export and verify bundles")
    evidence_commands = evidence.add_subparsers(required=True, metavar="ACTION")
    export = evidence_commands.add_parser("export", help="write evidence bundles to a file")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("order_id", nargs="?", type=UUID, help="one order's bundle")
    which.add_argument("--since", type=_instant, help="every order with events since a time")
    export.add_argument("--out", default="-", help="the file to write (default: stdout)")
    export.set_defaults(run=_with_engine(_export_evidence))
    check = evidence_commands.add_parser(
        "verify", help="check bundles offline (no database, no engine)"
    )
    check.add_argument("bundle", help="a file written by export or GET /orders/{id}/evidence")
    check.add_argument("--public-key", required=True, help="what GET /audit/public-key answers")
    check.set_defaults(run=_verify_evidence, offline=True)


def _instant(text: str) -> datetime:
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


def _with_engine(command: Callable[[Engine, argparse.Namespace], int]) -> Any:
    def run(settings: Settings, args: argparse.Namespace) -> int:
        engine = bootstrap(settings)
        try:
            return command(engine, args)
        finally:
            engine.stop()

    return run


def _rotate(engine: Engine, _args: argparse.Namespace) -> int:
    print(f"{maintenance.rotate_keys(engine)} data key(s) re-wrapped")
    return 0


def _catalog_sync(engine: Engine, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    with maintenance.progress_bar("importing products") as progress:
        report = engine.catalog.sync(full=not args.changed, progress=progress)
    elapsed = time.perf_counter() - started
    rate = report.seen / elapsed if elapsed else 0.0
    print(
        f"catalog sync ({report.mode}): {report.seen} products seen, {report.changed} changed, "
        f"{elapsed:.1f} s ({rate:.0f} products/s)"
    )
    return 0


def _shred(engine: Engine, args: argparse.Namespace) -> int:
    maintenance.shred_keys(engine, args.order_id, args.by)
    print(f"order {args.order_id}: keys shredded")
    return 0


def _rebuild(engine: Engine, args: argparse.Namespace) -> int:
    if args.name not in engine.projections:
        print(
            f"no projection {args.name!r}; known: {', '.join(engine.projections)}", file=sys.stderr
        )
        return 2
    maintenance.rebuild_projection(engine, args.name)
    print(f"projection {args.name} rebuilt")
    return 0


def _replay(engine: Engine, args: argparse.Namespace) -> int:
    count = maintenance.replay(engine, sys.stdout, order_id=args.order, since=args.since)
    print(f"{count} event(s)", file=sys.stderr)
    return 0


def _verify(engine: Engine, args: argparse.Namespace) -> int:
    if args.log:
        differences = maintenance.verify_log(engine, sys.stdout)
        print(f"{differences} difference(s) between the stored events and the log's tree")
        return 1 if differences else 0
    mismatches = maintenance.verify(engine, sys.stdout)
    print(f"{mismatches} mismatch(es)")
    return 1 if mismatches else 0


def _export_evidence(engine: Engine, args: argparse.Namespace) -> int:
    with _output(args.out) as out:
        count = maintenance.export_evidence(engine, out, order_id=args.order_id, since=args.since)
    print(f"{count} bundle(s) written", file=sys.stderr)
    return 0


@contextmanager
def _output(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdout
        return
    with open(path, "w", encoding="utf-8") as out:
        yield out


def _verify_evidence(args: argparse.Namespace) -> int:
    """``bitloot evidence verify``: exit 0 only when every bundle holds."""
    try:
        public_key = read_public_key(Path(args.public_key).read_text(encoding="utf-8"))
        bundles = bundles_in(json.loads(Path(args.bundle).read_text(encoding="utf-8")))
    except (OSError, ValueError) as bad:
        print(f"cannot read: {bad}", file=sys.stderr)
        return 2
    failed = 0
    for bundle in bundles:
        problems = verify_bundle(bundle, public_key)
        failed += bool(problems)
        name = f"order {bundle.get('order_id')}"
        if problems:
            print(f"{name}: FAILED")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"{name}: ok ({len(bundle['leaves'])} events proven)")
    print(f"{len(bundles) - failed} of {len(bundles)} bundle(s) verified")
    return 1 if failed or not bundles else 0


class _RedactCredentials(logging.Filter):
    """Access-log lines keep their paths but never a token, a JWT or a link signature
    (``adapters.redaction``: the same rule as the traces')."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args and isinstance(record.args, tuple):
            record.args = tuple(
                redact_credentials(a) if isinstance(a, str) else a for a in record.args
            )
        elif not record.args and isinstance(record.msg, str):  # already the whole line
            record.msg = redact_credentials(record.msg)
        return True


def _redact_uvicorn_logs() -> None:
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(_RedactCredentials())


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    """The API, and per the layout the actors here, worker processes beside it, or neither
    (``entrypoints.processes``)."""
    refusal = _serve_refusal(settings, args)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    _redact_uvicorn_logs()
    confirm_providers(settings)
    engine = bootstrap(settings)  # the schema exists from here on: children may start
    children = processes.worker_processes(settings, args.workers, no_worker=args.no_worker)
    in_process = not args.no_worker and not children
    # Worker processes run the log followers: the API's interpreter lock serves requests only.
    followers_here = not args.no_followers and not children
    app = create_app(engine, worker=in_process, followers=followers_here, threads=args.threads)
    print(banner(settings), flush=True)
    if not children:
        log.info(_layout(args, [], worker=in_process))
        run_http(app, settings)
        return 0
    command = processes.worker_command(args.threads)
    with processes.stop_on_signals(), processes.WorkerProcesses(command, children) as workers:
        log.info(_layout(args, workers.pids(), worker=False))
        run_http(app, settings)
    return 0


def _serve_refusal(settings: Settings, args: argparse.Namespace) -> str | None:
    if args.no_followers and not settings.redis_url:
        return (
            "bitloot serve --no-followers needs PostgreSQL and Redis: the log followers then "
            "run in a `bitloot worker --followers`"
        )
    return processes.layout_refusal(settings, args.workers)


def _layout(args: argparse.Namespace, pids: list[int], *, worker: bool) -> str:
    """With worker processes, the followers run in those; else here, or elsewhere with
    ``--no-followers``."""
    followers = "workers" if pids else "elsewhere" if args.no_followers else "here"
    return processes.describe_layout(
        pids, actors_here=worker, followers=followers, threads=args.threads
    )


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.redis_url:
        print(
            "bitloot worker needs REDIS_URL; `bitloot serve` runs the in-process worker",
            file=sys.stderr,
        )
        return 2
    confirm_providers(settings)
    engine = bootstrap(settings)
    stopping = threading.Event()  # set by the parent's watch (a thread)
    signalled: list[
        int
    ] = []  # by a signal: a handler takes no lock (one it interrupted may hold it)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _: signalled.append(signum))
    if args.parent_pid is not None:
        processes.watch_parent(args.parent_pid, stopping)
    engine.start(worker=True, followers=args.followers, threads=args.threads)
    log.info(
        "worker running on %s with %d threads%s",
        settings.wiring, args.threads, " and the log followers" if args.followers else "",
    )  # fmt: skip
    metrics = serve_metrics(engine, settings.host, args.metrics_port)
    while not signalled and not stopping.wait(SIGNAL_POLL_S):
        pass
    if metrics is not None:
        metrics.shutdown()
        metrics.server_close()
    engine.stop()
    return 0


def _sandbox(settings: Settings, _args: argparse.Namespace) -> int:
    _redact_uvicorn_logs()
    app = sandbox_app(settings)
    print(sandbox_banner(settings), flush=True)
    run_http(app, settings)
    return 0


def _token(settings: Settings, args: argparse.Namespace) -> int:
    hours = args.ttl_hours
    if hours is None:
        hours = ADMIN_TOKEN_TTL.total_seconds() / 3600 if args.role == "admin" else 24.0
    ttl = timedelta(hours=hours)
    print(_mint(settings, args.sub, args.role, ttl))
    return 0


def _mint(settings: Settings, sub: str, role: str, ttl: timedelta = timedelta(days=1)) -> str:
    return mint_token(
        settings.jwt_secret,
        sub,
        role,
        ttl,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    base = (args.url or settings.public_base_url).rstrip("/")
    token = _mint(settings, f"demo-{secrets.token_hex(4)}", "user")
    # The sandbox's payment simulator is an admin control.
    admin = {"Authorization": f"Bearer {_mint(settings, 'demo-admin', 'admin', ADMIN_TOKEN_TTL)}"}
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=15
    ) as http:
        return _run_demo(http, admin, args.timeout)


def _run_demo(http: httpx.Client, admin: dict[str, str], timeout: float) -> int:
    started = time.monotonic()
    product = _ok(http.get(f"/products/{DEMO_PRODUCT}"))
    print(
        f"{product['name']}: {product['price']} {product['currency']} ({product['availability']})"
    )
    line = {"product_id": DEMO_PRODUCT, "quantity": 2, "unit_price": product["price"]}
    order = _ok(http.post("/orders", json={**_DEMO_ORDER, "items": [line]}))
    print(f"order {order['id']} placed: {order['status']}, total {order['total']} EUR")
    payment = _ok(http.post("/payments/create", json={"order_id": order["id"]}))
    print(f"invoice {payment['payment_id']}: {payment['invoice_url']}")
    _ok(
        http.post(
            f"/sandbox/nowpayments/payments/{payment['payment_id']}/simulate",
            json={"status": "finished"},
            headers=admin,
        )
    )
    status = _await_fulfilled(http, order["id"], timeout)
    if status != "fulfilled":
        print(f"order stopped at {status}", file=sys.stderr)
        return 1
    keys = _ok(http.post(f"/fulfillment/{order['id']}/reveal"))["keys"]
    print(f"fulfilled in {time.monotonic() - started:.2f} s; {len(keys)} key(s) revealed")
    for event in _ok(http.get(f"/orders/{order['id']}/history")):
        print(f"  v{event['version']:<3} {event['timestamp']}  {event['type']}")
    return 0


DEMO_PRODUCT = "5c9b5f6b2539a4e8f172916a"
_DEMO_ORDER = {"email": "demo@example.com", "currency": "eur"}


def _await_fulfilled(http: httpx.Client, order_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        status = str(_ok(http.get(f"/fulfillment/{order_id}/status"))["status"])
        if status != seen:
            print(f"  status: {status}")
            seen = status
        if status in ("fulfilled", "fulfillment_failed", "payment_failed", "underpaid"):
            return status
        time.sleep(0.1)
    return seen


def _ok(response: httpx.Response) -> Any:
    if response.is_error:
        request = response.request
        raise SystemExit(f"{request.method} {request.url}: {response.status_code} {response.text}")
    return response.json()


if __name__ == "__main__":
    raise SystemExit(main())
