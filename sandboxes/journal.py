"""A sandbox's memory across restarts: an append-only journal of its state changes.

Each change is one JSON line, written whole with a single ``write`` to a file opened for appending,
so a killed process leaves at worst a torn last line, which replay skips with a WARNING. At start
the sandbox replays the journal to rebuild its orders, keys, invoices and balance: a user who stops
``make run`` (or whose engine is killed) finds the supplier and the payment provider where they
left them, as with the real services.

The file lives under ``VAR_DIR/sandbox/``, beside the engine's data but never in its event store or
vault. The Kinguin journal holds the supplier's keys in plaintext, as the supplier's own database
would. One process owns a journal at a time (an exclusive ``flock``); another process that mounts
the same sandbox keeps its state in memory only, with a WARNING.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any, Generic, TypeVar

import msgspec

logger = logging.getLogger(__name__)

RecordT = TypeVar("RecordT")


class Journal(Generic[RecordT]):
    """The journal at ``path`` (``None``: memory only) of records decoded as ``record_type``
    (a tagged union of msgspec structs)."""

    def __init__(self, path: Path | None, record_type: Any) -> None:
        self._decoder: msgspec.json.Decoder[RecordT] = msgspec.json.Decoder(record_type)
        self._encoder = msgspec.json.Encoder()
        self._path = path
        self._fd = _open_owned(path) if path is not None else None

    @property
    def persistent(self) -> bool:
        """Tell whether records outlive the process."""
        return self._fd is not None

    def replay(self) -> list[RecordT]:
        """Every record written so far, oldest first (a torn or unreadable line is skipped)."""
        if self._fd is None or self._path is None:
            return []
        records: list[RecordT] = []
        for number, line in enumerate(self._path.read_bytes().splitlines(), start=1):
            try:
                records.append(self._decoder.decode(line))
            except msgspec.DecodeError:
                logger.warning(
                    "sandbox journal %s: line %d unreadable, skipped", self._path, number
                )
        return records

    def append(self, record: RecordT) -> None:
        """Write one record; it is on disk (in the OS's cache) when this returns."""
        if self._fd is not None:
            os.write(self._fd, self._encoder.encode(record) + b"\n")


def _open_owned(path: Path) -> int | None:
    """Open ``path`` for appending and lock it; ``None`` when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        logger.warning(
            "sandbox journal %s is held by another process: this sandbox keeps its state in "
            "memory only",
            path,
        )
        return None
    _end_torn_line(path, fd)
    return fd


def _end_torn_line(path: Path, fd: int) -> None:
    """After a crash mid-write, end the torn line so the next record starts on its own."""
    size = path.stat().st_size
    with path.open("rb") as existing:
        existing.seek(max(size - 1, 0))
        if size and existing.read(1) != b"\n":
            os.write(fd, b"\n")
