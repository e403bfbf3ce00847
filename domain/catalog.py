"""The catalog: products as aggregates (facts from Kinguin, the shop's sale price), the margin
rules that set those prices, and the quoting of an order's lines from them.

Every price a customer is charged comes from here: ``ProductPriced`` names the rule and the
supplier cost behind it, and a quoted line records the product version it was read at and the
cost cap its purchase may not exceed. Decisions are pure functions returning events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any
from uuid import UUID, uuid5

import msgspec

from domain.errors import (
    InvalidOrder,
    InvalidPricing,
    NotEnoughStock,
    PriceChanged,
    ProductNotSold,
)
from domain.events import (
    DomainEvent,
    LineItem,
    PricingRulesSet,
    ProductImported,
    ProductPriced,
    ProductUnpriced,
    ProductUpdated,
    ProductWithdrawn,
    SupplierProduct,
)
from domain.order import MAX_QUANTITY_PER_LINE, MAX_UNIT_PRICE, Stamper

CURRENCY = "eur"  # Kinguin prices in EUR, and so does the shop
CENT = Decimal("0.01")
_NAMESPACE = UUID("3a3e8f0e-8a51-4f4e-93c4-3c2bd7c3f1a0")
PRICING_ID = uuid5(_NAMESPACE, "pricing-rules")
SYNC_ID = uuid5(_NAMESPACE, "catalog-sync")


def product_aggregate_id(product_id: str) -> UUID:
    """The catalog aggregate of a Kinguin ``productId`` (uuid5, so a re-import collides)."""
    return uuid5(_NAMESPACE, f"kinguin:{product_id}")


class PricingRules(msgspec.Struct, frozen=True, kw_only=True):
    """How sale prices follow supplier costs: a margin in percent with a minimum in EUR,
    rounded up to an ending (``"0.99"``: prices end in .99; ``None``: to the cent), and fixed
    prices per product that override the margin."""

    margin_percent: Decimal = Decimal(20)
    minimum_margin: Decimal = Decimal("0.50")
    rounding: str | None = "0.99"
    overrides: dict[str, Decimal] = msgspec.field(default_factory=dict)

    def describe(self) -> str:
        """The rule in words, as ``ProductPriced.rule`` records it."""
        ending = f", rounded up to .{self.rounding[-2:]}" if self.rounding else ""
        return f"margin {self.margin_percent}% (at least {self.minimum_margin} EUR){ending}"


DEFAULT_RULES = PricingRules()


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """A sale price for a cost, or the reason there is none."""

    sale_price: Decimal | None
    rule: str


class Product(msgspec.Struct, frozen=True, kw_only=True):
    """A catalog product as folded from its events."""

    id: UUID
    version: int
    supplier: SupplierProduct
    updated_at: datetime
    sale_price: Decimal | None = None
    rule: str | None = None
    priced_cost: Decimal | None = None
    unpriced_reason: str | None = None
    withdrawn: str | None = None

    @property
    def for_sale(self) -> bool:
        """Listed and priced."""
        return self.withdrawn is None and self.sale_price is not None

    def is_preorder(self, today: date) -> bool:
        """Sold only as a pre-order: its release date is still to come."""
        release = _release_date(self.supplier.release_date)
        return self.supplier.is_preorder and (release is None or release > today)


# ---------------------------------------------------------------------------------------------
# Folding


PRODUCT_FOLD_VERSION = 1  # raise when apply_product folds differently: older snapshots go unused


def fold_product(events: Iterable[DomainEvent], start: Product | None = None) -> Product | None:
    """A product from its events, oldest first (None for none); from a snapshot (``start``),
    the events that follow it."""
    product = start
    for event in events:
        product = apply_product(product, event)
    return product


def apply_product(product: Product | None, event: DomainEvent) -> Product:
    """The product after ``event``."""
    if isinstance(event, ProductImported):
        return Product(
            id=event.originator_id,
            version=event.originator_version,
            supplier=event.supplier,
            updated_at=event.timestamp,
        )
    if product is None:
        raise ValueError(f"{type(event).__name__} before ProductImported")
    return msgspec.structs.replace(
        product,
        version=event.originator_version,
        updated_at=event.timestamp,
        **_product_changes(event),
    )


def _product_changes(event: DomainEvent) -> dict[str, Any]:
    match event:
        case ProductUpdated():
            return {"supplier": event.supplier, "withdrawn": None}
        case ProductPriced():
            return {
                "sale_price": event.sale_price,
                "rule": event.rule,
                "priced_cost": event.cost,
                "unpriced_reason": None,
            }
        case ProductUnpriced():
            return {"sale_price": None, "rule": None, "priced_cost": event.cost,
                    "unpriced_reason": event.reason}  # fmt: skip
        case ProductWithdrawn():
            return {"withdrawn": event.reason}
    return {}


def fold_rules(events: Iterable[DomainEvent]) -> PricingRules:
    """The pricing rules in force (the defaults until an admin sets them)."""
    rules = DEFAULT_RULES
    for event in events:
        if isinstance(event, PricingRulesSet):
            rules = PricingRules(
                margin_percent=event.margin_percent,
                minimum_margin=event.minimum_margin,
                rounding=event.rounding,
                overrides=dict(event.overrides),
            )
    return rules


# ---------------------------------------------------------------------------------------------
# Pricing


def quote(cost: Decimal, rules: PricingRules, product_id: str) -> Quote:
    """The sale price the rules give a supplier cost; none when the margin would fall below
    the minimum (which only a fixed price can do)."""
    override = rules.overrides.get(product_id)
    if override is not None:
        price, rule = override, f"fixed price {override} EUR"
    else:
        base = max(cost * (1 + rules.margin_percent / 100), cost + rules.minimum_margin)
        price, rule = round_price(base, rules.rounding), rules.describe()
    if price - cost < rules.minimum_margin:
        reason = f"margin {price - cost} EUR below the minimum {rules.minimum_margin} EUR"
        return Quote(sale_price=None, rule=reason)
    return Quote(sale_price=price, rule=rule)


def round_price(amount: Decimal, ending: str | None) -> Decimal:
    """Round up to the cent, or up to the next price with the given ending (``"0.99"``)."""
    if ending is None:
        return amount.quantize(CENT, rounding=ROUND_CEILING)
    candidate = amount.to_integral_value(rounding=ROUND_FLOOR) + Decimal(ending)
    return candidate if candidate >= amount else candidate + 1


def check_rules(rules: PricingRules) -> None:
    """Refuse rules no shop means: negative margins, a malformed ending, odd fixed prices."""
    if not 0 <= rules.margin_percent <= 1000:
        raise InvalidPricing("margin_percent must be between 0 and 1000")
    if not 0 <= rules.minimum_margin <= 10_000:
        raise InvalidPricing("minimum_margin must be between 0 and 10000 EUR")
    if rules.rounding is not None and not _is_ending(rules.rounding):
        raise InvalidPricing("rounding must be an ending such as '0.99', or null for cents")
    for product_id, price in rules.overrides.items():
        if not price.is_finite() or not 0 < price <= 100_000 or price != price.quantize(CENT):
            raise InvalidPricing(f"override for {product_id} must be a price in cents up to 100000")


def _is_ending(text: str) -> bool:
    return len(text) == 4 and text.startswith("0.") and text[2:].isascii() and text[2:].isdigit()


# ---------------------------------------------------------------------------------------------
# Decisions


def synced(
    product: Product | None, supplier: SupplierProduct, rules: PricingRules, now: datetime
) -> list[DomainEvent]:
    """Record what Kinguin says of a product (import or update) and reprice it if its cost
    changed; nothing when nothing changed."""
    if product is not None and product.supplier == supplier and product.withdrawn is None:
        return []
    stamp = _stamper(product, supplier.product_id, now)
    kind = ProductImported if product is None else ProductUpdated
    events: list[DomainEvent] = [stamp(kind, supplier=supplier)]
    events.extend(_pricing(product, supplier, rules, stamp))
    return events


def repriced(product: Product, rules: PricingRules, now: datetime) -> list[DomainEvent]:
    """Reprice under new rules; nothing when the price stays."""
    if product.withdrawn is not None:
        return []
    return list(_pricing(product, product.supplier, rules, _stamper(product, "", now)))


def withdrawn(product: Product | None, reason: str, now: datetime) -> list[DomainEvent]:
    """Take a product out of the catalog (Kinguin no longer offers it)."""
    if product is None or product.withdrawn is not None:
        return []
    return [_stamper(product, "", now)(ProductWithdrawn, reason=reason)]


def _pricing(
    product: Product | None, supplier: SupplierProduct, rules: PricingRules, stamp: Stamper
) -> list[DomainEvent]:
    offer = quote(supplier.cost, rules, supplier.product_id)
    if offer.sale_price is None:
        if product is not None and product.unpriced_reason == offer.rule:
            return []
        return [stamp(ProductUnpriced, reason=offer.rule, cost=supplier.cost)]
    if product is not None and (product.sale_price, product.rule, product.priced_cost) == (
        offer.sale_price,
        offer.rule,
        supplier.cost,
    ):
        return []
    return [
        stamp(
            ProductPriced,
            sale_price=offer.sale_price,
            currency=CURRENCY,
            rule=offer.rule,
            cost=supplier.cost,
        )
    ]


def _stamper(product: Product | None, product_id: str, now: datetime) -> Stamper:
    if product is None:
        return Stamper(product_aggregate_id(product_id), 0, now)
    return Stamper(product.id, product.version, now)


def rules_set(version: int, rules: PricingRules, *, by: str, now: datetime) -> list[DomainEvent]:
    """Record new pricing rules (``version``: the pricing aggregate's current one)."""
    check_rules(rules)
    event = PricingRulesSet(
        originator_id=PRICING_ID,
        originator_version=version + 1,
        timestamp=now,
        by=by,
        margin_percent=rules.margin_percent,
        minimum_margin=rules.minimum_margin,
        rounding=rules.rounding,
        overrides=dict(rules.overrides),
    )
    return [event]


# ---------------------------------------------------------------------------------------------
# Quoting an order


class LineRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A line as a customer asks for it; ``shown_price`` is the price the client displayed."""

    product_id: str
    quantity: int
    offer_id: str | None = None
    shown_price: Decimal | None = None


def quote_lines(
    requests: Sequence[LineRequest],
    products: Mapping[str, Product | None],
    *,
    today: date,
    tolerance_percent: Decimal,
) -> list[LineItem]:
    """Price every line from the catalog, or refuse the order: an unknown, withdrawn or
    unpriced product, too little stock, or a price the client showed that is not the current
    one. Pre-orders follow Kinguin's rule: one pre-order line, alone in its order."""
    lines = [_quote_line(r, products.get(r.product_id), today, tolerance_percent) for r in requests]
    if any(line.preorder for line in lines) and len(lines) > 1:
        raise InvalidOrder("a pre-order is bought alone: one line, nothing else in the order")
    _check_totals(lines, products)
    return lines


def _check_totals(lines: Sequence[LineItem], products: Mapping[str, Product | None]) -> None:
    """The limits hold for the whole order, not line by line: each product's stock across all
    its lines (409), then the keys of one offer (Kinguin sells at most
    ``MAX_QUANTITY_PER_LINE`` of an offer per order; lines without an offer are one offer, the
    cheapest: 422)."""
    per_offer: Counter[tuple[str, str | None]] = Counter()
    per_product: Counter[str] = Counter()
    for line in lines:
        per_offer[line.product_id, line.offer_id] += line.quantity
        per_product[line.product_id] += line.quantity
    preorders = {line.product_id for line in lines if line.preorder}  # no stock until released
    for product_id, quantity in per_product.items():
        product = products.get(product_id)
        if product is not None and product_id not in preorders and quantity > product.supplier.qty:
            raise NotEnoughStock(product_id, product.supplier.qty)
    for (product_id, _), quantity in per_offer.items():
        if quantity > MAX_QUANTITY_PER_LINE:
            raise InvalidOrder(
                f"at most {MAX_QUANTITY_PER_LINE} keys of one offer per order: {quantity} of "
                f"{product_id} asked for"
            )


def _quote_line(
    request: LineRequest, product: Product | None, today: date, tolerance: Decimal
) -> LineItem:
    if product is None:
        raise ProductNotSold(request.product_id, "no such product in the catalog", known=False)
    if product.withdrawn is not None:
        raise ProductNotSold(request.product_id, f"withdrawn: {product.withdrawn}")
    if product.sale_price is None or product.priced_cost is None:
        raise ProductNotSold(request.product_id, "not for sale: it has no price")
    supplier = product.supplier
    if request.offer_id is not None and request.offer_id not in supplier.cheapest_offer_ids:
        raise ProductNotSold(request.product_id, f"offer {request.offer_id} is not sold here")
    preorder = product.is_preorder(today)
    if not preorder and request.quantity > supplier.qty:
        raise NotEnoughStock(request.product_id, supplier.qty)
    if request.shown_price is not None:
        _check_shown_price(request.shown_price)
        if request.shown_price != product.sale_price:
            raise PriceChanged(request.product_id, product.sale_price)
    return LineItem(
        product_id=request.product_id,
        quantity=request.quantity,
        unit_price=product.sale_price,
        offer_id=request.offer_id,
        name=product.supplier.name,
        catalog_version=product.version,
        priced_cost=product.priced_cost,
        cost_cap=cost_cap(product.priced_cost, product.sale_price, tolerance),
        preorder=preorder,
    )


def check_currency(currency: str) -> None:
    """The shop prices in EUR, as Kinguin does; an order in another currency is refused."""
    if currency.lower() != CURRENCY:
        raise InvalidOrder(f"the shop sells in EUR: currency must be '{CURRENCY}'")


def _check_shown_price(price: Decimal) -> None:
    if not price.is_finite() or not 0 < price <= MAX_UNIT_PRICE:
        raise InvalidOrder(f"unit_price must be a positive amount up to {MAX_UNIT_PRICE}")


def cost_cap(cost: Decimal, sale_price: Decimal, tolerance_percent: Decimal) -> Decimal:
    """The most a purchase may pay per key: the cost plus a small tolerance, never more than
    the customer pays."""
    allowed = (cost * (1 + tolerance_percent / 100)).quantize(CENT, rounding=ROUND_FLOOR)
    return min(max(allowed, cost), sale_price)


def _release_date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None
