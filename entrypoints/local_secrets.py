"""Secrets generated once for the embedded default and kept in ``<VAR_DIR>/secrets.json``
(mode 600), never in the repository."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class LocalSecrets:
    """Secrets generated once for the embedded default, kept under the var folder. Processes
    starting together on one folder agree: a secret is made under a file lock, after reading
    the file again, and the file is replaced whole."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._values = self._read()

    def get(self, name: str, make: Callable[[], str]) -> str:
        """The secret called ``name``, made with ``make`` and kept if there is none yet."""
        if name not in self._values:
            with self._locked():
                self._values = self._read()  # another process may have made it meanwhile
                if name not in self._values:
                    self._values[name] = make()
                    self._write()
        return self._values[name]

    def _read(self) -> dict[str, str]:
        values: dict[str, str] = json.loads(self._path.read_text()) if self._path.exists() else {}
        return values

    def _write(self) -> None:
        fresh = self._path.with_suffix(".json.new")
        fresh.write_text(json.dumps(self._values, indent=2))
        fresh.chmod(0o600)
        fresh.replace(self._path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with (self._path.parent / "secrets.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
