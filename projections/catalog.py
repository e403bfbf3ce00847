"""Every projection the engine keeps."""

from __future__ import annotations

from application.ports import PersonalData
from projections.base import Projection
from projections.customer_emails import CustomerEmailsProjection
from projections.key_audit import KeyAuditProjection
from projections.merkle import MerkleTreeProjection
from projections.orders import OrdersProjection
from projections.products import ProductsProjection
from projections.sales import SalesProjection
from projections.webhook_log import WebhookLogProjection


def all_projections(personal: PersonalData) -> list[Projection]:
    """A fresh instance of each projection (the e-mail lookup opens addresses with
    ``personal``)."""
    return [
        OrdersProjection(),
        WebhookLogProjection(),
        KeyAuditProjection(),
        ProductsProjection(),
        MerkleTreeProjection(),
        CustomerEmailsProjection(personal),
        SalesProjection(),
    ]


NAMES = (
    OrdersProjection.name,
    WebhookLogProjection.name,
    KeyAuditProjection.name,
    ProductsProjection.name,
    MerkleTreeProjection.name,
    CustomerEmailsProjection.name,
    SalesProjection.name,
)
"""The projections' names, in the order ``all_projections`` gives them."""
