"""The sandboxes' outgoing calls (Kinguin's webhooks, NOWPayments' IPNs) through one long-lived
HTTP client per app, as a provider's own servers would keep their connections.

A client made per call loads the CA bundle (``ssl.create_default_context``) on the event loop
every time, and every request of the app waits behind it. ``Callbacks`` is a Litestar plugin:
the app that mounts the sandboxes closes the client at shutdown. A sandbox built without one (a
test's router) makes a client per call, which needs no closing.
"""

from __future__ import annotations

import httpx
from litestar.config.app import AppConfig
from litestar.plugins import InitPlugin


class Callbacks(InitPlugin):
    """POSTs to the receivers of webhooks, over one client made on first use."""

    def __init__(self, *, keep_connections: bool = True) -> None:
        self._keep = keep_connections
        self._client: httpx.AsyncClient | None = None

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> httpx.Response:
        """POST ``body`` to ``url``; raises what httpx raises."""
        if not self._keep:
            async with _client() as once:
                return await once.post(url, content=body, headers=headers, timeout=timeout)
        if self._client is None:
            self._client = _client()
        return await self._client.post(url, content=body, headers=headers, timeout=timeout)

    async def close(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        """Close the client when the app shuts down."""
        app_config.on_shutdown.append(self.close)
        return app_config


def _client() -> httpx.AsyncClient:
    # trust_env=False: a developer's HTTP_PROXY must not capture loopback callbacks.
    return httpx.AsyncClient(trust_env=False)
