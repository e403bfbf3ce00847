"""The admin feed, watched as a shop front end watches it: one ``WS /ws/admin`` socket, the
admin token offered as the subprotocols ``bearer, <JWT>`` (see ``entrypoints/http/live.py``).

The server sends one message per projection on connect (``{"projection", "version", "state",
"position", "head"}``), then every order's status changes (``{"order_id", "status",
"version", "at"}``) and projection news. :class:`Feed` keeps, for every order the feed named
with a terminal status, when that message came in, so that a customer waiting for its order
can learn of the end even if the message arrived before it started waiting. Whatever the feed
sent that a front end would not expect (a message of another shape, a repeated or older
version of an order, a change after a terminal status, a projection not ``live``, the socket
closing during the run) is counted in :attr:`Feed.notes`. A closed socket is opened again
after a second, with a fresh token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

RECONNECT_S = 1.0
ORDER_FIELDS = frozenset({"order_id", "status", "version", "at"})


class FeedError(Exception):
    """The admin feed could not be opened."""


@dataclass(frozen=True)
class Ended:
    """A terminal status as the feed told it."""

    status: str
    seen: float  # time.monotonic() when the message came in
    delay_s: float  # from the event's own time (``at``) to the message coming in


class Feed:
    """What the admin feed has said so far about the orders' ends."""

    def __init__(self, url: str, token: Callable[[], str], terminal: frozenset[str]) -> None:
        self.url = url
        self.token = token
        self.terminal = terminal
        self.ended: dict[str, Ended] = {}
        self.messages = 0
        self.notes: Counter[str] = Counter()
        self._versions: dict[str, int] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        self._socket: ClientConnection | None = None

    async def wait(self, order_id: str, seconds: float) -> Ended | None:
        """The order's end, if the feed names it within ``seconds``."""
        if order_id not in self.ended:
            event = self._waiters.setdefault(order_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(seconds, 0.0)):
                    await event.wait()
        return self.ended.get(order_id)

    async def open(self) -> None:
        """Open a socket on ``/ws/admin`` (accepted with the subprotocol ``bearer``)."""
        offered = [Subprotocol("bearer"), Subprotocol(self.token())]
        try:
            socket = await connect(self.url, subprotocols=offered, proxy=None, max_queue=None)
        except (OSError, TimeoutError, InvalidHandshake) as failure:
            raise FeedError(f"{self.url}: {failure!r}") from failure
        if socket.subprotocol != "bearer":
            await socket.close()
            raise FeedError(f"{self.url}: accepted with subprotocol {socket.subprotocol!r}")
        self._socket = socket

    async def close(self) -> None:
        """Close the socket, if one is open."""
        if self._socket is not None:
            await self._socket.close()

    async def follow(self) -> None:
        """Read the feed until cancelled, opening the socket again whenever it closes."""
        while (socket := self._socket) is not None:
            with contextlib.suppress(ConnectionClosed):
                async for text in socket:
                    self.take(json.loads(text), time.monotonic())
            self.notes[f"socket closed ({socket.close_code} {socket.close_reason!r})"] += 1
            await self._reopen()

    async def _reopen(self) -> None:
        while True:
            await asyncio.sleep(RECONNECT_S)
            try:
                await self.open()
            except FeedError:
                self.notes["could not reopen the socket"] += 1
            else:
                return

    def take(self, message: Any, now: float) -> None:
        """Account for one message of the feed."""
        self.messages += 1
        if isinstance(message, dict) and set(message) == ORDER_FIELDS:
            self._order_change(message, now)
        elif isinstance(message, dict) and "projection" in message:
            if message.get("state") != "live":
                self.notes[f"projection {message['projection']} {message.get('state')}"] += 1
        else:
            self.notes[f"unexpected message {str(message)[:80]}"] += 1

    def _order_change(self, change: dict[str, Any], now: float) -> None:
        order_id, status, version = change["order_id"], change["status"], change["version"]
        if version <= self._versions.get(order_id, -1):
            self.notes["order version repeated or older than one already seen"] += 1
        self._versions[order_id] = max(version, self._versions.get(order_id, -1))
        if order_id in self.ended:
            self.notes[f"change after terminal ({self.ended[order_id].status}→{status})"] += 1
            return
        if status in self.terminal:
            at = datetime.fromisoformat(change["at"])
            self.ended[order_id] = Ended(status, now, (datetime.now(UTC) - at).total_seconds())
            waiter = self._waiters.pop(order_id, None)
            if waiter is not None:
                waiter.set()


def websocket_url(http_url: str, path: str) -> str:
    """``http://host:port`` → ``ws://host:port/path`` (``https`` → ``wss``)."""
    parts = urlsplit(http_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


@contextlib.asynccontextmanager
async def watching(
    http_url: str, token: Callable[[], str], terminal: frozenset[str]
) -> AsyncIterator[Feed]:
    """The admin feed, open (or :class:`FeedError`) for the block."""
    feed = Feed(websocket_url(http_url, "/ws/admin"), token, terminal)
    await feed.open()
    follower = asyncio.create_task(feed.follow())
    try:
        yield feed
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        await feed.close()
