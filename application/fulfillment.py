"""Use cases of the fulfilment engine: each loads an order, asks the domain to decide, saves.

Every append goes through ``_save``, the one path to the event store, so that concurrent saves
can later be coalesced (group commit) without touching the use cases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import reduce
from uuid import UUID, uuid4

import msgspec

from application.errors import (
    ConcurrencyConflict,
    DeliveryNotFound,
    KeysNotReady,
    NotAllowed,
    SupplierRejected,
)
from application.ports import (
    Clock,
    EventStore,
    KeyCustody,
    PaymentGateway,
    Supplier,
    SupplierKey,
    SupplierOrder,
)
from domain import order as rules
from domain.errors import OrderNotFound
from domain.events import (
    DomainEvent,
    LineItem,
    PaymentStatusChanged,
    WebhookDeliveryRecorded,
    WebhookReceived,
)
from domain.order import DeliveredKey, Order, PaymentNotice, SupplierNotice
from domain.webhooks import delivery_recorded

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8  # optimistic-concurrency retries before giving up
UNKNOWN_ORDER = "unknown order"
NO_CHANGE = "no change"

Decision = Callable[[Order], list[DomainEvent]]


class Viewer(msgspec.Struct, frozen=True, kw_only=True):
    """Who is asking: the token's subject and role."""

    sub: str
    role: str

    @property
    def is_admin(self) -> bool:
        """Admins see every order."""
        return self.role == "admin"


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """A verified webhook delivery: who sent it, its idempotency key, and its body."""

    provider: str
    natural_key: str
    event_name: str
    body: str


class RevealedKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key handed to its owner: the one place plaintext leaves the vault."""

    key_id: str
    product_id: str
    content_type: str
    serial: str


class Fulfillment:
    """The engine's use cases, from placing an order to revealing its keys."""

    def __init__(
        self,
        *,
        store: EventStore,
        supplier: Supplier,
        payments: PaymentGateway,
        custody: KeyCustody,
        clock: Clock,
    ) -> None:
        self._store = store
        self._supplier = supplier
        self._payments = payments
        self._custody = custody
        self._clock = clock

    # -- queries ---------------------------------------------------------------------------

    def order(self, order_id: UUID, viewer: Viewer, until_version: int | None = None) -> Order:
        """The order as the viewer may see it (owner or admin), now or at a past version."""
        return rules.fold(self.history(order_id, viewer, until_version))

    def history(
        self, order_id: UUID, viewer: Viewer, until_version: int | None = None
    ) -> list[DomainEvent]:
        """The order's events, oldest first, if the viewer may see them."""
        events = self._store.load(order_id, until_version=until_version)
        if not events or not _may_see(rules.fold(events[:1]), viewer):
            raise OrderNotFound(str(order_id))
        return events

    def supplier_order(self, supplier_order_id: str) -> SupplierOrder:
        """Kinguin's current view of a purchase."""
        return self._supplier.get_order(supplier_order_id)

    # -- customer commands -----------------------------------------------------------------

    def place_order(
        self, viewer: Viewer, *, email: str, currency: str, items: Sequence[LineItem]
    ) -> Order:
        """Accept a new order for the viewer."""
        events = rules.place(
            uuid4(),
            owner=viewer.sub,
            email=email,
            currency=currency,
            items=items,
            now=self._clock.now(),
        )
        self._save(events)
        return rules.fold(events)

    def create_payment(self, order_id: UUID, viewer: Viewer) -> Order:
        """Get the order an invoice; asking again returns the same invoice."""
        order = self._owned(order_id, viewer)
        if order.invoice_id is not None:
            return order
        invoice = self._payments.create_invoice(
            order_id=str(order.id),
            amount=order.total,
            currency=order.currency,
            description=f"BitLoot order {order.id}",
        )
        return self._decide(
            order_id,
            lambda o: (
                []
                if o.invoice_id
                else rules.invoice_created(
                    o,
                    invoice_id=invoice.invoice_id,
                    invoice_url=invoice.invoice_url,
                    now=self._clock.now(),
                )
            ),
        )

    def reveal(
        self, order_id: UUID, viewer: Viewer, *, ip: str, user_agent: str
    ) -> list[RevealedKey]:
        """Decrypt the owner's keys and record who read them, from where."""
        order = self._owned(order_id, viewer)

        def decide(o: Order) -> list[DomainEvent]:
            return rules.revealed(
                o, who=viewer.sub, ip=ip, user_agent=user_agent, how="reveal", now=self._clock.now()
            )

        decide(order)  # refuse before decrypting anything
        keys = [self._open(order.id, key) for key in order.keys]
        self._decide(order_id, decide)
        return keys

    # -- provider notifications ------------------------------------------------------------

    def payment_notified(
        self, order_id: UUID | None, notice: PaymentNotice, delivery: Delivery
    ) -> str:
        """Record a verified IPN once; return what it did ("duplicate" for a repeat)."""
        return self._record_delivery(delivery, order_id, self._payment_decision(notice))

    def supplier_notified(
        self, order_id: UUID | None, notice: SupplierNotice, delivery: Delivery
    ) -> str:
        """Record a verified Kinguin ``order.status`` once; return what it did to the order."""
        return self._record_delivery(delivery, order_id, self._supplier_decision(notice))

    def delivery(self, delivery_id: UUID) -> WebhookDeliveryRecorded:
        """A stored webhook delivery."""
        events = self._store.load(delivery_id)
        if not events or not isinstance(events[0], WebhookDeliveryRecorded):
            raise DeliveryNotFound(str(delivery_id))
        return events[0]

    def replay_payment(self, order_id: UUID | None, notice: PaymentNotice) -> str:
        """Re-run the handling of a stored IPN; the domain makes a repeat change nothing."""
        return self._replay(order_id, self._payment_decision(notice))

    def replay_supplier(self, order_id: UUID | None, notice: SupplierNotice) -> str:
        """Re-run the handling of a stored Kinguin webhook."""
        return self._replay(order_id, self._supplier_decision(notice))

    # -- background work (Dramatiq actors call these) --------------------------------------

    def reserve(self, order_id: UUID) -> None:
        """Buy a paid order's keys from the supplier; idempotent (``orderExternalId``)."""
        order = self._load(order_id)
        if order.status is not rules.Status.PAID:
            return
        try:
            purchase = self._supplier.place_order(order.supplier_reference, order.items)
        except SupplierRejected as refusal:
            reason = str(refusal)
            self._decide(
                order_id, lambda o: rules.supplier_failed(o, reason=reason, now=self._clock.now())
            )
            return
        self._decide(
            order_id,
            lambda o: rules.reserved(o, supplier_order_id=purchase.order_id, now=self._clock.now()),
        )

    def deliver(self, order_id: UUID) -> None:
        """Collect a completed purchase's keys, seal them in the vault and record them.

        Without a ``completed`` webhook on record, Kinguin is asked for the purchase's status
        (a lost webhook must not strand the order); while it is processing, nothing happens.
        """
        order = self._load(order_id)
        purchase = order.supplier_order_id
        if order.status is not rules.Status.RESERVED or purchase is None:
            return
        if order.supplier_status != "completed":
            order = self._poll_supplier(order, purchase)
            if order.supplier_status != "completed" or order.status is not rules.Status.RESERVED:
                return
        keys = self._supplier.fetch_keys(purchase)
        if len(keys) < order.quantity:
            raise KeysNotReady(f"{len(keys)} of {order.quantity} keys delivered")
        receipts = [self._seal(order.id, key) for key in keys[: order.quantity]]
        self._decide(order_id, lambda o: rules.keys_delivered(o, receipts, self._clock.now()))

    def give_up(self, order_id: UUID, reason: str) -> None:
        """Background work failed past its retries: mark the order for an admin."""
        self._decide(order_id, lambda o: rules.gave_up(o, reason=reason, now=self._clock.now()))

    # -- admin commands --------------------------------------------------------------------

    def retry(self, order_id: UUID, viewer: Viewer) -> Order:
        """Send a fulfillment_failed order back to be bought or delivered again."""
        if not viewer.is_admin:
            raise NotAllowed("only admins retry orders")
        return self._decide(
            order_id, lambda o: rules.retried(o, by=viewer.sub, now=self._clock.now())
        )

    # -- internals -------------------------------------------------------------------------

    def _poll_supplier(self, order: Order, supplier_order_id: str) -> Order:
        purchase = self._supplier.get_order(supplier_order_id)
        notice = SupplierNotice(
            supplier_order_id=purchase.order_id,
            status=purchase.status,
            updated_at=self._clock.now().isoformat(timespec="milliseconds"),
            external_id=purchase.external_id,
        )
        return self._decide(order.id, lambda o: rules.supplier_polled(o, notice, self._clock.now()))

    def _load(self, order_id: UUID) -> Order:
        events = self._store.load(order_id)
        if not events:
            raise OrderNotFound(str(order_id))
        return rules.fold(events)

    def _owned(self, order_id: UUID, viewer: Viewer) -> Order:
        order = self._load(order_id)
        if order.owner != viewer.sub:
            raise OrderNotFound(str(order_id))
        return order

    def _decide(self, order_id: UUID, decide: Decision) -> Order:
        """Load, decide, save; on a lost race, reload and decide again."""
        for _ in range(MAX_ATTEMPTS):
            order = self._load(order_id)
            events = decide(order)
            try:
                self._save(events)
            except ConcurrencyConflict:
                continue
            return reduce(rules.apply, events, order)
        raise ConcurrencyConflict(f"order {order_id}: too many concurrent writers")

    def _payment_decision(self, notice: PaymentNotice) -> Decision:
        return lambda o: rules.payment_notified(o, notice, self._clock.now())

    def _supplier_decision(self, notice: SupplierNotice) -> Decision:
        return lambda o: rules.supplier_notified(o, notice, self._clock.now())

    def _record_delivery(self, delivery: Delivery, order_id: UUID | None, decide: Decision) -> str:
        """Save the delivery and its effect on the order in one transaction, exactly once.

        A delivery naming no known order is stored all the same, for an admin to see.
        """
        for _ in range(MAX_ATTEMPTS):
            order = self._find(order_id)
            events = decide(order) if order else []
            recorded = self._delivery_event(delivery, order, events)
            try:
                self._save([recorded, *events])
            except ConcurrencyConflict:
                if self._store.load(recorded.originator_id):
                    log.info("%s delivery %s repeated", delivery.provider, delivery.natural_key)
                    return "duplicate"
                continue
            return recorded.outcome
        raise ConcurrencyConflict(f"delivery {delivery.natural_key}: too many concurrent writers")

    def _replay(self, order_id: UUID | None, decide: Decision) -> str:
        before = self._find(order_id)
        if before is None:
            return UNKNOWN_ORDER
        self._decide(before.id, decide)
        return _effects(self._store.load(before.id)[before.version :]) or NO_CHANGE

    def _find(self, order_id: UUID | None) -> Order | None:
        if order_id is None:
            return None
        events = self._store.load(order_id)
        return rules.fold(events) if events else None

    def _delivery_event(
        self, delivery: Delivery, order: Order | None, events: list[DomainEvent]
    ) -> WebhookDeliveryRecorded:
        outcome = (_effects(events) or NO_CHANGE) if order else UNKNOWN_ORDER
        return delivery_recorded(
            provider=delivery.provider,
            natural_key=delivery.natural_key,
            event_name=delivery.event_name,
            order_id=order.id if order else None,
            body=delivery.body,
            outcome=outcome,
            now=self._clock.now(),
        )

    def _save(self, events: Sequence[DomainEvent]) -> None:
        if events:
            self._store.save(events)

    def _seal(self, order_id: UUID, key: SupplierKey) -> DeliveredKey:
        sealed = self._custody.seal(order_id, key.id, key.serial.encode())
        return DeliveredKey(
            key_id=key.id,
            product_id=key.product_id,
            vault_ref=sealed.vault_ref,
            fingerprint=sealed.fingerprint,
            content_type=key.content_type,
        )

    def _open(self, order_id: UUID, key: DeliveredKey) -> RevealedKey:
        plaintext = self._custody.open(order_id, key.key_id, key.vault_ref)
        return RevealedKey(
            key_id=key.key_id,
            product_id=key.product_id,
            content_type=key.content_type,
            serial=plaintext.decode(),
        )


def _effects(events: Sequence[DomainEvent]) -> str:
    """The names of the events that changed something, audit lines left out."""
    audit = (WebhookReceived, PaymentStatusChanged)
    return ", ".join(type(e).__name__ for e in events if not isinstance(e, audit))


def _may_see(order: Order, viewer: Viewer) -> bool:
    return viewer.is_admin or order.owner == viewer.sub
