"""NOWPayments IPN signatures: HMAC-SHA512 over the recursively key-sorted, compact JSON body.

The vendor's own serialisation is not pinned down (unicode escaping, float format), so the verifier
accepts the raw body or either sorted form. Every variant needs the secret; every comparison is
constant-time.

Checking is split in two because anyone may post to the IPN route: ``signed_as_sent`` costs one
HMAC per secret over the raw bytes and is what a genuine IPN normally passes;
``signed_when_sorted`` parses and re-serialises the body (CPU an anonymous caller controls), so
the HTTP layer runs it only when the first fails, off the event loop, on bodies it has already
bounded in size. Neither raises on hostile input: a body too deep to parse simply does not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from typing import Any

_SIGNATURE = re.compile(r"[0-9a-fA-F]{128}")  # the hex of an HMAC-SHA512


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
    escapings). Parses the body: run it off the event loop, on a bounded body."""
    if signature is None or not well_formed(signature):
        return False
    candidates = _canonical_forms(raw_body)
    return bool(candidates) and _matches(secrets, candidates, signature)


def verify(secret: str, raw_body: bytes, signature: str | None) -> bool:
    """Tell whether ``signature`` signs ``raw_body`` or one of its canonical re-serialisations."""
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


def _canonical_forms(raw_body: bytes) -> list[bytes]:
    """The body's canonical serialisations other than the raw body itself (one when the text is
    all ASCII, where both escapings agree), or none when it is not JSON we can read back
    (malformed, or nested deeper than the interpreter's recursion limit)."""
    try:
        payload = json.loads(raw_body)
        forms = [canonical_body(payload, ensure_ascii=False)]
        if not forms[0].isascii():
            forms.append(canonical_body(payload, ensure_ascii=True))
    except (ValueError, RecursionError):
        return []
    return [form for form in forms if form != raw_body]
