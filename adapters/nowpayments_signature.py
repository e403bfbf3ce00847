"""NOWPayments IPN signatures: HMAC-SHA512 over the recursively key-sorted, compact JSON body.

The vendor's own serialisation is not pinned down (unicode escaping, float format), so the verifier
accepts the raw body or either sorted form. Every variant needs the secret; every comparison is
constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any


def canonical_body(payload: Any, *, ensure_ascii: bool = False) -> bytes:
    """Serialise ``payload`` the way NOWPayments signs it: sorted keys at every depth, no spaces."""
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=ensure_ascii)
    return text.encode()


def sign(secret: str, body: bytes) -> str:
    """Return the lowercase hex HMAC-SHA512 of ``body`` under the (trimmed) IPN secret."""
    return hmac.new(secret.strip().encode(), body, hashlib.sha512).hexdigest()


def verify(secret: str, raw_body: bytes, signature: str | None) -> bool:
    """Tell whether ``signature`` signs ``raw_body`` or one of its canonical re-serialisations."""
    if not signature or not secret:
        return False
    given = signature.strip().lower().encode()
    matched = False
    for candidate in _candidate_bodies(raw_body):
        # Check every candidate so timing does not reveal which form matched.
        matched |= hmac.compare_digest(sign(secret, candidate).encode(), given)
    return matched


def _candidate_bodies(raw_body: bytes) -> list[bytes]:
    try:
        payload = json.loads(raw_body)
    except ValueError:
        return [raw_body]
    return [
        raw_body,
        canonical_body(payload, ensure_ascii=False),
        canonical_body(payload, ensure_ascii=True),
    ]
