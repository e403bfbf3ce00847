"""Which customers placed orders with an e-mail address, found by a keyed digest of the address
(``PersonalData.lookup_digest``), never by the address itself: the admins' search by e-mail.

The address is opened from the sealed copy in ``OrderPlaced`` with the customer's own key. An
erased customer's rows are deleted, and a rebuild cannot bring them back: their key is gone, so
their addresses no longer open."""

from __future__ import annotations

from adapters.views import Tx
from application.ports import PersonalData
from domain.events import CustomerErased, DomainEvent, OrderPlaced
from projections.base import Change, Projection


class CustomerEmailsProjection(Projection):
    """Lookup digests of e-mail addresses, with the customers (``sub``) who used them."""

    name = "customer_emails"
    topics = (OrderPlaced, CustomerErased)
    schema = (
        "CREATE TABLE IF NOT EXISTS {t} ("
        "lookup TEXT NOT NULL, owner TEXT NOT NULL, PRIMARY KEY (lookup, owner))",
        "CREATE INDEX IF NOT EXISTS {t}_owner ON {t} (owner)",
    )

    def __init__(self, personal: PersonalData) -> None:
        self._personal = personal

    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> Change | None:  # noqa: ARG002
        """Add the digest of an order's address; forget an erased customer's."""
        if isinstance(event, CustomerErased):
            tx.execute(f"DELETE FROM {table} WHERE owner = %s", (event.customer,))  # noqa: S608
        elif isinstance(event, OrderPlaced) and (email := self._email(event)):
            tx.execute(
                f"INSERT INTO {table} (lookup, owner) VALUES (%s, %s) "  # noqa: S608
                "ON CONFLICT (lookup, owner) DO NOTHING",
                (self._personal.lookup_digest(email), event.owner),
            )
        return None

    def _email(self, event: OrderPlaced) -> str | None:
        if event.email_sealed is None:
            return event.email or None  # stored before addresses were sealed
        return self._personal.open_personal(event.owner, event.email_sealed)
