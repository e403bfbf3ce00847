"""Kinguin eCommerce API sandbox: an in-memory simulator served under ``/sandbox/kinguin``.

It mirrors the documented API (EXTERNAL_APIS §1) so the Kinguin adapter needs only a base URL:

- every route checks ``X-Api-Key`` and answers Kinguin's exact 401 body otherwise;
- a catalog of a few dozen products (``sandboxes.kinguin.catalog``: text and image
  keys, a pre-order, one sold out) served by ``GET /v1/products`` (page, limit, name, platform,
  productId, kinguinId, isPreorder, updatedSince, updatedTo, sortBy, sortType),
  ``GET /v1/products/{kinguinId}`` and ``GET /v2/products/{productId}`` (404 ``ProductUnavailable``
  for an unknown or out-of-stock product);
- ``POST /v2/order`` matches each line as Kinguin does: among the line's ``offerId`` (or all
  offers) the cheapest whose price is at most the requested ``price`` and whose stock (``textQty``
  for ``keyType: "text"``) covers ``qty``; none answers 400 ``ProductUnavailable``. The order is
  charged the offers' prices (``requestPrice`` keeps the asked one) from a balance
  (``GET /v1/balance``); too little answers 400 ``InsufficientBalance`` and changes nothing.
  A pre-order must be alone in its request, once, without ``keyType`` (else 400 ``Preorder``);
- it answers 201 with a ``processing`` Order; after ``delay_s`` (with none, before answering)
  the order is ``completed``, its keys ``DELIVERED``, and an ``order.status`` webhook (plain
  ``X-Event-Secret``, no signature, as documented) goes to the configured URL. A pre-order
  waits for its product's release date first (keys ``PENDING``, no webhook at all, as Kinguin's
  pre-order webhooks fire only after release);
  the control route ``POST /products/{productId}/release`` (no API key) releases it now;
- ``GET /v1/order/{id}``, ``GET /v1/order`` (search, e.g. by ``orderExternalId``),
  ``GET /v2/order/{id}/keys`` (bare array, delivered keys only, paginated);
- ``POST /v2/order/{id}/keys/return`` returns a completed order's keys once, within 24 hours of
  delivery and never for a pre-order (else 400 ``NoKeysToReturn``): keys ``RETURNED``, order
  ``refunded`` (with its webhook), balance credited, stock restored.

Like the real service it sends one ``order.status`` webhook per status change: ``processing`` as
soon as the order exists (``updatedAt`` = its creation time), then ``completed`` (and ``refunded``
after a return); each is retried briefly while the receiver fails. Every change of a product
(stock, effective price, release) bumps its ``updatedAt``. "Now" comes from ``config.clock``.

Faults (``sandboxes.faults``; ``GET``/``POST /faults``, no API key) make it hostile on
demand. After the key check every API request first waits ``latency_ms``, then may hang
``timeout_s`` and answer 504 (kind ``HttpClient``), else answer 429 (kind ``Http``, with
``Retry-After``), else 500 (kind ``Error``); a faulted request changes nothing. ``out_of_stock``
product ids make ``POST /v2/order`` answer 400 ``ProductUnavailable``; ``duplicate_external_id``
creates the order but answers 400 "orderExternalId already used", as a retry after a lost 201 would
(only for requests carrying an ``orderExternalId``: without one no client could recover).
``price_jump`` raises every offer's effective price (views and matching) by that percent;
``balance`` sets the balance when a faults set carries it; ``product_updates`` sends Kinguin
``product.update`` webhooks (``{kinguinId, productId, qty, textQty, cheapestOfferId, updatedAt}``)
for a product after each purchase or return of it or its release, and for every product when
``price_jump`` changes. Webhooks may be dropped (``drop_webhook_rate``, logged at INFO), sent twice
(``duplicate_webhooks``) or reordered (``reorder_webhooks``: ``completed`` first, then a stale
``processing`` whose ``updatedAt`` is older; decided when the order is placed).

Errors use Kinguin's body ``{kind, status, title, detail, path, method, trace, timestamp}``.
A reused ``orderExternalId`` answers 400 ``ConstraintViolation`` "orderExternalId already used".
Kinguin documents the field as the duplicate guard but not its answer; the sandbox takes the status
of Kinguin's own ``ConstraintViolation`` example (400) over the 422 some third-party notes claim.
"""

from __future__ import annotations

from sandboxes.kinguin.config import KinguinSandboxConfig
from sandboxes.kinguin.routes import kinguin_sandbox

__all__ = ["KinguinSandboxConfig", "kinguin_sandbox"]
