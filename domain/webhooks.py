"""Webhook deliveries: each is its own one-event aggregate whose id is derived from the
provider's idempotency key, so storing a delivery twice collides in the event store —
that collision *is* the deduplication."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid5

from domain.events import WebhookDeliveryRecorded

_NAMESPACE = UUID("6f1c1a8e-2c55-4c0e-9a39-2f0a4c1b7d10")


def delivery_id(provider: str, natural_key: str) -> UUID:
    """The deterministic id of a provider's delivery (uuid5 of provider and natural key)."""
    return uuid5(_NAMESPACE, f"{provider}:{natural_key}")


def nowpayments_key(payment_id: str, payment_status: str) -> str:
    """NOWPayments deliveries are unique per payment and status."""
    return f"{payment_id}:{payment_status}"


def kinguin_key(supplier_order_id: str, status: str, updated_at: str) -> str:
    """Kinguin deliveries are unique per order, status and update time."""
    return f"{supplier_order_id}:{status}:{updated_at}"


def kinguin_product_key(product_id: str, updated_at: str) -> str:
    """Kinguin ``product.update`` deliveries are unique per product and update time."""
    return f"product:{product_id}:{updated_at}"


def product_of_key(natural_key: str) -> str | None:
    """The product id inside a ``product.update`` delivery's natural key."""
    kind, _, rest = natural_key.partition(":")
    product_id, _, _ = rest.partition(":")
    return product_id if kind == "product" and product_id else None


def delivery_recorded(
    *,
    provider: str,
    natural_key: str,
    event_name: str,
    order_id: UUID | None,
    body: str,
    outcome: str,
    now: datetime,
    headers: dict[str, str] | None = None,
) -> WebhookDeliveryRecorded:
    """The single event of a verified delivery."""
    return WebhookDeliveryRecorded(
        originator_id=delivery_id(provider, natural_key),
        originator_version=1,
        timestamp=now,
        provider=provider,
        natural_key=natural_key,
        event_name=event_name,
        order_id=str(order_id) if order_id else None,
        verified=True,
        body=body,
        outcome=outcome,
        headers=dict(headers or {}),
    )
