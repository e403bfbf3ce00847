"""Key vaults: where sealed keys and wrapped data keys are kept (ciphertext only).

``FileVault`` keeps them as files under a folder (the embedded default). References are
relative paths such as ``orders/<order id>/keys/<key id>``.

Errors: ``VaultError`` — a reference is malformed or the storage failed.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from application.errors import VaultFailed

_REF = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class VaultError(VaultFailed):
    """The vault could not do what was asked."""


class VaultUnavailable(VaultError):
    """The vault's server did not answer, or answered that it cannot now (5xx, throttling):
    an outage, which passes (``adapters.outages``)."""


class BlobVault(Protocol):
    """Stores opaque blobs under references."""

    def put(self, ref: str, blob: bytes) -> None:
        """Store ``blob`` under ``ref``, replacing what was there."""
        ...

    def put_if_absent(self, ref: str, blob: bytes) -> bool:
        """Store ``blob`` unless ``ref`` exists; tell whether it was stored."""
        ...

    def get(self, ref: str) -> bytes | None:
        """The blob under ``ref``, or None."""
        ...

    def delete(self, ref: str) -> None:
        """Remove ``ref`` if present."""
        ...

    def ping(self) -> None:
        """Raise ``VaultError`` unless the vault is usable."""
        ...

    def refs(self) -> Iterator[str]:
        """Every reference stored (a backup reads them all)."""
        ...


def check_ref(ref: str) -> str:
    """Refuse references that could escape the vault (``..``, absolute paths, odd characters)."""
    if not _REF.match(ref) or any(part in {".", ".."} for part in ref.split("/")):
        raise VaultError(f"invalid vault reference {ref!r}")
    return ref


class FileVault:
    """Blobs as files under one folder, written atomically (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def put(self, ref: str, blob: bytes) -> None:
        """Store ``blob`` under ``ref``, replacing what was there (readers never see half)."""
        path = self._path(ref)
        temp = self._written(path, blob)
        temp.replace(path)

    def put_if_absent(self, ref: str, blob: bytes) -> bool:
        """Store ``blob`` unless ``ref`` exists: the complete file appears at once (hard link),
        or not at all."""
        path = self._path(ref)
        temp = self._written(path, blob)
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        finally:
            temp.unlink()
        return True

    def get(self, ref: str) -> bytes | None:
        """The blob under ``ref``, or None."""
        try:
            return self._path(ref).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, ref: str) -> None:
        """Remove ``ref`` if present."""
        self._path(ref).unlink(missing_ok=True)

    def ping(self) -> None:
        """Check the folder exists and is writable."""
        self._root.mkdir(parents=True, exist_ok=True)
        if not os.access(self._root, os.W_OK):
            raise VaultError(f"vault folder {self._root} is not writable")

    def refs(self) -> Iterator[str]:
        """Every reference stored, in name order (files being written are left out)."""
        if not self._root.is_dir():
            return
        for path in sorted(self._root.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                yield path.relative_to(self._root).as_posix()

    def _written(self, path: Path, blob: bytes) -> Path:
        """``blob`` in a temporary file of its own beside ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        temp.write_bytes(blob)
        return temp

    def _path(self, ref: str) -> Path:
        return self._root / check_ref(ref)
