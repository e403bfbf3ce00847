"""The Kinguin sandbox's products, made up the same on every start: a seeded generation of a few
dozen, plus the fixed ones the engine's tests name (``FIXED_PRODUCT_IDS``)."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from typing import Final

from sandboxes.kinguin.catalog import (
    CATALOG_SEED,
    COUNTER_STRIKE_SOURCE,
    GENERATED_PRODUCTS,
    IMAGE_KEY_PRODUCT,
    MAX_PRICE,
    MIN_PRICE,
    PLATFORMS,
    PORTAL_2,
    PREORDER_DAYS,
    PREORDER_PRODUCT,
    REGIONS,
    SOLD_OUT_PRODUCT,
    TEST_PRODUCT,
    Catalog,
    CatalogOffer,
    CatalogProduct,
)

_EPOCH: Final = datetime(2025, 1, 1, tzinfo=UTC)
_FIXED_UPDATED_AT: Final = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
_WORDS_A: Final = (
    "Crimson", "Silent", "Iron", "Lost", "Neon", "Frozen", "Hollow", "Solar", "Broken", "Ancient",
    "Savage", "Shadow", "Golden", "Hidden", "Stellar", "Rogue", "Eternal", "Wild", "Arcane", "Last",
)  # fmt: skip
_WORDS_B: Final = (
    "Frontier", "Legion", "Harbor", "Citadel", "Odyssey", "Protocol", "Kingdom", "Drift", "Echoes",
    "Vanguard", "Outpost", "Horizon", "Tactics", "Dynasty", "Runner", "Crusade", "Garden", "Siege",
)  # fmt: skip
_GENRES: Final = ("Action", "Adventure", "RPG", "Strategy", "Simulation", "Racing", "Indie", "FPS")
_STUDIOS: Final = ("Northlight", "Pixel Forge", "Bluehaven", "Ironclad Games", "Studio Kite")
_LANGUAGES: Final = ("English", "German", "French", "Spanish", "Polish", "Italian")
_MERCHANTS: Final = ("Kinguin Sandbox", "KeyVault Ltd", "GameHub EU", "Level Up Keys")


# --- generation --------------------------------------------------------------------------------


def build_catalog(started_at: datetime, extra_products: int = 0) -> Catalog:
    """The sandbox catalog: fixed products, ``GENERATED_PRODUCTS`` seeded ones, then
    ``extra_products`` more. Identical on every call but for the pre-order's release date
    (``PREORDER_DAYS`` after ``started_at``)."""
    rng = random.Random(CATALOG_SEED)  # noqa: S311 - reproducible sample data, not secrets
    catalog = Catalog()
    for product in _fixed_products(rng, started_at):
        catalog.add(product)
    generator = _Generator(rng, catalog)
    for _ in range(GENERATED_PRODUCTS + extra_products):
        catalog.add(generator.product())
    return catalog


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(96):024x}"


def _fixed(
    rng: random.Random,
    ids: tuple[int, str],
    name: str,
    prices: tuple[float, ...],
    *,
    release_at: datetime = datetime(2010, 11, 1, tzinfo=UTC),
    genres: tuple[str, ...] = ("Action",),
    studio: str = "BitLoot",
    image_keys: bool = False,
    is_preorder: bool = False,
) -> CatalogProduct:
    """One of the fixed Steam products the engine's tests name."""
    kinguin_id, product_id = ids
    return CatalogProduct(
        kinguin_id=kinguin_id,
        product_id=product_id,
        name=name,
        platform="Steam",
        release_at=release_at,
        offers=[CatalogOffer(_hex(rng), _MERCHANTS[n], price) for n, price in enumerate(prices)],
        updated_at=_FIXED_UPDATED_AT,
        is_preorder=is_preorder,
        image_keys=image_keys,
        genres=genres,
        studio=studio,
    )


def _fixed_products(rng: random.Random, started_at: datetime) -> list[CatalogProduct]:
    sold_out = _fixed(rng, (100_003, SOLD_OUT_PRODUCT), "Sandbox Sold Out Product", (4.99,))
    for offer in sold_out.offers:
        offer.qty = offer.text_qty = 0
    valve = "Valve"
    return [
        _fixed(rng, (1949, COUNTER_STRIKE_SOURCE), "Counter-Strike: Source Steam CD Key",
               (5.79, 6.49), release_at=datetime(2004, 11, 1, tzinfo=UTC),
               genres=("FPS", "Action"), studio=valve),
        _fixed(rng, (1950, PORTAL_2), "Portal 2 Steam CD Key", (12.49,),
               release_at=datetime(2011, 4, 19, tzinfo=UTC), genres=("Adventure",), studio=valve),
        _fixed(rng, (100_001, TEST_PRODUCT), "Sandbox Test Product", (1.00,)),
        _fixed(rng, (100_002, IMAGE_KEY_PRODUCT), "Sandbox Image Key Product", (3.00,),
               image_keys=True),
        sold_out,
        _fixed(rng, (100_004, PREORDER_PRODUCT), "Sandbox Pre-order Product", (39.99,),
               is_preorder=True, release_at=started_at + timedelta(days=PREORDER_DAYS)),
    ]  # fmt: skip


class _Generator:
    """Seeded product generator: unique names and ids, varied platforms, regions and prices."""

    def __init__(self, rng: random.Random, catalog: Catalog) -> None:
        self._rng = rng
        self._catalog = catalog
        self._names: set[str] = set()
        self._next_kinguin_id = 2000

    def product(self) -> CatalogProduct:
        """One new product."""
        rng = self._rng
        platform = rng.choice(list(PLATFORMS))
        title = self._title()
        return CatalogProduct(
            kinguin_id=self._kinguin_id(),
            product_id=self._product_id(),
            name=f"{title} {PLATFORMS[platform]}",
            platform=platform,
            release_at=datetime.combine(
                date(2005, 1, 1) + timedelta(days=rng.randrange(7300)), datetime.min.time(), UTC
            ),
            offers=self._offers(),
            updated_at=_EPOCH + timedelta(seconds=rng.randrange(300 * 86_400)),
            region=rng.choice(REGIONS),
            image_keys=rng.random() < 0.2,
            genres=tuple(rng.sample(_GENRES, rng.randint(1, 2))),
            studio=rng.choice(_STUDIOS),
            languages=tuple(rng.sample(_LANGUAGES, rng.randint(1, 3))),
        )

    def _title(self) -> str:
        base = f"{self._rng.choice(_WORDS_A)} {self._rng.choice(_WORDS_B)}"
        title, sequel = base, 1
        while title in self._names:
            sequel += 1
            title = f"{base} {sequel}"
        self._names.add(title)
        return title

    def _kinguin_id(self) -> int:
        self._next_kinguin_id += self._rng.randint(1, 97)
        while self._next_kinguin_id in self._catalog.by_kinguin_id:
            self._next_kinguin_id += 1
        return self._next_kinguin_id

    def _product_id(self) -> str:
        while True:
            product_id = _hex(self._rng)
            if self._catalog.get(product_id) is None:
                return product_id

    def _offers(self) -> list[CatalogOffer]:
        rng = self._rng
        cheapest = round(rng.uniform(MIN_PRICE, MAX_PRICE), 2)
        prices = [cheapest]
        for _ in range(rng.randint(0, 2)):
            prices.append(min(MAX_PRICE, round(cheapest + rng.uniform(0.1, 5.0), 2)))
        merchants = rng.sample(_MERCHANTS, len(prices))
        return [
            CatalogOffer(_hex(rng), merchant, price)
            for merchant, price in zip(merchants, prices, strict=True)
        ]
