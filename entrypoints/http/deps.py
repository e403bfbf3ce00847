"""What route handlers ask for: the engine, by name (provided by ``entrypoints.http.app``), and
the request, whose ``user`` is the authenticated caller; and where the app keeps its tokens.

A handler asks for one dependency at most: Litestar resolves two or more of them at the same
level in a task group of their own, which cost about a tenth of the API's interpreter time
under load (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any, TypeAlias, cast

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency

from application.orders import Viewer
from entrypoints.bootstrap import Engine
from entrypoints.http.auth import Tokens

EngineDep: TypeAlias = NamedDependency[Engine]
Caller: TypeAlias = Request[Viewer, Any, Any]  # ``request.user``: who is asking
TOKENS = "tokens"  # the app state's key of its token service


def tokens_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Tokens:
    """The app's token service, for the doors that check a credential themselves (the admin
    page, its sign-in and sign-out, the websockets): ``create_app`` keeps it in the app's state."""
    return cast(Tokens, connection.app.state[TOKENS])
