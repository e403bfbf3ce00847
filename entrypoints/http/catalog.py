"""Catalog routes: the public product list (sale prices only), and for admins the catalog with
costs and margins, the last sync, and the margin rules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from litestar import get, post, put
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody

from domain.catalog import CURRENCY, PricingRules, check_rules, quote
from entrypoints.http.deps import Caller, EngineDep
from entrypoints.http.schema import Cursor, Limit, documented

ProductId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]

# What ``domain.catalog.check_rules`` accepts (else 422 Invalid pricing rules), as decimal strings
# without sign or exponent, or as numbers.
MARGIN_PATTERN = r"^(?:1000(?:\.0+)?|[0-9]{1,3}(?:\.[0-9]+)?)$"  # 0 to 1000 (percent)
MINIMUM_PATTERN = r"^(?:10000(?:\.0+)?|[0-9]{1,4}(?:\.[0-9]+)?)$"  # 0 to 10000 (EUR)
ENDING_PATTERN = r"^0\.[0-9]{2}$"
# A fixed price: positive, in cents, at most 100000 (strings only: a JSON number in cents is not
# always one in binary floating point, so the document does not offer numbers here)
FIXED_PRICE_PATTERN = (
    r"^(?:[1-9][0-9]{0,4}(?:\.[0-9]{1,2})?|0\.(?:0[1-9]|[1-9][0-9]?)|100000(?:\.00?)?)$"
)


def _amount(description: str, pattern: str, maximum: int) -> msgspec.Meta:
    return documented(
        description,
        type=None,
        one_of=[
            {"type": "string", "pattern": pattern},
            {"type": "number", "minimum": 0, "maximum": maximum},
        ],
    )


class PricingIn(msgspec.Struct, forbid_unknown_fields=True):
    """``PUT /admin/pricing``: margin in percent, minimum margin in EUR, the ending prices are
    rounded up to (``"0.99"``; null for plain cents) and fixed prices per product id."""

    margin_percent: Annotated[
        Decimal, _amount("margin in percent, 0 to 1000", MARGIN_PATTERN, 1000)
    ]
    minimum_margin: Annotated[
        Decimal, _amount("minimum margin in EUR, 0 to 10000", MINIMUM_PATTERN, 10_000)
    ]
    rounding: Annotated[
        str | None,
        documented(
            'the ending prices are rounded up to ("0.99", "0.00"); null: to the cent',
            one_of=[{"type": "string", "pattern": ENDING_PATTERN}, {"type": "null"}],
        ),
    ] = "0.99"
    overrides: Annotated[
        dict[ProductId, Decimal],
        documented(
            "fixed sale prices by product id: decimal strings in cents, up to 100000",
            additional_properties={"type": "string", "pattern": FIXED_PRICE_PATTERN},
            property_names={"minLength": 1, "maxLength": 64},
        ),
    ] = msgspec.field(default_factory=dict)


@get("/products", sync_to_thread=True)
def list_products(
    engine: EngineDep,
    *,
    q: FromQuery[str | None] = None,
    in_stock: FromQuery[bool] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Products for sale, by name; ``?q=`` searches names and platforms."""
    page = engine.read_models.products(query=q, in_stock=in_stock, limit=limit, cursor=cursor)
    return {"items": [public_view(p) for p in page.items], "next_cursor": page.next_cursor}


@get("/products/{product_id:str}", sync_to_thread=True)
def get_product(product_id: FromPath[str], engine: EngineDep) -> dict[str, Any]:
    """One product for sale."""
    found = engine.read_models.product(product_id)
    if found is None or not found["for_sale"]:
        raise NotFoundException(f"no product {product_id} for sale")
    return public_view(found)


@get("/catalog", sync_to_thread=True)
def admin_catalog(
    engine: EngineDep,
    *,
    q: FromQuery[str | None] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Every product with its cost, sale price, margin, rule and stock; and the last sync."""
    page = engine.read_models.products(query=q, for_sale_only=False, limit=limit, cursor=cursor)
    last = engine.catalog.last_sync()
    sync = None if last is None else {
        "mode": last.mode, "started_at": last.started_at.isoformat(),
        "finished_at": last.timestamp.isoformat(), "seen": last.seen, "changed": last.changed,
    }  # fmt: skip
    return {"items": page.items, "next_cursor": page.next_cursor, "last_sync": sync}


@post("/catalog/sync", sync_to_thread=True, status_code=200)
def sync_catalog(engine: EngineDep) -> dict[str, Any]:
    """Sync with Kinguin now, without waiting for the next periodic sync: what changed since
    the last one (everything when there was none). 502 when Kinguin does not answer."""
    report = engine.catalog.sync()
    return {"mode": report.mode, "seen": report.seen, "changed": report.changed}


@get("/pricing", sync_to_thread=True)
def get_pricing(engine: EngineDep) -> dict[str, Any]:
    """The margin rules in force."""
    return pricing_view(engine.catalog.rules())


@put("/pricing", sync_to_thread=True)
def put_pricing(data: JSONBody[PricingIn], engine: EngineDep, request: Caller) -> dict[str, Any]:
    """Set the margin rules (kept as an event) and reprice every product."""
    repriced = engine.catalog.set_rules(_rules(data), by=request.user.sub)
    return {**pricing_view(engine.catalog.rules()), "repriced": repriced}


@post("/pricing/preview", sync_to_thread=True, status_code=200)
def preview_pricing(
    data: JSONBody[PricingIn],
    engine: EngineDep,
    *,
    q: FromQuery[str | None] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """What the rules would make of a page of the catalog (as ``GET /admin/catalog`` pages
    it), saving nothing: each product with its ``preview_price``, ``preview_margin`` and
    ``preview_rule`` (a null price: the rules would withdraw it from sale)."""
    rules = _rules(data)
    check_rules(rules)
    page = engine.read_models.products(query=q, for_sale_only=False, limit=limit, cursor=cursor)
    return {
        "items": [item | _previewed(item, rules) for item in page.items],
        "next_cursor": page.next_cursor,
    }


def _rules(data: PricingIn) -> PricingRules:
    return PricingRules(
        margin_percent=data.margin_percent,
        minimum_margin=data.minimum_margin,
        rounding=data.rounding,
        overrides=dict(data.overrides),
    )


def _previewed(item: dict[str, Any], rules: PricingRules) -> dict[str, Any]:
    cost = Decimal(item["cost"])
    proposed = quote(cost, rules, item["product_id"])
    price = proposed.sale_price
    return {
        "preview_price": None if price is None else str(price),
        "preview_margin": None if price is None else str(price - cost),
        "preview_rule": proposed.rule,
    }


PUBLIC_ROUTES = [list_products, get_product]
ADMIN_ROUTES = [admin_catalog, sync_catalog, get_pricing, put_pricing, preview_pricing]


def public_view(product: dict[str, Any]) -> dict[str, Any]:
    """What anyone may see of a product: its sale price and availability, never its cost."""
    return {
        "product_id": product["product_id"],
        "name": product["name"],
        "platform": product["platform"],
        "region": product["region"],
        "price": product["sale_price"],
        "currency": CURRENCY.upper(),
        "availability": availability(product),
        "stock": product["qty"],
        "release_date": product["release_date"],
        "version": product["version"],
    }


def availability(product: dict[str, Any]) -> str:
    """``preorder`` before a pre-order's release, else ``in_stock`` or ``out_of_stock``."""
    release = product["release_date"]
    today = datetime.now(UTC).date().isoformat()
    if product["is_preorder"] and (release is None or release[:10] > today):
        return "preorder"
    return "in_stock" if product["qty"] > 0 else "out_of_stock"


def pricing_view(rules: PricingRules) -> dict[str, Any]:
    """The margin rules as JSON (amounts as decimal strings)."""
    return {
        "margin_percent": str(rules.margin_percent),
        "minimum_margin": str(rules.minimum_margin),
        "rounding": rules.rounding,
        "overrides": {product: str(price) for product, price in rules.overrides.items()},
        "currency": CURRENCY.upper(),
    }
