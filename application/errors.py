"""Application errors, raised by ports and use cases.

ApplicationError
├── ConcurrencyConflict     an append lost a race (expected version taken); reload and re-decide
├── DeliveryNotFound        no webhook delivery has this id
├── UnreadableDelivery      a webhook body its provider's format does not allow
├── NotAllowed              the caller may not do this (an owner-only action by someone else)
├── SupplierError
│   ├── SupplierRejected    Kinguin refused the purchase for good (4xx: unavailable, balance…)
│   └── SupplierUnavailable Kinguin could not answer now (5xx, 429, timeout): retry later
├── PaymentGatewayError     NOWPayments refused or failed to create the invoice
├── MailerFailed            the mail provider refused the e-mail or could not be reached
├── KeysNotReady            the supplier has not delivered every key yet: retry later
├── KeyUnreadable           a key cannot be decrypted (tampered, wrong key, shredded)
├── VaultFailed             the key vault could not do what was asked (unreachable, refusing)
├── LiveFeedUnavailable     the live feed cannot take a subscription now (Redis unreachable)
└── TreeBehind              the log's tree has not reached an order's newest event yet
"""

from __future__ import annotations

from uuid import UUID


class ApplicationError(Exception):
    """Base of the application's errors."""


class ConcurrencyConflict(ApplicationError):
    """Another writer appended to the aggregate first: ``originator_id`` names it when the
    store says which one."""

    def __init__(self, message: str, originator_id: UUID | None = None) -> None:
        super().__init__(message)
        self.originator_id = originator_id


class DeliveryNotFound(ApplicationError):
    """No webhook delivery has this id."""


class UnreadableDelivery(ApplicationError):
    """A verified webhook's body is not what its provider sends (or a stored one no longer
    reads): nothing is recorded."""


class NotAllowed(ApplicationError):
    """The caller may not perform this action."""


class SupplierError(ApplicationError):
    """Kinguin did not give what was asked."""


class SupplierRejected(SupplierError):
    """Kinguin refused the request; retrying will not help. ``kind`` is Kinguin's error kind
    (``ProductUnavailable``, ``InsufficientBalance``, ``NoKeysToReturn``…)."""

    def __init__(self, message: str, kind: str = "Error", status: int = 400) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status


class SupplierUnavailable(SupplierError):
    """Kinguin is failing, rate-limiting or slow; retrying later may help."""


class PaymentGatewayError(ApplicationError):
    """NOWPayments refused or failed the request."""


class MailerFailed(ApplicationError):
    """The e-mail could not be handed to the mail provider; sending it again may work."""


class KeysNotReady(ApplicationError):
    """Not every key has been delivered by the supplier yet."""


class KeyUnreadable(ApplicationError):
    """A stored key cannot be opened."""


class VaultFailed(ApplicationError):
    """The key vault could not store or read a blob."""


class LiveFeedUnavailable(ApplicationError):
    """The live feed's backend cannot take a subscription right now."""


class TreeBehind(ApplicationError):
    """The log's tree has not reached the events asked about yet; retry in a moment."""
