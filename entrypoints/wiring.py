"""The outside world the engine talks to, one adapter per port: Kinguin, NOWPayments, the key
vault, the mailer, the broker and the checkpoints' signing key, built from the settings (the
production defaults) unless a caller hands one in (``bootstrap(settings, supplier=...)``: a
test's fake). Part of the composition root: with ``entrypoints/bootstrap.py``, the place where
adapters are chosen."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import dramatiq
import httpx

from adapters.broker import make_broker
from adapters.kinguin import KinguinClient
from adapters.mail import OutboxMailer, ResendMailer
from adapters.nowpayments import NowPaymentsClient
from adapters.s3_vault import S3Vault
from adapters.signing import Ed25519Signer, SigningKeyError
from adapters.vault import BlobVault, FileVault
from adapters.views import PostgresViews, SQLiteViews, ViewDatabase
from application.ports import Mailer, PaymentGateway, Signer, Supplier
from entrypoints.settings import ConfigError, Settings

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# An idle pooled connection is closed after 2 s: under a server's keep-alive timeout (uvicorn's,
# the sandboxes', is 5 s, the same as httpx's own default), so that a request is never sent on
# a connection the server is closing at that moment (it fails with "connection reset").
HTTP_LIMITS = httpx.Limits(keepalive_expiry=2.0)

Closers = list[Callable[[], None]]


class Outside(NamedTuple):
    """The adapters of the outside world, and what to close when the engine stops."""

    signer: Signer
    supplier: Supplier
    payments: PaymentGateway
    vault: BlobVault
    mailer: Mailer
    broker: dramatiq.Broker
    closers: tuple[Callable[[], None], ...]


def outside(
    settings: Settings,
    *,
    supplier: Supplier | None = None,
    payments: PaymentGateway | None = None,
    vault: BlobVault | None = None,
    mailer: Mailer | None = None,
    broker: dramatiq.Broker | None = None,
) -> Outside:
    """Each port's adapter: the one handed in, else the one the settings make."""
    signer = audit_signer(settings)  # first: a bad key is refused before anything connects
    closers: Closers = []
    return Outside(
        signer=signer,
        supplier=supplier or kinguin(settings, closers),
        payments=payments or nowpayments(settings, closers),
        vault=vault or open_vault(settings, closers),
        mailer=mailer or open_mailer(settings, closers),
        broker=broker or make_broker(settings.redis_url, settings.broker_namespace),
        closers=tuple(closers),
    )


def audit_signer(settings: Settings) -> Ed25519Signer:
    """The key that signs the log's checkpoints (``AUDIT_SIGNING_KEY``: a base64 seed or a PEM
    block); ``ConfigError`` naming the variable when it is not an Ed25519 private key."""
    try:
        return Ed25519Signer.from_text(settings.audit_signing_key)
    except SigningKeyError as bad:
        raise ConfigError(f"AUDIT_SIGNING_KEY must be an Ed25519 private key: {bad}") from None


def kinguin(settings: Settings, closers: Closers) -> KinguinClient:
    """Kinguin (or its sandbox) over HTTP, with the shop's API key."""
    http = _client(settings.kinguin_url, {"X-Api-Key": settings.kinguin_api_key}, closers)
    return KinguinClient(http)


def nowpayments(settings: Settings, closers: Closers) -> NowPaymentsClient:
    """NOWPayments (or its sandbox) over HTTP; its IPNs come back to the public address."""
    http = _client(settings.nowpayments_url, {"x-api-key": settings.nowpayments_api_key}, closers)
    return NowPaymentsClient(http, f"{settings.public_base_url}/webhooks/nowpayments/ipn")


def open_vault(settings: Settings, closers: Closers | None = None) -> FileVault | S3Vault:
    """The S3 vault when R2_* are set, else encrypted files under the var folder."""
    if not settings.uses_s3:
        return FileVault(settings.var_dir / "vault")
    vault = S3Vault(
        endpoint=settings.r2_endpoint or "",
        bucket=settings.r2_bucket or "",
        access_key_id=settings.r2_access_key_id or "",
        secret_access_key=settings.r2_secret_access_key or "",
    )
    vault.ensure_bucket()
    if closers is not None:
        closers.append(vault.close)
    return vault


def open_mailer(settings: Settings, closers: Closers) -> ResendMailer | OutboxMailer:
    """Resend when its API key is set, else e-mails as files under the var folder."""
    if not settings.resend_api_key:
        return OutboxMailer(settings.var_dir / "outbox", settings.email_from)
    auth = {"Authorization": f"Bearer {settings.resend_api_key}"}
    return ResendMailer(_client(settings.resend_base_url, auth, closers), settings.email_from)


def open_views(settings: Settings) -> ViewDatabase:
    """The read-model database beside the event store."""
    conninfo = settings.postgres_conninfo()
    if conninfo is None:
        return SQLiteViews(settings.var_dir / "views.db")
    return PostgresViews(conninfo, settings.database_schema)


def _client(base_url: str, headers: dict[str, str], closers: Closers) -> httpx.Client:
    http = httpx.Client(
        base_url=base_url, headers=headers, timeout=HTTP_TIMEOUT, limits=HTTP_LIMITS
    )
    closers.append(http.close)
    return http
