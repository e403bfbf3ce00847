"""The admins' order search on SQLite and PostgreSQL: by order id, customer, e-mail address
(through a keyed digest, the address itself never stored), product, placing time and flags;
an erased customer is no longer found by their address, not even after a rebuild."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from adapters.crypto import MasterKeys
from adapters.custody import EnvelopeCustody
from adapters.eventstore import RecorderEventStore
from adapters.vault import FileVault, VaultUnavailable
from adapters.views import ViewDatabase
from application.customers import CustomerData
from application.orders import Viewer
from domain import order as rules
from domain import payments
from domain.events import DomainEvent, LineItem
from domain.payments import PaymentNotice
from projections.customer_emails import CustomerEmailsProjection
from projections.orders import OrdersProjection
from projections.queries import OrderSearch, ReadModelRebuilding, ReadModels
from projections.runner import ProjectionRunner
from tests.integration.test_projections import backend  # noqa: F401 - a fixture

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ADMIN = Viewer(sub="root", role="admin")


class Clock:
    def now(self) -> datetime:
        return NOW


class SwitchedVault(FileVault):
    """The file vault, behind a switch that makes every call an S3 outage while ``down``."""

    down = False

    def get(self, ref: str) -> bytes | None:
        if self.down:
            raise VaultUnavailable("S3 unreachable: EndpointConnectionError")
        return super().get(ref)


class Shop:
    """A store, read models and the custody of customers' addresses, with the two projections."""

    def __init__(self, store: RecorderEventStore, views: ViewDatabase, vault: Path) -> None:
        self.store, self.views = store, views
        self.vault = SwitchedVault(vault)
        custody = EnvelopeCustody(self.vault, MasterKeys([base64.b64decode(KEY)]))
        self.customers = CustomerData(custody, store, Clock())
        self.runners = [
            ProjectionRunner(store, views, OrdersProjection()),
            ProjectionRunner(store, views, CustomerEmailsProjection(custody)),
        ]
        for runner in self.runners:
            runner.ensure()
        self.models = ReadModels(views)

    def order(
        self, owner: str, email: str, product: str, days: int, *, flagged: bool = False
    ) -> UUID:
        seal = lambda address: self.customers.seal_email(owner, address)  # noqa: E731
        items = [LineItem(product_id=product, quantity=1, unit_price=Decimal("2.50"))]
        events: list[DomainEvent] = rules.place(
            uuid4(), owner=owner, email=email, currency="eur", items=items,
            now=NOW + timedelta(days=days), seal=seal,
        )  # fmt: skip
        if flagged:  # paid in another currency: flagged for an admin
            invoiced = payments.invoice_created(rules.fold(events), invoice_id="i",
                                                invoice_url="u", now=NOW)  # fmt: skip
            events += invoiced
            notice = PaymentNotice(
                payment_id="1", payment_status="finished", invoice_id="i",
                price_amount=Decimal("2.50"), price_currency="usd",
                actually_paid=Decimal("2.50"), pay_amount=Decimal("2.50"),
            )  # fmt: skip
            events += payments.payment_notified(rules.fold(events), notice, NOW)
        self.store.save(events)
        return events[0].originator_id

    def found(self, **search: object) -> set[UUID]:
        for runner in self.runners:
            runner.catch_up()
        if "email" in search:
            lookup = self.customers.email_lookup(str(search.pop("email")))
            search["owners"] = self.models.customers_with_email(lookup)
        page = self.models.orders(OrderSearch(**search), limit=200)  # type: ignore[arg-type]
        return {UUID(item["order_id"]) for item in page.items}


KEY = base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def shop(backend: tuple[RecorderEventStore, ViewDatabase], tmp_path: Path) -> Shop:  # noqa: F811
    store, views = backend
    return Shop(store, views, tmp_path / "vault")


def test_each_filter_narrows_the_list(shop: Shop) -> None:
    first = shop.order("alice", "Alice@Shop.example", "p1", days=0)
    second = shop.order("alice", "alice@shop.example", "p_2", days=1, flagged=True)
    third = shop.order("bob", "bob@shop.example", "p1", days=2)
    fourth = shop.order("carol", "ALICE@shop.example", "p3", days=3)
    assert shop.found() == {first, second, third, fourth}
    assert shop.found(order_id=str(second)) == {second}
    assert shop.found(customer="bob") == {third}
    assert shop.found(email="alice@SHOP.example") == {first, second, fourth}
    assert shop.found(email="nobody@shop.example") == set()
    assert shop.found(product="p1") == {first, third}
    assert shop.found(product="p_2") == {second}
    assert shop.found(product="p%") == set()  # no wildcard of the client's
    assert shop.found(flagged=True) == {second}
    after, before = NOW + timedelta(days=1), NOW + timedelta(days=3)
    assert shop.found(created_after=after, created_before=before) == {second, third}
    assert shop.found(customer="alice", product="p1") == {first}
    assert shop.found(status="created", customer="alice") == {first}


def test_an_erased_customer_is_not_found_by_address_even_after_a_rebuild(shop: Shop) -> None:
    """The digests of an erased customer's address go; a rebuild cannot open it again."""
    alices = shop.order("alice", "alice@shop.example", "p1", days=0)
    carols = shop.order("carol", "alice@shop.example", "p1", days=1)
    assert shop.found(email="alice@shop.example") == {alices, carols}
    assert shop.customers.erase("alice", ADMIN)
    assert shop.found(email="alice@shop.example") == {carols}
    assert shop.found(customer="alice") == {alices}  # the order itself stays
    emails = shop.runners[1]
    emails.request_rebuild()
    emails.catch_up()
    assert emails.state().generation == 2
    assert shop.found(email="alice@shop.example") == {carols}


def test_a_product_search_waits_for_the_rebuild_that_adds_its_column(shop: Shop) -> None:
    """After an upgrade the live table is still of version 1 (no products column) until the
    rebuild beside it is swapped in: the product search says so; the other searches work."""
    order = shop.order("alice", "alice@shop.example", "p1", days=0)
    with shop.views.transaction() as tx:
        tx.execute("UPDATE projection_versions SET version = 1 WHERE name = 'orders'")
    with pytest.raises(ReadModelRebuilding):
        shop.found(product="p1")
    assert shop.found(customer="alice") == {order}


def test_the_email_lookup_waits_out_a_vault_outage(shop: Shop) -> None:
    """The vault is down while the projection opens an address: the batch is tried again, the
    projection stays live, nothing is skipped, and the address is found once the vault is back."""
    order = shop.order("alice", "alice@shop.example", "p1", days=0)
    emails = shop.runners[1]
    shop.vault.down = True
    with pytest.raises(VaultUnavailable):
        emails.run_once()
    assert (emails.state().state, emails.state().position) == ("live", 0)
    shop.vault.down = False
    assert shop.found(email="alice@shop.example") == {order}
    assert emails.state().position == shop.store.head()
