"""Access-log lines never carry a bearer token or a download-link signature."""

from __future__ import annotations

import logging

from entrypoints.cli import _RedactCredentials


def test_tokens_and_signatures_are_redacted() -> None:
    """``token=`` and ``sig=`` values are replaced; the rest of the path stays."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s"',
        ("1.2.3.4", "GET", "/ws/admin?token=abc.def&x=1"),
        None,
    )
    assert _RedactCredentials().filter(record)
    assert record.getMessage() == '1.2.3.4 - "GET /ws/admin?token=[redacted]&x=1"'
    link = logging.LogRecord(
        "a", logging.INFO, __file__, 1, "%s", ("/downloads/o?lid=l&exp=9&sig=ff00",), None
    )
    _RedactCredentials().filter(link)
    assert link.getMessage() == "/downloads/o?lid=l&exp=9&sig=[redacted]"


def test_a_token_under_any_spelling_and_any_jwt_are_redacted() -> None:
    """A percent-encoded or capitalised ``token`` name (the server decodes it), a JWT under
    another name, and a line logged without arguments lose their credentials."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJraW0ifQ.c2lnbmF0dXJl"
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s"',
        ("1.2.3.4", "GET", f"/ws/admin?%74oken={jwt}&TOKEN=x&t={jwt}&lid=keep"), None,
    )  # fmt: skip
    assert _RedactCredentials().filter(record)
    assert record.getMessage() == (
        '1.2.3.4 - "GET /ws/admin?%74oken=[redacted]&TOKEN=[redacted]&t=[redacted]&lid=keep"'
    )
    whole = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, f"bearer {jwt}", (), None)
    _RedactCredentials().filter(whole)
    assert whole.getMessage() == "bearer [redacted]"
    path = logging.LogRecord("a", logging.INFO, __file__, 1, "%s", ("/x/token=1?a=b",), None)
    _RedactCredentials().filter(path)
    assert path.getMessage() == "/x/token=1?a=b"  # a path segment, not a query parameter
