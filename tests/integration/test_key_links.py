"""Download links, reveal limits and crypto-shredding, against an engine served over real HTTP
in this process so that its clock can be moved forward."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit
from uuid import uuid4

import httpx
import pytest

from entrypoints.bootstrap import bootstrap
from entrypoints.http.app import create_app
from entrypoints.http.auth import mint_token
from entrypoints.settings import load_settings
from tests.support import free_port, serving, wait_for_catalog

JWT_SECRET = "links-test-jwt-secret-0123456789abcdef"


class MovableClock:
    """The real time, plus an offset a test can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


class Shop:
    """An engine under test and clients for its users."""

    def __init__(self, url: str, clock: MovableClock) -> None:
        self.url = url
        self.clock = clock

    def client(self, sub: str, role: str = "user") -> httpx.Client:
        token = mint_token(JWT_SECRET, sub, role)
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"})

    def fulfilled_order(
        self, owner: httpx.Client, product: str = "5c9b5f6b2539a4e8f172916a"
    ) -> str:
        item = {"product_id": product, "quantity": 1}
        order = owner.post(
            "/orders", json={"email": "a@example.com", "currency": "eur", "items": [item]}
        ).json()
        payment = owner.post("/payments/create", json={"order_id": order["id"]}).json()
        admin = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'ops', 'admin')}"}
        owner.post(
            f"/sandbox/nowpayments/payments/{payment['payment_id']}/simulate",
            json={"status": "finished"},
            headers=admin,
        )
        deadline = time.monotonic() + 20
        while owner.get(f"/fulfillment/{order['id']}/status").json()["status"] != "fulfilled":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return str(order["id"])


@contextmanager
def running_shop(tmp_path: Path, **env: str) -> Iterator[Shop]:
    port = free_port()
    settings = load_settings({
        "VAR_DIR": str(tmp_path), "PORT": str(port), "JWT_SECRET": JWT_SECRET,
        "KINGUIN_SANDBOX_DELAY": "0.1", **env,
    })  # fmt: skip
    clock = MovableClock()
    engine = bootstrap(settings, clock=clock)
    with serving(create_app(engine), port) as url:
        wait_for_catalog(url)
        yield Shop(url, clock)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    with running_shop(tmp_path, REVEALS_PER_MINUTE="3") as running:
        yield running


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


def test_a_link_reads_the_keys_and_is_audited(shop: Shop) -> None:
    """The link needs no bearer token, expires in 15 minutes, and its use is recorded."""
    with shop.client("alice") as alice, shop.client("bob") as bob:
        order_id = shop.fulfilled_order(alice)
        link = alice.get(f"/fulfillment/{order_id}/download-link").json()
        expires = datetime.fromisoformat(link["expires_at"])
        assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15)
        assert bob.get(f"/fulfillment/{order_id}/download-link").status_code == 404
        opened = httpx.get(link["url"], headers={"User-Agent": "mail-client"})
        assert opened.status_code == 200
        assert opened.headers["cache-control"] == "no-store"
        assert opened.json()["keys"][0]["serial"]
        history = alice.get(f"/orders/{order_id}/history").json()
        assert history[-1]["type"] == "KeysRevealed"
        assert history[-1]["data"]["how"] == "link"
        assert history[-1]["data"]["user_agent"] == "mail-client"
        assert any(e["type"] == "DownloadLinkIssued" for e in history)


def test_any_change_to_a_link_is_refused(shop: Shop) -> None:
    """Order, link id, expiry, signature, extra or missing parts: 403 for each."""
    with shop.client("alice") as alice:
        order_id = shop.fulfilled_order(alice)
        other_id = shop.fulfilled_order(alice)
        url = alice.get(f"/fulfillment/{order_id}/download-link").json()["url"]
        query = parse_qs(urlsplit(url).query)
        flipped = query["sig"][0][:-1] + ("0" if query["sig"][0][-1] != "0" else "1")
        tampered = [
            url.replace(order_id, other_id),
            url.replace(order_id, str(uuid4())),
            url.replace(order_id, "not-a-uuid"),
            with_query(url, lid="someone-elses"),
            with_query(url, exp=str(int(query["exp"][0]) + 60)),
            with_query(url, sig=flipped),
            with_query(url, extra="1"),
            url.split("&sig=")[0],
        ]
        for bad in tampered:
            answer = httpx.get(bad)
            assert answer.status_code == 403, bad
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert "serial" not in answer.text


def test_an_expired_link_is_refused(shop: Shop) -> None:
    """Sixteen minutes later the same link answers 403."""
    with shop.client("alice") as alice:
        order_id = shop.fulfilled_order(alice)
        url = alice.get(f"/fulfillment/{order_id}/download-link").json()["url"]
        assert httpx.get(url).status_code == 200
        shop.clock.offset = timedelta(minutes=16)
        assert httpx.get(url).status_code == 403


def test_reveals_are_rate_limited_per_user(shop: Shop) -> None:
    """A user over the limit gets 429 with Retry-After; another user is unaffected."""
    with shop.client("alice") as alice, shop.client("carol") as carol:
        order_id = shop.fulfilled_order(alice)
        answers = [alice.post(f"/fulfillment/{order_id}/reveal") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert int(answers[-1].headers["retry-after"]) >= 1
        assert carol.post(f"/fulfillment/{order_id}/reveal").status_code == 404


def test_shredded_keys_are_gone_but_history_stays(shop: Shop) -> None:
    """After shredding, reveal and links answer 410; events and audit remain readable."""
    with shop.client("alice") as alice, shop.client("ops", "admin") as admin:
        order_id = shop.fulfilled_order(alice)
        url = alice.get(f"/fulfillment/{order_id}/download-link").json()["url"]
        assert alice.post(f"/fulfillment/{order_id}/reveal").status_code == 200
        assert alice.post(f"/admin/orders/{order_id}/shred").status_code == 403
        assert admin.post(f"/admin/orders/{order_id}/shred").status_code == 200
        assert alice.post(f"/fulfillment/{order_id}/reveal").status_code == 410
        assert httpx.get(url).status_code == 410
        assert alice.get(f"/fulfillment/{order_id}/download-link").status_code == 410
        types = [e["type"] for e in alice.get(f"/orders/{order_id}/history").json()]
        assert types[-1] == "KeysShredded"
        assert "KeyDelivered" in types
        assert admin.post(f"/admin/orders/{order_id}/shred").status_code == 200


def test_single_use_links(tmp_path: Path) -> None:
    """With DOWNLOAD_LINK_SINGLE_USE, a link works once."""
    with (
        running_shop(tmp_path, DOWNLOAD_LINK_SINGLE_USE="true") as shop,
        shop.client("alice") as alice,
    ):
        order_id = shop.fulfilled_order(alice)
        url = alice.get(f"/fulfillment/{order_id}/download-link").json()["url"]
        assert httpx.get(url).status_code == 200
        assert httpx.get(url).status_code == 403


def test_erasing_a_customer_forgets_their_email_but_not_their_orders(shop: Shop) -> None:
    """After erasure the order shows no e-mail; its history and keys stay; new orders work."""
    with shop.client("alice") as alice, shop.client("ops", "admin") as admin:
        order_id = shop.fulfilled_order(alice)
        assert alice.get(f"/orders/{order_id}").json()["email"] == "a@example.com"
        assert alice.post("/admin/customers/alice/erase").status_code == 403
        erased = admin.post("/admin/customers/alice/erase")
        assert erased.json() == {"customer": "alice", "erased": True, "already_erased": False}
        assert admin.post("/admin/customers/alice/erase").json()["already_erased"] is True
        assert alice.get(f"/orders/{order_id}").json()["email"] is None
        history = alice.get(f"/orders/{order_id}/history").json()
        assert history[0]["type"] == "OrderPlaced"
        assert "email" not in history[0]["data"]  # not in the customer's view, sealed or not
        assert admin.get(f"/orders/{order_id}/history").json()[0]["data"]["email"] == ""
        assert alice.post(f"/fulfillment/{order_id}/reveal").status_code == 200
        again = shop.fulfilled_order(alice)
        assert alice.get(f"/orders/{again}").json()["email"] == "a@example.com"


def test_image_keys_are_kept_and_revealed_like_text_ones(shop: Shop) -> None:
    """A key Kinguin delivers as a base64 image comes back as the same base64, typed image/png."""
    with shop.client("alice") as alice:
        order_id = shop.fulfilled_order(alice, product="00000000000000000000face")
        [key] = alice.post(f"/fulfillment/{order_id}/reveal").json()["keys"]
        assert key["content_type"] == "image/png"
        assert base64.b64decode(key["serial"]).startswith(b"\x89PNG\r\n\x1a\n")
        status = alice.get(f"/fulfillment/{order_id}/status").json()
        assert status["keys"][0]["content_type"] == "image/png"
