"""What route handlers may ask for by name; provided by ``entrypoints.http.app``."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency

from application.fulfillment import Fulfillment, Viewer
from entrypoints.bootstrap import Engine
from entrypoints.settings import Settings

EngineDep: TypeAlias = NamedDependency[Engine]
FulfillmentDep: TypeAlias = NamedDependency[Fulfillment]
SettingsDep: TypeAlias = NamedDependency[Settings]
ViewerDep: TypeAlias = NamedDependency[Viewer]
