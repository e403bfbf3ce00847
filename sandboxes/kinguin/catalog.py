"""The Kinguin sandbox's catalog: products, offers, stock and price matching (pure data and logic).

``sandboxes.kinguin.products.build_catalog`` makes the same few dozen products on every start
(seeded generation) plus the fixed ones the engine's tests name (``FIXED_PRODUCT_IDS``): text and
image keys, a pre-order released 30 days after start, one sold out, prices between 0.99 and 69.99
EUR, 1-3 offers each and ``DEFAULT_STOCK`` keys per offer. ``extra_products`` appends more
generated products (benchmarks); the base catalog does not depend on it.

Views follow Kinguin's Product object (``api/products/v1/README.md``): ``price``, ``qty`` and
``textQty`` describe the cheapest offers in stock (``cheapestOfferId`` lists them), ``totalQty``
all offers. Effective prices include a ``price_jump`` percent, rounded to cents; ``match_offer``
picks the cheapest offer whose effective price is at most the requested one and whose stock covers
the quantity, as Kinguin's ``POST /v2/order`` does. Nothing here knows about HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

CATALOG_SEED: Final = 20_201_024
DEFAULT_STOCK: Final = 100_000
GENERATED_PRODUCTS: Final = 30
PREORDER_DAYS: Final = 30
MIN_PRICE: Final = 0.99
MAX_PRICE: Final = 69.99
MIN_NAME_QUERY: Final = 3

COUNTER_STRIKE_SOURCE: Final = "5c9b5f6b2539a4e8f172916a"
PORTAL_2: Final = "5c9b5f6b2539a4e8f172916b"
TEST_PRODUCT: Final = "00000000000000000000dead"
IMAGE_KEY_PRODUCT: Final = "00000000000000000000face"
SOLD_OUT_PRODUCT: Final = "0000000000000000000000e0"
PREORDER_PRODUCT: Final = "00000000000000000000f00d"
FIXED_PRODUCT_IDS: Final = (
    COUNTER_STRIKE_SOURCE,
    PORTAL_2,
    TEST_PRODUCT,
    IMAGE_KEY_PRODUCT,
    SOLD_OUT_PRODUCT,
    PREORDER_PRODUCT,
)

SortBy = Literal["kinguinId", "updatedAt", "name", "price", "qty"]
SORT_FIELDS: Final[tuple[SortBy, ...]] = ("kinguinId", "updatedAt", "name", "price", "qty")

PLATFORMS: Final[Mapping[str, str]] = {
    "Steam": "Steam CD Key",
    "GOG": "GOG CD Key",
    "Uplay": "Uplay CD Key",
    "Origin": "Origin CD Key",
    "Battle.net": "Battle.net CD Key",
    "Xbox Live": "XBOX One CD Key",
    "PSN": "PSN CD Key",
    "Nintendo eShop": "Nintendo Switch eShop Key",
}
REGIONS: Final = ((3, "Region free"), (1, "EUROPE"), (2, "United States"), (10, "Latin America"))
_TIME_FORMAT: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)


# --- wire types -------------------------------------------------------------------------------


class KinguinOffer(msgspec.Struct, rename="camel"):
    """One ``offers[]`` entry of a Product."""

    name: str
    offer_id: str
    price: float
    qty: int
    text_qty: int
    status: str
    is_preorder: bool
    release_date: str
    merchant_name: str


class KinguinProduct(msgspec.Struct, rename="camel"):
    """Kinguin's Product object (``GET /v1/products`` and friends)."""

    kinguin_id: int
    product_id: str
    name: str
    original_name: str
    description: str
    cover_image: str
    developers: list[str]
    publishers: list[str]
    genres: list[str]
    platform: str
    release_date: str
    qty: int
    text_qty: int
    price: float
    cheapest_offer_id: list[str]
    is_preorder: bool
    regional_limitations: str
    region_id: int
    languages: list[str]
    tags: list[str]
    offers: list[KinguinOffer]
    offers_count: int
    total_qty: int
    merchant_name: list[str]
    updated_at: str


class KinguinProductPage(msgspec.Struct):
    """Answer of ``GET /v1/products``: one page of products and the total match count."""

    results: list[KinguinProduct]
    item_count: int


class KinguinProductUpdateEvent(msgspec.Struct, rename="camel"):
    """Payload of the ``product.update`` webhook."""

    kinguin_id: int
    product_id: str
    qty: int
    text_qty: int
    cheapest_offer_id: list[str]
    updated_at: str


# --- state -------------------------------------------------------------------------------------


@dataclass
class CatalogOffer:
    """One merchant's offer of a product: a base price (EUR) and its stock of keys."""

    offer_id: str
    merchant_name: str
    price: float
    qty: int = DEFAULT_STOCK
    text_qty: int = DEFAULT_STOCK

    def available(self, *, text: bool) -> int:
        """Keys on sale now (text keys only when ``text``)."""
        return self.text_qty if text else self.qty

    def draw(self, qty: int, *, text: bool) -> None:
        """Take ``qty`` keys out of stock (text keys too when ``text``)."""
        self.qty -= qty
        self.text_qty = min(self.text_qty - qty if text else self.text_qty, self.qty)

    def restore(self, qty: int, *, text: bool) -> None:
        """Put ``qty`` returned keys back in stock."""
        self.qty += qty
        if text:
            self.text_qty += qty


@dataclass
class CatalogProduct:
    """One product of the sandbox catalog, with its offers; mutable (stock, release, updatedAt)."""

    kinguin_id: int
    product_id: str
    name: str
    platform: str
    release_at: datetime
    offers: list[CatalogOffer]
    updated_at: datetime
    region: tuple[int, str] = REGIONS[0]
    is_preorder: bool = False
    image_keys: bool = False
    genres: tuple[str, ...] = ("Action",)
    studio: str = "Valve"
    languages: tuple[str, ...] = ("English",)

    def offer(self, offer_id: str) -> CatalogOffer | None:
        """The offer with ``offer_id``, if the product has it."""
        return next((offer for offer in self.offers if offer.offer_id == offer_id), None)

    def total_qty(self) -> int:
        """Keys on sale across all offers."""
        return sum(offer.qty for offer in self.offers)

    def released(self, now: datetime) -> bool:
        """Tell whether keys of this product may be delivered at ``now`` (release date passed)."""
        return self.release_at <= now

    def release(self, now: datetime) -> None:
        """Release a pre-order now: keys become deliverable (the caller bumps ``updated_at``)."""
        self.release_at = now
        self.is_preorder = False


@dataclass(frozen=True)
class ProductQuery:
    """The filters and order of ``GET /v1/products``, already validated."""

    name: str | None = None
    platforms: frozenset[str] | None = None
    product_ids: frozenset[str] | None = None
    kinguin_ids: frozenset[int] | None = None
    is_preorder: bool | None = None
    updated_since: datetime | None = None
    updated_to: datetime | None = None
    sort_by: SortBy = "kinguinId"
    descending: bool = False


@dataclass
class Catalog:
    """All products of one sandbox instance, by ``productId`` and by ``kinguinId``."""

    products: dict[str, CatalogProduct] = field(default_factory=dict)
    by_kinguin_id: dict[int, CatalogProduct] = field(default_factory=dict)

    def add(self, product: CatalogProduct) -> None:
        """Add one product (ids must be new)."""
        if product.product_id in self.products or product.kinguin_id in self.by_kinguin_id:
            raise ValueError(f"duplicate product {product.product_id} / {product.kinguin_id}")
        self.products[product.product_id] = product
        self.by_kinguin_id[product.kinguin_id] = product

    def get(self, product_id: str) -> CatalogProduct | None:
        """The product with ``product_id``, if any."""
        return self.products.get(product_id)

    def search(self, query: ProductQuery, price_jump: float) -> list[CatalogProduct]:
        """Every product matching ``query``, in its order (ties by ``kinguinId``)."""
        matches = [product for product in self.products.values() if _matches(product, query)]
        key = _sort_key(query.sort_by, price_jump)
        matches.sort(key=lambda product: product.kinguin_id)
        matches.sort(key=key, reverse=query.descending)
        return matches


# --- prices and matching -----------------------------------------------------------------------


def effective_price(offer: CatalogOffer, price_jump: float) -> float:
    """The offer's price now: its base price raised by ``price_jump`` percent, in cents."""
    return round(offer.price * (1 + price_jump / 100), 2)


def cheapest_offers(product: CatalogProduct, price_jump: float) -> list[CatalogOffer]:
    """The offers at the lowest effective price among those in stock (all if none is)."""
    candidates = [offer for offer in product.offers if offer.qty > 0] or product.offers
    lowest = min(effective_price(offer, price_jump) for offer in candidates)
    return [offer for offer in candidates if effective_price(offer, price_jump) == lowest]


def match_offer(
    offers: Iterable[CatalogOffer],
    max_price: float,
    qty: int,
    *,
    text: bool,
    price_jump: float,
    reserved: Mapping[str, int],
) -> CatalogOffer | None:
    """The cheapest offer priced at most ``max_price`` with ``qty`` keys left after ``reserved``."""
    fitting = [
        offer
        for offer in offers
        if effective_price(offer, price_jump) <= max_price + 1e-9
        and offer.available(text=text) - reserved.get(offer.offer_id, 0) >= qty
    ]
    return min(fitting, key=lambda offer: effective_price(offer, price_jump), default=None)


# --- views -------------------------------------------------------------------------------------


def product_view(product: CatalogProduct, price_jump: float) -> KinguinProduct:
    """The Product object of ``product`` at the current ``price_jump``."""
    cheapest = cheapest_offers(product, price_jump)
    merchants = list(dict.fromkeys(offer.merchant_name for offer in product.offers))
    return KinguinProduct(
        kinguin_id=product.kinguin_id,
        product_id=product.product_id,
        name=product.name,
        original_name=product.name.removesuffix(f" {PLATFORMS[product.platform]}"),
        description=f"{product.name}: a sandbox product for testing BitLoot.",
        cover_image=f"https://cdn.kinguin.sandbox.invalid/covers/{product.kinguin_id}.jpg",
        developers=[product.studio],
        publishers=[product.studio],
        genres=list(product.genres),
        platform=product.platform,
        release_date=release_date(product),
        qty=sum(offer.qty for offer in cheapest),
        text_qty=sum(offer.text_qty for offer in cheapest),
        price=effective_price(cheapest[0], price_jump),
        cheapest_offer_id=[offer.offer_id for offer in cheapest],
        is_preorder=product.is_preorder,
        regional_limitations=product.region[1],
        region_id=product.region[0],
        languages=list(product.languages),
        tags=["base"],
        offers=[_offer_view(product, offer, price_jump) for offer in product.offers],
        offers_count=len(product.offers),
        total_qty=product.total_qty(),
        merchant_name=merchants,
        updated_at=product.updated_at.isoformat(timespec="seconds"),
    )


def product_update_event(product: CatalogProduct, price_jump: float) -> KinguinProductUpdateEvent:
    """The ``product.update`` webhook payload of ``product`` now."""
    cheapest = cheapest_offers(product, price_jump)
    return KinguinProductUpdateEvent(
        kinguin_id=product.kinguin_id,
        product_id=product.product_id,
        qty=sum(offer.qty for offer in cheapest),
        text_qty=sum(offer.text_qty for offer in cheapest),
        cheapest_offer_id=[offer.offer_id for offer in cheapest],
        updated_at=product.updated_at.isoformat(timespec="milliseconds"),
    )


def release_date(product: CatalogProduct) -> str:
    """``YYYY-MM-DD``, the format of ``releaseDate``."""
    return product.release_at.date().isoformat()


def _offer_view(product: CatalogProduct, offer: CatalogOffer, price_jump: float) -> KinguinOffer:
    return KinguinOffer(
        name=product.name,
        offer_id=offer.offer_id,
        price=effective_price(offer, price_jump),
        qty=offer.qty,
        text_qty=offer.text_qty,
        status="ACTIVE",
        is_preorder=product.is_preorder,
        release_date=release_date(product),
        merchant_name=offer.merchant_name,
    )


# --- queries -----------------------------------------------------------------------------------


def parse_query_time(text: str) -> datetime:
    """Parse ``Y-m-d``, ``Y-m-d H:i:s`` or ``Y-m-dTH:i:s`` (optional fraction and offset; naive
    means UTC); raise ``ValueError`` otherwise."""
    if not _TIME_FORMAT.match(text):
        raise ValueError(f"{text!r} is not Y-m-d, Y-m-d H:i:s or Y-m-dTH:i:s")
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _matches(product: CatalogProduct, query: ProductQuery) -> bool:
    checks = (
        query.name is None or query.name.casefold() in product.name.casefold(),
        query.platforms is None or product.platform.casefold() in query.platforms,
        query.product_ids is None or product.product_id in query.product_ids,
        query.kinguin_ids is None or product.kinguin_id in query.kinguin_ids,
        query.is_preorder is None or product.is_preorder == query.is_preorder,
        query.updated_since is None or product.updated_at >= query.updated_since,
        query.updated_to is None or product.updated_at < query.updated_to,
    )
    return all(checks)


def _sort_key(
    sort_by: SortBy, price_jump: float
) -> Callable[[CatalogProduct], int | float | str | datetime]:
    keys: dict[SortBy, Callable[[CatalogProduct], int | float | str | datetime]] = {
        "kinguinId": lambda product: product.kinguin_id,
        "updatedAt": lambda product: product.updated_at,
        "name": lambda product: product.name.casefold(),
        "price": lambda product: effective_price(
            cheapest_offers(product, price_jump)[0], price_jump
        ),
        "qty": lambda product: sum(offer.qty for offer in cheapest_offers(product, price_jump)),
    }
    return keys[sort_by]
