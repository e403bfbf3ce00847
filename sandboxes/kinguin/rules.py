"""Kinguin's rules as the sandbox applies them (buying a line, a pre-order, a return), the
ids and keys it makes up, and the views of its orders."""

from __future__ import annotations

import base64
import secrets
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime

from sandboxes.faults import (
    ApiFault,
)
from sandboxes.kinguin.catalog import (
    Catalog,
    CatalogProduct,
    release_date,
)
from sandboxes.kinguin.config import ALNUM, RETURN_WINDOW, STORE_EMAIL, STORE_ID
from sandboxes.kinguin.state import Key, Line, Order, Placed, Purchase, money
from sandboxes.kinguin.wire import (
    KinguinApiError,
    KinguinKey,
    KinguinOrder,
    KinguinOrderKey,
    KinguinOrderLineRequest,
    KinguinOrderProduct,
    KinguinOrderStatusEvent,
)

# --- pure helpers ------------------------------------------------------------------------------


def system_now() -> datetime:
    return datetime.now(UTC)


def kinguin_time(at: datetime) -> str:
    """``2020-10-28T08:40:44+00:00``: the timestamp format of orders and errors."""
    return at.isoformat(timespec="seconds")


def _event_time(at: datetime) -> str:
    """``2020-10-16T11:24:08.025+00:00``: the ``updatedAt`` format of webhooks."""
    return at.isoformat(timespec="milliseconds")


def status_event(order: Order, status: str, at: datetime) -> KinguinOrderStatusEvent:
    return KinguinOrderStatusEvent(order.order_id, order.external_id, status, _event_time(at))


def external_id_used() -> KinguinApiError:
    return KinguinApiError(
        400, "ConstraintViolation", "orderExternalId already used", "orderExternalId"
    )


def fault_error(fault: ApiFault) -> KinguinApiError:
    """The Kinguin-style answer to an injected API fault."""
    if fault == "timeout":
        detail = "Gateway timeout: the upstream service did not answer in time."
        return KinguinApiError(504, "HttpClient", detail)
    if fault == "rate_limit":
        detail = "Too many requests. Slow down and retry later."
        return KinguinApiError(429, "Http", detail, headers={"Retry-After": "1"})
    return KinguinApiError(500, "Error", "Unexpected error. Please try again later.")


def check_preorders(
    lines: Sequence[KinguinOrderLineRequest], products: Sequence[CatalogProduct]
) -> None:
    """Kinguin's pre-order rules: one per request, alone, without ``keyType``."""
    preorders = [index for index, product in enumerate(products) if product.is_preorder]
    if not preorders:
        return
    if len(preorders) > 1:
        raise KinguinApiError(400, "Preorder", "Only one pre-order may be bought per order.")
    if len(lines) > 1:
        detail = "A pre-order cannot be mixed with other products in one order."
        raise KinguinApiError(400, "Preorder", detail)
    [index] = preorders
    if lines[index].key_type is not None:
        detail = "keyType is not allowed for a pre-order."
        raise KinguinApiError(400, "Preorder", detail, f"products[{index}].keyType")


def check_returnable(order: Order, now: datetime) -> None:
    """Kinguin's return rules: once, not a pre-order, completed, within 24 h of delivery."""
    reason = None
    if order.returned:
        reason = f'The keys of order "{order.order_id}" were already returned (once per order).'
    elif order.is_preorder:
        reason = f'Order "{order.order_id}" is a pre-order: its keys cannot be returned.'
    elif order.completed_at is None or order.status != "completed":
        reason = f'Order "{order.order_id}" is not completed: it has no delivered keys to return.'
    elif now - order.completed_at > RETURN_WINDOW:
        reason = (
            f'The keys of order "{order.order_id}" were delivered more than 24 hours ago and '
            "can no longer be returned."
        )
    if reason is not None:
        raise KinguinApiError(400, "NoKeysToReturn", reason)


def buy(purchase: Purchase) -> Line:
    """Draw the purchase's keys from its offer's stock and make its order line."""
    request, product = purchase.request, purchase.product
    text = request.key_type == "text" or not product.image_keys
    purchase.offer.draw(request.qty, text=text)
    status = "PENDING" if product.is_preorder else "PROCESSING"
    return Line(
        product=product,
        offer=purchase.offer,
        qty=request.qty,
        price=purchase.price,
        request_price=request.price,
        is_preorder=product.is_preorder,
        text=text,
        keys=[_new_key(text=text, status=status) for _ in range(request.qty)],
    )


def restored_order(catalog: Catalog, record: Placed) -> Order:
    """An order as placed, its keys drawn from the restored catalog's stock again."""
    lines = []
    for line in record.lines:
        product = catalog.products[line.product_id]
        offer = product.offer(line.offer_id)
        if offer is None:
            raise ValueError(f"journal names offer {line.offer_id} that product lacks")
        offer.draw(line.qty, text=line.text)
        keys = [Key(key.id, key.serial, key.status, key.type) for key in line.keys]
        lines.append(
            Line(
                product=product,
                offer=offer,
                qty=line.qty,
                price=line.price,
                request_price=line.request_price,
                is_preorder=line.is_preorder,
                text=line.text,
                keys=keys,
            )
        )
    return Order(
        record.order_id, record.external_id, record.kinguin_order_id, record.created_at, lines
    )


def refund(order: Order, at: datetime) -> None:
    """Refund the order and put its keys back in stock."""
    order.refund(at)
    for line in order.lines:
        line.offer.restore(line.qty, text=line.text)


def _hex_id() -> str:
    return secrets.token_hex(12)


def _serial() -> str:
    """A game-key-like serial such as ``ABCDE-FGHIJ-KLMNO``."""
    return "-".join("".join(secrets.choice(ALNUM) for _ in range(5)) for _ in range(3))


def _new_key(*, text: bool, status: str) -> Key:
    """A text key, or an image key (base64 PNG) as Kinguin may deliver."""
    if text:
        return Key(id=_hex_id(), serial=_serial(), status=status)
    return Key(id=_hex_id(), serial=_image_serial(), status=status, type="image/png")


def _image_serial() -> str:
    """A small PNG (1x1 pixel of a random colour) as Kinguin sends image keys: base64."""
    pixel = b"\x00" + secrets.token_bytes(3)
    header = b"\x89PNG\r\n\x1a\n"
    ihdr = _png_chunk(b"IHDR", (1).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00")
    idat = _png_chunk(b"IDAT", zlib.compress(pixel))
    return base64.b64encode(header + ihdr + idat + _png_chunk(b"IEND", b"")).decode()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data).to_bytes(4, "big")
    return len(data).to_bytes(4, "big") + kind + data + crc


def order_view(order: Order) -> KinguinOrder:
    preorder = next((line for line in order.lines if line.is_preorder), None)
    return KinguinOrder(
        order_id=order.order_id,
        order_external_id=order.external_id,
        kinguin_order_id=order.kinguin_order_id,
        status=order.status,
        total_price=order.total(),
        request_total_price=money(sum(line.request_price * line.qty for line in order.lines)),
        payment_price=order.total(),
        user_email=STORE_EMAIL,
        store_id=STORE_ID,
        created_at=kinguin_time(order.created_at),
        total_qty=sum(line.qty for line in order.lines),
        is_preorder=preorder is not None,
        preorder_release_date=release_date(preorder.product) if preorder is not None else None,
        products=[_order_line_view(line) for line in order.lines],
    )


def _order_line_view(line: Line) -> KinguinOrderProduct:
    return KinguinOrderProduct(
        kinguin_id=line.product.kinguin_id,
        product_id=line.product.product_id,
        offer_id=line.offer.offer_id,
        qty=line.qty,
        name=line.product.name,
        price=line.price,
        total_price=money(line.price * line.qty),
        request_price=line.request_price,
        is_preorder=line.is_preorder,
        release_date=release_date(line.product),
        key_type="text" if line.text else "image",
        keys=[KinguinOrderKey(key.id, key.status) for key in line.keys],
    )


def key_view(line: Line, key: Key) -> KinguinKey:
    return KinguinKey(
        id=key.id,
        serial=key.serial,
        type=key.type,
        name=line.product.name,
        kinguin_id=line.product.kinguin_id,
        offer_id=line.offer.offer_id,
        product_id=line.product.product_id,
    )
