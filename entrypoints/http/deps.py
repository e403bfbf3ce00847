"""What route handlers ask for: the engine, by name (provided by ``entrypoints.http.app``), and
the request, whose ``user`` is the authenticated caller.

A handler asks for one dependency at most: Litestar resolves two or more of them at the same
level in a task group of their own, which cost about a tenth of the API's interpreter time
under load (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any, TypeAlias

from litestar import Request
from litestar.di import NamedDependency

from application.orders import Viewer
from entrypoints.bootstrap import Engine

EngineDep: TypeAlias = NamedDependency[Engine]
Caller: TypeAlias = Request[Viewer, Any, Any]  # ``request.user``: who is asking
