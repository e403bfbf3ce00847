"""Which RecursionError is the client's fault: the JSON decoders' on a too-deep body (400), not
a runaway recursion of our own code (500 with its trace)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from entrypoints.http.problems import _while_decoding

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
