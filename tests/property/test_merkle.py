"""The log's Merkle tree and its evidence, for any sequence of appends: the roots are RFC 9162's,
every inclusion and consistency proof verifies, and flipping any one byte of a leaf, a proof or
a checkpoint makes verification fail."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.signing import Ed25519Signer, new_seed
from application.evidence import Evidence
from domain.errors import TreeTooSmall
from domain.evidence import (
    EMPTY_ROOT,
    leaf_hash,
    node_hash,
    verify_bundle,
    verify_consistency,
    verify_inclusion,
)
from domain.merkle import CompactRange, consistency_ranges, hashes_of, inclusion_ranges
from tests.fakes import FixedClock, MemoryLog

LEAVES = st.lists(st.binary(max_size=24), min_size=1, max_size=40)
SIGNER = Ed25519Signer.from_text(new_seed())

# The test vectors of Certificate Transparency's Merkle tree: eight leaves, and the root after
# each append.
CT_LEAVES = [
    b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70)),
]  # fmt: skip
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def reference_root(hashes: list[bytes]) -> bytes:
    """RFC 9162's MTH, recursively, straight from the definition."""
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    split = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node_hash(reference_root(hashes[:split]), reference_root(hashes[split:]))


def grown(leaves: list[bytes]) -> tuple[list[bytes], dict[tuple[int, int], bytes], list[bytes]]:
    """Leaf hashes, stored nodes and the root after each append."""
    tree, roots = CompactRange(), []
    nodes: dict[tuple[int, int], bytes] = {}
    hashes = [leaf_hash(leaf) for leaf in leaves]
    for digest in hashes:
        nodes.update(tree.append(digest))
        roots.append(tree.root())
    return hashes, nodes, roots


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def test_the_roots_are_certificate_transparencys() -> None:
    _, _, roots = grown(CT_LEAVES)
    assert [root.hex() for root in roots] == CT_ROOTS


@given(LEAVES)
def test_every_inclusion_and_consistency_proof_verifies(leaves: list[bytes]) -> None:
    hashes, nodes, roots = grown(leaves)
    size = len(leaves)
    assert roots == [reference_root(hashes[: n + 1]) for n in range(size)]
    for index in range(size):
        for tree_size in range(index + 1, size + 1):
            proof = hashes_of(inclusion_ranges(index, tree_size), nodes)
            assert verify_inclusion(index, tree_size, hashes[index], proof, roots[tree_size - 1])
    for first in range(1, size + 1):
        proof = hashes_of(consistency_ranges(first, size), nodes)
        assert verify_consistency(first, size, roots[first - 1], roots[-1], proof)


@given(LEAVES, st.data())
def test_flipping_a_byte_of_a_leaf_or_an_inclusion_proof_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    hashes, nodes, roots = grown(leaves)
    size = len(leaves)
    index = data.draw(st.integers(0, size - 1))
    proof = hashes_of(inclusion_ranges(index, size), nodes)
    leaf = leaves[index]
    if leaf:
        edited = flipped(leaf, data.draw(st.integers(0, len(leaf) - 1)))
        assert not verify_inclusion(index, size, leaf_hash(edited), proof, roots[-1])
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        at = data.draw(st.integers(0, 31))
        bent = [*proof[:which], flipped(proof[which], at), *proof[which + 1 :]]
        assert not verify_inclusion(index, size, hashes[index], bent, roots[-1])
    assert not verify_inclusion(index, size, hashes[index], proof, flipped(roots[-1], 0))


@given(LEAVES, st.data())
def test_flipping_a_byte_of_a_consistency_proof_or_a_root_fails(
    leaves: list[bytes], data: st.DataObject
) -> None:
    _, nodes, roots = grown(leaves)
    size = len(leaves)
    first = data.draw(st.integers(1, size))
    proof = hashes_of(consistency_ranges(first, size), nodes)
    at = data.draw(st.integers(0, 31))
    old, new = roots[first - 1], roots[-1]
    assert not verify_consistency(first, size, flipped(old, at), new, proof)
    assert not verify_consistency(first, size, old, flipped(new, at), proof)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bent = [*proof[:which], flipped(proof[which], at), *proof[which + 1 :]]
        assert not verify_consistency(first, size, old, new, bent)


def test_proofs_beyond_the_tree_are_refused() -> None:
    with pytest.raises(TreeTooSmall):
        inclusion_ranges(3, 3)
    with pytest.raises(TreeTooSmall):
        consistency_ranges(4, 3)
    with pytest.raises(TreeTooSmall):
        consistency_ranges(0, 3)


# -- whole bundles -----------------------------------------------------------------------------

ORDER = UUID("00000000-0000-4000-8000-000000000001")
EVENTS = st.lists(
    st.tuples(st.booleans(), st.binary(min_size=1, max_size=30)), min_size=1, max_size=25
)


def bundle_of(events: list[tuple[bool, bytes]]) -> tuple[dict[str, Any], Evidence]:
    """The evidence of ORDER in a log where each event is the order's or another aggregate's
    (at least one is the order's)."""
    log = MemoryLog()
    for mine, state in [(True, b"{}"), *events]:
        log.append(ORDER if mine else uuid4(), "domain.events:Example", state)
    evidence = Evidence(log, log, log, SIGNER, FixedClock(datetime(2026, 12, 6, tzinfo=UTC)))
    return evidence.bundle(ORDER), evidence


@settings(max_examples=50)
@given(EVENTS)
def test_a_bundle_verifies(events: list[tuple[bool, bytes]]) -> None:
    bundle, _ = bundle_of(events)
    assert verify_bundle(bundle, SIGNER.public_key) == []


@settings(max_examples=50)
@given(EVENTS, st.data())
def test_flipping_any_byte_of_a_bundle_fails_it(
    events: list[tuple[bool, bytes]], data: st.DataObject
) -> None:
    bundle, _ = bundle_of(events)
    leaf = data.draw(st.sampled_from(bundle["leaves"]))
    choices = ["state", "leaf_hash", "root_hash", "signature", "tree_size", "timestamp"]
    if leaf["inclusion_proof"]:
        choices.append("inclusion_proof")
    part = data.draw(st.sampled_from(choices))
    bent = copy.deepcopy(bundle)
    bent_leaf = bent["leaves"][bundle["leaves"].index(leaf)]
    match part:
        case "state":
            state = base64.b64decode(leaf["state"])
            at = data.draw(st.integers(0, len(state) - 1))
            bent_leaf["state"] = base64.b64encode(flipped(state, at)).decode()
        case "leaf_hash":
            bent_leaf["leaf_hash"] = flipped_hex(leaf["leaf_hash"], data.draw(st.integers(0, 31)))
        case "inclusion_proof":
            which = data.draw(st.integers(0, len(leaf["inclusion_proof"]) - 1))
            at = data.draw(st.integers(0, 31))
            bent_leaf["inclusion_proof"][which] = flipped_hex(leaf["inclusion_proof"][which], at)
        case "root_hash":
            root = bundle["checkpoint"]["root_hash"]
            bent["checkpoint"]["root_hash"] = flipped_hex(root, data.draw(st.integers(0, 31)))
        case "signature":
            signature = base64.b64decode(bundle["checkpoint"]["signature"])
            at = data.draw(st.integers(0, len(signature) - 1))
            bent["checkpoint"]["signature"] = base64.b64encode(flipped(signature, at)).decode()
        case "tree_size":
            bent["checkpoint"]["tree_size"] += data.draw(st.sampled_from([-1, 1]))
        case "timestamp":
            bent["checkpoint"]["timestamp"] = bundle["checkpoint"]["timestamp"].replace("6", "7")
    assert verify_bundle(bent, SIGNER.public_key) != [], part


def test_a_bundle_of_another_key_or_with_a_missing_event_fails() -> None:
    bundle, _ = bundle_of([(True, b"a"), (False, b"b"), (True, b"c")])
    assert verify_bundle(bundle, Ed25519Signer.from_text(new_seed()).public_key) != []
    gap = copy.deepcopy(bundle)
    del gap["leaves"][1]
    assert any("versions" in problem for problem in verify_bundle(gap, SIGNER.public_key))


def flipped_hex(text: str, at: int) -> str:
    return flipped(bytes.fromhex(text), at).hex()
