"""NOWPayments IPN signatures: the fact sheet's test vector and the tolerant verifier."""

from __future__ import annotations

import json

import pytest

from adapters.nowpayments_signature import canonical_body, sign, verify

VECTOR_BODY = (
    '{"actually_paid":15,"fee":{"currency":"btc","depositFee":0.09853637216235617,"serviceFee":0,'
    '"withdrawalFee":0},"invoice_id":null,"order_description":null,"order_id":"ORD-1",'
    '"outcome_amount":14.8106,"outcome_currency":"trx","pay_address":"addr","pay_amount":15,'
    '"pay_currency":"trx","payment_id":123456789,"payment_status":"finished","price_amount":1,'
    '"price_currency":"usd","purchase_id":"987"}'
)
VECTOR_SIG = (
    "478d5b22a9a511659a0bf34b0a884652bc3ad92c1ca292737b157d0bdbce60e2"
    "48dbb653fb8d49fe08353a5cdaf49ff8100f12dab49be0b90d4fe81ec46a9763"
)


def test_fact_sheet_vector() -> None:
    """HMAC-SHA512 of the sorted compact body under `test_secret` matches the published vector."""
    assert canonical_body(json.loads(VECTOR_BODY)).decode() == VECTOR_BODY
    assert sign("test_secret", canonical_body(json.loads(VECTOR_BODY))) == VECTOR_SIG
    assert verify("test_secret", VECTOR_BODY.encode(), VECTOR_SIG)


def test_unsorted_spaced_body_verifies_through_its_canonical_form() -> None:
    """A body sent unsorted and with spaces still verifies (NOWPayments signs the sorted form)."""
    payload = json.loads(VECTOR_BODY)
    shuffled = json.dumps(dict(reversed(list(payload.items()))), indent=2).encode()
    assert verify("test_secret", shuffled, VECTOR_SIG)


def test_non_ascii_bodies_verify_in_either_escaping() -> None:
    """Unicode escaped or raw: both serialisations of the same payload verify."""
    payload = {"order_description": "Spiel für Jürgen", "payment_id": 1}
    for ensure_ascii in (True, False):
        body = canonical_body(payload, ensure_ascii=ensure_ascii)
        assert verify("s3cret", json.dumps(payload, indent=1).encode(), sign("s3cret", body))


def test_raw_body_signature_verifies() -> None:
    """A signature over the raw bytes as sent is accepted."""
    raw = b'{"b": 1, "a": 2}'
    assert verify("s3cret", raw, sign("s3cret", raw))


@pytest.mark.parametrize(
    ("secret", "signature"),
    [
        ("wrong_secret", VECTOR_SIG),
        ("test_secret", VECTOR_SIG[:-1] + "0"),
        ("test_secret", ""),
        ("test_secret", None),
        ("", VECTOR_SIG),
    ],
)
def test_bad_signatures_are_refused(secret: str, signature: str | None) -> None:
    """Wrong secret, altered or missing signature, or no secret configured: refused."""
    assert not verify(secret, VECTOR_BODY.encode(), signature)


def test_tampered_body_is_refused() -> None:
    """Changing any value breaks the signature."""
    tampered = VECTOR_BODY.replace('"price_amount":1', '"price_amount":100')
    assert not verify("test_secret", tampered.encode(), VECTOR_SIG)
