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
