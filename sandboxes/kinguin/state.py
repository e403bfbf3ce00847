"""The Kinguin sandbox's state (orders, their lines and keys) and its journal records: the
changes that outlive a restart."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from sandboxes.kinguin.catalog import (
    CatalogOffer,
    CatalogProduct,
)
from sandboxes.kinguin.wire import KinguinOrderLineRequest

# --- state -------------------------------------------------------------------------------------


def money(amount: float) -> float:
    """An amount in EUR, to the cent."""
    return round(amount, 2)


@dataclass
class Key:
    id: str
    serial: str = field(repr=False)  # the plaintext key: keep it out of reprs and logs
    status: str = "PROCESSING"
    type: str = "text/plain"


@dataclass
class Line:
    product: CatalogProduct = field(repr=False)
    offer: CatalogOffer = field(repr=False)
    qty: int
    price: float  # the offer's price: what each key is charged
    request_price: float
    is_preorder: bool
    text: bool  # text keys (stock drawn from textQty too), else image keys
    keys: list[Key]


@dataclass
class Order:
    order_id: str
    external_id: str | None
    kinguin_order_id: int
    created_at: datetime
    lines: list[Line]
    status: str = "processing"
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    returned: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)

    @property
    def is_preorder(self) -> bool:
        """Tell whether the order holds a pre-order (then it is its only line)."""
        return any(line.is_preorder for line in self.lines)

    def total(self) -> float:
        """The charge: each line's offer price times its quantity."""
        return money(sum(line.price * line.qty for line in self.lines))

    def complete(self, at: datetime) -> None:
        """Deliver every key and mark the order completed."""
        for line in self.lines:
            for key in line.keys:
                key.status = "DELIVERED"
        self.status = "completed"
        self.updated_at = self.completed_at = at

    def refund(self, at: datetime) -> None:
        """Mark every key returned and the order refunded."""
        for line in self.lines:
            for key in line.keys:
                key.status = "RETURNED"
        self.status = "refunded"
        self.returned = True
        self.updated_at = at

    def delivered(self) -> list[tuple[Line, Key]]:
        """Keys the buyer may download now, in order."""
        return [
            (line, key) for line in self.lines for key in line.keys if key.status == "DELIVERED"
        ]


@dataclass(frozen=True)
class Purchase:
    """One order line matched to the offer that will serve it."""

    request: KinguinOrderLineRequest
    product: CatalogProduct
    offer: CatalogOffer
    price: float


# --- journal: the state changes that outlive a restart -----------------------------------------


class Started(msgspec.Struct, tag="started"):
    at: datetime  # the catalog's start: the pre-order's release date follows from it


class _KeyRecord(msgspec.Struct):
    id: str
    serial: str
    status: str
    type: str


class _LineRecord(msgspec.Struct):
    product_id: str
    offer_id: str
    qty: int
    price: float
    request_price: float
    is_preorder: bool
    text: bool
    keys: list[_KeyRecord]


class Placed(msgspec.Struct, tag="placed"):
    order_id: str
    external_id: str | None
    kinguin_order_id: int
    created_at: datetime
    lines: list[_LineRecord]
    balance: float  # after the charge


class Completed(msgspec.Struct, tag="completed"):
    order_id: str
    at: datetime


class Returned(msgspec.Struct, tag="returned"):
    order_id: str
    at: datetime
    balance: float  # after the credit


class Released(msgspec.Struct, tag="released"):
    product_id: str
    at: datetime


class BalanceSet(msgspec.Struct, tag="balance"):
    balance: float


Record = Started | Placed | Completed | Returned | Released | BalanceSet


def placed_record(order: Order, balance: float) -> Placed:
    lines = [
        _LineRecord(
            product_id=line.product.product_id,
            offer_id=line.offer.offer_id,
            qty=line.qty,
            price=line.price,
            request_price=line.request_price,
            is_preorder=line.is_preorder,
            text=line.text,
            keys=[_KeyRecord(key.id, key.serial, key.status, key.type) for key in line.keys],
        )
        for line in order.lines
    ]
    return Placed(
        order.order_id,
        order.external_id,
        order.kinguin_order_id,
        order.created_at,
        lines,
        balance,
    )
