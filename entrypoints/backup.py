"""``bitloot backup`` and ``bitloot restore``: the shop in one archive, and back.

The archive (a gzipped tar) holds what cannot be rebuilt, with a manifest:

- ``events.jsonl``: every stored event, in log order, byte for byte (the log's tree is made of
  exactly these bytes; the manifest keeps its size and root, and a restore checks them);
- ``checkpoints.jsonl``: the signed checkpoints of the tree, up to the archive's size;
- ``vault/<ref>``: every object of the key vault as stored: sealed keys, wrapped data keys,
  customers' keys (the vault's contents are ciphertext; the master key opens them);
- ``secrets.json``: the locally generated secrets (master key, JWT secret, signing key…), when
  the engine runs on them. Without it, an archive of an engine whose master key came from the
  environment is useless unless that key is kept elsewhere (``docs/operations.md``).

Read models are not in it: they are rebuilt from the events when the restored engine starts.

A backup works while the engine runs: it reads the log up to the head it saw first (events are
never changed, so that prefix is consistent), then the vault, whose objects for those events
were written before the events were saved.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import StoredEvent

from application.ports import Checkpoint
from domain.evidence import entry, leaf_hash
from domain.merkle import CompactRange
from entrypoints.bootstrap import Engine
from entrypoints.serving import LAST_BACKUP

FORMAT = "bitloot-backup/1"
PAGE = 1000
VAULT_PARALLEL = 16  # vault objects read or written at once: each is a round trip on S3
SECRETS = "secrets.json"


class BackupRefused(Exception):
    """An archive that cannot be restored here, or a target that is not empty."""


def add_commands(commands: Any, with_engine: Callable[..., Any]) -> None:
    """The two commands, on the CLI's parser."""
    backup = commands.add_parser("backup", help="write one consistent archive of the shop")
    backup.add_argument("--out", required=True, help="the archive to write (.tar.gz)")
    backup.set_defaults(run=with_engine(_backup))
    restore = commands.add_parser("restore", help="fill an empty store and vault from an archive")
    restore.add_argument("archive", help="an archive written by bitloot backup")
    restore.set_defaults(run=with_engine(_restore), prepare=restore_secrets)


def _backup(engine: Engine, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    manifest = write_backup(engine, Path(args.out))
    print(f"backup {args.out}: {manifest['events']} events, {manifest['checkpoints']} "
          f"checkpoints, {manifest['vault_objects']} vault objects, secrets "
          f"{'included' if manifest['secrets'] else 'not included'}; "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    return 0


def _restore(engine: Engine, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    try:
        manifest = restore_backup(engine, args.unpacked)
    except BackupRefused as refused:
        print(f"restore refused: {refused}", file=sys.stderr)
        return 2
    print(f"restored {args.archive}: {manifest['events']} events, {manifest['checkpoints']} "
          f"checkpoints, {manifest['vault_objects']} vault objects; "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    return 0


# -- backup ----------------------------------------------------------------------------------


def write_backup(engine: Engine, out: Path) -> dict[str, Any]:
    """Write the archive (atomically: a temporary file renamed); return its manifest."""
    with tempfile.TemporaryDirectory(prefix="bitloot-backup-") as folder:
        staging = Path(folder)
        size, root = _write_events(engine, staging / "events.jsonl")
        checkpoints = _write_checkpoints(engine, staging / "checkpoints.jsonl", size)
        objects = _write_vault(engine, staging / "vault")
        secrets = engine.settings.var_dir / SECRETS
        if secrets.is_file():
            shutil.copyfile(secrets, staging / SECRETS)
        manifest = {
            "format": FORMAT,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "events": size,
            "tree": {"size": size, "root": root},
            "checkpoints": checkpoints,
            "vault_objects": objects,
            "secrets": secrets.is_file(),
            "sha256": {name: _digest(staging / name) for name in _members(staging)},
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        partial = out.with_name(f".{out.name}.partial")
        partial.unlink(missing_ok=True)
        partial.touch(mode=0o600)  # it may hold the master key: the owner's eyes only
        try:
            with tarfile.open(partial, "w:gz") as archive:
                for name in ["manifest.json", *_members(staging)]:
                    archive.add(staging / name, arcname=name)
            partial.replace(out)
        finally:
            partial.unlink(missing_ok=True)
    marker = {"at": manifest["created_at"], "archive": str(out.resolve()), "events": size}
    (engine.settings.var_dir / LAST_BACKUP).write_text(json.dumps(marker) + "\n")
    return manifest


def _write_events(engine: Engine, path: Path) -> tuple[int, str]:
    """The log up to its head now, one JSON line an event; its tree's size and root."""
    head, after, tree = engine.store.head(), 0, CompactRange()
    with path.open("w") as out:
        while after < head:
            page = [r for r in engine.store.log_records(after, PAGE) if r.position <= head]
            if not page:
                break
            for record in page:
                tree.append(leaf_hash(entry(record.topic, str(record.originator_id),
                                            record.version, record.state)))  # fmt: skip
                out.write(json.dumps({
                    "originator_id": str(record.originator_id), "version": record.version,
                    "topic": record.topic, "state": base64.b64encode(record.state).decode(),
                }) + "\n")  # fmt: skip
            after = page[-1].position
    return tree.size, tree.root().hex()


def _write_checkpoints(engine: Engine, path: Path, size: int) -> int:
    """The signed checkpoints of a tree no larger than the archive's."""
    written, after = 0, 0
    with path.open("wb") as out:
        while page := engine.checkpoints.page(after, PAGE):
            for checkpoint in page:
                if checkpoint.tree_size <= size:
                    out.write(msgspec.json.encode(checkpoint) + b"\n")
                    written += 1
            after = page[-1].id
    return written


def _write_vault(engine: Engine, folder: Path) -> int:
    """Copy every vault object into ``folder``, ``VAULT_PARALLEL`` at a time."""

    def copy(ref: str) -> int:
        blob = engine.vault.get(ref)
        if blob is None:
            return 0  # deleted since it was listed (a key shredded meanwhile)
        target = folder / ref
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob)
        return 1

    with ThreadPoolExecutor(VAULT_PARALLEL, thread_name_prefix="backup") as pool:
        return sum(pool.map(copy, engine.vault.refs()))


def _members(staging: Path) -> list[str]:
    return sorted(
        p.relative_to(staging).as_posix()
        for p in staging.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    )


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- restore ---------------------------------------------------------------------------------


def restore_secrets(args: argparse.Namespace) -> None:
    """Before the engine is built: put the archive's secrets in ``VAR_DIR`` (the settings
    would otherwise generate new ones, and no sold key could be opened)."""
    var_dir = Path(os.environ.get("VAR_DIR", "var")).resolve()
    args.unpacked = _Opened(Path(args.archive))  # unpacked and checked once, used by restore
    try:
        _, staging = args.unpacked.__enter__()
        _put_secrets(staging / SECRETS, var_dir)
    except BackupRefused as refused:
        args.unpacked.__exit__()
        print(f"restore refused: {refused}", file=sys.stderr)
        raise SystemExit(2) from None


def _put_secrets(archived: Path, var_dir: Path) -> None:
    target = var_dir / SECRETS
    if not archived.is_file():
        return
    if target.is_file() and target.read_bytes() != archived.read_bytes():
        raise BackupRefused(f"{target} holds other secrets; move it away first")
    var_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(archived, target)
    target.chmod(0o600)


def restore_backup(engine: Engine, archive: _Opened) -> dict[str, Any]:
    """Fill an empty store, checkpoint table and vault from the archive; return its
    manifest. The read models catch up when the engine next starts."""
    with archive as (manifest, staging):
        if engine.store.head() != 0 or next(iter(engine.vault.refs()), None) is not None:
            raise BackupRefused("the event store or the vault is not empty")
        root = _restore_events(engine, staging / "events.jsonl")
        if root != manifest["tree"]["root"]:
            raise BackupRefused("the restored log's tree differs from the archive's")
        for line in (staging / "checkpoints.jsonl").read_bytes().splitlines():
            engine.checkpoints.add(msgspec.json.decode(line, type=Checkpoint))
        _restore_vault(engine, staging / "vault")
        return manifest


def _restore_vault(engine: Engine, folder: Path) -> None:
    """Put every archived object back into the vault, ``VAULT_PARALLEL`` at a time."""
    files = [path for path in folder.rglob("*") if path.is_file()] if folder.is_dir() else []

    def put(path: Path) -> None:
        engine.vault.put(path.relative_to(folder).as_posix(), path.read_bytes())

    with ThreadPoolExecutor(VAULT_PARALLEL, thread_name_prefix="restore") as pool:
        for _ in pool.map(put, files):
            pass  # a failed put raises here


def _restore_events(engine: Engine, path: Path) -> str:
    """Insert the events in their order, a page at a time; the root of their tree."""
    tree, page = CompactRange(), list[StoredEvent]()
    with path.open() as lines:
        for line in lines:
            item = json.loads(line)
            stored = StoredEvent(UUID(item["originator_id"]), item["version"], item["topic"],
                                 base64.b64decode(item["state"]))  # fmt: skip
            tree.append(leaf_hash(entry(stored.topic, item["originator_id"],
                                        item["version"], stored.state)))  # fmt: skip
            page.append(stored)
            if len(page) == PAGE:
                engine.store.recorder.insert_events(page)
                page = []
    if page:
        engine.store.recorder.insert_events(page)
    return tree.root().hex()


class _Opened:
    """An archive unpacked into a temporary folder, its members checked against the manifest
    (once: entered again, it gives what it unpacked)."""

    def __init__(self, archive: Path) -> None:
        self._archive = archive
        self._folder = tempfile.TemporaryDirectory(prefix="bitloot-restore-")
        self._unpacked: tuple[dict[str, Any], Path] | None = None

    def __enter__(self) -> tuple[dict[str, Any], Path]:
        if self._unpacked is None:
            self._unpacked = self._unpack()
        return self._unpacked

    def _unpack(self) -> tuple[dict[str, Any], Path]:
        staging = Path(self._folder.name)
        try:
            with tarfile.open(self._archive, "r:gz") as archive:
                archive.extractall(staging, filter="data")
            manifest = json.loads((staging / "manifest.json").read_text())
        except (OSError, tarfile.TarError, ValueError) as bad:
            raise BackupRefused(f"{self._archive} is not a readable archive: {bad}") from None
        if manifest.get("format") != FORMAT:
            raise BackupRefused(f"unknown archive format {manifest.get('format')!r}")
        for name, digest in manifest["sha256"].items():
            if not (staging / name).is_file() or _digest(staging / name) != digest:
                raise BackupRefused(f"{name} is missing or damaged")
        return manifest, staging

    def __exit__(self, *_: object) -> None:
        self._folder.cleanup()
