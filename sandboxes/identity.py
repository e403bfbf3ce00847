"""How a standalone sandbox says it is one, and how the engine asks.

``bitloot sandbox`` answers ``GET <its Kinguin base URL>/bitloot-sandbox`` with 200 and the
header ``X-BitLoot-Sandbox: kinguin``. The engine asks its ``KINGUIN_BASE_URL`` that before it
starts when a real Kinguin there would be paid through payments that are not real
(``entrypoints.providers``). The probe carries no credential. Only that exact answer makes a
sandbox: any other answer (a 404, a 200 without the header) is a real Kinguin at once, and a
host that cannot be reached (the sandbox may start after the engine), or a proxy answering
502/503/504 in its place, is asked again until the wait is over and then counts as real too.
"""

from __future__ import annotations

import logging
import time
from typing import Final

import httpx
from litestar import Response, get

log = logging.getLogger(__name__)

IDENTITY_PATH: Final = "/bitloot-sandbox"
IDENTITY_HEADER: Final = "X-BitLoot-Sandbox"
KINGUIN: Final = "kinguin"
PROBE_TIMEOUT = httpx.Timeout(3.0, connect=2.0)
NOT_YET = frozenset({502, 503, 504})  # a proxy whose upstream has not started yet


@get(f"/sandbox/kinguin{IDENTITY_PATH}", include_in_schema=False)
async def kinguin_identity() -> Response[dict[str, str]]:
    """The standalone Kinguin sandbox says it is a BitLoot sandbox."""
    return Response({"sandbox": KINGUIN}, headers={IDENTITY_HEADER: KINGUIN})


def probe(kinguin_url: str, client: httpx.Client) -> bool | None:
    """Whether ``kinguin_url`` is a BitLoot Kinguin sandbox; ``None`` when it does not answer
    (yet)."""
    try:
        answer = client.get(f"{kinguin_url.rstrip('/')}{IDENTITY_PATH}")
    except httpx.TransportError:
        return None
    if answer.status_code in NOT_YET:
        return None
    return answer.status_code == 200 and answer.headers.get(IDENTITY_HEADER) == KINGUIN


def identifies_as_sandbox(kinguin_url: str, wait_s: float, retry_s: float = 1.0) -> bool:
    """Ask ``kinguin_url`` until it answers or ``wait_s`` has passed (one WARNING line a try);
    no answer counts as a real Kinguin."""
    deadline = time.monotonic() + wait_s
    with httpx.Client(timeout=PROBE_TIMEOUT, follow_redirects=False) as client:
        while True:
            found = probe(kinguin_url, client)
            if found is not None:
                return found
            if time.monotonic() + retry_s > deadline:
                return False
            log.warning(
                "KINGUIN_BASE_URL %s does not answer yet (is the sandbox up?); asking again in "
                "%g s",
                kinguin_url,
                retry_s,
            )
            time.sleep(retry_s)
