"""The catalog's pure rules: prices from costs, quoting an order's lines, syncing products."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import msgspec
import pytest

from domain import catalog
from domain.catalog import LineRequest, PricingRules, Product
from domain.errors import InvalidOrder, InvalidPricing, NotEnoughStock, PriceChanged, ProductNotSold
from domain.events import ProductImported, ProductPriced, ProductUnpriced, ProductUpdated
from domain.events import SupplierProduct as Facts

NOW = datetime(2026, 12, 1, tzinfo=UTC)
TODAY = NOW.date()
RULES = PricingRules()


def facts(cost: str = "5.79", qty: int = 100, **changes: object) -> Facts:
    base: dict[str, object] = {
        "product_id": "5c9b5f6b2539a4e8f172916a", "kinguin_id": 1949, "name": "CS: Source",
        "platform": "Steam", "region": "Region free", "qty": qty, "text_qty": qty,
        "cost": Decimal(cost), "cheapest_offer_ids": ("offer-1",),
    }  # fmt: skip
    return Facts(**{**base, **changes})  # type: ignore[arg-type]


def product(cost: str = "5.79", qty: int = 100, **changes: object) -> Product:
    found = catalog.fold_product(catalog.synced(None, facts(cost, qty, **changes), RULES, NOW))
    assert found is not None
    return found


def test_margin_with_minimum_rounded_to_ending() -> None:
    """A 20% margin of at least 0.50 EUR, rounded up to .99."""
    assert catalog.quote(Decimal("5.79"), RULES, "p").sale_price == Decimal("6.99")
    assert catalog.quote(Decimal("1.00"), RULES, "p").sale_price == Decimal("1.99")
    assert catalog.quote(Decimal("6.99"), RULES, "p").sale_price == Decimal("8.99")


def test_rounding_to_cents_and_whole_euros() -> None:
    """``None`` rounds up to the cent; ``"0.00"`` to whole euros."""
    assert catalog.round_price(Decimal("6.948"), None) == Decimal("6.95")
    assert catalog.round_price(Decimal("6.948"), "0.00") == Decimal("7.00")
    assert catalog.round_price(Decimal("7.00"), "0.00") == Decimal("7.00")


def test_fixed_price_below_minimum_margin_is_not_for_sale() -> None:
    """An override that leaves less than the minimum margin takes the product off sale."""
    rules = PricingRules(overrides={"p": Decimal("6.00")})
    offer = catalog.quote(Decimal("5.79"), rules, "p")
    assert offer.sale_price is None
    assert "below the minimum" in offer.rule


def test_bad_rules_are_refused() -> None:
    """Negative margins and malformed endings are named errors."""
    for rules in (
        PricingRules(margin_percent=Decimal(-1)),
        PricingRules(rounding="99"),
        PricingRules(overrides={"p": Decimal("1.234")}),
    ):
        with pytest.raises(InvalidPricing):
            catalog.rules_set(0, rules, by="admin", now=NOW)


def test_import_prices_and_a_repeat_changes_nothing() -> None:
    """A first sync imports and prices; the same facts again record nothing."""
    events = catalog.synced(None, facts(), RULES, NOW)
    assert [type(e) for e in events] == [ProductImported, ProductPriced]
    assert catalog.synced(catalog.fold_product(events), facts(), RULES, NOW) == []


def test_cost_change_reprices() -> None:
    """A new supplier cost is an update and a new price naming the rule and the cost."""
    updated = catalog.synced(product(), facts("9.00"), RULES, NOW)
    assert [type(e) for e in updated] == [ProductUpdated, ProductPriced]
    priced = updated[1]
    assert isinstance(priced, ProductPriced)
    assert (priced.sale_price, priced.cost) == (Decimal("10.99"), Decimal("9.00"))
    assert "margin 20%" in priced.rule


def test_new_rules_unprice_a_fixed_price_product() -> None:
    """Repricing under rules that leave too little margin records why it is not for sale."""
    rules = PricingRules(overrides={"5c9b5f6b2539a4e8f172916a": Decimal("5.99")})
    events = catalog.repriced(product(), rules, NOW)
    assert [type(e) for e in events] == [ProductUnpriced]


def test_quote_records_price_version_and_cap() -> None:
    """A quoted line carries the sale price, catalog version, cost and a cap within both."""
    [line] = catalog.quote_lines(
        [LineRequest(product_id="5c9b5f6b2539a4e8f172916a", quantity=2)],
        {"5c9b5f6b2539a4e8f172916a": product()},
        today=TODAY,
        tolerance_percent=Decimal(2),
    )
    assert line.unit_price == Decimal("6.99")
    assert line.catalog_version == 2
    assert line.priced_cost == Decimal("5.79")
    assert line.name == product().supplier.name
    assert line.cost_cap == Decimal("5.90")


def test_cap_never_exceeds_the_sale_price() -> None:
    """However large the tolerance, a purchase never pays more than the customer does."""
    assert catalog.cost_cap(Decimal("5.79"), Decimal("6.00"), Decimal(50)) == Decimal("6.00")


def quote_one(found: Product | None, **request: object) -> None:
    line = LineRequest(product_id="5c9b5f6b2539a4e8f172916a", **{"quantity": 1, **request})  # type: ignore[arg-type]
    catalog.quote_lines([line], {line.product_id: found}, today=TODAY, tolerance_percent=Decimal(2))


def test_each_refusal_is_named() -> None:
    """Unknown, withdrawn, unpriced, short of stock, or shown at another price."""
    with pytest.raises(ProductNotSold) as unknown:
        quote_one(None)
    assert not unknown.value.known
    withdrawn = catalog.fold_product(
        [
            *catalog.synced(None, facts(), RULES, NOW),
            *catalog.withdrawn(product(), "gone", NOW),
        ]
    )
    with pytest.raises(ProductNotSold, match="withdrawn"):
        quote_one(withdrawn)
    with pytest.raises(NotEnoughStock):
        quote_one(product(qty=0))
    with pytest.raises(PriceChanged) as changed:
        quote_one(product(), shown_price=Decimal("0.01"))
    assert changed.value.current_price == Decimal("6.99")
    with pytest.raises(InvalidOrder):
        quote_one(product(), shown_price=Decimal("NaN"))
    with pytest.raises(ProductNotSold, match="offer"):
        quote_one(product(), offer_id="someone-else")


def test_preorders_are_sold_alone() -> None:
    """A product released later is a pre-order line; mixing it with another line is refused."""
    future = date(2027, 1, 1).isoformat()
    preorder = product(is_preorder=True, release_date=future, qty=0, product_id="pre")
    [line] = catalog.quote_lines(
        [LineRequest(product_id="pre", quantity=1)],
        {"pre": preorder},
        today=TODAY,
        tolerance_percent=Decimal(0),
    )
    assert line.preorder
    with pytest.raises(InvalidOrder, match="pre-order"):
        catalog.quote_lines(
            [LineRequest(product_id="pre", quantity=1),
             LineRequest(product_id="5c9b5f6b2539a4e8f172916a", quantity=1)],
            {"pre": preorder, "5c9b5f6b2539a4e8f172916a": product()},
            today=TODAY,
            tolerance_percent=Decimal(0),
        )  # fmt: skip


def test_stock_is_checked_across_every_line_of_a_product() -> None:
    """Ten lines of 9 keys of a product with 9 in stock: each line fits, the order does not."""
    products = {"5c9b5f6b2539a4e8f172916a": product(qty=9)}
    one = [LineRequest(product_id="5c9b5f6b2539a4e8f172916a", quantity=9)]
    assert len(catalog.quote_lines(one, products, today=TODAY, tolerance_percent=Decimal(2))) == 1
    with pytest.raises(NotEnoughStock) as refused:
        catalog.quote_lines(one * 10, products, today=TODAY, tolerance_percent=Decimal(2))
    assert refused.value.available == 9


def test_one_offer_sells_at_most_nine_keys_an_order_across_lines() -> None:
    """Two lines of 5 keys of the same offer are 10 of it: refused; 9 across lines pass."""
    products = {"5c9b5f6b2539a4e8f172916a": product()}
    line = LineRequest(product_id="5c9b5f6b2539a4e8f172916a", quantity=5, offer_id="offer-1")
    with pytest.raises(InvalidOrder, match="at most 9 keys of one offer"):
        catalog.quote_lines([line, line], products, today=TODAY, tolerance_percent=Decimal(2))
    nine = [line, msgspec.structs.replace(line, quantity=4)]
    assert len(catalog.quote_lines(nine, products, today=TODAY, tolerance_percent=Decimal(2))) == 2
