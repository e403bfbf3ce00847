"""NOWPayments API sandbox: an in-memory simulator served under ``/sandbox/nowpayments``.

The vendor API part mirrors EXTERNAL_APIS §2 below ``/v1`` (header ``x-api-key``):
``GET /v1/status``, ``POST /v1/invoice``, ``GET /v1/payment/{payment_id}``. Errors use the vendor's
body ``{"status": false, "statusCode", "code", "message"}``; a wrong key answers 403
``INVALID_API_KEY`` (the vendor does not document this answer; this is the likely one).

Two routes stand in for the customer and need no key:

- ``GET /payment/?iid=<invoice id>``: the tiny invoice page ``invoice_url`` points at;
- ``POST /payments/{invoice_id}/simulate`` ``{"status": ..., "actually_paid"?: number}``: the first
  call creates the invoice's payment (a numeric ``payment_id`` that later calls keep), every call
  sets its status and sends the IPN inline to the invoice's ``ipn_callback_url``: a compact,
  recursively key-sorted JSON body signed with HMAC-SHA512 under the IPN secret in
  ``x-nowpayments-sig``, exactly the bytes that were signed. Control errors are RFC 9457 problems.
  The IPN carries what the vendor's does (EXTERNAL_APIS §2.6): ``invoice_id``, ``price_amount``
  and ``price_currency`` of the invoice, ``pay_amount`` (the price in ``pay_currency`` at a fixed
  sandbox rate), ``actually_paid`` (``pay_amount`` for a paid status, half of it for
  ``partially_paid``, 0 otherwise, or the ``actually_paid`` asked for: a ``finished`` below
  ``pay_amount`` is a finished-but-underpaid IPN), ``actually_paid_at_fiat``, and
  ``outcome_amount`` / ``outcome_currency`` (``actually_paid`` less a 0.5 % fee).

Faults (``sandboxes.faults``; ``GET``/``POST /faults``, no key) make it hostile on
demand. It takes ``error_rate``, ``rate_limit_rate``, ``latency_ms``, ``timeout_rate``,
``duplicate_webhooks``, ``reorder_webhooks`` and ``drop_webhook_rate``; the Kinguin-only fields
answer 400. After the key check, each ``/v1`` request (never the invoice page or simulate) waits
``latency_ms``, then may hang ``timeout_s`` and answer 504 ``GATEWAY_TIMEOUT``, else 429
``TOO_MANY_REQUESTS`` (with ``Retry-After``), else 500 ``INTERNAL_ERROR``; a faulted request
changes nothing. An IPN may be dropped (logged at INFO; simulate then reports
``ipn_status_code: null``) or sent twice; with ``reorder_webhooks`` the previous status's IPN of the
same payment, if any, is sent again (stale, same bytes and signature) right after the new one.
"""

from __future__ import annotations

from sandboxes.nowpayments.config import NowPaymentsSandboxConfig
from sandboxes.nowpayments.routes import nowpayments_sandbox

__all__ = ["NowPaymentsSandboxConfig", "nowpayments_sandbox"]
