"""The catalog read model: one row per product with what customers search and admins check —
name, platform, stock, cost, sale price, margin — kept by folding each product event with the
domain's own ``apply_product``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import msgspec

from adapters.views import Tx
from domain.catalog import Product, apply_product
from domain.events import PRODUCT_EVENTS, DomainEvent
from projections.base import Change, Projection


class ProductsProjection(Projection):
    """Products of the catalog, searchable by name and platform."""

    name = "products"
    topics = PRODUCT_EVENTS
    schema = (
        "CREATE TABLE IF NOT EXISTS {t} ("
        "aggregate_id TEXT PRIMARY KEY, product_id TEXT NOT NULL, kinguin_id BIGINT NOT NULL, "
        "name TEXT NOT NULL, "
        "search TEXT NOT NULL, platform TEXT NOT NULL, region TEXT NOT NULL, "
        "qty INTEGER NOT NULL, text_qty INTEGER NOT NULL, cost TEXT NOT NULL, "
        "sale_price TEXT, rule TEXT, margin TEXT, for_sale INTEGER NOT NULL, "
        "is_preorder INTEGER NOT NULL, release_date TEXT, withdrawn TEXT, "
        "version INTEGER NOT NULL, updated_at TEXT NOT NULL, position BIGINT NOT NULL, "
        "state TEXT NOT NULL)",
        "CREATE UNIQUE INDEX IF NOT EXISTS {t}_product ON {t} (product_id)",
        "CREATE INDEX IF NOT EXISTS {t}_name ON {t} (name, product_id)",
    )
    _decoder: ClassVar[msgspec.json.Decoder[Product]] = msgspec.json.Decoder(Product)

    def apply(self, tx: Tx, table: str, event: DomainEvent, position: int) -> Change | None:
        """Fold one event onto its product (see ``apply_batch``)."""
        self.apply_batch(tx, table, [(position, event)])
        return None

    def apply_batch(
        self, tx: Tx, table: str, batch: Sequence[tuple[int, DomainEvent]]
    ) -> list[Change]:
        """Load each product of the batch once, fold its events in, write it back once; events
        at or before a row's position are skipped, so a replay changes nothing."""
        rows = self._load(tx, table, {str(event.originator_id) for _, event in batch})
        dirty: dict[str, tuple[Product, int]] = {}
        for position, event in batch:
            key = str(event.originator_id)
            row = dirty.get(key) or rows.get(key)
            if row is not None and row[1] >= position:
                continue
            dirty[key] = (apply_product(row[0] if row else None, event), position)
        if dirty:
            tx.execute_many(_UPSERT.format(t=table), [_values(*row) for row in dirty.values()])
        return []

    def _load(self, tx: Tx, table: str, ids: set[str]) -> dict[str, tuple[Product, int]]:
        marks = ", ".join(["%s"] * len(ids))
        found = tx.execute(
            f"SELECT aggregate_id, state, position FROM {table} "  # noqa: S608
            f"WHERE aggregate_id IN ({marks})",
            sorted(ids),
        )
        return {key: (self._decoder.decode(state), position) for key, state, position in found}


_COLUMNS = (
    "aggregate_id", "product_id", "kinguin_id", "name", "search", "platform", "region", "qty",
    "text_qty", "cost", "sale_price", "rule", "margin", "for_sale", "is_preorder", "release_date",
    "withdrawn", "version", "updated_at", "position", "state",
)  # fmt: skip
_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "aggregate_id")
_MARKS = ", ".join(["%s"] * len(_COLUMNS))
_UPSERT = (
    "INSERT INTO {t} (" + ", ".join(_COLUMNS) + ") VALUES (" + _MARKS + ") "  # noqa: S608
    "ON CONFLICT (aggregate_id) DO UPDATE SET " + _UPDATES
)
_ENCODER = msgspec.json.Encoder()


def _values(product: Product, position: int) -> tuple[object, ...]:
    supplier = product.supplier
    margin = (
        product.sale_price - product.priced_cost
        if product.sale_price is not None and product.priced_cost is not None
        else None
    )
    return (
        str(product.id), supplier.product_id, supplier.kinguin_id, supplier.name,
        f"{supplier.name} {supplier.platform}".lower(), supplier.platform, supplier.region,
        supplier.qty, supplier.text_qty, str(supplier.cost),
        _text(product.sale_price), product.rule, _text(margin), int(product.for_sale),
        int(supplier.is_preorder), supplier.release_date, product.withdrawn, product.version,
        product.updated_at.isoformat(), position, _ENCODER.encode(product).decode(),
    )  # fmt: skip


def _text(value: object | None) -> str | None:
    return None if value is None else str(value)
