"""One contract, two vaults: the encrypted-file vault and the S3 vault against a real
S3-compatible HTTP server (moto's standalone server, started for the test session)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from adapters import crypto
from adapters.custody import EnvelopeCustody
from adapters.outages import unavailable
from adapters.s3_vault import S3Vault
from adapters.vault import BlobVault, FileVault, VaultError, VaultUnavailable
from application.errors import KeyUnreadable
from tests.support import free_port


def s3_vault(endpoint: str, bucket: str) -> S3Vault:
    vault = S3Vault(
        endpoint=endpoint, bucket=bucket, access_key_id="test", secret_access_key="test-secret"
    )
    vault.ensure_bucket()
    return vault


@pytest.fixture(params=["file", "s3"])
def vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobVault]:
    if request.param == "file":
        yield FileVault(tmp_path / "vault")
        return
    opened = s3_vault(request.getfixturevalue("s3_endpoint"), f"vault-{uuid4().hex[:12]}")
    yield opened
    opened.close()


def test_put_get_delete(vault: BlobVault) -> None:
    """A blob stored comes back byte for byte; deleted, it is gone; missing is None."""
    vault.put("orders/a/keys/k1", b"\x00ciphertext\xff")
    assert vault.get("orders/a/keys/k1") == b"\x00ciphertext\xff"
    vault.put("orders/a/keys/k1", b"replaced")
    assert vault.get("orders/a/keys/k1") == b"replaced"
    vault.delete("orders/a/keys/k1")
    assert vault.get("orders/a/keys/k1") is None
    vault.delete("orders/a/keys/k1")
    vault.ping()


def test_refs_list_every_blob_stored(vault: BlobVault) -> None:
    """What a backup reads: every reference, in name order, nothing else."""
    assert list(vault.refs()) == []
    for ref in ("orders/b/keys/k2", "customers/c/key", "orders/b/data-key"):
        vault.put(ref, ref.encode())
    vault.delete("customers/c/key")
    assert list(vault.refs()) == ["orders/b/data-key", "orders/b/keys/k2"]


def test_put_if_absent_is_exclusive(vault: BlobVault) -> None:
    """The first writer of a reference wins; the second is told so and changes nothing."""
    assert vault.put_if_absent("orders/b/data-key", b"first")
    assert not vault.put_if_absent("orders/b/data-key", b"second")
    assert vault.get("orders/b/data-key") == b"first"


def test_references_cannot_escape(vault: BlobVault) -> None:
    """Malformed references are refused before reaching storage."""
    with pytest.raises(VaultError):
        vault.get("../../etc/passwd")


def test_custody_round_trip_and_tamper_on_each_vault(vault: BlobVault) -> None:
    """Envelope encryption works the same over both vaults, and tampering is detected."""
    custody = EnvelopeCustody(vault, crypto.MasterKeys([os.urandom(32)]))
    order = uuid4()
    sealed = custody.seal(order, "k1", b"GAME-KEY-123")
    assert custody.open(order, "k1", sealed.vault_ref) == b"GAME-KEY-123"
    stored = vault.get(sealed.vault_ref)
    assert stored is not None
    assert b"GAME-KEY-123" not in stored
    vault.put(sealed.vault_ref, stored[:-1] + bytes([stored[-1] ^ 1]))
    with pytest.raises(KeyUnreadable):
        custody.open(order, "k1", sealed.vault_ref)


def test_unreachable_s3_is_an_outage() -> None:
    """No server behind the endpoint: a named VaultError, not a hang, and an outage (one
    WARNING line, tried again) rather than a fault."""
    vault = S3Vault(
        endpoint=f"http://127.0.0.1:{free_port()}",
        bucket="b",
        access_key_id="x",
        secret_access_key="y",
    )
    try:
        with pytest.raises(VaultUnavailable) as raised:
            vault.ping()
        assert unavailable(raised.value) == "key vault"
    finally:
        vault.close()
