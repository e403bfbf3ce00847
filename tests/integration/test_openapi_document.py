"""The OpenAPI document as the app built in this process generates it (no server needed): who
may call each operation, the problem details each can answer, and the engine's own values.
``tests/e2e/test_schema.py`` holds the running engine to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from domain.order import EMAIL_PATTERN, MAX_LINES, MAX_QUANTITY_PER_LINE, Status
from entrypoints.bootstrap import bootstrap
from entrypoints.http.app import create_app
from entrypoints.http.auth import COOKIE
from entrypoints.http.openapi import ROUTE_ERRORS
from entrypoints.http.problems import PROBLEM_JSON
from entrypoints.http.schema import MAX_LIMIT
from entrypoints.settings import load_settings

PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/products"),
    ("GET", "/products/{product_id}"),
    ("GET", "/audit/public-key"),
    ("POST", "/webhooks/nowpayments/ipn"),
    ("POST", "/kinguin/webhooks"),
    ("GET", "/downloads/{order_id}"),
}
# Valid tokens of every role pass these (an order a caller may not see is a 404, not a 403).
NO_ROLE_REFUSED = {
    ("GET", "/orders/{order_id}/history"),
    ("GET", "/orders/{order_id}/evidence"),
    ("GET", "/fulfillment/{order_id}/audit"),
}
CONSOLE_READS = {
    ("GET", "/orders/{order_id}"),
    ("GET", "/orders/{order_id}/history"),
    ("GET", "/orders/{order_id}/evidence"),
}
PROBLEM_REF = "#/components/schemas/ProblemDetails"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], list[str]]]:
    """The document of an app on the embedded default (never started), and the engine's
    projection names."""
    var = tmp_path_factory.mktemp("openapi")
    settings = load_settings({"VAR_DIR": str(var), "JWT_SECRET": "openapi-" + "0" * 40})
    engine = bootstrap(settings)
    try:
        document = create_app(engine).openapi_schema.to_schema()
        yield document, list(engine.projections)
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def document(built: tuple[dict[str, Any], list[str]]) -> dict[str, Any]:
    """See ``built``."""
    return built[0]


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every operation of the document: method, path, operation."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def test_public_routes_declare_no_security(document: dict[str, Any]) -> None:
    """The routes anyone may call have no security, and nothing requires one document-wide."""
    assert "security" not in document
    public = {(m, p) for m, p, op in operations(document) if "security" not in op}
    assert public == PUBLIC


def test_security_schemes_are_a_bearer_header_and_the_console_cookie(
    document: dict[str, Any],
) -> None:
    """The bearer scheme is an HTTP bearer JWT; the console's cookie is a scheme of its own."""
    schemes = document["components"]["securitySchemes"]
    assert {k: v for k, v in schemes["bearer"].items() if k != "description"} == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"
    }  # fmt: skip
    cookie = schemes["adminCookie"]
    assert (cookie["type"], cookie["in"], cookie["name"]) == ("apiKey", "cookie", COOKIE)
    assert set(schemes) == {"bearer", "adminCookie"}


def test_the_cookie_is_offered_only_where_the_console_calls(document: dict[str, Any]) -> None:
    """Bearer on every protected route; the cookie as an alternative on the console's routes
    (GET, POST and PUT under /admin; an order's detail, history and evidence), nowhere else."""
    for method, path, operation in operations(document):
        if (method, path) in PUBLIC:
            continue
        console = (method in {"GET", "POST", "PUT"} and path.startswith("/admin/")) or (
            (method, path) in CONSOLE_READS
        )
        expected: list[dict[str, list[str]]] = (
            [{"bearer": []}, {"adminCookie": []}] if console else [{"bearer": []}]
        )
        assert operation["security"] == expected, (method, path)


def test_every_error_response_is_a_problem_document(document: dict[str, Any]) -> None:
    """Each 4xx and 5xx an operation lists is application/problem+json with the
    ProblemDetails schema (GET /readyz's 503 excepted: it answers its checks)."""
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400 or (method, path, status) == ("GET", "/readyz", "503"):
                continue
            assert response["description"], (method, path, status)
            assert response["content"] == {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}, (
                method, path, status
            )  # fmt: skip
    problem = document["components"]["schemas"]["ProblemDetails"]
    assert {"type", "title", "status", "detail", "instance"} <= set(problem["properties"])
    assert problem.get("additionalProperties", True) is not False  # extensions allowed


def test_errors_follow_what_each_operation_takes_and_who_may_call_it(
    document: dict[str, Any],
) -> None:
    """400 where there is input, 401 where a token is needed (and on the webhooks, for their
    signatures), 403 where a role is refused, 404 where there is an id, 503 where the store is
    read; none elsewhere."""
    for method, path, operation in operations(document):
        statuses = {int(s) for s in operation["responses"]}
        takes_input = bool(operation.get("parameters") or operation.get("requestBody"))
        secured = "security" in operation
        where = (method, path, sorted(statuses))
        assert (400 in statuses) == (takes_input or "webhooks" in path), where
        assert (401 in statuses) == (secured or "webhooks" in path), where
        if secured:
            assert (403 in statuses) == ((method, path) not in NO_ROLE_REFUSED), where
        assert (404 in statuses) >= ("{" in path), where
        assert (413 in statuses) == ("requestBody" in operation or "webhooks" in path), where
    assert {int(s) for s in document["paths"]["/healthz"]["get"]["responses"]} == {200}


def test_the_use_cases_refusals_are_listed(document: dict[str, Any]) -> None:
    """The statuses the use cases raise are on their operations: refused orders, keys gone,
    rate limits, provider failures."""
    paths = document["paths"]

    def statuses(method: str, path: str) -> set[int]:
        return {int(s) for s in paths[path][method.lower()]["responses"]}

    assert {409, 422, 429} <= statuses("POST", "/orders")
    assert {404, 409, 429, 502} <= statuses("POST", "/payments/create")
    assert {409, 410, 429, 503} <= statuses("POST", "/fulfillment/{order_id}/reveal")
    assert {403, 410, 429} <= statuses("GET", "/downloads/{order_id}")
    assert {409, 502} <= statuses("POST", "/admin/orders/{order_id}/return-keys")
    assert 422 in statuses("PUT", "/admin/pricing")


def test_every_route_with_errors_of_its_own_is_in_the_document(document: dict[str, Any]) -> None:
    """Each operation ``ROUTE_ERRORS`` names exists (a renamed route would lose its errors)."""
    listed = {(method, path) for method, path, _ in operations(document)}
    assert set(ROUTE_ERRORS) <= listed


def test_lists_state_the_limit_they_enforce(document: dict[str, Any]) -> None:
    """Every ``?limit=`` is an integer from 1 to MAX_LIMIT (values outside answer 400)."""
    limits = [
        p["schema"]
        for _, _, operation in operations(document)
        for p in operation.get("parameters", [])
        if p["name"] == "limit"
    ]
    assert len(limits) >= 6
    for schema in limits:
        assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 1, MAX_LIMIT)


def test_the_sandboxes_are_not_in_the_engines_document(document: dict[str, Any]) -> None:
    """The mounted sandboxes stand in for the vendors; they are not the engine's API."""
    assert not [path for path in document["paths"] if path.startswith("/sandbox")]


def test_document_states_the_engines_own_values(built: tuple[dict[str, Any], list[str]]) -> None:
    """The enums and limits in the document are the engine's: its projections and their
    actions, the order statuses, Kinguin's limits on a line and an order."""
    document, projections = built
    schemas = document["components"]["schemas"]
    control = document["paths"]["/admin/projections/{name}/{action}"]["post"]["parameters"]
    enums = {p["name"]: p["schema"]["enum"] for p in control}
    assert sorted(enums["name"]) == sorted(projections)
    assert enums["action"] == ["rebuild", "cancel", "retry", "skip"]
    assert schemas["Status"]["enum"] == [status.value for status in Status]
    item, order = schemas["ItemIn"]["properties"], schemas["OrderIn"]["properties"]
    assert (item["quantity"]["minimum"], item["quantity"]["maximum"]) == (1, MAX_QUANTITY_PER_LINE)
    assert (order["items"]["minItems"], order["items"]["maxItems"]) == (1, MAX_LINES)
    assert order["email"]["pattern"] == EMAIL_PATTERN
    assert schemas["PricingIn"]["additionalProperties"] is False
