"""One Kinguin sandbox instance: its catalog, balance, orders and keys, and the background
work (completing orders, releasing pre-orders, sending webhooks)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
from litestar import Request, Response

from sandboxes.control import (
    SandboxControlError,
)
from sandboxes.faults import (
    Faults,
    FaultSwitch,
)
from sandboxes.gate import ApiGate, post_callback, send_copies
from sandboxes.journal import Journal
from sandboxes.kinguin.catalog import (
    Catalog,
    CatalogProduct,
    KinguinProduct,
    KinguinProductPage,
    KinguinProductUpdateEvent,
    ProductQuery,
    effective_price,
    match_offer,
    product_update_event,
    product_view,
)
from sandboxes.kinguin.config import (
    ALNUM,
    CENT,
    EVENT_TICK,
    KINGUIN_ID,
    ORDER_ID_LENGTH,
    RELEASE_POLL_S,
    WEBHOOK_RETRY_DELAYS_S,
    WEBHOOK_TIMEOUT_S,
    KinguinSandboxConfig,
)
from sandboxes.kinguin.params import UNAUTHORIZED_BODY, check_page
from sandboxes.kinguin.products import build_catalog
from sandboxes.kinguin.rules import (
    buy,
    check_preorders,
    check_returnable,
    external_id_used,
    fault_error,
    key_view,
    order_view,
    refund,
    restored_order,
    status_event,
    system_now,
)
from sandboxes.kinguin.state import (
    BalanceSet,
    Completed,
    Order,
    Placed,
    Purchase,
    Record,
    Released,
    Returned,
    Started,
    money,
    placed_record,
)
from sandboxes.kinguin.wire import (
    KinguinApiError,
    KinguinKey,
    KinguinOrder,
    KinguinOrderKey,
    KinguinOrderLineRequest,
    KinguinOrderPage,
    KinguinOrderStatusEvent,
    KinguinPlaceOrderRequest,
)

logger = logging.getLogger(__name__)


class KinguinSandbox:
    """Catalog, balance, orders, their keys and the background work of one sandbox instance."""

    def __init__(self, config: KinguinSandboxConfig) -> None:
        self._config = config
        self._orders: dict[str, Order] = {}
        self._by_external_id: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._releases: dict[str, asyncio.Event] = {}
        self._resumed = False
        self.control_check = config.control_check
        self.faults = FaultSwitch("kinguin", config.faults, config.rng, self._on_faults_changed)
        self._gate = ApiGate(
            key=config.api_key,
            header="x-api-key",
            faults=self.faults,
            timeout_s=config.timeout_s,
            refusal=lambda: Response(UNAUTHORIZED_BODY, status_code=401),
            fault_error=fault_error,
        )
        start_balance = config.faults.balance
        self.balance = money(config.initial_balance if start_balance is None else start_balance)
        state = config.state_dir / "kinguin.jsonl" if config.state_dir is not None else None
        self._journal: Journal[Record] = Journal(state, Record)
        self._catalog = self._restore(self._journal.replay())
        self._kinguin_order_ids = itertools.count(
            max((order.kinguin_order_id for order in self._orders.values()), default=10_000_000) + 1
        )

    def now(self) -> datetime:
        """The sandbox's "now": the configured clock, else the system's (UTC)."""
        return self._config.clock() if self._config.clock is not None else system_now()

    async def admit(self, request: Request[Any, Any, Any]) -> Response[Any] | None:
        """Gate an API request: 401 without the key, then the injected faults (which raise)."""
        return await self._gate.admit(request)

    # --- restart ---

    def _restore(self, records: list[Record]) -> Catalog:
        """Rebuild the catalog, orders and balance from the journal (a fresh one: now)."""
        started = next((r.at for r in records if isinstance(r, Started)), None)
        if started is None:
            started = self.now()
            self._journal.append(Started(started))
        catalog = build_catalog(started, self._config.extra_products)
        for record in records:
            self._apply(catalog, record)
        return catalog

    def _apply(self, catalog: Catalog, record: Record) -> None:
        if isinstance(record, Placed):
            self._add(restored_order(catalog, record))
            self.balance = record.balance
        elif isinstance(record, Completed):
            self._orders[record.order_id].complete(record.at)
            self._orders[record.order_id].done.set()
        elif isinstance(record, Returned):
            refund(self._orders[record.order_id], record.at)
            self.balance = record.balance
        elif isinstance(record, Released):
            catalog.products[record.product_id].release(record.at)
        elif isinstance(record, BalanceSet):
            self.balance = record.balance

    def resume(self) -> None:
        """Once, at the first request after a restart: finish the orders still under way."""
        if self._resumed:
            return
        self._resumed = True
        for order in self._orders.values():
            if order.status == "processing":
                self._schedule(order)

    def _add(self, order: Order) -> None:
        self._orders[order.order_id] = order
        if order.external_id is not None:
            self._by_external_id[order.external_id] = order.order_id

    # --- catalog ---

    def products(self, page: int, limit: int, query: ProductQuery) -> KinguinProductPage:
        """One page of the products matching ``query`` and the total match count."""
        check_page(page, limit)
        jump = self.faults.current.price_jump
        matches = self._catalog.search(query, jump)
        page_items = matches[(page - 1) * limit : page * limit]
        return KinguinProductPage([product_view(item, jump) for item in page_items], len(matches))

    def product_by_kinguin_id(self, raw_id: str) -> KinguinProduct:
        """``GET /v1/products/{kinguinId}``: the product, or 404 if unknown or out of stock."""
        found = self._catalog.by_kinguin_id.get(int(raw_id)) if KINGUIN_ID.match(raw_id) else None
        return self._available_view(found, raw_id)

    def product_by_id(self, product_id: str) -> KinguinProduct:
        """``GET /v2/products/{productId}``: the product, or 404 if unknown or out of stock."""
        return self._available_view(self._catalog.get(product_id), product_id)

    def release(self, product_id: str) -> KinguinProduct:
        """Control: release ``product_id`` now; its pending pre-orders then complete."""
        product = self._catalog.get(product_id)
        if product is None:
            raise SandboxControlError(404, f'Product "{product_id}" not found')
        now = self.now()
        self._journal.append(Released(product_id, now))
        product.release(now)
        self._touch([product])
        waiters = self._releases.pop(product_id, None)
        if waiters is not None:
            waiters.set()
        return product_view(product, self.faults.current.price_jump)

    def _available_view(self, product: CatalogProduct | None, name: str) -> KinguinProduct:
        if product is None or product.total_qty() == 0:
            detail = f'Product "{name}" not found or out of stock.'
            raise KinguinApiError(404, "ProductUnavailable", detail)
        return product_view(product, self.faults.current.price_jump)

    # --- orders ---

    def place(self, request: KinguinPlaceOrderRequest) -> KinguinOrder:
        """Match, charge and create a ``processing`` order; schedule its webhooks and completion."""
        external_id = request.order_external_id
        if external_id is not None and external_id in self._by_external_id:
            raise external_id_used()
        self._check_stock(request)
        purchases = self._match(request)
        charge = money(sum(purchase.price * purchase.request.qty for purchase in purchases))
        if charge > self.balance + CENT:
            detail = f"Insufficient balance: the order costs {charge:.2f} EUR, the balance is "
            raise KinguinApiError(400, "InsufficientBalance", f"{detail}{self.balance:.2f} EUR.")
        self.balance = money(self.balance - charge)
        order = Order(
            order_id=self._new_order_id(),
            external_id=external_id,
            kinguin_order_id=next(self._kinguin_order_ids),
            created_at=self.now(),
            lines=[buy(purchase) for purchase in purchases],
        )
        self._journal.append(placed_record(order, self.balance))
        self._add(order)
        answer = order_view(order)  # processing, whatever follows
        self._schedule(order)
        self._touch(line.product for line in order.lines)
        if external_id is not None and self.faults.current.duplicate_external_id:
            # The order exists; answer as a retry after a lost 201 would be answered.
            raise external_id_used()
        return answer

    def get(self, order_id: str) -> KinguinOrder:
        """Return one order or raise ``OrderNotFound``."""
        return order_view(self._order(order_id))

    def search(
        self,
        page: int,
        limit: int,
        order_external_id: str | None,
        order_id: str | None,
        status: str | None,
    ) -> KinguinOrderPage:
        """Filter the orders, newest first, and return one page with the total count."""
        check_page(page, limit)
        matches = [
            order
            for order in reversed(self._orders.values())
            if order_external_id in (None, order.external_id)
            and order_id in (None, order.order_id)
            and status in (None, order.status)
        ]
        page_items = matches[(page - 1) * limit : page * limit]
        return KinguinOrderPage([order_view(order) for order in page_items], len(matches))

    def keys(self, order_id: str, page: int, limit: int) -> list[KinguinKey]:
        """Return one page of the order's delivered keys."""
        order = self._order(order_id)
        check_page(page, limit)
        delivered = order.delivered()[(page - 1) * limit : page * limit]
        return [key_view(line, key) for line, key in delivered]

    def return_keys(self, order_id: str) -> list[KinguinOrderKey]:
        """Return every key of a completed order: refund it, credit the balance, restock."""
        order = self._order(order_id)
        now = self.now()
        check_returnable(order, now)
        at = max(now, (order.updated_at or order.created_at) + EVENT_TICK)
        self.balance = money(self.balance + order.total())
        self._journal.append(Returned(order.order_id, at, self.balance))
        refund(order, at)
        event = status_event(order, order.status, order.updated_at or now)
        self._spawn(self._send_status_webhook(event))
        self._touch(line.product for line in order.lines)
        return [KinguinOrderKey(key.id, key.status) for line in order.lines for key in line.keys]

    def _check_stock(self, request: KinguinPlaceOrderRequest) -> None:
        """Refuse the order when a line names an ``out_of_stock`` product."""
        out_of_stock = self.faults.current.out_of_stock
        for index, line in enumerate(request.products):
            if line.product_id in out_of_stock:
                raise KinguinApiError(
                    400,
                    "ProductUnavailable",
                    f'Product "{line.product_id}" is unavailable: no offer matches the request.',
                    f"products[{index}].productId",
                )

    def _match(self, request: KinguinPlaceOrderRequest) -> list[Purchase]:
        """Match every line to an offer, as Kinguin does, or raise the reason none fits."""
        products = [
            self._ordered_product(index, line) for index, line in enumerate(request.products)
        ]
        check_preorders(request.products, products)
        reserved: dict[str, int] = {}
        purchases: list[Purchase] = []
        for index, (line, product) in enumerate(zip(request.products, products, strict=True)):
            purchase = self._pick_offer(index, line, product, reserved)
            offer_id = purchase.offer.offer_id
            reserved[offer_id] = reserved.get(offer_id, 0) + line.qty
            purchases.append(purchase)
        return purchases

    def _ordered_product(self, index: int, line: KinguinOrderLineRequest) -> CatalogProduct:
        product = self._catalog.get(line.product_id)
        if product is None:
            detail = f'Product "{line.product_id}" not found.'
            raise KinguinApiError(400, "ProductUnavailable", detail, f"products[{index}].productId")
        return product

    def _pick_offer(
        self,
        index: int,
        line: KinguinOrderLineRequest,
        product: CatalogProduct,
        reserved: Mapping[str, int],
    ) -> Purchase:
        candidates = product.offers
        if line.offer_id is not None:
            offer = product.offer(line.offer_id)
            if offer is None:
                detail = f'Offer "{line.offer_id}" of product "{product.product_id}" not found.'
                raise KinguinApiError(
                    400, "ProductUnavailable", detail, f"products[{index}].offerId"
                )
            candidates = [offer]
        jump = self.faults.current.price_jump
        text = line.key_type == "text"
        chosen = match_offer(
            candidates, line.price, line.qty, text=text, price_jump=jump, reserved=reserved
        )
        if chosen is None:
            detail = (
                f'Product "{product.product_id}" is unavailable: no offer matches the price '
                f"{line.price:.2f} EUR and the quantity {line.qty}"
                f"{' of text keys' if text else ''}."
            )
            raise KinguinApiError(400, "ProductUnavailable", detail, f"products[{index}].price")
        return Purchase(line, product, chosen, effective_price(chosen, jump))

    def _order(self, order_id: str) -> Order:
        order = self._orders.get(order_id)
        if order is None:
            raise KinguinApiError(404, "OrderNotFound", f'Order "{order_id}" not found')
        return order

    def _new_order_id(self) -> str:
        while True:
            order_id = "".join(secrets.choice(ALNUM) for _ in range(ORDER_ID_LENGTH))
            if order_id not in self._orders:
                return order_id

    # --- product changes ---

    def _on_faults_changed(self, previous: Faults, current: Faults) -> None:
        """A faults set carrying ``balance`` sets it; a new ``price_jump`` changes every product."""
        if current.balance is not None:
            self.balance = money(current.balance)
            self._journal.append(BalanceSet(self.balance))
        if current.price_jump != previous.price_jump:
            self._touch(self._catalog.products.values())

    def _touch(self, products: Iterable[CatalogProduct]) -> None:
        """Bump the products' ``updatedAt``; with ``product_updates``, send their webhooks."""
        now = self.now()
        changed = list({product.product_id: product for product in products}.values())
        for product in changed:
            product.updated_at = max(now, product.updated_at + EVENT_TICK)
        if self.faults.current.product_updates and changed:
            jump = self.faults.current.price_jump
            events = [product_update_event(product, jump) for product in changed]
            self._spawn(self._send_product_updates(events))

    # --- background work ---

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        # Keep a reference: the event loop holds tasks only weakly.
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("kinguin sandbox: background task failed", exc_info=task.exception())

    def _schedule(self, order: Order) -> None:
        """Complete the order after the delay — without one, keys in stock are delivered
        before the purchase is answered, as Kinguin hands them out at once — and notify each
        status independently of delivery."""
        reorder = self.faults.current.reorder_webhooks
        if self._config.delay_s == 0 and not order.is_preorder:
            self._complete(order)
        else:
            self._spawn(self._complete_later(order))
        self._spawn(self._notify_statuses(order, reorder=reorder))

    async def _complete_later(self, order: Order) -> None:
        await self._released(order)
        await asyncio.sleep(self._config.delay_s)
        self._complete(order)

    def _complete(self, order: Order) -> None:
        at = max(self.now(), order.created_at + EVENT_TICK)
        self._journal.append(Completed(order.order_id, at))
        order.complete(at)
        order.done.set()

    async def _released(self, order: Order) -> None:
        """Wait until every pre-order line's product is released (at once for other orders)."""
        for line in order.lines:
            while line.is_preorder and not line.product.released(self.now()):
                waiters = self._releases.setdefault(line.product.product_id, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiters.wait(), RELEASE_POLL_S)

    async def _notify_statuses(self, order: Order, *, reorder: bool) -> None:
        """Send ``processing`` then ``completed``; reordered, ``completed`` then a stale one.

        A pre-order sends nothing before its release: Kinguin's pre-order webhooks follow it.
        """
        processing = status_event(order, "processing", order.created_at)
        await self._released(order)
        if not reorder:
            await self._send_status_webhook(processing)
        await order.done.wait()
        await self._send_status_webhook(
            status_event(order, "completed", order.completed_at or order.created_at)
        )
        if reorder:
            await self._send_status_webhook(processing)

    async def _send_status_webhook(self, event: KinguinOrderStatusEvent) -> None:
        """Send one ``order.status`` event, subject to the drop and duplicate faults."""
        what = f"order.status {event.status} webhook of order {event.order_id}"
        await self._send_webhook("order.status", msgspec.json.encode(event), what)

    async def _send_product_updates(self, events: Sequence[KinguinProductUpdateEvent]) -> None:
        """Send ``product.update`` events one after the other."""
        for event in events:
            what = f"product.update webhook of product {event.product_id}"
            await self._send_webhook("product.update", msgspec.json.encode(event), what)

    async def _send_webhook(self, event_name: str, body: bytes, what: str) -> None:
        """Send one webhook, subject to the drop and duplicate faults."""
        what = f"kinguin sandbox: {what}"
        await send_copies(self.faults, logger, what, lambda: self._deliver(event_name, body))

    async def _deliver(self, event_name: str, body: bytes) -> None:
        """POST one webhook body, retrying briefly while the receiver fails."""
        for delay in (*WEBHOOK_RETRY_DELAYS_S, None):
            if await self._post_webhook(event_name, body) or delay is None:
                return
            if self._config.callbacks.closed:
                return  # shutting down: counted by the callbacks' close
            await asyncio.sleep(delay)

    async def _post_webhook(self, event_name: str, body: bytes) -> bool:
        """POST one webhook; tell whether the receiver accepted it (2xx)."""
        headers = {
            "Content-Type": "application/json",
            "X-Event-Name": event_name,
            "X-Event-Secret": self._config.webhook_secret,
        }
        answer = await post_callback(
            self._config.callbacks, self._config.webhook_url, body, headers=headers,
            timeout_s=WEBHOOK_TIMEOUT_S, log=logger, what="kinguin sandbox: webhook",
        )  # fmt: skip
        return answer is not None and answer.is_success
