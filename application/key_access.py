"""Reading keys: reveal to the owner, short-lived download links, crypto-shredding. Every read
is recorded (who, IP, user agent, how) before the keys are handed over."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from uuid import UUID

import msgspec

from application.orders import Orders, Viewer
from application.ports import Clock, KeyCustody
from domain import access
from domain.errors import LinkRefused
from domain.events import DomainEvent
from domain.order import DeliveredKey, Order

LINK_LIFETIME = timedelta(minutes=15)


class RevealedKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key handed to its owner: the one place plaintext leaves the vault."""

    key_id: str
    product_id: str
    content_type: str
    serial: str


class IssuedLink(msgspec.Struct, frozen=True, kw_only=True):
    """A download link's identity and expiry (the HTTP layer signs and formats it)."""

    order_id: UUID
    link_id: str
    expires_at: datetime


class KeyAccess:
    """The use cases that touch plaintext keys or destroy them."""

    def __init__(
        self, orders: Orders, custody: KeyCustody, clock: Clock, *, single_use_links: bool = False
    ) -> None:
        self._orders = orders
        self._custody = custody
        self._clock = clock
        self._single_use = single_use_links

    def reveal(
        self, order_id: UUID, viewer: Viewer, *, ip: str, user_agent: str
    ) -> list[RevealedKey]:
        """Decrypt the owner's keys and record who read them, from where."""
        order = self._orders.owned(order_id, viewer)
        return self._read(order, who=viewer.sub, ip=ip, user_agent=user_agent, how="reveal")

    def issue_link(self, order_id: UUID, viewer: Viewer) -> IssuedLink:
        """Hand the owner a download link valid for 15 minutes."""
        link, _ = self.issue_owner_link(order_id, self._orders.owned(order_id, viewer))
        return link

    def issue_owner_link(
        self, order_id: UUID, known: Order | None = None
    ) -> tuple[IssuedLink, Order]:
        """A link for the order's owner, issued by the engine itself (the delivery e-mail),
        and the order with it recorded. ``known``: the order as the caller has just read it
        (see ``Orders.decide``)."""
        link = IssuedLink(
            order_id=order_id,
            link_id=secrets.token_urlsafe(12),
            expires_at=(self._clock.now() + LINK_LIFETIME).replace(microsecond=0),
        )
        order = self._orders.decide(
            order_id,
            lambda o: access.link_issued(
                o,
                link_id=link.link_id,
                expires_at=link.expires_at,
                single_use=self._single_use,
                now=self._clock.now(),
            ),
            known,
        )
        return link, order

    def download(
        self, order_id: UUID, link_id: str, expires: int, *, ip: str, user_agent: str
    ) -> list[RevealedKey]:
        """Read the keys through a (signature-checked) link, unless it has expired."""
        if self._clock.now().timestamp() > expires:
            raise LinkRefused("this download link has expired")
        order = self._orders.load(order_id)
        return self._read(
            order, who=order.owner, ip=ip, user_agent=user_agent, how="link", link_id=link_id
        )

    def shred(self, order_id: UUID, viewer: Viewer) -> Order:
        """Destroy the order's data key; its keys can never be read again, its history stays."""
        viewer.must_be_admin("shred keys")
        order = self._orders.load(order_id)
        access.shredded(order, who=viewer.sub, now=self._clock.now())  # refuse before destroying
        self._custody.shred(order_id)
        return self._orders.decide(
            order_id, lambda o: access.shredded(o, who=viewer.sub, now=self._clock.now())
        )

    def rotate(self, order_id: UUID) -> bool:
        """Re-wrap one order's data key under the newest master key (payloads untouched)."""
        return self._custody.rewrap(order_id)

    def _read(
        self,
        order: Order,
        *,
        who: str,
        ip: str,
        user_agent: str,
        how: str,
        link_id: str | None = None,
    ) -> list[RevealedKey]:
        def decide(o: Order) -> list[DomainEvent]:
            return access.revealed(
                o, who=who, ip=ip, user_agent=user_agent, how=how, link_id=link_id,
                now=self._clock.now(),
            )  # fmt: skip

        decide(order)  # refuse before decrypting anything
        keys = [self._open(order.id, key) for key in order.keys]
        self._orders.decide(order.id, decide, order)
        return keys

    def _open(self, order_id: UUID, key: DeliveredKey) -> RevealedKey:
        plaintext = self._custody.open(order_id, key.key_id, key.vault_ref)
        return RevealedKey(
            key_id=key.key_id,
            product_id=key.product_id,
            content_type=key.content_type,
            serial=plaintext.decode(),
        )
