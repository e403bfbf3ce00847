"""IPN flood: how ``/healthz`` answers while anonymous senders post hostile IPN bodies.

Each sender posts, again and again, a body of ``--size`` bytes shaped ``[[{}],[{}],…]`` (the
shape that cost the most to re-serialise) with a bogus ``x-nowpayments-sig``, over raw sockets
(a fresh connection per request, as a flood would). Meanwhile one client asks ``/healthz`` in a
loop. Prints the median and p99 of ``/healthz`` before and during the flood, and the flood's
status codes (``reset``: the engine closed the connection before its answer could be read).

Against ``make run`` (the engine at http://127.0.0.1:8000)::

    .venv/bin/python -m bench.ipn_flood --senders 20 --seconds 10
    .venv/bin/python -m bench.ipn_flood --senders 20 --seconds 10 --size 8000 --shape ipn
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

IPN_PATH = "/webhooks/nowpayments/ipn"
BOGUS_SIGNATURE = "0" * 128
MIB = 1024 * 1024


@dataclass
class Figures:
    """What a run measured: /healthz latencies (ms) before and during, the flood's answers."""

    before_ms: list[float] = field(default_factory=list)
    during_ms: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)


SHAPES = ("lists", "ipn")


def hostile_body(size: int, shape: str = "lists") -> bytes:
    """A body of exactly ``size`` bytes: ``[[{}],[{}],…]`` (``lists``: the shape that cost the
    most to re-serialise), or a JSON object of 60 long text fields (``ipn``: shaped like an IPN,
    so that a body of at most 8 KiB reaches the sorted-form signature check)."""
    if shape == "ipn":
        fields = 60  # each `"kNN":"…"` is 8 bytes and its text, with a comma between
        filler = max(size - 1 - fields * 9, 0) // fields
        text = "{" + ",".join(f'"k{n:02}":"{"x" * filler}"' for n in range(fields))
        return text.encode().ljust(size - 1, b" ") + b"}"
    unit = b"[{}],"
    inner = (unit * (size // len(unit) + 1))[: size - 2].rstrip(b",")
    return b"[" + inner.ljust(size - 2, b" ") + b"]"


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def probe(url: str, seconds: float, interval_s: float = 0.01) -> list[float]:
    """``GET /healthz`` in a loop for ``seconds``; each answer's latency in ms."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            client.get("/healthz").raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(interval_s)
    return latencies


async def _post_once(host: str, port: int, head: bytes, body: bytes) -> str:
    """One request on a fresh connection: its status code, or ``reset``."""
    reader, writer = await asyncio.open_connection(host, port)
    answer = asyncio.create_task(reader.readline())
    try:
        writer.write(head)
        writer.write(body)
        await writer.drain()
    except ConnectionError:
        pass  # the engine refused the body before it was all sent: read what it answered
    try:
        status_line = await asyncio.wait_for(answer, timeout=10)
    except (ConnectionError, TimeoutError):
        status_line = b""
    finally:
        writer.close()
    parts = status_line.split()
    return parts[1].decode() if len(parts) > 1 else "reset"


async def flood(url: str, senders: int, seconds: float, body: bytes) -> Counter[str]:
    """``senders`` concurrent loops posting ``body`` to the IPN route for ``seconds``."""
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    head = (
        f"POST {IPN_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"x-nowpayments-sig: {BOGUS_SIGNATURE}\r\nConnection: close\r\n\r\n"
    ).encode()
    codes: Counter[str] = Counter()
    deadline = time.monotonic() + seconds

    async def sender() -> None:
        while time.monotonic() < deadline:
            try:
                codes[await _post_once(host, port, head, body)] += 1
            except OSError:
                codes["refused"] += 1
                await asyncio.sleep(0.01)

    await asyncio.gather(*(sender() for _ in range(senders)))
    return codes


def measure(
    url: str,
    *,
    senders: int,
    seconds: float,
    size: int,
    before_s: float = 3.0,
    shape: str = "lists",
) -> Figures:
    """Probe ``/healthz`` alone for ``before_s``, then during a flood of ``seconds``. The flood
    runs in a process of its own, so the probe's figures are the engine's, not the flood's
    competition for this process's interpreter lock."""
    figures = Figures(before_ms=probe(url, before_s))
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        pool.submit(int).result()  # the process is up and has imported this module
        flooding = pool.submit(run_flood, url, senders, seconds, size, shape)
        time.sleep(0.5)  # let the senders get going
        figures.during_ms = probe(url, max(seconds - 0.7, 0.5))
        figures.codes = flooding.result()
    return figures


def run_flood(url: str, senders: int, seconds: float, size: int, shape: str) -> Counter[str]:
    """``flood`` with a hostile body of ``size`` bytes (the entry point of the flood process)."""
    return asyncio.run(flood(url, senders, seconds, hostile_body(size, shape)))


def report(figures: Figures) -> str:
    """The figures as the lines this script prints."""

    def line(name: str, values: list[float]) -> str:
        median, p99 = statistics.median(values), percentile(values, 0.99)
        return f"/healthz {name}: median {median:.1f} ms, p99 {p99:.1f} ms ({len(values)} asks)"

    codes = ", ".join(f"{code}: {n}" for code, n in sorted(figures.codes.items()))
    return "\n".join([
        line("before", figures.before_ms),
        line("during", figures.during_ms),
        f"flood answers: {codes}",
    ])  # fmt: skip


def main() -> None:
    """Parse the arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=MIB, help="body size in bytes")
    parser.add_argument("--shape", choices=SHAPES, default="lists", help="see hostile_body")
    args = parser.parse_args()
    figures = measure(
        args.url, senders=args.senders, seconds=args.seconds, size=args.size, shape=args.shape
    )
    print(
        f"{args.senders} senders of {args.size}-byte {args.shape} bodies for {args.seconds:g} s "
        f"against {args.url}"
    )
    print(report(figures))


if __name__ == "__main__":
    main()
