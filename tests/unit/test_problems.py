"""Which RecursionError is the client's fault: the JSON decoders' on a too-deep body (400), not
a runaway recursion of our own code (500 with its trace); and an event of a newer release is a
503, not a 500."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from adapters.outages import outage
from domain.event_types import UnknownEventType
from entrypoints.http.problems import _while_decoding, exception_handlers

DEEP = b"[" * 100_000 + b"]" * 100_000


def raised_by(call: Callable[[], Any]) -> RecursionError:
    with pytest.raises(RecursionError) as caught:
        call()
    return caught.value


def runaway(depth: int = 0) -> int:
    return runaway(depth + 1) + 1


@pytest.mark.parametrize(
    "decode",
    [msgspec.json.decode, json.loads, lambda body: msgspec.json.decode(b'{"a":' + body + b"}")],
)
def test_a_decoder_giving_up_on_depth_is_recognised(decode: Callable[[bytes], Any]) -> None:
    """msgspec and the standard library say they were decoding."""
    assert _while_decoding(raised_by(lambda: decode(DEEP)))


def test_a_runaway_recursion_of_python_code_is_not() -> None:
    """Our own infinite recursion stays a bug (answered 500, logged with its trace)."""
    assert sys.getrecursionlimit() < 100_000
    assert not _while_decoding(raised_by(runaway))


def test_an_event_of_a_newer_release_answers_503_not_500() -> None:
    """Reading an order that a newer release of the engine has just written (a rolling
    deploy) answers 503, to be asked again, with a problem detail."""

    @get("/orders/42", sync_to_thread=False)
    def read() -> None:
        raise UnknownEventType("domain.events:OrderShipped")

    app = Litestar([read], exception_handlers=exception_handlers(outage))
    with TestClient(app) as client:
        answer = client.get("/orders/42")
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "OrderShipped" in answer.json()["detail"]
