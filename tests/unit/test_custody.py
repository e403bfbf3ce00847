"""Envelope encryption and the file vault: keys open only for their order, key and master."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from uuid import uuid4

import pytest

from adapters import crypto
from adapters.custody import EnvelopeCustody
from adapters.vault import FileVault, VaultError
from application.errors import KeyUnreadable

SECRET = b"AAAAA-BBBBB-CCCCC"


@pytest.fixture
def masters() -> crypto.MasterKeys:
    return crypto.MasterKeys([os.urandom(32)])


@pytest.fixture
def custody(tmp_path: Path, masters: crypto.MasterKeys) -> EnvelopeCustody:
    return EnvelopeCustody(FileVault(tmp_path), masters)


def test_seal_then_open(custody: EnvelopeCustody, tmp_path: Path) -> None:
    """A sealed key opens again; the vault holds no plaintext; the fingerprint is SHA-256."""
    order = uuid4()
    sealed = custody.seal(order, "k1", SECRET)
    assert custody.open(order, "k1", sealed.vault_ref) == SECRET
    assert len(sealed.fingerprint) == 64
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_bytes()


def test_flipped_byte_is_refused(custody: EnvelopeCustody, tmp_path: Path) -> None:
    """Any change to the stored ciphertext makes it unreadable."""
    order = uuid4()
    sealed = custody.seal(order, "k1", SECRET)
    path = tmp_path / sealed.vault_ref
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 1
    path.write_bytes(bytes(blob))
    with pytest.raises(KeyUnreadable):
        custody.open(order, "k1", sealed.vault_ref)


def test_ciphertext_moved_to_another_key_or_order_is_refused(
    custody: EnvelopeCustody, tmp_path: Path
) -> None:
    """Associated data binds a ciphertext to its order and key id."""
    order, other = uuid4(), uuid4()
    sealed = custody.seal(order, "k1", SECRET)
    custody.seal(order, "k2", b"other key")
    custody.seal(other, "k1", b"third key")
    moved = tmp_path / f"orders/{order}/keys/k2"
    moved.write_bytes((tmp_path / sealed.vault_ref).read_bytes())
    with pytest.raises(KeyUnreadable):
        custody.open(order, "k2", f"orders/{order}/keys/k2")
    (tmp_path / f"orders/{other}/keys/k1").write_bytes((tmp_path / sealed.vault_ref).read_bytes())
    with pytest.raises(KeyUnreadable):
        custody.open(other, "k1", f"orders/{other}/keys/k1")


def test_wrong_master_key_is_refused(tmp_path: Path, custody: EnvelopeCustody) -> None:
    """Another master key cannot unwrap the order's data key."""
    order = uuid4()
    sealed = custody.seal(order, "k1", SECRET)
    stranger = EnvelopeCustody(FileVault(tmp_path), crypto.MasterKeys([os.urandom(32)]))
    with pytest.raises(KeyUnreadable):
        stranger.open(order, "k1", sealed.vault_ref)


def test_old_master_key_still_opens_after_a_new_one_is_listed_first(tmp_path: Path) -> None:
    """Listing a new master key first keeps keys wrapped under the old one readable."""
    old, new = os.urandom(32), os.urandom(32)
    order = uuid4()
    sealed = EnvelopeCustody(FileVault(tmp_path), crypto.MasterKeys([old])).seal(order, "k", SECRET)
    rotated = EnvelopeCustody(FileVault(tmp_path), crypto.MasterKeys([new, old]))
    assert rotated.open(order, "k", sealed.vault_ref) == SECRET


def test_missing_data_key_means_unreadable(custody: EnvelopeCustody, tmp_path: Path) -> None:
    """Without the order's data key (shredded), its keys cannot be read."""
    order = uuid4()
    sealed = custody.seal(order, "k1", SECRET)
    (tmp_path / f"orders/{order}/data-key").unlink()
    with pytest.raises(KeyUnreadable):
        custody.open(order, "k1", sealed.vault_ref)


@pytest.mark.parametrize("ref", ["../escape", "/abs", "a/../../b", "a//b", "a b", ""])
def test_vault_refuses_references_that_could_escape(tmp_path: Path, ref: str) -> None:
    """Vault references are plain relative paths."""
    with pytest.raises(VaultError):
        FileVault(tmp_path).put(ref, b"x")


def test_put_if_absent_keeps_the_first(tmp_path: Path) -> None:
    """Exclusive create: the first writer wins, the second is told so."""
    vault = FileVault(tmp_path)
    assert vault.put_if_absent("a/b", b"first")
    assert not vault.put_if_absent("a/b", b"second")
    assert vault.get("a/b") == b"first"


def test_master_keys_must_be_32_bytes() -> None:
    """A master key of the wrong size is refused."""
    with pytest.raises(ValueError, match="32 bytes"):
        crypto.MasterKeys([b"short"])


def test_concurrent_writers_never_expose_half_written_blobs(tmp_path: Path) -> None:
    """Threads racing to create and replace the same references: every read is whole."""
    vault = FileVault(tmp_path)
    blob = b"x" * 4096
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(200):
                vault.put_if_absent(f"race/{i % 5}", blob)
                vault.put(f"race/{i % 5}", blob)
                assert vault.get(f"race/{i % 5}") in (None, blob)
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert not list(tmp_path.rglob("*.tmp"))
