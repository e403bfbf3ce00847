"""Stored event types: each one's stable name and version, registered once here, and the
upcasters that lift what an older version stored.

A stored event is named by its type's registered name, never by where its class lives: moving or
renaming a class changes nothing already stored. The names are the ones the first stored events
carried (``domain.events:OrderPlaced``); they are names now, not import paths. Version 1 of a
type is stored under its bare name, version n > 1 under ``<name>@<n>``, so that the log says which
shape every event has without decoding it.

An event stored at an older version is read as a plain JSON object, lifted by each upcaster from
its version to the next, and only then read as the current class. An event type that is not
registered here (written by a newer version of the engine, during a rolling deploy) raises
``UnknownEventType``: a reader stops there rather than skip it.

Adding a version: give the class its new shape, raise the version in ``TYPES``, and append an
upcaster from the previous version. Never edit an upcaster once released, and never register a
stored name twice. ``tests/corpus`` holds events stored by every earlier release; they must keep
loading.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from domain.events import (
    AttemptFailed,
    CatalogSynced,
    CostCapRaised,
    CustomerErased,
    CustomerNotified,
    DeliveryEmailResent,
    DomainEvent,
    DownloadLinkIssued,
    FulfillmentFailed,
    FulfillmentRetried,
    KeyDelivered,
    KeyReturnAbandoned,
    KeyReturnRefused,
    KeyReturnStarted,
    KeysReserved,
    KeysReturned,
    KeysRevealed,
    KeysShredded,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    PaymentFailed,
    PaymentFlagged,
    PaymentFlagsResolved,
    PaymentInvoiceCreated,
    PaymentStatusChanged,
    PaymentUnderpaid,
    PricingRulesSet,
    ProductImported,
    ProductPriced,
    ProductUnpriced,
    ProductUpdated,
    ProductWithdrawn,
    PurchaseHeld,
    PurchaseResumed,
    RefundRequested,
    SupplierBalanceObserved,
    SupplierOrderFailed,
    SupplierOrderStatusChanged,
    SupplierPriceChanged,
    WebhookDeliveryRecorded,
    WebhookReceived,
)

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
VERSION_MARK = "@"
NEWER_VERSIONS = 3  # how many versions past its own a reader selects from the log (see below)


class UnknownEventType(Exception):
    """A stored event of a type this version of the engine does not know."""

    def __init__(self, stored_name: str) -> None:
        super().__init__(f"event type {stored_name!r} is not known to this version")
        self.stored_name = stored_name


class EventType(NamedTuple):
    """One event type: its stable name, its class, its current version, and the upcasters from
    version 1 to 2, 2 to 3, and so on (``version - 1`` of them)."""

    name: str
    cls: type[DomainEvent]
    version: int = 1
    upcasters: tuple[Upcaster, ...] = ()

    def stored_name(self, version: int) -> str:
        """The name an event of this type and version is stored under."""
        return self.name if version == 1 else f"{self.name}{VERSION_MARK}{version}"

    def upcast(self, state: dict[str, Any], version: int) -> dict[str, Any]:
        """Lift a stored object of ``version`` to the current version."""
        for upcaster in self.upcasters[version - 1 :]:
            state = upcaster(state)
        return state


def lines_named_and_cost_renamed(state: dict[str, Any]) -> dict[str, Any]:
    """``OrderPlaced`` 1 → 2: each line's ``cost`` (the supplier cost its price was based on) is
    renamed ``priced_cost``, as the catalog calls it, and lines gain ``name`` (the product's
    name when it was ordered), which version 1 did not record."""
    items = [
        {
            **{k: v for k, v in item.items() if k != "cost"},
            "priced_cost": item.get("cost"),
            "name": None,
        }
        for item in state.get("items", [])
    ]
    return {**state, "items": items}


TYPES: tuple[EventType, ...] = (
    EventType("domain.events:OrderPlaced", OrderPlaced, 2, (lines_named_and_cost_renamed,)),
    EventType("domain.events:PaymentInvoiceCreated", PaymentInvoiceCreated),
    EventType("domain.events:PaymentStatusChanged", PaymentStatusChanged),
    EventType("domain.events:PaymentFlagged", PaymentFlagged),
    EventType("domain.events:OrderPaid", OrderPaid),
    EventType("domain.events:PaymentUnderpaid", PaymentUnderpaid),
    EventType("domain.events:PaymentFailed", PaymentFailed),
    EventType("domain.events:KeysReserved", KeysReserved),
    EventType("domain.events:SupplierOrderStatusChanged", SupplierOrderStatusChanged),
    EventType("domain.events:SupplierOrderFailed", SupplierOrderFailed),
    EventType("domain.events:KeyDelivered", KeyDelivered),
    EventType("domain.events:OrderFulfilled", OrderFulfilled),
    EventType("domain.events:FulfillmentFailed", FulfillmentFailed),
    EventType("domain.events:FulfillmentRetried", FulfillmentRetried),
    EventType("domain.events:AttemptFailed", AttemptFailed),
    EventType("domain.events:CustomerNotified", CustomerNotified),
    EventType("domain.events:DownloadLinkIssued", DownloadLinkIssued),
    EventType("domain.events:KeysRevealed", KeysRevealed),
    EventType("domain.events:KeysShredded", KeysShredded),
    EventType("domain.events:WebhookReceived", WebhookReceived),
    EventType("domain.events:SupplierPriceChanged", SupplierPriceChanged),
    EventType("domain.events:CostCapRaised", CostCapRaised),
    EventType("domain.events:PurchaseHeld", PurchaseHeld),
    EventType("domain.events:RefundRequested", RefundRequested),
    EventType("domain.events:OrderRefunded", OrderRefunded),
    EventType("domain.events:KeyReturnStarted", KeyReturnStarted),
    EventType("domain.events:KeyReturnRefused", KeyReturnRefused),
    EventType("domain.events:KeysReturned", KeysReturned),
    EventType("domain.events:WebhookDeliveryRecorded", WebhookDeliveryRecorded),
    EventType("domain.events:CustomerErased", CustomerErased),
    EventType("domain.events:ProductImported", ProductImported),
    EventType("domain.events:ProductUpdated", ProductUpdated),
    EventType("domain.events:ProductPriced", ProductPriced),
    EventType("domain.events:ProductUnpriced", ProductUnpriced),
    EventType("domain.events:ProductWithdrawn", ProductWithdrawn),
    EventType("domain.events:PricingRulesSet", PricingRulesSet),
    EventType("domain.events:CatalogSynced", CatalogSynced),
    EventType("domain.events:SupplierBalanceObserved", SupplierBalanceObserved),
    EventType("domain.events:PaymentFlagsResolved", PaymentFlagsResolved),
    EventType("domain.events:PurchaseResumed", PurchaseResumed),
    EventType("domain.events:KeyReturnAbandoned", KeyReturnAbandoned),
    EventType("domain.events:DeliveryEmailResent", DeliveryEmailResent),
)


class EventTypes:
    """Looks event types up by class and by stored name."""

    def __init__(self, types: Sequence[EventType]) -> None:
        self._by_class = {t.cls: t for t in types}
        self._by_name = {t.name: t for t in types}
        if len(self._by_class) != len(types) or len(self._by_name) != len(types):
            raise ValueError("an event class or name is registered twice")

    def stored_name(self, cls: type[DomainEvent]) -> str:
        """The name new events of ``cls`` are stored under (their current version's)."""
        kind = self._by_class[cls]
        return kind.stored_name(kind.version)

    def stored_names(self, cls: type[DomainEvent]) -> tuple[str, ...]:
        """Every name events of ``cls`` may be stored under, one per version."""
        kind = self._by_class[cls]
        return tuple(kind.stored_name(v) for v in range(1, kind.version + 1))

    def selected_names(self, cls: type[DomainEvent]) -> tuple[str, ...]:
        """The names to select events of ``cls`` from the log by: every version's, and the
        next ``NEWER_VERSIONS`` too. An event of a version that a newer release stored (during
        a rolling deploy) is then read, fails to resolve, and stops its reader, rather than
        slipping past a filter that did not name it."""
        kind = self._by_class[cls]
        last = kind.version + NEWER_VERSIONS
        return tuple(kind.stored_name(v) for v in range(1, last + 1))

    def resolve(self, stored_name: str) -> tuple[EventType, int]:
        """The type and the version of events stored under ``stored_name``."""
        name, mark, version = stored_name.partition(VERSION_MARK)
        kind = self._by_name.get(name)
        if kind is None or (mark and not version.isdigit()):
            raise UnknownEventType(stored_name)
        stored_version = int(version) if mark else 1
        if not 1 <= stored_version <= kind.version:
            raise UnknownEventType(stored_name)
        return kind, stored_version


def type_name(stored_name: str) -> str:
    """What a stored name shows as an event's ``type`` (``OrderPlaced``), known or not."""
    return stored_name.partition(VERSION_MARK)[0].rsplit(":", 1)[-1]


EVENT_TYPES = EventTypes(TYPES)
