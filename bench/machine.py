"""What the machine's engine processes use (CPU time, RSS, read from ``/proc``) and what its
PostgreSQL does on its own (single-row commits per second): the baselines of ``bench/load.py``."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql


def rss_by_process() -> list[tuple[str, float]]:
    """RSS in MB of every ``bitloot serve`` / ``bitloot worker`` process on this machine."""
    found = []
    for name, proc in engine_processes():
        try:
            status = (proc / "status").read_text()
        except OSError:
            continue
        rss = [line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")]
        if rss:
            found.append((name, int(rss[0]) / 1024))
    return sorted(found)


def cpu_seconds_by_process() -> dict[str, float]:
    """CPU time (user + system) used so far by every engine process, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for name, proc in engine_processes():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[name] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return found


def engine_processes() -> list[tuple[str, Path]]:
    """``("serve <pid>" | "worker <pid>" | "sandbox <pid>", /proc/<pid>)`` of every
    ``bitloot`` process."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        bitloot = any(
            w in ("bitloot", "entrypoints.cli") or w.endswith("/bitloot") for w in words[:3]
        )
        kind = next((w for w in words if w in ("serve", "worker", "sandbox")), None)
        if bitloot and kind:
            found.append((f"{kind} {proc.name}", proc))
    return found


def raw_insert_rate(database: str, seconds: float = 3.0) -> float:
    """Single-row INSERT + commit per second into a scratch table of a scratch schema."""
    schema = sql.Identifier(f"load_{uuid.uuid4().hex[:10]}")
    table = sql.SQL("{}.t").format(schema)
    insert = sql.SQL("INSERT INTO {} (body) VALUES (%s)").format(table)
    create = sql.SQL("CREATE TABLE {} (id bigserial primary key, body bytea)").format(table)
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        try:
            conn.execute(create)
            conn.autocommit = False
            done = 0
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                conn.execute(insert, (b"x" * 200,))
                conn.commit()
                done += 1
            return done / seconds
        finally:
            conn.rollback()
            conn.autocommit = True
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))
