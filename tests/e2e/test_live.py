"""Live status over websockets with a real client, the token in the handshake's subprotocols
(``bearer, <JWT>``, answered ``bearer``), never in the URL: the owner hears paid, reserved,
fulfilled in order; another user or an auditor is refused before any message; admins hear every
order; the deprecated ``?token=`` still works; every API process delivers to its own sockets; a
client that leaves is noticed at once."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from socket import SHUT_RDWR
from typing import Any

import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from adapters.live import LiveUpdates
from entrypoints.settings import load_settings
from tests.e2e.conftest import E2E_REDIS_URL, RunningEngine, another_api_process, pay_in_full
from tests.e2e.test_pipeline import place_and_pay

ONE_ITEM = {"email": "k@example.com",
            "items": [{"product_id": "5c9b5f6b2539a4e8f172916a", "quantity": 1}]}  # fmt: skip


def listen(socket: ClientConnection, into: list[dict[str, Any]], until: str) -> threading.Thread:
    """Collect messages in the background until one carries ``until`` as its status."""

    def run() -> None:
        try:
            while True:
                message = json.loads(socket.recv(timeout=30))
                into.append(message)
                if message.get("status") == until:
                    return
        except (TimeoutError, ConnectionClosed):
            return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def ws_url(engine: RunningEngine, path: str, token: str) -> str:
    """The URL of the deprecated way, with the token in the query."""
    return f"{engine.url.replace('http://', 'ws://')}{path}?token={token}"


def open_socket(base_url: str, path: str, token: str) -> ClientConnection:
    """A socket to ``path`` with the token in ``Sec-WebSocket-Protocol: bearer, <JWT>``
    (``bearer`` alone for an empty token)."""
    url = f"{base_url.replace('http://', 'ws://')}{path}"
    offered = [Subprotocol("bearer"), *([Subprotocol(token)] if token else [])]
    return connect(url, subprotocols=offered)


def close_code(socket: ClientConnection) -> int:
    """The code the server closed the socket with, before sending any message."""
    with pytest.raises(ConnectionClosed) as closed:
        socket.recv(timeout=5)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


def test_owner_hears_each_status_and_others_hear_nothing(engine: RunningEngine) -> None:
    """paid → reserved → fulfilled arrive in order; another user's socket is closed with 4403."""
    with engine.client("kim") as kim:
        order, payment = place_and_pay(kim)
        order_path = f"/ws/orders/{order['id']}"
        with (
            open_socket(engine.url, order_path, engine.token("kim")) as owner,
            open_socket(engine.url, "/ws/admin", engine.token("ops", "admin")) as admin,
            open_socket(engine.url, order_path, engine.token("lee")) as stranger,
        ):
            assert close_code(stranger) == 4403
            assert (owner.subprotocol, admin.subprotocol) == ("bearer", "bearer")
            first = json.loads(owner.recv(timeout=5))
            assert first == {
                "order_id": order["id"], "status": "pending_payment",
                "version": first["version"], "at": first["at"],
            }  # fmt: skip
            heard: list[dict[str, Any]] = []
            admin_heard: list[dict[str, Any]] = []
            owner_thread = listen(owner, heard, "fulfilled")
            admin_thread = listen(admin, admin_heard, "fulfilled")
            pay_in_full(kim, payment)
            owner_thread.join(40)
            admin_thread.join(40)
        assert [m["status"] for m in heard] == ["paid", "reserved", "fulfilled"]
        assert all(set(m) == {"order_id", "status", "version", "at"} for m in heard)
        versions = [m["version"] for m in heard]
        assert versions == sorted(versions)
        mine = [m["status"] for m in admin_heard if m.get("order_id") == order["id"]]
        assert mine[mine.index("paid") :] == ["paid", "reserved", "fulfilled"]
        assert any("projection" in m for m in admin_heard)


def test_bad_token_non_admin_and_auditor_are_refused(engine: RunningEngine) -> None:
    """No or a bad token: 4401; a user on the admin socket, an auditor on either socket (the
    contract gives them histories, not live updates), a stranger on an order: 4403."""
    with engine.client("kim") as kim:
        order_path = f"/ws/orders/{kim.post('/orders', json=ONE_ITEM).json()['id']}"
    for path, token, code in (
        ("/ws/admin", "garbage", 4401),
        ("/ws/admin", "", 4401),
        ("/ws/admin", engine.token("kim"), 4403),
        ("/ws/admin", engine.token("ivy", "auditor"), 4403),
        (order_path, engine.token("ivy", "auditor"), 4403),
        (order_path, engine.token("lee"), 4403),
        ("/ws/orders/x", engine.token("kim"), 4403),
    ):
        with open_socket(engine.url, path, token) as socket:
            assert socket.subprotocol == "bearer"
            assert close_code(socket) == code, (path, code)
    for url in (ws_url(engine, "/ws/admin", "garbage"), ws_url(engine, "/ws/admin", "")):
        with connect(url) as socket:
            assert close_code(socket) == 4401
    with open_socket(engine.url, order_path, engine.token("kim")) as owner:
        assert json.loads(owner.recv(timeout=5))["status"] == "created"


@pytest.mark.parametrize("engine", ["sqlite+in-process"], indirect=True)
def test_the_deprecated_query_token_still_works_and_is_never_logged(
    engine: RunningEngine,
) -> None:
    """``?token=`` still opens the socket (no subprotocol answered); the process says once that
    it is deprecated, and its log never holds the token (the access line shows it redacted)."""
    token = engine.token("kim")
    with engine.client("kim") as kim:
        order_id = kim.post("/orders", json=ONE_ITEM).json()["id"]
    for _ in range(2):
        with connect(ws_url(engine, f"/ws/orders/{order_id}", token)) as socket:
            assert socket.subprotocol is None
            assert json.loads(socket.recv(timeout=5))["order_id"] == order_id
    logged = engine.logged()
    assert logged.count(b"?token= (deprecated") == 1
    assert token.encode() not in logged
    assert token.split(".")[2].encode() not in logged
    assert f"/ws/orders/{order_id}?token=[redacted]".encode() in logged


def test_open_sockets_do_not_hold_up_shutdown(engine: RunningEngine) -> None:
    """SIGTERM with a subscriber still connected stops the engine promptly."""
    with engine.client("kim") as kim:
        order, _ = place_and_pay(kim)
    with open_socket(engine.url, f"/ws/orders/{order['id']}", engine.token("kim")) as socket:
        socket.recv(timeout=5)
        server = engine.processes[0]
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
        assert time.monotonic() - started < 10


@pytest.mark.parametrize("engine", ["postgresql+redis"], indirect=True)
def test_every_api_process_delivers_to_its_own_subscribers(
    engine: RunningEngine, tmp_path: Path
) -> None:
    """A second API process (not running the projections) hears the changes through Redis and
    delivers them to its own socket, as the first process does to its own."""
    heard: dict[str, list[dict[str, Any]]] = {"first": [], "second": []}
    with (
        another_api_process(engine, tmp_path / "serve-2.log") as second_url,
        engine.client("kim") as kim,
    ):
        order, payment = place_and_pay(kim)
        path, token = f"/ws/orders/{order['id']}", engine.token("kim")
        with (
            open_socket(engine.url, path, token) as first_socket,
            open_socket(second_url, path, token) as second_socket,
        ):
            threads = [
                listen(first_socket, heard["first"], "fulfilled"),
                listen(second_socket, heard["second"], "fulfilled"),
            ]
            pay_in_full(kim, payment)
            for thread in threads:
                thread.join(40)
    for messages in heard.values():
        statuses = [m["status"] for m in messages]
        assert statuses[statuses.index("paid") :] == ["paid", "reserved", "fulfilled"]


@pytest.mark.parametrize("engine", ["postgresql+redis"], indirect=True)
def test_a_client_that_leaves_is_noticed_at_once(engine: RunningEngine) -> None:
    """The handler of a socket whose client closes it, or just drops the connection, ends
    within a second — its Redis subscription is gone — with no status change to send."""
    live = LiveUpdates.in_memory(load_settings(engine.env).broker_namespace)
    client = redis.Redis.from_url(E2E_REDIS_URL)
    with engine.client("kim") as kim:
        for leave in ("close", "drop"):
            order = kim.post("/orders", json=ONE_ITEM).json()
            channel = live.order_channel(order["id"])
            path = f"/ws/orders/{order['id']}"
            with open_socket(engine.url, path, engine.token("kim")) as socket:
                socket.recv(timeout=5)
                assert subscribers(client, channel) == 1
                if leave == "close":
                    socket.close()
                else:
                    socket.socket.shutdown(SHUT_RDWR)
                started = time.monotonic()
                while subscribers(client, channel) and time.monotonic() - started < 5:
                    time.sleep(0.05)
                assert time.monotonic() - started < 1.0, leave
    client.close()


def subscribers(client: redis.Redis, channel: str) -> int:
    """How many connections subscribe to a Redis channel."""
    counts: list[tuple[bytes | str, int]] = client.pubsub_numsub(channel)
    return counts[0][1]
