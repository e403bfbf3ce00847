"""NOWPayments IPN signatures: HMAC-SHA512 over the recursively key-sorted, compact JSON body.

The vendor's own serialisation is not pinned down (unicode escaping, float format), so the verifier
accepts the raw body or either sorted form. Every variant needs the secret; every comparison is
constant-time.

Checking is split in two because anyone may post to the IPN route: ``signed_as_sent`` costs one
HMAC per secret over the raw bytes and is what a genuine IPN normally passes;
``signed_when_sorted`` parses and re-serialises the body (CPU an anonymous caller controls), so
the HTTP layer runs it only when the first fails, off the event loop, on a small body
(``SORTED_MAX_BYTES``); and it re-serialises only what could be an IPN at all (``ipn_shaped``: a
JSON object of at most ``MAX_FIELDS`` fields, nested at most ``MAX_DEPTH`` deep, as NOWPayments'
flat body with its ``fee`` object is). Neither raises on hostile input: a body too deep to parse
simply does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from typing import Any

_SIGNATURE = re.compile(r"[0-9a-fA-F]{128}")  # the hex of an HMAC-SHA512
SORTED_MAX_BYTES = 8 * 1024  # a real IPN is about 1 KiB; a larger body must be signed as sent
MAX_FIELDS = 64  # an IPN has about 20 fields, its `fee` object 4
MAX_DEPTH = 3  # the body, its `fee` object, and a list such as `payment_extra_ids`


def canonical_body(payload: Any, *, ensure_ascii: bool = False) -> bytes:
    """Serialise ``payload`` the way NOWPayments signs it: sorted keys at every depth, no spaces."""
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=ensure_ascii)
    return text.encode()


def sign(secret: str, body: bytes) -> str:
    """Return the lowercase hex HMAC-SHA512 of ``body`` under the (trimmed) IPN secret."""
    return hmac.new(secret.strip().encode(), body, hashlib.sha512).hexdigest()


def well_formed(signature: str) -> bool:
    """Whether ``signature`` could be an HMAC-SHA512 at all (128 hex digits): anything else is
    refused before any hashing."""
    return _SIGNATURE.fullmatch(signature.strip()) is not None


def signed_as_sent(secrets: Iterable[str], raw_body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` signs the raw bytes under one of ``secrets`` (cheap: one HMAC each)."""
    if signature is None or not well_formed(signature):
        return False
    return _matches(secrets, [raw_body], signature)


def signed_when_sorted(secrets: Iterable[str], raw_body: bytes, signature: str | None) -> bool:
    """Whether ``signature`` signs a canonical re-serialisation of the body (both unicode
    escapings): only for a body of at most ``SORTED_MAX_BYTES`` shaped like an IPN. Parses the
    body (about 0.1 ms at the size limit): run it off the event loop."""
    if signature is None or not well_formed(signature) or len(raw_body) > SORTED_MAX_BYTES:
        return False
    candidates = _canonical_forms(raw_body)
    return bool(candidates) and _matches(secrets, candidates, signature)


def verify(secret: str, raw_body: bytes, signature: str | None) -> bool:
    """Tell whether ``signature`` signs ``raw_body`` or one of its canonical re-serialisations
    (both checks in a row, as a caller off the event loop may do)."""
    return signed_as_sent([secret], raw_body, signature) or signed_when_sorted(
        [secret], raw_body, signature
    )


def _matches(secrets: Iterable[str], candidates: list[bytes], signature: str) -> bool:
    given = signature.strip().lower().encode()
    matched = False
    for secret in secrets:
        if not secret.strip():
            continue  # no secret configured: nothing can be signed under it
        for candidate in candidates:
            # Every candidate is checked, so timing does not tell which form matched.
            matched |= hmac.compare_digest(sign(secret, candidate).encode(), given)
    return matched


def ipn_shaped(payload: Any) -> bool:
    """Whether a parsed body could be an IPN: a JSON object of at most ``MAX_FIELDS`` fields in
    all, nested at most ``MAX_DEPTH`` deep."""
    if not isinstance(payload, dict):
        return False
    budget = [MAX_FIELDS]
    return _within(payload, MAX_DEPTH, budget)


def _within(value: Any, depth: int, budget: list[int]) -> bool:
    """Whether ``value`` nests no deeper than ``depth`` and its containers hold no more than
    ``budget`` entries in all (spent as they are counted)."""
    if not isinstance(value, dict | list):
        return True
    budget[0] -= len(value)
    if depth == 0 or budget[0] < 0:
        return False
    children = value.values() if isinstance(value, dict) else value
    return all(_within(child, depth - 1, budget) for child in children)


def _canonical_forms(raw_body: bytes) -> list[bytes]:
    """The body's canonical serialisations other than the raw body itself (one when the text is
    all ASCII, where both escapings agree), or none when it is not an IPN-shaped JSON object we
    can read back (malformed, nested deeper than the interpreter's recursion limit, or not
    ``ipn_shaped``)."""
    if raw_body.lstrip()[:1] != b"{":
        return []  # not an object: nothing to parse
    try:
        payload = json.loads(raw_body)
    except (ValueError, RecursionError):
        return []
    if not ipn_shaped(payload):
        return []
    forms = [canonical_body(payload, ensure_ascii=False)]
    if not forms[0].isascii():
        forms.append(canonical_body(payload, ensure_ascii=True))
    return [form for form in forms if form != raw_body]


class IpnSignatures:
    """The checks of an IPN's signature under the engine's secrets (``application.webhooks
    .SignatureCheck``): the cheap one, whether the costly one is worth running, the costly one."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self._secrets = secrets

    def as_sent(self, raw_body: bytes, signature: str | None) -> bool:
        """Signed over the bytes as sent (one HMAC per secret)."""
        return signed_as_sent(self._secrets, raw_body, signature)

    def worth_sorting(self, raw_body: bytes, signature: str | None) -> bool:
        """Whether ``when_sorted`` may run: a well-formed signature over a small body."""
        return (
            signature is not None and well_formed(signature) and len(raw_body) <= SORTED_MAX_BYTES
        )

    def when_sorted(self, raw_body: bytes, signature: str | None) -> bool:
        """Signed over a sorted form of the body (parses it: run it off the event loop)."""
        return signed_when_sorted(self._secrets, raw_body, signature)
