"""The catalog's use cases: sync products from Kinguin (full, incremental, one product after a
``product.update``), set the margin rules and reprice, and quote an order's lines.

Products are aggregates in the same event store as orders; a page of the supplier's catalog is
saved in one transaction. The shop's prices are read from the product aggregates themselves,
never from a read model, so an order is always priced at the latest recorded price.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import msgspec

from application.errors import ConcurrencyConflict, SupplierError
from application.orders import MAX_ATTEMPTS
from application.ports import Clock, EventStore, ProductSnapshots, Supplier
from domain import catalog as rules
from domain.catalog import LineRequest, PricingRules, Product
from domain.events import CatalogSynced, DomainEvent, LineItem, ProductImported, SupplierProduct

log = logging.getLogger(__name__)

PAGE_SIZE = 100  # Kinguin's maximum page
SNAPSHOT_EVERY = 100  # events after a product's last snapshot that make a load keep a new one
Progress = Callable[[int, int], None]
ProductDecision = Callable[[Product | None], list[DomainEvent]]


class SyncReport(msgspec.Struct, frozen=True, kw_only=True):
    """What a sync did."""

    mode: str
    seen: int
    changed: int


class Catalog:
    """Products, prices and the sync with Kinguin."""

    def __init__(
        self,
        store: EventStore,
        supplier: Supplier,
        clock: Clock,
        tolerance_percent: Decimal,
        snapshots: ProductSnapshots | None = None,
    ) -> None:
        self._store = store
        self._snapshots = snapshots
        self._supplier = supplier
        self._clock = clock
        self._tolerance = tolerance_percent
        self._imported = False  # a finished import is never undone: once seen, not asked again

    # -- queries ---------------------------------------------------------------------------

    def product(self, product_id: str) -> Product | None:
        """One product as its events tell it."""
        return self._load(rules.product_aggregate_id(product_id))

    def rules(self) -> PricingRules:
        """The margin rules in force."""
        return rules.fold_rules(self._store.load(rules.PRICING_ID))

    def last_sync(self) -> CatalogSynced | None:
        """The newest finished sync."""
        event = self._store.latest(rules.SYNC_ID)
        return event if isinstance(event, CatalogSynced) else None

    def imported(self) -> bool:
        """Whether a catalog import has ever finished (in any process): until then orders find
        no product. Cheap to ask often: one lookup until the answer is yes, none after."""
        if not self._imported:
            self._imported = self.last_sync() is not None
        return self._imported

    def quote(self, requests: Sequence[LineRequest]) -> list[LineItem]:
        """Price an order's lines at the current sale prices (or refuse them)."""
        products = {r.product_id: self.product(r.product_id) for r in requests}
        return rules.quote_lines(
            requests,
            products,
            today=self._clock.now().date(),
            tolerance_percent=self._tolerance,
        )

    # -- sync ------------------------------------------------------------------------------

    def sync(self, *, full: bool = False, progress: Progress | None = None) -> SyncReport:
        """Import Kinguin's catalog page by page: everything, or (``full=False`` after a first
        sync) only what changed since the last sync started."""
        started = self._clock.now()
        last = None if full else self.last_sync()
        since = last.started_at if last else None
        pricing = self.rules()
        seen = changed = 0
        page = 1
        while True:
            batch = self._supplier.products(page=page, limit=PAGE_SIZE, updated_since=since)
            changed += self._save_page(batch.products, pricing)
            seen += len(batch.products)
            if progress is not None:
                progress(seen, batch.total)
            if len(batch.products) < PAGE_SIZE or seen >= batch.total:
                break
            page += 1
        mode = "incremental" if since else "full"
        self._record_sync(mode, started, seen, changed)
        return SyncReport(mode=mode, seen=seen, changed=changed)

    def refresh(self, product_id: str) -> None:
        """Read one product again (after a ``product.update``): update, reprice, or withdraw."""
        supplier = self._supplier.product(product_id)
        now = self._clock.now()
        if supplier is None:
            self._decide(product_id, lambda p: rules.withdrawn(p, "no longer offered", now))
            return
        pricing = self.rules()
        self._decide(product_id, lambda p: rules.synced(p, supplier, pricing, now))

    def set_rules(self, pricing: PricingRules, *, by: str) -> int:
        """Record new margin rules and reprice every product; return how many changed price."""
        self._append_next(
            rules.PRICING_ID,
            lambda version: rules.rules_set(version, pricing, by=by, now=self._clock.now()),
        )
        return self.reprice_all(pricing)

    def reprice_all(self, pricing: PricingRules) -> int:
        """Reprice every product under ``pricing``; return how many changed."""
        changed = 0
        now = self._clock.now()
        for aggregate_id in self._store.originators(ProductImported):
            product = self._load(aggregate_id)
            if product is None:
                continue
            changed += self._decide(
                product.supplier.product_id,
                lambda p: rules.repriced(p, pricing, now) if p else [],
            )
        return changed

    # -- internals -------------------------------------------------------------------------

    def _load(self, aggregate_id: UUID) -> Product | None:
        """A product from its newest snapshot and the events after it; one that many events
        followed is kept as a new snapshot (``adapters.snapshots``)."""
        if self._snapshots is None:
            return rules.fold_product(self._store.load(aggregate_id))
        start = self._snapshots.latest(aggregate_id)
        since = start.version if start else 0
        product = rules.fold_product(self._store.load(aggregate_id, after_version=since), start)
        if product is not None and product.version - since >= SNAPSHOT_EVERY:
            self._snapshots.save(product)
        return product

    def _save_page(self, products: Sequence[SupplierProduct], pricing: PricingRules) -> int:
        """One transaction for the page; on a lost race, product by product."""
        now = self._clock.now()
        events: list[DomainEvent] = []
        changed = 0
        for supplier in products:
            new = rules.synced(self.product(supplier.product_id), supplier, pricing, now)
            events.extend(new)
            changed += bool(new)
        try:
            if events:
                self._store.save(events)
        except ConcurrencyConflict:
            return sum(self._sync_one(s, pricing, now) for s in products)
        return changed

    def _sync_one(self, supplier: SupplierProduct, pricing: PricingRules, now: datetime) -> int:
        return self._decide(supplier.product_id, lambda p: rules.synced(p, supplier, pricing, now))

    def _decide(self, product_id: str, decide: ProductDecision) -> int:
        """Load, decide, save one product; reload on a lost race. 1 if it changed, else 0."""
        for _ in range(MAX_ATTEMPTS):
            events = decide(self.product(product_id))
            if not events:
                return 0
            try:
                self._store.save(events)
            except ConcurrencyConflict:
                continue
            return 1
        raise ConcurrencyConflict(f"product {product_id}: too many concurrent writers")

    def _record_sync(self, mode: str, started: datetime, seen: int, changed: int) -> None:
        self._append_next(
            rules.SYNC_ID,
            lambda version: [
                CatalogSynced(
                    originator_id=rules.SYNC_ID,
                    originator_version=version + 1,
                    timestamp=self._clock.now(),
                    mode=mode,
                    started_at=started,
                    seen=seen,
                    changed=changed,
                )
            ],
        )
        log.info("catalog sync (%s): %d products seen, %d changed", mode, seen, changed)

    def _append_next(self, aggregate_id: UUID, make: Callable[[int], list[DomainEvent]]) -> None:
        """Append to a singleton aggregate (pricing rules, sync record) after its newest event
        (``make`` gets that event's version); on a lost race, read the version again."""
        for _ in range(MAX_ATTEMPTS):
            latest = self._store.latest(aggregate_id)
            try:
                self._store.save(make(latest.originator_version if latest else 0))
            except ConcurrencyConflict:
                continue
            return
        raise ConcurrencyConflict(f"aggregate {aggregate_id}: too many concurrent writers")


class Reconciler:
    """The periodic reconciliation with Kinguin: an incremental sync every ``interval_s`` (the
    first one right after start: a full import when the catalog was never synced), sooner again
    after a failure. ``step`` is driven by a background loop that polls it often."""

    def __init__(
        self,
        catalog: Catalog,
        interval_s: float,
        retry_s: float = 1.0,
        first_after_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog = catalog
        self._interval = interval_s
        self._retry = retry_s
        self._monotonic = monotonic
        # The embedded sandbox is served by this very process, which starts listening just
        # after its background parts start: the first sync waits a moment for it.
        self._due = monotonic() + first_after_s

    def step(self) -> int:
        """Sync when due; a supplier failure is one WARNING line and a retry soon."""
        now = self._monotonic()
        if now < self._due:
            return 0
        try:
            self._catalog.sync()
        except SupplierError as failure:
            log.warning("catalog sync failed (%s); retrying in %.0f s", failure, self._retry)
            self._due = now + self._retry
            return 0
        self._due = now + self._interval
        return 0
