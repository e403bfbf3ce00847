"""Telling the customer: one e-mail per fulfilled order, carrying a download link and never a
key. The provider's idempotency key and the ``CustomerNotified`` event make a repeat (a retried
message, a restart) send nothing more."""

from __future__ import annotations

from uuid import UUID

from application.customers import CustomerData
from application.key_access import KeyAccess
from application.orders import Orders, Viewer
from application.ports import Clock, LinkFormatter, Mailer
from domain import access
from domain.errors import TransitionRefused
from domain.order import Order, Status


class Notifier:
    """Sends the delivery e-mail of a fulfilled order."""

    def __init__(
        self,
        *,
        orders: Orders,
        keys: KeyAccess,
        customers: CustomerData,
        links: LinkFormatter,
        mailer: Mailer,
        clock: Clock,
    ) -> None:
        self._orders = orders
        self._customers = customers
        self._keys = keys
        self._links = links
        self._mailer = mailer
        self._clock = clock

    def order_fulfilled(self, order_id: UUID) -> None:
        """E-mail the owner a link to the keys, once."""
        order = self._orders.load(order_id)
        if order.notified or order.status is not Status.FULFILLED:
            return
        email = self._customers.email_of(order)
        if order.shredded or not email:
            nothing = "no address or no keys to send"
            self._record(order_id, order, channel="none", message_id=nothing)
            return
        message_id, order = self._send(order_id, order, email, "fulfilled")
        self._record(order_id, order, channel="email", message_id=message_id)

    def resend(self, order_id: UUID, viewer: Viewer) -> Order:
        """Send the delivery e-mail again, with a fresh link (an admin's, for a customer who
        lost it); recorded with who asked."""
        viewer.must_be_admin("resend e-mails")
        order = self._orders.load(order_id)
        refusal = access.resend_refusal(order)
        if refusal is not None:
            raise TransitionRefused(refusal)
        email = self._customers.email_of(order)
        if not email:
            raise TransitionRefused("the customer's address was erased")
        message_id, order = self._send(order_id, order, email, f"resent-{order.version}")
        return self._orders.decide(
            order_id,
            lambda o: access.email_resent(
                o, by=viewer.sub, message_id=message_id, now=self._clock.now()
            ),
            order,
        )

    def _send(self, order_id: UUID, order: Order, email: str, occasion: str) -> tuple[str, Order]:
        """Issue an owner link and e-mail it; the provider's message id and the order after
        the link was recorded. ``occasion`` makes the provider's idempotency key."""
        link, order = self._keys.issue_owner_link(order_id, order)
        url = self._links.url(order_id, link.link_id, link.expires_at)
        message_id = self._mailer.send(
            to=email,
            subject="Your BitLoot keys are ready",
            text=_body(str(order_id), url, link.expires_at.isoformat()),
            idempotency_key=f"bitloot-order-{order_id}-{occasion}",
        )
        return message_id, order

    def _record(
        self, order_id: UUID, known: Order | None, *, channel: str, message_id: str
    ) -> None:
        """Record the notice; ``known``: the order as just read or written."""
        self._orders.decide(
            order_id,
            lambda o: access.notified(
                o, channel=channel, message_id=message_id, now=self._clock.now()
            ),
            known,
        )


def _body(order_id: str, url: str, expires_at: str) -> str:
    return (
        f"Your order {order_id} is ready.\n\n"
        f"Open your keys here (this link works until {expires_at}):\n{url}\n\n"
        "After that, sign in to the shop and ask for a new link.\n"
    )
