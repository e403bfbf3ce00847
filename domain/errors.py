"""Domain errors: a decision the order refuses.

DomainError
├── OrderNotFound          no such order (or not visible to the caller)
├── InvalidOrder           the order's own data is unacceptable (items, currency, e-mail)
├── TransitionRefused      the order's status does not allow what was asked
├── KeysGone               the order's keys were shredded and can never be read again
└── LinkRefused            a download link is not (or no longer) valid
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every refusal raised by the domain."""


class OrderNotFound(DomainError):
    """No order has this id, or the caller may not see it."""


class InvalidOrder(DomainError):
    """The order's content breaks a rule (empty items, bad quantity or price, bad currency)."""


class TransitionRefused(DomainError):
    """The order's current status does not allow the requested step."""


class KeysGone(DomainError):
    """The order's data key was destroyed (crypto-shredding)."""


class LinkRefused(DomainError):
    """A download link was tampered with, has expired, or was already used."""
