"""What route handlers may ask for by name; provided by ``entrypoints.http.app``."""

from __future__ import annotations

from typing import TypeAlias

from litestar.di import NamedDependency

from application.fulfillment import Fulfillment
from application.key_access import KeyAccess
from application.orders import Viewer
from application.webhooks import WebhookInbox
from entrypoints.bootstrap import Engine
from entrypoints.settings import Settings

EngineDep: TypeAlias = NamedDependency[Engine]
FulfillmentDep: TypeAlias = NamedDependency[Fulfillment]
InboxDep: TypeAlias = NamedDependency[WebhookInbox]
KeysDep: TypeAlias = NamedDependency[KeyAccess]
SettingsDep: TypeAlias = NamedDependency[Settings]
ViewerDep: TypeAlias = NamedDependency[Viewer]
