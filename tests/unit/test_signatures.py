"""NOWPayments IPN signatures: the fact sheet's test vector, the tolerant verifier, and the
bounds of its costly half."""

from __future__ import annotations

import json

import pytest

from adapters.nowpayments_signature import (
    MAX_FIELDS,
    SORTED_MAX_BYTES,
    canonical_body,
    ipn_shaped,
    sign,
    signed_as_sent,
    signed_when_sorted,
    verify,
    well_formed,
)

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


def test_the_raw_check_hashes_only_the_bytes_as_sent() -> None:
    """signed_as_sent takes the raw bytes only; a sorted-form signature needs the second check,
    and either accepts any of several secrets."""
    shuffled = json.dumps(dict(reversed(list(json.loads(VECTOR_BODY).items())))).encode()
    assert signed_as_sent(["other", "test_secret"], VECTOR_BODY.encode(), VECTOR_SIG)
    assert not signed_as_sent(["test_secret"], shuffled, VECTOR_SIG)
    assert signed_when_sorted(["other", "test_secret"], shuffled, VECTOR_SIG)
    assert not signed_when_sorted(["other", ""], shuffled, VECTOR_SIG)


@pytest.mark.parametrize("signature", ["0" * 127, "g" * 128, "0" * 129, "", "  "])
def test_a_signature_that_is_not_128_hex_digits_is_refused_unhashed(signature: str) -> None:
    """Anything but the hex of an HMAC-SHA512 is refused before any hashing."""
    assert not well_formed(signature)
    assert not signed_as_sent(["test_secret"], VECTOR_BODY.encode(), signature)
    assert not signed_when_sorted(["test_secret"], VECTOR_BODY.encode(), signature)


@pytest.mark.parametrize(
    "body", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"{x"]
)
def test_hostile_bodies_do_not_verify_and_do_not_raise(body: bytes) -> None:
    """JSON nested past the recursion limit, or not JSON: no sorted form, so no match (and no
    RecursionError); signed as sent, the same bytes still verify."""
    assert not signed_when_sorted(["s3cret"], body, sign("s3cret", body[:10]))
    assert verify("s3cret", body, sign("s3cret", body))


def test_only_small_ipn_shaped_bodies_are_re_serialised() -> None:
    """The sorted check reads a JSON object of a few dozen fields nested three deep at most, of
    at most 8 KiB: the vector verifies; a list, an object too deep or too wide, or a body over
    the size limit is not re-serialised, whatever it is signed with."""
    vector = json.loads(VECTOR_BODY)
    assert ipn_shaped(vector)
    assert not ipn_shaped([vector])
    assert not ipn_shaped({"a": {"b": {"c": {"d": 1}}}})
    assert not ipn_shaped({str(n): n for n in range(MAX_FIELDS + 1)})
    assert not ipn_shaped({"a": list(range(MAX_FIELDS))})
    wide = json.dumps({"x": "y" * SORTED_MAX_BYTES}, separators=(",", ":"))
    padded = json.dumps({"x": "y" * SORTED_MAX_BYTES}).encode()  # sorted form differs
    assert not signed_when_sorted(["s3cret"], padded, sign("s3cret", wide.encode()))
    spaced = json.dumps(vector, indent=1).encode()
    assert signed_when_sorted(["test_secret"], spaced, VECTOR_SIG)
