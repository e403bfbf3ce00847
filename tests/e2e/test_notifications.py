"""The delivery e-mail: one per fulfilled order, carrying a working link and never a key."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import RunningEngine
from tests.e2e.test_admin import fulfilled_and_revealed


@pytest.mark.parametrize("engine", ["sqlite+in-process"], indirect=True)
def test_one_email_with_a_link_and_no_key(engine: RunningEngine) -> None:
    """The outbox holds exactly one e-mail for the order; its link opens the keys."""
    with engine.client("jo") as jo:
        order_id = fulfilled_and_revealed(engine, jo)
        outbox = Path(engine.env["VAR_DIR"]) / "outbox"
        deadline = time.monotonic() + 10
        while not any(order_id in p.read_text() for p in outbox.glob("*.eml")):
            assert time.monotonic() < deadline, "no e-mail written"
            time.sleep(0.05)
        mails = [p.read_text() for p in outbox.glob("*.eml") if order_id in p.read_text()]
        assert len(mails) == 1
        assert "To: alice@example.com" in mails[0]
        link = re.search(r"http://\S+/downloads/\S+", mails[0])
        assert link is not None
        keys = httpx.get(link.group(0)).json()["keys"]
        assert keys
        assert all(k["serial"] not in mails[0] for k in keys)
        types = [e["type"] for e in jo.get(f"/orders/{order_id}/history").json()]
        assert types.count("CustomerNotified") == 1
