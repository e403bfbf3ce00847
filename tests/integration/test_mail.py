"""The Resend adapter over real HTTP against a local stand-in for Resend's API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, post
from litestar.exceptions import NotAuthorizedException

from adapters.mail import MailError, OutboxMailer, ResendMailer
from tests.support import serving


@pytest.fixture
def resend() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    @post("/emails", status_code=200)
    async def emails(request: Request[Any, Any, Any]) -> dict[str, str]:
        received.append({"headers": dict(request.headers), "body": await request.json()})
        if request.headers.get("authorization") != "Bearer re_test":
            raise_unauthorized()
        return {"id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"}

    with serving(Litestar(route_handlers=[emails])) as url:
        yield url, received


def raise_unauthorized() -> None:
    raise NotAuthorizedException("missing_api_key")


def test_resend_gets_the_message_and_idempotency_key(
    resend: tuple[str, list[dict[str, Any]]],
) -> None:
    """POST /emails with Bearer auth, the Idempotency-Key header, and the message fields."""
    url, received = resend
    with httpx.Client(base_url=url, headers={"Authorization": "Bearer re_test"}) as http:
        message_id = ResendMailer(http, "Shop <keys@shop.test>").send(
            to="a@b.co", subject="Keys", text="link", idempotency_key="order-1"
        )
    assert message_id == "4ef9a417-02e9-4d39-ad75-9611e0fcc33c"
    assert received[0]["headers"]["idempotency-key"] == "order-1"
    assert received[0]["body"] == {
        "from": "Shop <keys@shop.test>",
        "to": ["a@b.co"],
        "subject": "Keys",
        "text": "link",
    }


def test_resend_refusal_is_a_mail_error(resend: tuple[str, list[dict[str, Any]]]) -> None:
    """A refused e-mail raises, so the actor retries it."""
    url, _ = resend
    with (
        httpx.Client(base_url=url, headers={"Authorization": "Bearer wrong"}) as http,
        pytest.raises(MailError),
    ):
        ResendMailer(http, "s").send(to="a@b.co", subject="s", text="t", idempotency_key="k")


def test_outbox_writes_each_key_once(tmp_path: Path) -> None:
    """The local outbox keeps one file per idempotency key."""
    mailer = OutboxMailer(tmp_path, "s")
    first = mailer.send(to="a@b.co", subject="s", text="one", idempotency_key="k")
    second = mailer.send(to="a@b.co", subject="s", text="two", idempotency_key="k")
    assert first == second
    [only] = list(tmp_path.glob("*.eml"))
    assert only.read_text().endswith("one")
