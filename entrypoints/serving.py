"""What ``bitloot serve`` and ``bitloot sandbox`` do around their app: the start-up check of
the providers, uvicorn's options, the banner, and the standalone sandbox's admin check."""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment
from wsgiref.types import WSGIApplication as WSGIApp

import uvicorn
from litestar import Litestar
from prometheus_client import make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from entrypoints.bootstrap import STARTUP_WAIT_S, Engine, revocations
from entrypoints.http.app import admin_check, kinguin_sandbox_config, nowpayments_sandbox_config
from entrypoints.http.auth import mint_token, tokens_for
from entrypoints.providers import start_up_refusal
from entrypoints.settings import ConfigError, Settings
from sandboxes.standalone import create_sandbox_app

log = logging.getLogger("bitloot")

ADMIN_TOKEN_TTL = timedelta(hours=1)  # admin tokens are short-lived
LOOPBACK_NAMES = frozenset({"localhost"})
GRACEFUL_SHUTDOWN_S = 10


def confirm_providers(settings: Settings, wait_s: float = STARTUP_WAIT_S) -> None:
    """Refuse to start (``ConfigError``) a process that would pay a real Kinguin through
    anything but the real NOWPayments; an unknown Kinguin host is asked whether it is a BitLoot
    sandbox first (``entrypoints.providers``)."""
    refusal = start_up_refusal(settings, wait_s)
    if refusal is not None:
        raise ConfigError(refusal)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """``HOST:PORT``, and the proxies whose ``X-Forwarded-For`` / ``-Proto`` are believed: only
    ``TRUSTED_PROXIES`` (uvicorn would otherwise believe any local caller)."""
    proxies = sorted(settings.trusted_proxies)
    return {
        "host": settings.host,
        "port": settings.port,
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies or None,
        # a stop waits this long for requests in flight, then closes their connections
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "access_log": settings.access_log,
    }


def run_http(app: Litestar, settings: Settings) -> None:
    """Serve ``app`` until stopped; uvicorn's lines go to the root logger, whose handler only
    queues them (``log_config=None``: uvicorn configures no handler)."""
    uvicorn.run(app, **uvicorn_options(settings), log_level="info", log_config=None)


def sandbox_app(settings: Settings) -> Litestar:
    """The standalone sandboxes (``bitloot sandbox``): their controls take the engine's admin
    tokens (``JWT_SECRET``, ``JWT_ISSUER``, ``JWT_AUDIENCE``), and the payment sandbox signs
    with ``NOWPAYMENTS_SANDBOX_IPN_SECRET``."""
    tokens = tokens_for(settings, revocations(settings))
    return create_sandbox_app(
        kinguin_sandbox_config(settings),
        nowpayments_sandbox_config(settings),
        control_check=admin_check(tokens),
    )


def sandbox_banner(settings: Settings) -> str:
    """What ``bitloot sandbox`` prints at start (no secret in it)."""
    base = settings.public_base_url
    return "\n".join(
        [
            f"sandboxes at {base}/sandbox/kinguin and {base}/sandbox/nowpayments/v1",
            "  controls (simulate, faults, release) need an admin token of the engine:",
            "    bitloot token --sub NAME --role admin   (same JWT_SECRET / VAR_DIR)",
            "  IPNs are signed with NOWPAYMENTS_SANDBOX_IPN_SECRET (set, or in "
            f"{settings.var_dir}/secrets.json):",
            "    give the engine that value as its NOWPAYMENTS_IPN_SECRET",
        ]
    )


SANDBOX_WARNING = [
    "  note: the built-in sandboxes are mounted under /sandbox (their controls, such as simulating",
    "        a payment, need an admin token); set KINGUIN_BASE_URL and NOWPAYMENTS_BASE_URL to use",
    "        the real providers",
]


def banner(settings: Settings) -> str:
    """What ``bitloot serve`` prints at start: addresses, defaults, and tokens where safe."""
    defaults = ", ".join(settings.defaulted) or "none"
    lines = [
        "",
        f"BitLoot fulfillment engine — {settings.wiring}",
        f"  API       {settings.public_base_url}",
        f"  OpenAPI   {settings.public_base_url}/schema",
        f"  Kinguin   {settings.kinguin_url}",
        f"  NOWPay    {settings.nowpayments_url}",
        f"  Data      {settings.var_dir}",
        f"  Defaults  {defaults} (local values; secrets kept in {settings.var_dir}/secrets.json)",
        "",
        *banner_tokens(settings),
        "",
        "  try:  make demo    (or: .venv/bin/bitloot demo)",
        "",
    ]
    if settings.sandboxes:
        lines[-2:-2] = SANDBOX_WARNING
    lines[-2:-2] = backup_warning(settings)
    return "\n".join(lines)


LAST_BACKUP = "last-backup.json"  # written into VAR_DIR by ``bitloot backup``


def backup_warning(settings: Settings) -> list[str]:
    """A master key generated into ``VAR_DIR`` is the only way to open every sold key: until
    a backup is taken from here, say so."""
    if "KEY_ENCRYPTION_KEY" not in settings.defaulted:
        return []
    if (settings.var_dir / LAST_BACKUP).is_file():
        return []
    return [f"  WARNING   the master key lives only in {settings.var_dir}/secrets.json, and no",
            "            backup was taken here: losing that folder makes every sold key",
            "            unreadable. Run: bitloot backup --out FILE, and keep FILE off this",
            "            machine (docs/operations.md#backup-and-restore).", ""]  # fmt: skip


def banner_tokens(settings: Settings) -> list[str]:
    """Tokens only in plain local use: signed with the engine's own generated secret, by an
    engine bound to a loopback address. A configured ``JWT_SECRET`` is a real deployment, and
    an engine listening on other interfaces (a container) has logs that get shipped: neither
    may make the readers of its log admins."""
    if "JWT_SECRET" not in settings.defaulted:
        why = "JWT_SECRET is configured"
    elif not is_loopback(settings.host):
        why = f"HOST={settings.host} is not a loopback address"
    else:
        return _ready_made_tokens(settings)
    return [f"  tokens:   {why}, so none is printed; mint one with",
            "            bitloot token --sub NAME --role user|admin",
            "            (in compose: docker compose exec api bitloot token …)"]  # fmt: skip


def _ready_made_tokens(settings: Settings) -> list[str]:
    def mint(sub: str, role: str, ttl: timedelta) -> str:
        return mint_token(settings.jwt_secret, sub, role, ttl,
                          issuer=settings.jwt_issuer, audience=settings.jwt_audience)  # fmt: skip

    return [
        "  user token (sub alice):",
        f"    {mint('alice', 'user', timedelta(days=1))}",
        f"  admin token (sub admin, valid {ADMIN_TOKEN_TTL.seconds // 3600} h):",
        f"    {mint('admin', 'admin', ADMIN_TOKEN_TTL)}",
    ]


def is_loopback(host: str) -> bool:
    """Whether ``HOST`` binds this machine's loopback interface only."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def serve_metrics(engine: Engine, host: str, port: int | None) -> WSGIServer | None:
    """A worker's own ``/metrics`` and ``/healthz`` on ``host:port``, when a port is given."""
    if port is None:
        return None
    app = worker_endpoints(engine.worker_health, make_wsgi_app(engine.metrics))
    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    log.info("worker metrics at http://%s:%d/metrics, health at /healthz", host, port)
    return server


def worker_endpoints(health: Callable[[], dict[str, str]], metrics: WSGIApp) -> WSGIApp:
    """``/healthz``: 200 with each check when all are ``ok``, else 503 (a container's health
    check); any other path: the Prometheus metrics."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/healthz":
            return metrics(environ, start_response)
        checks = health()
        healthy = all(state == "ok" for state in checks.values())
        body = json.dumps({"status": "ok" if healthy else "failing", "checks": checks}).encode()
        status = "200 OK" if healthy else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [body]

    return app


class _QuietHandler(WSGIRequestHandler):
    """No access line per scrape or health check."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
