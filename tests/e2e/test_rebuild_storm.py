"""Rebuilds never break readers: a storm of admin rebuilds, with bursts of cancel, retry and skip,
over every projection while orders flow and customers, auditors and admins read — on both
wirings. No answer is a 5xx, the engine logs no error, no projection stops, every order is
fulfilled and the log still verifies against its tree."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningEngine
from tests.e2e.test_catalog import CS_SOURCE, await_status, paid_order
from tests.e2e.test_cli import bitloot

STORM_S = 4.0
REBUILDS_PER_S = 20
BURST = ("cancel", "cancel", "rebuild", "retry", "retry", "cancel", "skip", "rebuild")
BURST_EVERY_S = 0.25
SETTLE_S = 30.0


@pytest.fixture
def engine_settings() -> dict[str, str]:
    """The sweeper re-drives an order waiting two seconds (a broker message lost to a shared
    Redis being cleared would otherwise hold an order for a minute)."""
    return {"STUCK_ORDER_AFTER_S": "2"}


class Storm:
    """The threads of the run, and every answer that was not the expected one."""

    def __init__(self, engine: RunningEngine, projections: list[str]) -> None:
        self.engine = engine
        self.projections = projections
        self.orders: list[str] = []
        self.wrong: list[str] = []
        self.requests = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._clients: list[httpx.Client] = []

    def run(self, seconds: float, *work: Callable[[], None]) -> None:
        """Run each piece of work in a loop in its own thread for ``seconds``."""
        threads = [threading.Thread(target=self._loop, args=(w,)) for w in work]
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        self._stop.set()
        for thread in threads:
            thread.join(30)

    def _loop(self, work: Callable[[], None]) -> None:
        while not self._stop.is_set():
            work()

    def client(self, sub: str, role: str = "user") -> httpx.Client:
        """A client of one thread's (closed with ``close``)."""
        opened = self.engine.client(sub, role)
        self._clients.append(opened)
        return opened

    def close(self) -> None:
        for opened in self._clients:
            opened.close()

    def expect(self, answer: httpx.Response, *statuses: int) -> httpx.Response:
        """Count the request; note it if its status is not one of ``statuses``."""
        with self._lock:
            self.requests += 1
            if answer.status_code not in statuses:
                what = f"{answer.request.method} {answer.request.url.raw_path.decode()}"
                self.wrong.append(f"{what} → {answer.status_code} {answer.text[:300]}")
        return answer

    def pause(self, seconds: float) -> None:
        self._stop.wait(seconds)

    # -- the work --------------------------------------------------------------------------

    def rebuilds(self) -> Callable[[], None]:
        """``REBUILDS_PER_S`` rebuild requests a second, over every projection in turn."""
        names = itertools.cycle(self.projections)
        admin = self.client("storm-rebuilder", "admin")

        def rebuild() -> None:
            self.expect(admin.post(f"/admin/projections/{next(names)}/rebuild"), 202)
            self.pause(1 / REBUILDS_PER_S)

        return rebuild

    def bursts(self) -> Callable[[], None]:
        """The fuzzer's burst, back to back, on the tree every other time, else on the others."""
        others = itertools.cycle([p for p in self.projections if p != "merkle_tree"])
        turn = itertools.count()
        admin = self.client("storm-burster", "admin")

        def burst() -> None:
            name = "merkle_tree" if next(turn) % 2 == 0 else next(others)
            for action in BURST:
                self.expect(admin.post(f"/admin/projections/{name}/{action}"), 202)
            self.pause(BURST_EVERY_S)

        return burst

    def shopping(self) -> Callable[[], None]:
        """A customer places and pays an order every moment."""
        shopper = self.client("storm-shopper")

        def shop() -> None:
            self.orders.append(paid_order(shopper))
            self.pause(0.2)

        return shop

    def reading(self, settled: str) -> Callable[[], None]:
        """The catalog, the audit routes, a settled order's evidence and the admin's list."""
        admin = self.client("storm-reader", "admin")

        def read() -> None:
            self.expect(admin.get("/products", params={"limit": 20}), 200)
            self.expect(admin.get(f"/products/{CS_SOURCE}"), 200)
            latest = self.expect(admin.get("/audit/checkpoints/latest"), 200).json()
            if latest.get("tree_size"):
                size = {"from": 1, "to": latest["tree_size"]}
                self.expect(admin.get("/audit/consistency", params=size), 200)
            self.expect(admin.get(f"/orders/{settled}/evidence"), 200)
            self.expect(admin.get("/admin/orders", params={"limit": 50}), 200)

        return read


def settled_projections(admin: httpx.Client) -> Iterator[list[dict[str, Any]]]:
    """The projections' entries, until every one is live, caught up and not rebuilding."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        listed = admin.get("/admin/projections").json()
        yield listed
        if all(p["state"] == "live" and p["lag_events"] == 0 for p in listed):
            return
        time.sleep(0.2)


def test_a_rebuild_storm_breaks_no_reader(engine: RunningEngine) -> None:
    """About 20 rebuilds a second over every projection, with cancel/retry/skip bursts, while
    orders flow and readers read: no 5xx, no error logged, nothing stopped, everything
    fulfilled, and ``bitloot verify --log`` and ``bitloot verify`` clean afterwards."""
    with engine.client("storm-shopper") as shopper, engine.client("ops", "admin") as admin:
        settled = paid_order(shopper)
        await_status(shopper, settled, "fulfilled")
        assert admin.get(f"/orders/{settled}/evidence").status_code == 200  # signs a checkpoint
        projections = [p["name"] for p in admin.get("/admin/projections").json()]
        assert "merkle_tree" in projections
        storm = Storm(engine, projections)
        try:
            work = (storm.rebuilds(), storm.bursts(), storm.bursts(), storm.shopping())
            storm.run(STORM_S, *work, storm.reading(settled), storm.reading(settled))
        finally:
            storm.close()
        assert storm.wrong == []
        assert storm.requests > STORM_S * REBUILDS_PER_S
        assert len(storm.orders) >= 5
        for order_id in storm.orders:
            await_status(shopper, order_id, "fulfilled")
        *_, final = settled_projections(admin)
    assert all(p["state"] == "live" and p["lag_events"] == 0 for p in final), final
    assert not [p for p in final if "abandoned" in p.get("last_rebuild_error", "")], final
    logged = engine.logged()
    assert b"Traceback" not in logged
    assert not re.search(rb"(^|\s)ERROR(\s|$)", logged, re.MULTILINE)  # either log layout
    for command in (["verify", "--log"], ["verify"]):
        checked = bitloot(engine, *command)
        assert checked.returncode == 0, checked.stdout + checked.stderr
