"""Configuration: the environment variables of the design (§7), validated at start-up.

Every variable has a safe local default in the embedded wiring: secrets are generated once and
kept in ``<VAR_DIR>/secrets.json`` (never in the repository). A malformed value stops the
process with a ``ConfigError`` naming the variable.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from entrypoints.local_secrets import LocalSecrets
from entrypoints.providers import real_money_refusal, supplier_must_identify
from sandboxes.faults import (
    NO_FAULTS,
    Faults,
    InvalidFaults,
    SandboxName,
    faults_from_env,
)

MIN_JWT_SECRET_BYTES = 32
APPLICATION_NAME = "bitloot"
CONNECT_TIMEOUT_S = 5  # a PostgreSQL that does not answer a new connection in 5 s is down
MAX_PER_MINUTE = 1_000_000  # rate limits: beyond this a limit no longer limits anything
MAX_SANDBOX_PRODUCTS = 100_000  # about Kinguin's own catalog; each one lives in memory
MAX_FULFILLMENT_ATTEMPTS = 1_000
HOUR_S = 3_600.0
DAY_S = 86_400.0


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Everything the composition root needs, read from the environment."""

    host: str
    port: int
    public_base_url: str
    var_dir: Path
    database_url: str | None
    database_schema: str | None
    redis_url: str | None
    jwt_secret: str
    master_keys: tuple[bytes, ...]
    kinguin_base_url: str | None
    kinguin_api_key: str
    kinguin_webhook_secret: str
    kinguin_webhook_url: str
    kinguin_sandbox_delay: float
    nowpayments_base_url: str | None
    nowpayments_api_key: str
    nowpayments_ipn_secret: str
    r2_endpoint: str | None
    r2_bucket: str | None
    r2_access_key_id: str | None
    r2_secret_access_key: str | None
    resend_api_key: str | None
    stuck_order_after_s: float
    resend_base_url: str = "https://api.resend.com"
    email_from: str = "BitLoot <keys@bitloot.example>"
    kinguin_faults: Faults = NO_FAULTS
    nowpayments_faults: Faults = NO_FAULTS
    single_use_links: bool = False
    access_log: bool = False
    """Whether uvicorn writes a line per request (``ACCESS_LOG``; off: at a sale's pace the
    lines cost the process more than some of its routes)."""
    reveals_per_minute: int = 30
    orders_per_minute: int = 60
    orders_per_minute_per_ip: int = 600
    catalog_sync_interval_s: float = 300.0
    supplier_price_tolerance_percent: float = 2.0
    kinguin_sandbox_products: int = 0
    fulfillment_attempts: int = 12
    jwt_issuer: str | None = None
    sandboxes: frozenset[str] = frozenset()
    """The built-in sandboxes this engine mounts (``kinguin``, ``nowpayments``)."""
    sandbox_ipn_secret: str = ""
    """What the NOWPayments sandbox signs its IPNs with (``NOWPAYMENTS_SANDBOX_IPN_SECRET``): a
    secret of its own, never ``NOWPAYMENTS_IPN_SECRET``. The engine accepts it while it mounts
    that sandbox; an engine using a standalone one takes it as its ``NOWPAYMENTS_IPN_SECRET``."""
    trusted_proxies: frozenset[str] = frozenset()
    jwt_audience: str | None = None
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 60.0
    otlp_endpoint: str | None = None
    """Where spans go (OTLP over HTTP); tracing is off without it."""
    service_name: str = "bitloot"
    audit_signing_key: str = ""
    """The Ed25519 private key that signs the log's checkpoints (base64 seed or PEM)."""
    audit_checkpoint_interval_s: float = 60.0
    sandbox_base_url: str = ""
    """Where this deployment's processes reach the sandboxes that ``bitloot serve`` mounts
    (``SANDBOX_BASE_URL``; default ``PUBLIC_BASE_URL``): in compose, the API's address inside the
    network, while customers' links use the public one."""
    defaulted: tuple[str, ...] = field(default=())

    @property
    def kinguin_url(self) -> str:
        """Where the Kinguin adapter sends requests (the built-in sandbox by default)."""
        return self.kinguin_base_url or f"{self._sandbox_base}/sandbox/kinguin"

    @property
    def nowpayments_url(self) -> str:
        """Where the NOWPayments adapter sends requests (the built-in sandbox by default)."""
        return self.nowpayments_base_url or f"{self._sandbox_base}/sandbox/nowpayments/v1"

    @property
    def _sandbox_base(self) -> str:
        return self.sandbox_base_url or self.public_base_url

    @property
    def ipn_secrets(self) -> tuple[str, ...]:
        """NOWPayments' IPN secret, and the mounted sandbox's own while it is mounted."""
        if "nowpayments" in self.sandboxes:
            return (self.nowpayments_ipn_secret, self.sandbox_ipn_secret)
        return (self.nowpayments_ipn_secret,)

    @property
    def broker_namespace(self) -> str:
        """Redis keys of this engine: one namespace per database schema, so engines that share
        a Redis never take each other's messages."""
        return f"bitloot-{self.database_schema}" if self.database_schema else "bitloot"

    @property
    def uses_s3(self) -> bool:
        """Whether keys are kept in an S3-compatible bucket rather than local files."""
        return self.r2_endpoint is not None

    @property
    def wiring(self) -> str:
        """A one-word name of the store and broker in use."""
        store = "postgresql" if self.database_url else "sqlite"
        broker = "redis" if self.redis_url else "in-process"
        return f"{store}+{broker}"

    def eventsourcing_env(self) -> dict[str, str]:
        """The ``eventsourcing`` library's settings for the configured database."""
        if not self.database_url or self.database_url.startswith("sqlite"):
            path = _sqlite_path(self.database_url) or str(self.var_dir / "bitloot.db")
            return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}
        return postgres_env(self.database_url, self.database_schema)

    def postgres_conninfo(self) -> str | None:
        """A libpq connection string, when the store is PostgreSQL: ``DATABASE_URL`` with the
        engine's application name (see ``application_name``) and a connect timeout, unless the
        URL sets them itself."""
        if not self.database_url or self.database_url.startswith("sqlite"):
            return None
        url = self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        given = conninfo_to_dict(url)
        defaults = {
            "fallback_application_name": application_name(url, self.database_schema),
            "connect_timeout": str(CONNECT_TIMEOUT_S),
        }
        return make_conninfo(url, **{k: v for k, v in defaults.items() if k not in given})


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read and validate the settings; fill the gaps with local defaults."""
    env = _Reader(environ)
    host = env.text("HOST", "127.0.0.1")
    port = env.integer("PORT", 8000, minimum=1, maximum=65535)
    var_dir = Path(env.text("VAR_DIR", "var")).resolve()
    local = LocalSecrets(var_dir / "secrets.json")
    public = env.url("PUBLIC_BASE_URL", f"http://{_reachable(host)}:{port}").rstrip("/")
    database_url = env.optional("DATABASE_URL")
    if database_url and not database_url.startswith(("postgresql", "postgres", "sqlite")):
        raise ConfigError("DATABASE_URL must be postgresql://… or sqlite:///…")
    settings = Settings(
        host=host,
        port=port,
        public_base_url=public,
        var_dir=var_dir,
        database_url=database_url,
        database_schema=env.optional("DATABASE_SCHEMA"),
        redis_url=env.optional("REDIS_URL"),
        jwt_secret=env.secret("JWT_SECRET", local, min_bytes=MIN_JWT_SECRET_BYTES),
        master_keys=env.master_keys("KEY_ENCRYPTION_KEY", local),
        kinguin_base_url=env.optional("KINGUIN_BASE_URL"),
        kinguin_api_key=env.secret("KINGUIN_API_KEY", local),
        kinguin_webhook_secret=env.secret("KINGUIN_WEBHOOK_SECRET", local),
        kinguin_webhook_url=env.url("KINGUIN_WEBHOOK_URL", f"{public}/kinguin/webhooks"),
        kinguin_sandbox_delay=env.number("KINGUIN_SANDBOX_DELAY", 2.0, maximum=HOUR_S),
        nowpayments_base_url=env.optional("NOWPAYMENTS_BASE_URL"),
        nowpayments_api_key=env.secret("NOWPAYMENTS_API_KEY", local),
        nowpayments_ipn_secret=env.secret("NOWPAYMENTS_IPN_SECRET", local),
        r2_endpoint=env.optional("R2_ENDPOINT"),
        r2_bucket=env.optional("R2_BUCKET"),
        r2_access_key_id=env.optional("R2_ACCESS_KEY_ID"),
        r2_secret_access_key=env.optional("R2_SECRET_ACCESS_KEY"),
        resend_api_key=env.optional("RESEND_API_KEY"),
        resend_base_url=env.url("RESEND_BASE_URL", "https://api.resend.com"),
        email_from=env.text("EMAIL_FROM", "BitLoot <keys@bitloot.example>"),
        stuck_order_after_s=env.number("STUCK_ORDER_AFTER_S", 60.0, minimum=1, maximum=DAY_S),
        kinguin_faults=_faults(environ, "kinguin"),
        nowpayments_faults=_faults(environ, "nowpayments"),
        single_use_links=env.flag("DOWNLOAD_LINK_SINGLE_USE", default=False),
        access_log=env.flag("ACCESS_LOG", default=False),
        reveals_per_minute=env.per_minute("REVEALS_PER_MINUTE", 30),
        orders_per_minute=env.per_minute("ORDERS_PER_MINUTE", 60),
        orders_per_minute_per_ip=env.per_minute("ORDERS_PER_MINUTE_PER_IP", 600),
        catalog_sync_interval_s=env.number(
            "CATALOG_SYNC_INTERVAL_S", 300.0, minimum=10, maximum=7 * DAY_S
        ),
        supplier_price_tolerance_percent=env.number(
            "SUPPLIER_PRICE_TOLERANCE_PERCENT", 2.0, maximum=100, unit="percent"
        ),
        kinguin_sandbox_products=env.integer(
            "KINGUIN_SANDBOX_PRODUCTS", 0, maximum=MAX_SANDBOX_PRODUCTS
        ),
        fulfillment_attempts=env.integer(
            "FULFILLMENT_ATTEMPTS", 12, minimum=1, maximum=MAX_FULFILLMENT_ATTEMPTS
        ),
        jwt_issuer=env.optional("JWT_ISSUER"),
        sandboxes=_sandboxes(env.optional("SANDBOXES"), environ),
        sandbox_ipn_secret=env.secret("NOWPAYMENTS_SANDBOX_IPN_SECRET", local),
        trusted_proxies=env.addresses("TRUSTED_PROXIES"),
        jwt_audience=env.optional("JWT_AUDIENCE"),
        retry_backoff_s=env.number("RETRY_BACKOFF_S", 0.5, maximum=HOUR_S),
        retry_backoff_max_s=env.number("RETRY_BACKOFF_MAX_S", 60.0, maximum=DAY_S),
        otlp_endpoint=env.optional_url("OTEL_EXPORTER_OTLP_ENDPOINT"),
        service_name=env.text("OTEL_SERVICE_NAME", "bitloot"),
        audit_signing_key=env.signing_key("AUDIT_SIGNING_KEY", local),
        audit_checkpoint_interval_s=env.number(
            "AUDIT_CHECKPOINT_INTERVAL_S", 60.0, minimum=1, maximum=DAY_S
        ),
        sandbox_base_url=env.url("SANDBOX_BASE_URL", public).rstrip("/"),
        defaulted=tuple(env.defaulted),
    )
    _check_complete(settings)
    _check_sandboxes(settings)
    _check_backoff(settings)
    return settings


SANDBOX_NAMES = frozenset({"kinguin", "nowpayments"})


def _sandboxes(named: str | None, environ: Mapping[str, str]) -> frozenset[str]:
    """``SANDBOXES`` (a comma list, or ``none``); unset: both, but only when no real provider is
    configured at all."""
    if named is None:
        real = environ.get("KINGUIN_BASE_URL") or environ.get("NOWPAYMENTS_BASE_URL")
        return frozenset() if real else SANDBOX_NAMES
    chosen = frozenset(n.strip().lower() for n in named.split(",") if n.strip()) - {"none"}
    unknown = chosen - SANDBOX_NAMES
    if unknown:
        raise ConfigError(
            f"SANDBOXES names {', '.join(sorted(unknown))}; known: kinguin, nowpayments"
        )
    return chosen


def _check_sandboxes(settings: Settings) -> None:
    """Every provider has a base URL or is a mounted sandbox; a real Kinguin is never paid
    through anything but the real NOWPayments (``entrypoints.providers``: anyone could then buy
    real keys with simulated payments)."""
    providers = {"kinguin": settings.kinguin_base_url, "nowpayments": settings.nowpayments_base_url}
    for name, base_url in providers.items():
        variable = f"{name.upper()}_BASE_URL"
        if base_url is None and name not in settings.sandboxes:
            raise ConfigError(
                f"{variable} must be set: the {name} sandbox is not mounted (SANDBOXES)"
            )
        if base_url is not None and name in settings.sandboxes:
            raise ConfigError(
                f"{variable} is set but SANDBOXES mounts the {name} sandbox: choose one"
            )
    # where the URLs alone cannot tell, `bitloot serve` / `worker` ask Kinguin before starting
    refusal = None if supplier_must_identify(settings) else real_money_refusal(settings)
    if refusal is not None:
        raise ConfigError(refusal)


def _check_backoff(settings: Settings) -> None:
    """The retry wait starts at RETRY_BACKOFF_S and grows up to RETRY_BACKOFF_MAX_S."""
    if settings.retry_backoff_max_s < settings.retry_backoff_s:
        raise ConfigError("RETRY_BACKOFF_MAX_S must not be below RETRY_BACKOFF_S")


def _faults(environ: Mapping[str, str], sandbox: SandboxName) -> Faults:
    """Faults a built-in sandbox starts with (``KINGUIN_SANDBOX_FAULTS``, … as JSON)."""
    try:
        return faults_from_env(environ, sandbox)
    except InvalidFaults as bad:
        raise ConfigError(str(bad)) from None


def _check_complete(settings: Settings) -> None:
    """The S3 vault needs all four of its variables or none."""
    r2 = {
        "R2_ENDPOINT": settings.r2_endpoint,
        "R2_BUCKET": settings.r2_bucket,
        "R2_ACCESS_KEY_ID": settings.r2_access_key_id,
        "R2_SECRET_ACCESS_KEY": settings.r2_secret_access_key,
    }
    missing = [name for name, value in r2.items() if not value]
    if 0 < len(missing) < len(r2):
        raise ConfigError(f"{', '.join(missing)} must be set with the other R2_* variables")
    if settings.r2_endpoint and urlsplit(settings.r2_endpoint).scheme not in ("http", "https"):
        raise ConfigError("R2_ENDPOINT must be an http(s) URL")


class _Reader:
    """Reads variables, remembering which ones fell back to a default."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.defaulted: list[str] = []

    def optional(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        value = self.optional(name)
        if value is None:
            self.defaulted.append(name)
            return default
        return value

    def integer(self, name: str, default: int, *, maximum: int, minimum: int = 0) -> int:
        raw = self.text(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
        if not minimum <= value <= maximum:
            raise ConfigError(f"{name} must be between {minimum} and {maximum:_}, not {value}")
        return value

    def per_minute(self, name: str, default: int) -> int:
        """A rate limit: at least one a minute, at most ``MAX_PER_MINUTE``."""
        return self.integer(name, default, minimum=1, maximum=MAX_PER_MINUTE)

    def number(
        self,
        name: str,
        default: float,
        *,
        maximum: float,
        minimum: float = 0.0,
        unit: str = "seconds",
    ) -> float:
        raw = self.text(name, str(default))
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number of {unit}, not {raw!r}") from None
        if not (math.isfinite(value) and minimum <= value <= maximum):
            raise ConfigError(f"{name} must be between {minimum:g} and {maximum:g} {unit}")
        return value

    def addresses(self, name: str) -> frozenset[str]:
        """A comma list of IP addresses or networks (``10.0.0.0/8``), normalised."""
        found: set[str] = set()
        for part in (self.optional(name) or "").split(","):
            if part.strip():
                found.add(_address(name, part.strip()))
        return frozenset(found)

    def flag(self, name: str, *, default: bool) -> bool:
        raw = self.text(name, "true" if default else "false").lower()
        if raw not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
            raise ConfigError(f"{name} must be true or false, not {raw!r}")
        return raw in ("true", "1", "yes", "on")

    def optional_url(self, name: str) -> str | None:
        value = self.optional(name)
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ConfigError(f"{name} must be an http(s) URL, not {value!r}")
        return value

    def url(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if urlsplit(value).scheme not in ("http", "https"):
            raise ConfigError(f"{name} must be an http(s) URL, not {value!r}")
        return value

    def secret(self, name: str, local: LocalSecrets, min_bytes: int = 16) -> str:
        value = self.optional(name)
        if value is None:
            self.defaulted.append(name)
            return local.get(name, lambda: secrets.token_urlsafe(48))
        if len(value.encode()) < min_bytes:
            raise ConfigError(f"{name} must be at least {min_bytes} bytes long")
        return value

    def signing_key(self, name: str, local: LocalSecrets) -> str:
        """A configured key as text (the composition root reads it: ``wiring.audit_signer``),
        else a fresh Ed25519 seed (32 random bytes, in base64) kept with the local secrets."""
        value = self.optional(name)
        if value is None:
            self.defaulted.append(name)
            return local.get(name, lambda: base64.b64encode(secrets.token_bytes(32)).decode())
        return value

    def master_keys(self, name: str, local: LocalSecrets) -> tuple[bytes, ...]:
        value = self.optional(name)
        if value is None:
            self.defaulted.append(name)
            value = local.get(name, lambda: base64.b64encode(secrets.token_bytes(32)).decode())
        return tuple(_master_key(name, part) for part in value.split(",") if part.strip())


def _address(name: str, text: str) -> str:
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=False))
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ConfigError(
            f"{name} entries must be IP addresses or networks, not {text!r}"
        ) from None


def _master_key(name: str, text: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name} entries must be base64") from None
    if len(key) != 32:
        raise ConfigError(f"{name} entries must decode to 32 bytes, not {len(key)}")
    return key


def _reachable(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - mapping, not binding


def _sqlite_path(url: str | None) -> str | None:
    if not url:
        return None
    return url.removeprefix("sqlite:///") or None


def postgres_env(url: str, schema: str | None) -> dict[str, str]:
    """``eventsourcing`` settings for a ``postgresql://`` URL and schema (benchmarks use it too)."""
    parts = urlsplit(url)
    if not parts.hostname or not parts.path.strip("/"):
        raise ConfigError("DATABASE_URL must name a host and a database")
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
        "POSTGRES_HOST": parts.hostname,
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_POOL_SIZE": "10",
        "POSTGRES_MAX_OVERFLOW": "10",
        # a pooled connection a database restart cut is replaced before it is handed out, and
        # a query waits 5 s (not 30) for a connection before the library tries again
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT_S),
        # not a setting of the library: adapters.eventstore gives its connections this name
        "POSTGRES_APPLICATION_NAME": application_name(url, schema),
    }
    if schema:
        env["POSTGRES_SCHEMA"] = schema
    return env


def application_name(url: str, schema: str | None) -> str:
    """The name every PostgreSQL connection of the engine shows in ``pg_stat_activity``:
    ``application_name`` of ``DATABASE_URL`` if it sets one, else ``bitloot`` — or
    ``bitloot:<schema>`` with a ``DATABASE_SCHEMA``, so that deployments sharing a database
    are told apart (PGAPPNAME, when set, still wins)."""
    given = parse_qs(urlsplit(url).query).get("application_name")
    if given:
        return given[0]
    return f"{APPLICATION_NAME}:{schema}"[:63] if schema else APPLICATION_NAME
