"""The sandboxes' own control routes (not part of any vendor API): shared pieces.

Control routes need no API key and suffer no injected faults; mounted inside the engine, and in
a standalone ``bitloot sandbox``, they need an admin bearer token of the engine
(``ControlCheck``), since with them anyone could mark an order paid.
They answer their errors as RFC 9457 problem documents. Each sandbox mounts ``fault_routes``:
``GET /faults`` returns the current faults with every field the sandbox takes; ``POST /faults``
replaces the whole set (``{}`` clears it) and answers the new set, or a 400 problem naming the
unknown, inapplicable or out-of-range field.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

import msgspec
from litestar import Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.params import RawBody
from litestar.types import Guard

from sandboxes.faults import FaultSwitch, InvalidFaults

CONTROL_OPT: Final = "sandbox_control"
"""Route-handler ``opt`` key marking a control route: no API key, no injected faults."""


ControlCheck = Callable[[ASGIConnection[Any, Any, Any, Any]], bool]
"""Whether a request may use a sandbox's controls (e.g. it carries an admin bearer token)."""


def control_guards(check: ControlCheck | None) -> list[Guard]:
    """Guards for the control routes: none without a check (a sandbox built by a test)."""
    if check is None:
        return []

    def admins_only(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not check(connection):
            raise SandboxControlError(401, "sandbox controls need an admin bearer token")

    return [admins_only]


class SandboxProblem(msgspec.Struct):
    """RFC 9457 problem details, for the sandboxes' own control routes."""

    title: str
    status: int
    detail: str
    type: str = "about:blank"


class SandboxControlError(Exception):
    """A failure of a control route, answered as a problem document."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def is_control_route(request: Request[Any, Any, Any]) -> bool:
    """Tell whether ``request`` targets a control route."""
    return bool(request.route_handler.opt.get(CONTROL_OPT))


def on_control_error(
    _request: Request[Any, Any, Any], exc: SandboxControlError
) -> Response[SandboxProblem]:
    """Answer a control-route failure as ``application/problem+json``."""
    problem = SandboxProblem(HTTPStatus(exc.status).phrase, exc.status, exc.detail)
    return Response(problem, status_code=exc.status, media_type="application/problem+json")


def fault_routes(switch: FaultSwitch, guards: list[Guard] | None = None) -> list[HTTPRouteHandler]:
    """``GET`` and ``POST /faults`` for the sandbox whose faults ``switch`` holds."""

    @get("/faults", opt={CONTROL_OPT: True}, guards=guards)
    async def get_faults() -> dict[str, Any]:
        return switch.view()

    @post("/faults", status_code=200, opt={CONTROL_OPT: True}, guards=guards)
    async def set_faults(body: RawBody) -> dict[str, Any]:
        try:
            switch.replace(body)
        except InvalidFaults as exc:
            raise SandboxControlError(400, str(exc)) from exc
        return switch.view()

    return [get_faults, set_faults]
