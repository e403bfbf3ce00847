"""Properties of the shop's pricing, for any sequence of catalog updates and orders: every line
is invoiced at the catalog's sale price at placement, and no purchase asks Kinguin for more than
the line's recorded cost cap (itself never above what the customer pays)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.kinguin import _product as purchase_line
from domain import catalog
from domain.catalog import LineRequest, PricingRules, Product
from domain.errors import NotSellable
from domain.events import DomainEvent, SupplierProduct

NOW = datetime(2026, 12, 1, tzinfo=UTC)
PRODUCT = "5c9b5f6b2539a4e8f172916a"

costs = st.decimals(min_value=Decimal("0.10"), max_value=Decimal(500), places=2)
rules = st.builds(
    PricingRules,
    margin_percent=st.decimals(min_value=0, max_value=200, places=1),
    minimum_margin=st.decimals(min_value=0, max_value=20, places=2),
    rounding=st.sampled_from([None, "0.99", "0.49", "0.00"]),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("cost"), costs),
        st.tuples(st.just("rules"), rules),
        st.tuples(st.just("order"), st.integers(1, 9)),
    ),
    min_size=1,
    max_size=30,
)


def facts(cost: Decimal) -> SupplierProduct:
    return SupplierProduct(
        product_id=PRODUCT, kinguin_id=1, name="n", platform="Steam", region="", qty=1000,
        text_qty=1000, cost=cost, cheapest_offer_ids=("o",),
    )  # fmt: skip


def apply(product: Product | None, events: list[DomainEvent]) -> Product | None:
    for event in events:
        product = catalog.apply_product(product, event)
    return product


@settings(max_examples=300, deadline=None)
@given(steps=steps, tolerance=st.decimals(min_value=0, max_value=20, places=1))
def test_orders_follow_the_catalog_and_purchases_stay_under_the_cap(
    steps: list[tuple[str, object]], tolerance: Decimal
) -> None:
    """Invoiced at the sale price of the moment; bought at most at the cap; cap ≤ price."""
    product: Product | None = None
    pricing = PricingRules()
    for kind, value in steps:
        if kind == "cost":
            assert isinstance(value, Decimal)
            product = apply(product, catalog.synced(product, facts(value), pricing, NOW))
        elif kind == "rules":
            assert isinstance(value, PricingRules)
            pricing = value
            if product is not None:
                product = apply(product, catalog.repriced(product, pricing, NOW))
        else:
            assert isinstance(value, int)
            request = LineRequest(product_id=PRODUCT, quantity=value)
            try:
                [line] = catalog.quote_lines(
                    [request], {PRODUCT: product}, today=NOW.date(), tolerance_percent=tolerance
                )
            except NotSellable:
                assert product is None or not product.for_sale
                continue
            assert product is not None
            assert line.unit_price == product.sale_price
            assert line.catalog_version == product.version
            assert line.cost_cap is not None
            assert line.priced_cost is not None
            assert line.priced_cost <= line.cost_cap <= line.unit_price
            assert Decimal(str(purchase_line(line)["price"])) <= line.cost_cap
