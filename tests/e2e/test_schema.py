"""The OpenAPI document against the running engine, on both wirings (embedded SQLite, and
PostgreSQL + Redis with a worker process): schemathesis generates requests from
``/schema/openapi.json`` with a user token, then with an admin token, and checks that

- none gets a server error, and the engine logs no ERROR line;
- every schema-valid request is accepted, or refused only in a way docs/api.md documents and a
  schema cannot express (not found, a conflict with the current state);
- every schema-violating request is refused (``negative_data_rejection``);
- every operation that declares security refuses a request without a token, or with a bad
  one (``ignored_auth``);
- every status answered is one the operation documents (``status_code_conformance``).

Stateless checks only (examples, coverage and fuzzing phases), with a fixed seed and
derandomised generation so that a run is reproducible; ``MAX_EXAMPLES`` fuzzed examples per
operation keep the whole module at about 1.5 minutes.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from tests.e2e.conftest import RunningEngine
from tests.e2e.test_catalog import CS_SOURCE, await_status, order_body, paid_order

SEED = 20261128
MAX_EXAMPLES = 6  # per operation and phase, both roles, both wirings: the suite keeps to 15 min
CUSTOMER = "schemathesis-user"
SUBJECTS = {"user": CUSTOMER, "admin": "schemathesis-admin"}
# What a schema-valid request may be answered (schemathesis's default for this check, plus 410;
# a 5xx is not_a_server_error's to report):
# 401/403 (not this caller's), 404 (nothing by that id, or not the caller's), 409 (not in the
# order's current status), 410 (keys an admin shredded earlier in the run: "Keys destroyed"),
# 429 (rate limits; raised out of the way here). Never 400 or 422: those are what the document
# states.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "410", "429", "5xx"]
# Refusals of schema-valid input that docs/api.md documents and no schema can state: a rule
# across an order's lines (Kinguin sells at most 9 keys of one offer per order, in any lines).
ACROSS_LINES = re.compile(rb'"title":"Invalid order".*keys of one offer per order')
LOGGED_FAULT = re.compile(rb"\bERROR\b|Traceback \(most recent call last\)")


@pytest.fixture
def engine_settings() -> dict[str, str]:
    """Rate limits out of the way (a 429 would be accepted, but would hide what the order
    behind it does), and a quick sandbox."""
    return {"ORDERS_PER_MINUTE": "60000", "ORDERS_PER_MINUTE_PER_IP": "60000",
            "REVEALS_PER_MINUTE": "60000", "KINGUIN_SANDBOX_DELAY": "0.1"}  # fmt: skip


def known_values(shop: RunningEngine) -> dict[str, list[str]]:
    """Values that name things the engine has, by parameter name: the customer's orders (one
    fulfilled, one not paid), their webhook deliveries and a download link. Random ids name
    nothing, and every route would answer 404 before reading the rest of the request."""
    with shop.client(CUSTOMER) as customer, shop.client("schema-admin", "admin") as admin:
        fulfilled = paid_order(customer)
        await_status(customer, fulfilled, "fulfilled")
        unpaid = customer.post("/orders", json=order_body(CS_SOURCE)).json()["id"]
        link = httpx.URL(customer.get(f"/fulfillment/{fulfilled}/download-link").json()["url"])
        deadline = time.monotonic() + 10
        while len(deliveries := admin.get("/admin/webhook-logs").json()["items"]) < 2:
            assert time.monotonic() < deadline, deliveries
            time.sleep(0.1)
    return {
        "order_id": [fulfilled, unpaid],
        "delivery_id": sorted(d["delivery_id"] for d in deliveries),
        "customer": [CUSTOMER],
        **{name: [link.params[name]] for name in ("lid", "exp", "sig")},
    }


def document_under_test(
    raw: dict[str, Any], products: list[str], known: dict[str, list[str]]
) -> dict[str, Any]:
    """The served document as schemathesis tests it, with what it leaves out and why."""
    document = copy.deepcopy(raw)
    for operations in document["paths"].values():
        for operation in operations.values():
            # `cursor` is opaque: only a next_cursor the API handed out is meaningful, and any
            # other value is the documented 400 ("a cursor this API did not hand out"); no
            # schema can say which values were handed out, so generation leaves it out.
            operation["parameters"] = [
                p for p in operation.get("parameters", []) if p["name"] != "cursor"
            ]
            for parameter in operation["parameters"]:
                if parameter["name"] in known:  # offered beside any other valid value
                    values = known[parameter["name"]]
                    parameter["schema"] = {"anyOf": [{"enum": values}, parameter["schema"]]}
    payment = document["components"]["schemas"]["PaymentIn"]["properties"]
    payment["order_id"] = {"anyOf": [{"enum": known["order_id"]}, payment["order_id"]]}
    # An order line's product_id is drawn from the catalog (what GET /products lists in stock):
    # an id the catalog does not have is the documented 422 "Unknown product" (the catalog, not
    # a schema, knows which products exist), and it would end every generated order at its
    # first line, before the checks the document states (e-mail, currency, lines, quantities,
    # prices). Pre-orders are left out: one mixed with other lines is a documented 422 too.
    item = document["components"]["schemas"]["ItemIn"]["properties"]
    item["product_id"] = {**item["product_id"], "enum": products}
    return document


def products_in_stock(shop: RunningEngine) -> list[str]:
    """The product ids a customer can order now, as the catalog lists them."""
    answer = httpx.get(f"{shop.url}/products", params={"in_stock": "true", "limit": 200})
    items = answer.raise_for_status().json()["items"]
    return sorted(p["product_id"] for p in items if p["availability"] == "in_stock")


def config_for(shop: RunningEngine, role: str) -> SchemathesisConfig:
    """schemathesis with a token of ``role`` and the checks this module holds the engine to."""
    return SchemathesisConfig.from_dict({
        "seed": SEED,
        "base-url": shop.url,
        "headers": {"Authorization": f"Bearer {shop.token(SUBJECTS[role], role)}"},
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True,
                       "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "suppress-health-check": ["too_slow", "filter_too_much"],
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "positive_data_acceptance": {"enabled": True, "expected-statuses": ACCEPTED},
            "negative_data_rejection": {"enabled": True},
            "ignored_auth": {"enabled": True},
            "status_code_conformance": {"enabled": True},
        },
    })  # fmt: skip


def run(shop: RunningEngine, role: str, known: dict[str, list[str]]) -> list[str]:
    """Run schemathesis with a token of ``role``; the failures it found, described."""
    raw = httpx.get(f"{shop.url}/schema/openapi.json", timeout=10).raise_for_status().json()
    schema = schemathesis.openapi.from_dict(
        document_under_test(raw, products_in_stock(shop), known), config=config_for(shop, role)
    )
    failures: list[str] = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            failures += described(role, event)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"schemathesis could not run: {event!r}")
    return failures


def described(role: str, event: events.ScenarioFinished) -> list[str]:
    """The failed checks of one scenario: what was sent, what came back."""
    recorder, found = event.recorder, []
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.failure_info is None:
                continue
            case = recorder.cases[case_id].value
            answer = recorder.interactions.get(case_id)
            got = answer.response if answer is not None else None
            if check.name == "positive_data_acceptance" and documented_refusal(got):
                continue
            found.append(
                f"{role}: {recorder.label} ({event.phase}): {check.name}: "
                f"{check.failure_info.failure.title}\n"
                f"  sent: {case.as_curl_command()}\n"
                f"  got: {got.status_code if got else None} "
                f"{(got.content or b'')[:300] if got else b''!r}"
            )
    return found


def documented_refusal(got: Any) -> bool:
    """Whether a schema-valid request was refused as docs/api.md says, by a rule no schema can
    state (``ACROSS_LINES``)."""
    return got is not None and bool(ACROSS_LINES.search(got.content or b""))


def test_openapi_document_is_what_the_engine_accepts(engine: RunningEngine) -> None:
    """As a user and as an admin: no 5xx and no ERROR logged, no undocumented refusal of
    schema-valid input, no schema-violating input accepted, no documented security ignored,
    no undocumented status."""
    known = known_values(engine)
    failures = [failure for role in SUBJECTS for failure in run(engine, role, known)]
    assert not failures, "\n".join(dict.fromkeys(failures))
    faults = [line for line in engine.logged().splitlines() if LOGGED_FAULT.search(line)]
    assert not faults, b"\n".join(faults).decode(errors="replace")
