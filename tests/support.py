"""Test support: the harness's servers (``harness.servers``), and waiting for a catalog."""

from __future__ import annotations

import time

import httpx

from harness.servers import free_port, serving, wait_until

__all__ = ["free_port", "serving", "wait_for_catalog", "wait_until"]


def wait_for_catalog(url: str, timeout: float = 30) -> None:
    """Wait until the engine at ``url`` has imported its catalog (it does so at start-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/products", params={"limit": 1}, timeout=2).json()["items"]:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the engine at {url} imported no catalog within {timeout} s")
