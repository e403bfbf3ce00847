"""Checking the engine's evidence offline: RFC 9162 Merkle hashing, inclusion and consistency
proofs, signed checkpoints, and whole evidence bundles.

This module needs nothing but the standard library and ``cryptography``; an auditor may copy it
as it is. ``docs/audit.md`` describes the formats it reads.

- A leaf is one stored event: ``entry(topic, originator_id, version, state)`` (below), hashed
  as ``SHA-256(0x00 || entry)``; two nodes hash as ``SHA-256(0x01 || left || right)``.
- A checkpoint signs, with Ed25519, the lines of ``checkpoint_message``: a fixed origin, the
  tree size, the root hash in hex and the time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import struct
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

BUNDLE_FORMAT = "bitloot-evidence/1"
SET_FORMAT = "bitloot-evidence-set/1"
ORIGIN = "bitloot event log"
EMPTY_ROOT = hashlib.sha256(b"").digest()


class EvidenceError(ValueError):
    """A bundle, proof or key that cannot even be read."""


# -- hashing (RFC 9162 §2.1.1) -----------------------------------------------------------------


def entry(topic: str, originator_id: str, version: int, state: bytes) -> bytes:
    """The bytes of one stored event as a leaf: the topic (length-prefixed, UTF-8), the
    originator's 16 UUID bytes, the version (8 bytes), then the state exactly as stored."""
    name = topic.encode()
    return (
        struct.pack(">H", len(name))
        + name
        + uuid.UUID(originator_id).bytes
        + struct.pack(">Q", version)
        + state
    )


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


# -- proofs (RFC 9162 §2.1.3.2 and §2.1.4.2) ---------------------------------------------------


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root that ``path`` proves ``leaf`` at ``index`` into, for a tree of ``size``
    leaves; None when the path cannot be a proof for that position."""
    if not 0 <= index < size:
        return None
    fn, sn, result = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    return result if sn == 0 else None


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``path`` proves ``leaf`` at ``index`` in the tree of ``size`` with ``root``."""
    return root_from_inclusion(index, size, leaf, path) == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """Whether ``path`` proves that the tree of ``second`` leaves (``second_root``) extends the
    tree of ``first`` leaves (``first_root``)."""
    if not 0 < first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    if not path:
        return False
    hashes = list(path)
    if first & (first - 1) == 0:  # a power of two: the old root is a node of the new tree
        hashes.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    old = new = hashes[0]
    for sibling in hashes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            old, new = node_hash(sibling, old), node_hash(sibling, new)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            new = node_hash(new, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and old == first_root and new == second_root


# -- checkpoints -------------------------------------------------------------------------------


def checkpoint_message(tree_size: int, root_hash: str, timestamp: str) -> bytes:
    """What a checkpoint's signature covers."""
    return f"{ORIGIN}\n{tree_size}\n{root_hash}\n{timestamp}\n".encode()


def key_id(public_key: bytes) -> str:
    """A short name of a public key: the first 8 bytes of its SHA-256, in hex."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def verify_checkpoint(checkpoint: Mapping[str, Any], public_key: bytes) -> bool:
    """Whether the checkpoint's Ed25519 signature holds for its size, root and time."""
    try:
        message = checkpoint_message(
            int(checkpoint["tree_size"]), str(checkpoint["root_hash"]), str(checkpoint["timestamp"])
        )
        signature = base64.b64decode(str(checkpoint["signature"]), validate=True)
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (KeyError, TypeError, ValueError, binascii.Error, InvalidSignature):
        return False
    return True


def read_public_key(text: str) -> bytes:
    """The raw 32-byte Ed25519 key from what ``GET /audit/public-key`` answers (JSON with a
    base64 ``public_key``), or from a PEM ``PUBLIC KEY`` block."""
    stripped = text.strip()
    try:
        if stripped.startswith("-----BEGIN"):
            key = load_pem_public_key(stripped.encode())
            if not isinstance(key, Ed25519PublicKey):
                raise EvidenceError("the PEM key is not an Ed25519 key")
            return key.public_bytes_raw()
        raw = base64.b64decode(json.loads(stripped)["public_key"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as bad:
        raise EvidenceError(f"not an Ed25519 public key: {bad}") from None
    if len(raw) != 32:
        raise EvidenceError("an Ed25519 public key has 32 bytes")
    return raw


# -- bundles -----------------------------------------------------------------------------------


def bundles_in(document: Any) -> list[dict[str, Any]]:
    """The bundles of a file: one bundle, or a set of them (``{"bundles": [...]}``)."""
    if isinstance(document, dict) and isinstance(document.get("bundles"), list):
        return list(document["bundles"])
    if isinstance(document, dict) and "leaves" in document:
        return [document]
    raise EvidenceError("neither an evidence bundle nor a set of bundles")


def verify_bundle(bundle: Mapping[str, Any], public_key: bytes) -> list[str]:
    """Everything wrong with one order's evidence bundle; an empty list when every leaf is
    proven into the signed checkpoint and the order's versions run from 1 without a gap."""
    try:
        return _problems(bundle, public_key)
    except (KeyError, TypeError, ValueError, binascii.Error) as bad:
        return [f"the bundle cannot be read: {bad!r}"]


def _problems(bundle: Mapping[str, Any], public_key: bytes) -> list[str]:
    problems: list[str] = []
    if bundle.get("format") != BUNDLE_FORMAT:
        problems.append(f"the format is not {BUNDLE_FORMAT}")
    checkpoint = bundle["checkpoint"]
    if not verify_checkpoint(checkpoint, public_key):
        problems.append("the checkpoint's signature does not hold for this public key")
    size, root = int(checkpoint["tree_size"]), bytes.fromhex(checkpoint["root_hash"])
    order_id = str(bundle["order_id"])
    versions = []
    for leaf in bundle["leaves"]:
        versions.append(int(leaf["version"]))
        problems.extend(_leaf_problems(leaf, order_id, size, root))
    if versions != list(range(1, len(versions) + 1)):
        problems.append(f"the order's versions are {versions}, not 1 to {len(versions)}")
    return problems


def _leaf_problems(leaf: Mapping[str, Any], order_id: str, size: int, root: bytes) -> list[str]:
    where = f"leaf {leaf['index']} (version {leaf['version']})"
    claimed = bytes.fromhex(leaf["leaf_hash"])
    if leaf.get("state") is not None:
        data = entry(
            str(leaf["topic"]),
            order_id,
            int(leaf["version"]),
            base64.b64decode(leaf["state"], validate=True),
        )
        if leaf_hash(data) != claimed:
            return [f"{where}: the event's bytes do not hash to its leaf hash"]
    path = [bytes.fromhex(h) for h in leaf["inclusion_proof"]]
    if not verify_inclusion(int(leaf["index"]), size, claimed, path, root):
        return [f"{where}: the inclusion proof does not lead to the checkpoint's root"]
    return []
