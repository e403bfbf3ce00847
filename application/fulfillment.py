"""Use cases of the order's lifecycle: place, pay, buy from the supplier, deliver, retry.
Each loads the order, asks the domain to decide, and saves through ``Orders``."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID, uuid4

from application.customers import CustomerData
from application.errors import KeysNotReady, NotAllowed, SupplierRejected
from application.orders import Orders, Viewer
from application.ports import (
    Clock,
    KeyCustody,
    PaymentGateway,
    Supplier,
    SupplierKey,
    SupplierOrder,
)
from domain import order as rules
from domain import payments, supply
from domain.events import DomainEvent, LineItem
from domain.order import DeliveredKey, Order
from domain.supply import SupplierNotice


class Fulfillment:
    """From placing an order to its keys sealed in the vault."""

    def __init__(
        self,
        *,
        orders: Orders,
        supplier: Supplier,
        payments: PaymentGateway,
        custody: KeyCustody,
        customers: CustomerData,
        clock: Clock,
    ) -> None:
        self._orders = orders
        self._customers = customers
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
        return self._orders.history(order_id, viewer, until_version)

    def supplier_order(self, supplier_order_id: str) -> SupplierOrder:
        """Kinguin's current view of a purchase."""
        return self._supplier.get_order(supplier_order_id)

    # -- customer commands -----------------------------------------------------------------

    def place_order(
        self, viewer: Viewer, *, email: str, currency: str, items: Sequence[LineItem]
    ) -> Order:
        """Accept a new order for the viewer; its e-mail address is stored sealed."""
        events = rules.place(
            uuid4(),
            owner=viewer.sub,
            email=email,
            currency=currency,
            items=items,
            now=self._clock.now(),
            seal=lambda address: self._customers.seal_email(viewer.sub, address),
        )
        self._orders.save(events)
        return rules.fold(events)

    def create_payment(self, order_id: UUID, viewer: Viewer) -> Order:
        """Get the order an invoice; asking again returns the same invoice."""
        order = self._orders.owned(order_id, viewer)
        if order.invoice_id is not None:
            return order
        invoice = self._payments.create_invoice(
            order_id=str(order.id),
            amount=order.total,
            currency=order.currency,
            description=f"BitLoot order {order.id}",
        )
        return self._orders.decide(
            order_id,
            lambda o: (
                []
                if o.invoice_id
                else payments.invoice_created(
                    o,
                    invoice_id=invoice.invoice_id,
                    invoice_url=invoice.invoice_url,
                    now=self._clock.now(),
                )
            ),
        )

    # -- background work (Dramatiq actors call these) --------------------------------------

    def reserve(self, order_id: UUID) -> None:
        """Buy a paid order's keys from the supplier; idempotent (``orderExternalId``)."""
        order = self._orders.load(order_id)
        if order.status is not rules.Status.PAID:
            return
        try:
            purchase = self._supplier.place_order(order.supplier_reference, order.items)
        except SupplierRejected as refusal:
            reason = str(refusal)
            self._orders.decide(
                order_id, lambda o: supply.supplier_failed(o, reason=reason, now=self._clock.now())
            )
            return
        self._orders.decide(
            order_id,
            lambda o: supply.reserved(
                o, supplier_order_id=purchase.order_id, now=self._clock.now()
            ),
        )

    def deliver(self, order_id: UUID) -> None:
        """Collect a completed purchase's keys, seal them in the vault and record them.

        Without a ``completed`` webhook on record, Kinguin is asked for the purchase's status
        (a lost webhook must not strand the order); while it is processing, nothing happens.
        """
        order = self._orders.load(order_id)
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
        self._orders.decide(
            order_id, lambda o: supply.keys_delivered(o, receipts, self._clock.now())
        )

    def give_up(self, order_id: UUID, reason: str) -> None:
        """Background work failed past its retries: mark the order for an admin."""
        self._orders.decide(
            order_id, lambda o: supply.gave_up(o, reason=reason, now=self._clock.now())
        )

    # -- admin commands --------------------------------------------------------------------

    def retry(self, order_id: UUID, viewer: Viewer) -> Order:
        """Send a fulfillment_failed order back to be bought or delivered again."""
        if not viewer.is_admin:
            raise NotAllowed("only admins retry orders")
        return self._orders.decide(
            order_id, lambda o: supply.retried(o, by=viewer.sub, now=self._clock.now())
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
        return self._orders.decide(
            order.id, lambda o: supply.supplier_polled(o, notice, self._clock.now())
        )

    def _seal(self, order_id: UUID, key: SupplierKey) -> DeliveredKey:
        sealed = self._custody.seal(order_id, key.id, key.serial.encode())
        return DeliveredKey(
            key_id=key.id,
            product_id=key.product_id,
            vault_ref=sealed.vault_ref,
            fingerprint=sealed.fingerprint,
            content_type=key.content_type,
        )
