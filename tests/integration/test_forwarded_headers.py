"""uvicorn as ``bitloot serve`` runs it: a client's X-Forwarded-For / -Proto count only when it
is one of TRUSTED_PROXIES (per-address rate limits and the reveal audit read them), over real
HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, get

from entrypoints.serving import uvicorn_options
from entrypoints.settings import load_settings
from tests.support import free_port, serving

FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


@get("/whoami")
async def whoami(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The client address and scheme the app sees."""
    return {"client": request.client.host if request.client else "", "scheme": request.url.scheme}


@contextmanager
def served(tmp_path: Path, environ: dict[str, str]) -> Iterator[str]:
    """The app under uvicorn with the options ``bitloot serve`` derives from ``environ``."""
    port = free_port()
    settings = load_settings({"VAR_DIR": str(tmp_path), "PORT": str(port), **environ})
    options = {k: v for k, v in uvicorn_options(settings).items() if k != "port"}
    with serving(Litestar([whoami]), port, **options) as url:
        yield url


@pytest.mark.parametrize(
    ("trusted", "seen"),
    [
        ("", {"client": "127.0.0.1", "scheme": "http"}),
        ("10.0.0.1", {"client": "127.0.0.1", "scheme": "http"}),
        ("127.0.0.1", {"client": "203.0.113.9", "scheme": "https"}),
        ("127.0.0.0/8", {"client": "203.0.113.9", "scheme": "https"}),
    ],
)
def test_forwarding_headers_count_only_from_trusted_proxies(
    tmp_path: Path, trusted: str, seen: dict[str, str]
) -> None:
    """Unset, or naming another proxy, the caller is the connecting address (uvicorn's own
    default would believe any local caller); naming the caller, its headers are believed."""
    with served(tmp_path, {"TRUSTED_PROXIES": trusted}) as url:
        assert httpx.get(f"{url}/whoami", headers=FORWARDED).json() == seen
