"""Hand-written fakes of the application's ports, for fast tests of pure logic."""

from __future__ import annotations

from uuid import UUID


class RecordingDispatcher:
    """A dispatcher that remembers what it was asked to do, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, UUID | str]] = []

    def reserve(self, order_id: UUID, delay_s: float = 0.0) -> None:
        self.sent.append(("reserve" if delay_s == 0 else f"reserve after {delay_s:g} s", order_id))

    def deliver(self, order_id: UUID, delay_s: float = 0.0) -> None:
        self.sent.append(("deliver" if delay_s == 0 else f"deliver after {delay_s:g} s", order_id))

    def notify(self, order_id: UUID) -> None:
        self.sent.append(("notify", order_id))

    def refresh_product(self, product_id: str) -> None:
        self.sent.append(("refresh_product", product_id))
