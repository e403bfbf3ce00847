"""Use cases of the order's lifecycle: place, pay, buy from the supplier, deliver, retry.
Each loads the order, asks the domain to decide, and saves through ``Orders``."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from decimal import Decimal
from uuid import UUID, uuid4

import msgspec

from application.catalog import Catalog
from application.customers import CustomerData
from application.errors import KeysNotReady, SupplierRejected, SupplierUnavailable
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
from domain.catalog import LineRequest, check_currency
from domain.events import DomainEvent
from domain.order import DeliveredKey, Order
from domain.supply import INSUFFICIENT_BALANCE, PRICE_CHANGED, SupplierNotice

log = logging.getLogger(__name__)


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How often a background step may fail before the order needs an admin, and how long
    to wait between attempts: capped exponential backoff with jitter (half to all of it)."""

    budget: int = 12
    base_s: float = 0.5
    cap_s: float = 60.0

    def delay_s(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1, 2, …)."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** min(attempt - 1, 30))
        return ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret


class Fulfillment:
    """From placing an order to its keys sealed in the vault."""

    def __init__(
        self,
        *,
        orders: Orders,
        catalog: Catalog,
        supplier: Supplier,
        payments: PaymentGateway,
        custody: KeyCustody,
        customers: CustomerData,
        clock: Clock,
        retries: RetryPolicy | None = None,
    ) -> None:
        self._orders = orders
        self._catalog = catalog
        self._customers = customers
        self._supplier = supplier
        self._payments = payments
        self._custody = custody
        self._clock = clock
        self._retries = retries or RetryPolicy()

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
        self, viewer: Viewer, *, email: str, currency: str, lines: Sequence[LineRequest]
    ) -> Order:
        """Accept a new order for the viewer, every line priced from the catalog; its e-mail
        address is stored sealed."""
        check_currency(currency)
        items = self._catalog.quote(lines)
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
            order,
        )

    # -- background work (Dramatiq actors call these) --------------------------------------

    def reserve(self, order_id: UUID) -> None:
        """Buy a paid order's keys from the supplier, never above each line's cost cap;
        idempotent (``orderExternalId``). Keys Kinguin has already delivered are delivered in
        the same run (see ``_delivered_at_once``). A balance too low to pay holds the order (it
        resumes when the sweeper sends it again after a top-up); a price that moved above the
        cap fails it as ``supplier_price_changed`` for an admin to decide; a transient failure
        counts against the order's budget (see ``_attempt``)."""
        order = self._orders.load(order_id)
        if order.status is rules.Status.PAID:
            self._attempt("reserve", order, self._buy)

    def deliver(self, order_id: UUID) -> None:
        """Collect a purchase's keys, seal them in the vault and record them.

        This step is the one writer of a reserved order: Kinguin's ``order.status`` webhooks
        only wake it (see ``application.webhooks``). Its keys are read first: all delivered,
        the order is fulfilled without waiting for the purchase to be reported completed.
        Otherwise, unless Kinguin already said so, it is asked for the purchase's status (and
        the answer recorded): canceled or refunded fails the order; while it is processing,
        nothing happens. A transient failure counts against the order's budget (see
        ``_attempt``).
        """
        order = self._orders.load(order_id)
        if order.status is rules.Status.RESERVED and order.supplier_order_id is not None:
            self._attempt("deliver", order, self._collect)

    def give_up(self, order_id: UUID, reason: str) -> None:
        """Background work failed past its retries: mark the order for an admin."""
        self._orders.decide(
            order_id, lambda o: supply.gave_up(o, reason=reason, now=self._clock.now())
        )

    # -- admin commands --------------------------------------------------------------------

    def retry(self, order_id: UUID, viewer: Viewer) -> Order:
        """Send a fulfillment_failed order back to be bought or delivered again; one that
        failed on a moved supplier price is retried at the new cost (recorded with the margin
        it leaves)."""
        viewer.must_be_admin("retry orders")
        order = self._orders.load(order_id)
        new_costs = self.current_costs(order) if order.failure_reason == PRICE_CHANGED else {}
        known = {product: cost for product, cost in new_costs.items() if cost is not None}
        return self._orders.decide(
            order_id,
            lambda o: supply.retried(o, by=viewer.sub, now=self._clock.now(), new_costs=known),
        )

    def resume(self, order_id: UUID, viewer: Viewer) -> Order:
        """Have a purchase held for the supplier balance tried again now (after a top-up);
        if the balance still falls short, it is held again."""
        viewer.must_be_admin("resume purchases")
        return self._orders.decide(
            order_id, lambda o: supply.purchase_resumed(o, by=viewer.sub, now=self._clock.now())
        )

    def resolve_flags(self, order_id: UUID, viewer: Viewer, note: str) -> Order:
        """Clear the order's payment flags once an admin has settled them (``note``: how)."""
        viewer.must_be_admin("resolve payment flags")
        return self._orders.decide(
            order_id,
            lambda o: payments.flags_resolved(o, by=viewer.sub, note=note, now=self._clock.now()),
        )

    def current_costs(self, order: Order) -> dict[str, Decimal | None]:
        """What Kinguin charges now for each product of the order (None: not offered)."""
        costs: dict[str, Decimal | None] = {}
        for item in order.items:
            product = self._supplier.product(item.product_id)
            costs[item.product_id] = product.cost if product else None
        return costs

    # -- internals -------------------------------------------------------------------------

    def _attempt(self, step: str, order: Order, work: Callable[[Order], None]) -> None:
        """Run one attempt of a step, unless its retry time has not come. A failure retrying
        may fix (Kinguin 5xx, 429, timeouts; keys not all there yet) is recorded in the order
        with its next time — one WARNING line, no traceback — and, once the order's budget is
        spent, fails it for an admin. Anything else propagates (a bug, or the store is down)."""
        if supply.too_early(order, self._clock.now()):
            return
        try:
            work(order)
        except (SupplierUnavailable, KeysNotReady) as failure:
            self._failed_attempt(step, order, failure)

    def _failed_attempt(self, step: str, order: Order, failure: Exception) -> None:
        attempt = order.attempts + 1
        delay = self._retries.delay_s(attempt)
        error = f"{type(failure).__name__}: {failure}"
        after = self._orders.decide(
            order.id,
            lambda o: supply.attempt_failed(
                o, step=step, error=error, attempts_seen=order.attempts,
                budget=self._retries.budget, delay_s=delay, now=self._clock.now(),
            ),
            order,
        )  # fmt: skip
        if after.attempts != attempt:
            return  # another run of the step counted this attempt
        if after.retry_at is None:
            log.warning("order %s: %s attempt %d of %d failed (%s); giving up",
                        order.id, step, attempt, self._retries.budget, error)  # fmt: skip
        else:
            log.warning("order %s: %s attempt %d of %d failed (%s); next at %s",
                        order.id, step, attempt, self._retries.budget, error,
                        after.retry_at.isoformat(timespec="seconds"))  # fmt: skip

    def _buy(self, order: Order) -> None:
        needed = purchase_cost(order)
        balance = self._supplier.balance()
        if balance < needed:  # a cached figure may predate a top-up: ask Kinguin itself
            balance = self._supplier.balance(fresh=True)
        if balance < needed:
            self._hold(order.id, needed, balance)
            return
        try:
            purchase = self._supplier.place_order(order.supplier_reference, order.items)
        except SupplierRejected as refusal:
            self._refused(order, refusal, needed)
            return
        receipts = self._delivered_at_once(order, purchase.order_id)
        self._orders.decide(
            order.id,
            lambda o: supply.reserved(
                o, supplier_order_id=purchase.order_id, now=self._clock.now(), receipts=receipts
            ),
            order,
        )

    def _delivered_at_once(self, order: Order, purchase: str) -> list[DeliveredKey]:
        """Kinguin hands out keys in stock as soon as it accepts their purchase: when every key
        of the order is already there, it is sealed now and the order fulfilled with its
        reservation. Otherwise (keys still coming, a pre-order, Kinguin failing to answer)
        nothing is sealed, and the ``deliver`` step collects them as usual.

        The purchase is made: whatever fails here, its reservation is still recorded (a
        vault outage must not leave a bought order looking unbought, to be bought again after
        an admin's retry); ``deliver`` meets the failure again and retries it.
        """
        try:
            keys = self._supplier.fetch_keys(purchase)
        except (SupplierUnavailable, SupplierRejected) as failure:
            log.info("order %s: keys not read with the purchase (%s)", order.id, failure)
            return []
        if len(keys) < order.quantity:
            return []
        try:
            return [self._seal(order.id, key) for key in keys[: order.quantity]]
        except Exception as failure:  # noqa: BLE001 - see above: the reservation comes first
            log.warning("order %s: keys not sealed with the purchase (%s: %s); deliver will",
                        order.id, type(failure).__name__, failure)  # fmt: skip
            return []

    def _collect(self, order: Order) -> None:
        """Kinguin hands out a purchase's delivered keys while it is still processing: when
        they are all there, they are delivered at once; else, unless it said ``completed``
        before, its status is asked (and recorded) and, completed, its keys read again."""
        purchase = order.supplier_order_id or ""
        try:
            keys = self._supplier.fetch_keys(purchase)
            if len(keys) < order.quantity and order.supplier_status != supply.COMPLETED:
                order = self._poll_supplier(order, purchase)
                if (
                    order.supplier_status != supply.COMPLETED
                    or order.status is not rules.Status.RESERVED
                ):
                    return
                keys = self._supplier.fetch_keys(purchase)
        except SupplierRejected as refusal:
            self._lost_purchase(order, refusal)
            return
        if len(keys) < order.quantity:
            raise KeysNotReady(f"{len(keys)} of {order.quantity} keys delivered")
        receipts = [self._seal(order.id, key) for key in keys[: order.quantity]]
        self._orders.decide(
            order.id, lambda o: supply.keys_delivered(o, receipts, self._clock.now()), order
        )

    def _lost_purchase(self, order: Order, refusal: SupplierRejected) -> None:
        """Kinguin refused to show the purchase or its keys: retrying will not help. A purchase
        it no longer knows is looked up by ``orderExternalId`` first — never bought twice while
        it may exist; if it is found it is only news (the next attempt uses it)."""
        if refusal.status == 404:
            found = self._supplier.find_by_external_id(order.supplier_reference)
            if found is not None:
                raise SupplierUnavailable(f"purchase {found.order_id} found again") from None
        reason = f"{supply.SUPPLIER_ORDER_LOST}: {refusal}"
        log.warning("order %s: Kinguin refused the purchase for good (%s)", order.id, refusal)
        self._orders.decide(
            order.id, lambda o: supply.supplier_failed(o, reason=reason, now=self._clock.now())
        )

    def _hold(self, order_id: UUID, needed: Decimal, balance: Decimal | None) -> None:
        log.warning(
            "order %s waits: the supplier balance (%s EUR) does not cover %s EUR",
            order_id, balance, needed,
        )  # fmt: skip
        self._orders.decide(
            order_id,
            lambda o: supply.held(
                o, reason=INSUFFICIENT_BALANCE, needed=needed, balance=balance,
                now=self._clock.now(),
            ),
        )  # fmt: skip

    def _refused(self, order: Order, refusal: SupplierRejected, needed: Decimal) -> None:
        """Kinguin refused the purchase: a low balance holds, a moved price fails the order
        as ``supplier_price_changed``, anything else fails it with Kinguin's reason."""
        if refusal.kind == "InsufficientBalance":
            self._hold(order.id, needed, None)
            return
        if refusal.kind == "ProductUnavailable":
            costs = self.current_costs(order)
            if any(_above_cap(order, p, c) for p, c in costs.items()):
                moved = {p: c for p, c in costs.items() if _above_cap(order, p, c)}
                self._orders.decide(
                    order.id, lambda o: supply.price_changed(o, moved, self._clock.now())
                )
                return
        reason = str(refusal)
        self._orders.decide(
            order.id, lambda o: supply.supplier_failed(o, reason=reason, now=self._clock.now())
        )

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


def purchase_cost(order: Order) -> Decimal:
    """The most the purchase may cost: each line's cap (or, for orders placed before the
    catalog, its sale price) times its quantity."""
    return sum(
        ((item.cost_cap or item.unit_price) * item.quantity for item in order.items), Decimal(0)
    )


def _above_cap(order: Order, product_id: str, cost: Decimal | None) -> bool:
    if cost is None:
        return False
    caps = [i.cost_cap or i.unit_price for i in order.items if i.product_id == product_id]
    return any(cost > cap for cap in caps)
