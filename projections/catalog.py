"""Every projection the engine keeps."""

from __future__ import annotations

from projections.base import Projection
from projections.key_audit import KeyAuditProjection
from projections.merkle import MerkleTreeProjection
from projections.orders import OrdersProjection
from projections.products import ProductsProjection
from projections.webhook_log import WebhookLogProjection


def all_projections() -> list[Projection]:
    """A fresh instance of each projection."""
    return [
        OrdersProjection(),
        WebhookLogProjection(),
        KeyAuditProjection(),
        ProductsProjection(),
        MerkleTreeProjection(),
    ]
