"""Reading the projections: the admin lists, the audit trail and the sweeper's stuck orders.

Lists are newest first and paginated with an opaque cursor (the last row's sort key).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec

from adapters.views import Row, ViewDatabase
from projections import dashboard
from projections.sales import summed
from projections.state import query_live, read_state
from projections.versions import live_version

MAX_LIMIT = 200
STUCK_LIMIT = 500  # stuck orders handed to the sweeper per round


class BadQuery(ValueError):
    """A list was asked for with a value no column can hold (a NUL character)."""


class BadCursor(BadQuery):
    """The cursor was not one this API handed out."""


class ReadModelRebuilding(Exception):
    """The list needs a column that the live table lacks: the table is still being rebuilt at
    the version that adds it (after an upgrade), and the list works once it is swapped in."""


PRODUCTS_SINCE = 2  # the orders projection's version that added the products column


FilterValue = str | tuple[str, ...] | None
"""A list's filters map a column (``= value``) or a condition (with a ``%s`` for each value) to
its value or values; a column mapped to None is not filtered on."""


class Page(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a list and where the next one starts."""

    items: list[dict[str, Any]]
    next_cursor: str | None


_ORDER_COLUMNS = (
    "order_id", "owner", "status", "version", "total", "currency", "supplier_order_id",
    "supplier_status", "failure_reason", "flags", "key_count", "created_at", "updated_at",
    "paid_at", "reserved_at", "fulfilled_at",
)  # fmt: skip
_WEBHOOK_COLUMNS = (
    "delivery_id", "provider", "natural_key", "event_name", "order_id", "verified", "outcome",
    "received_at",
)  # fmt: skip
_PRODUCT_COLUMNS = (
    "product_id", "kinguin_id", "name", "platform", "region", "qty", "text_qty", "cost",
    "sale_price", "rule", "margin", "for_sale", "is_preorder", "release_date", "withdrawn",
    "version", "updated_at",
)  # fmt: skip
_AUDIT_COLUMNS = ("order_id", "version", "who", "ip", "user_agent", "how", "at")


class OrderSearch(msgspec.Struct, frozen=True, kw_only=True):
    """What the admins' order list is narrowed to; every part given must match."""

    status: str | None = None
    order_id: str | None = None
    customer: str | None = None
    """The owner's ``sub``."""
    owners: tuple[str, ...] | None = None
    """Any of these owners (an e-mail search's customers; empty: nobody used the address)."""
    product: str | None = None
    flagged: bool = False
    """Only orders with a payment flag, or held for the supplier's balance."""
    created_after: datetime | None = None
    created_before: datetime | None = None


def _order_filters(search: OrderSearch) -> dict[str, FilterValue]:
    filters: dict[str, FilterValue] = {
        "status": search.status,
        "order_id": search.order_id,
        "owner": search.customer,
    }
    if search.owners:
        filters[f"owner IN ({', '.join(['%s'] * len(search.owners))})"] = search.owners
    if search.product is not None:
        filters["products LIKE %s ESCAPE '!'"] = f"%,{_like_literal(search.product)},%"
    if search.flagged:
        filters["flags IS NOT NULL"] = None
    if search.created_after is not None:
        filters["created_at >= %s"] = _utc_text(search.created_after)
    if search.created_before is not None:
        filters["created_at < %s"] = _utc_text(search.created_before)
    return filters


class _Listing(msgspec.Struct, frozen=True):
    """A list over one projection: its columns, sort column and tie-breaking key, newest (the
    highest sort value) first unless ``ascending``."""

    projection: str
    columns: tuple[str, ...]
    sort: str
    key: str
    ascending: bool = False


ORDERS = _Listing("orders", _ORDER_COLUMNS, "updated_at", "order_id")
ATTENTION = _Listing("orders", (*_ORDER_COLUMNS, "state"), "updated_at", "order_id")
RESERVATIONS = _Listing("orders", _ORDER_COLUMNS, "reserved_at", "order_id")
WEBHOOKS = _Listing("webhook_log", _WEBHOOK_COLUMNS, "received_at", "delivery_id")
PRODUCTS = _Listing("products", _PRODUCT_COLUMNS, "name", "product_id", ascending=True)


class ReadModels:
    """Queries over the projection tables (always the live generation, even while a rebuild
    swaps generations: see ``projections.state.read_live``)."""

    def __init__(self, views: ViewDatabase) -> None:
        self._views = views

    def _live_version(self, projection: str) -> int:
        state = read_state(self._views, projection)
        return live_version(self._views, projection, state.generation if state else 1)

    def _rows(self, projection: str, statement: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one read of the projection's live table, written with ``{t}`` for its name."""
        return query_live(self._views, projection, statement, params)

    def orders(
        self, search: OrderSearch | None = None, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Orders, most recently changed first, that match every part of ``search``."""
        search = search or OrderSearch()
        if search.owners == ():
            return Page(items=[], next_cursor=None)  # an e-mail address nobody used
        if search.product is not None and self._live_version("orders") < PRODUCTS_SINCE:
            raise ReadModelRebuilding("the orders read model is being rebuilt to search by product")
        return self._page(ORDERS, _order_filters(search), limit, cursor)

    def needing_attention(self, *, limit: int = 50, cursor: str | None = None) -> Page:
        """Orders failed, held or flagged, most recently changed first; each with its ``state``
        (the order as JSON), so that what it needs can be decided by the domain."""
        filters = {"(status = 'fulfillment_failed' OR flags IS NOT NULL)": None}
        return self._page(ATTENTION, filters, limit, cursor)

    def customers_with_email(self, lookup: str) -> tuple[str, ...]:
        """The customers who placed orders with the e-mail address of this lookup digest."""
        rows = self._rows(
            "customer_emails", "SELECT owner FROM {t} WHERE lookup = %s ORDER BY owner", (lookup,)
        )
        return tuple(row[0] for row in rows)

    def reservations(
        self,
        *,
        status: str | None = None,
        order_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Orders that reached the supplier, newest reservation first."""
        filters = {"supplier_status": status, "order_id": order_id, "reserved_at IS NOT NULL": None}
        return self._page(RESERVATIONS, filters, limit, cursor)

    def webhook_logs(
        self,
        *,
        provider: str | None = None,
        outcome: str | None = None,
        order_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Webhook deliveries, newest first."""
        filters = {"provider": provider, "outcome": outcome, "order_id": order_id}
        return self._page(WEBHOOKS, filters, limit, cursor)

    def webhook_log(self, delivery_id: UUID) -> dict[str, Any] | None:
        """One delivery with its body."""
        columns = (*_WEBHOOK_COLUMNS, "body", "headers")
        rows = self._rows(
            "webhook_log",
            f"SELECT {', '.join(columns)} FROM {{t}} WHERE delivery_id = %s",  # noqa: S608
            (str(delivery_id),),
        )
        return _as_dict(columns, rows[0]) if rows else None

    def key_audit(self, order_id: UUID) -> list[dict[str, Any]]:
        """Every read of the order's keys, oldest first."""
        rows = self._rows(
            "key_audit",
            f"SELECT {', '.join(_AUDIT_COLUMNS)} FROM {{t}} "  # noqa: S608
            "WHERE order_id = %s ORDER BY version",
            (str(order_id),),
        )
        return [_as_dict(_AUDIT_COLUMNS, row) for row in rows]

    def products(
        self,
        *,
        query: str | None = None,
        in_stock: bool = False,
        for_sale_only: bool = True,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Catalog products by name (then id), searched by name or platform (``query``)."""
        filters: dict[str, FilterValue] = {}
        if for_sale_only:
            filters["for_sale = 1"] = None
        if in_stock:
            filters["(qty > 0 OR is_preorder = 1)"] = None
        if query:
            filters["search LIKE %s"] = f"%{_like_escaped(query.lower())}%"
        return self._page(PRODUCTS, filters, limit, cursor)

    def product(self, product_id: str) -> dict[str, Any] | None:
        """One catalog product, whatever its state."""
        if "\x00" in product_id:
            return None
        rows = self._rows(
            "products",
            f"SELECT {', '.join(_PRODUCT_COLUMNS)} FROM {{t}} WHERE product_id = %s",  # noqa: S608
            (product_id,),
        )
        return _as_dict(_PRODUCT_COLUMNS, rows[0]) if rows else None

    def held_orders(self) -> int:
        """Paid orders whose purchase waits (for a supplier top-up)."""
        rows = self._rows(
            "orders",
            "SELECT COUNT(*) FROM {t} WHERE status = 'paid' AND flags LIKE %s",
            ("%held: %",),
        )
        return int(rows[0][0]) if rows else 0

    def stuck_orders(self, changed_before: datetime) -> list[tuple[UUID, str]]:
        """Orders sitting in ``paid`` or ``reserved``, or fulfilled but not yet told to their
        customer, since before the given time."""
        rows = self._rows(
            "orders",
            "SELECT order_id, status FROM {t} "  # noqa: S608
            "WHERE (status IN ('paid', 'reserved') OR (status = 'fulfilled' AND notified = 0)) "
            "AND updated_at < %s "
            f"ORDER BY updated_at LIMIT {STUCK_LIMIT}",
            (changed_before.isoformat(),),
        )
        return [(UUID(row[0]), row[1]) for row in rows]

    def dashboard(self, by: str, now: datetime) -> dict[str, Any]:
        """The dashboard: orders by status, and from the ``sales`` read model the all-time
        revenue, margin, failure rate and paid→fulfilled times, the Kinguin balance last
        observed, and one chart point per hour (``by="hour"``) or day (``"day"``)."""
        points = dashboard.series(self._views, by, now)  # an unknown period is refused first
        by_currency, balance, observed = dashboard.totals(self._views)
        every = summed(by_currency.values())
        settled = every.fulfilled + every.failed
        return {
            "orders_by_status": self.counts_by_status(),
            "revenue": {c: str(h.revenue) for c, h in sorted(by_currency.items()) if h.fulfilled},
            "margin": {c: str(h.margin) for c, h in sorted(by_currency.items()) if h.costed},
            "failure_rate": None if settled == 0 else round(every.failed / settled, 4),
            "fulfilment_latency_ms": dashboard.latency_figures(every),
            "supplier_balance": None if balance is None else {"eur": str(balance), "at": observed},
            "by": by,
            "series": points,
        }

    def fulfilment_latency(self) -> dict[str, float | int | None]:
        """Paid→fulfilled median and 95th percentile over every fulfilled order (ms)."""
        return dashboard.latency_figures(summed(dashboard.totals(self._views)[0].values()))

    def counts_by_status(self) -> dict[str, int]:
        """How many orders are in each status."""
        rows = self._rows("orders", "SELECT status, COUNT(*) FROM {t} GROUP BY status")
        return {row[0]: int(row[1]) for row in rows}

    def _page(
        self, listing: _Listing, filters: Mapping[str, FilterValue], limit: int, cursor: str | None
    ) -> Page:
        sort, key = listing.sort, listing.key
        after, order = (">", "ASC") if listing.ascending else ("<", "DESC")
        where, params = _where(filters)
        if cursor is not None:
            where.append(f"({sort}, {key}) {after} (%s, %s)")
            params.extend(_decode_cursor(cursor))
        limit = max(1, min(limit, MAX_LIMIT))
        rows = self._rows(
            listing.projection,
            f"SELECT {', '.join(listing.columns)} FROM {{t}} "  # noqa: S608
            f"{'WHERE ' + ' AND '.join(where) if where else ''} "
            f"ORDER BY {sort} {order}, {key} {order} LIMIT {limit + 1}",
            params,
        )
        items = [_as_dict(listing.columns, row) for row in rows[:limit]]
        more = len(rows) > limit
        next_cursor = _encode_cursor(items[-1][sort], items[-1][key]) if more else None
        return Page(items=items, next_cursor=next_cursor)


def _where(filters: Mapping[str, FilterValue]) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in filters.items():
        values = value if isinstance(value, tuple) else (value,)
        for text in values:
            check_text(column.split()[0], text)
        if " " in column:
            where.append(column)  # a fixed condition such as "reserved_at IS NOT NULL",
            if "%s" in column:  # or one with values of its own ("search LIKE %s")
                params.extend(values)
        elif value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    return where, params


def check_text(name: str, value: str | None) -> None:
    """Refuse a filter value no column holds (a NUL character): ``BadQuery``, a 400."""
    if value is not None and "\x00" in value:
        raise BadQuery(f"{name} must not contain a NUL character")


def _like_literal(text: str) -> str:
    """``text`` matched as it is inside a LIKE pattern whose escape character is ``!``."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def _utc_text(moment: datetime) -> str:
    """A time as the read models store it (ISO 8601 in UTC); a naive one is taken as UTC."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def _like_escaped(text: str) -> str:
    """``text`` matched literally inside a LIKE pattern (no wildcards of the client's)."""
    return text.replace("%", "").replace("_", "").replace("\x00", "")


def _as_dict(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    item = dict(zip(columns, row, strict=True))
    for flag in ("verified", "for_sale", "is_preorder"):
        if flag in item:
            item[flag] = bool(item[flag])
    if "headers" in item:
        item["headers"] = json.loads(item["headers"])
    return item


def _encode_cursor(sort_value: Any, key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([sort_value, key]).encode()).decode()


def _decode_cursor(cursor: str) -> list[Any]:
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error):
        raise BadCursor("cursor is not one this API handed out") from None
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not all(isinstance(v, str) for v in values)
    ):
        raise BadCursor("cursor is not one this API handed out")
    return values
