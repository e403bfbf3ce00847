"""Domain errors: a decision the order refuses.

DomainError
├── OrderNotFound          no such order (or not visible to the caller)
├── InvalidOrder           the order's own data is unacceptable (items, currency, e-mail)
├── TransitionRefused      the order's status does not allow what was asked
├── KeysGone               the order's keys were shredded and can never be read again
├── LinkRefused            a download link is not (or no longer) valid
├── InvalidPricing         pricing rules no shop means (negative margin, bad ending)
├── TreeTooSmall           a proof asked of leaves or sizes the log's tree does not have
└── NotSellable            the catalog refuses a line (the order is not created)
    ├── ProductNotSold     unknown, withdrawn or unpriced product, or an offer not sold
    ├── NotEnoughStock     more keys asked for than the supplier has
    └── PriceChanged       the price the client showed is not the current sale price
"""

from __future__ import annotations

from decimal import Decimal


class DomainError(Exception):
    """Base of every refusal raised by the domain."""


class OrderNotFound(DomainError):
    """No order has this id, or the caller may not see it."""


class InvalidOrder(DomainError):
    """The order's content breaks a rule (empty items, bad quantity or price, bad currency)."""


class TransitionRefused(DomainError):
    """The order's current status does not allow the requested step."""


class TreeTooSmall(DomainError):
    """A proof was asked of leaves or tree sizes beyond the log's tree (or below 1)."""


class KeysGone(DomainError):
    """The order's data key was destroyed (crypto-shredding)."""


class LinkRefused(DomainError):
    """A download link was tampered with, has expired, or was already used."""


class InvalidPricing(DomainError):
    """Pricing rules that break a rule (negative margin, a malformed rounding ending)."""


class NotSellable(DomainError):
    """The catalog cannot sell a line as asked; ``product_id`` names it."""

    def __init__(self, product_id: str, message: str) -> None:
        super().__init__(f"product {product_id}: {message}")
        self.product_id = product_id


class ProductNotSold(NotSellable):
    """Unknown (``known=False``), withdrawn or unpriced product, or an offer not sold here."""

    def __init__(self, product_id: str, reason: str, *, known: bool = True) -> None:
        super().__init__(product_id, reason)
        self.known = known


class NotEnoughStock(NotSellable):
    """More keys asked for than the supplier has (``available``)."""

    def __init__(self, product_id: str, available: int) -> None:
        super().__init__(product_id, f"only {available} in stock")
        self.available = available


class PriceChanged(NotSellable):
    """The price the client showed differs from the current sale price (``current_price``)."""

    def __init__(self, product_id: str, current_price: Decimal) -> None:
        super().__init__(product_id, f"the price is now {current_price} EUR")
        self.current_price = current_price
