"""The sandboxes as a process of their own: both routers plus ``GET /healthz``.

``create_sandbox_app`` only builds the Litestar app; serving it (uvicorn, host, port) is the
caller's business, e.g. the ``bitloot sandbox`` command. Importing this module has no side effect.

A standalone sandbox is never open to anyone: its controls take a ``ControlCheck`` (``bitloot
sandbox`` checks for the engine's admin tokens), the NOWPayments sandbox signs its IPNs with a
secret of its own (``NOWPAYMENTS_SANDBOX_IPN_SECRET``), and the Kinguin sandbox says it is one
(``identity``), so that no engine takes it for a real Kinguin or the other way round.
"""

from __future__ import annotations

import dataclasses

from litestar import Litestar, get
from litestar.openapi import OpenAPIConfig

from sandboxes.callbacks import Callbacks
from sandboxes.control import ControlCheck
from sandboxes.identity import kinguin_identity
from sandboxes.kinguin import KinguinSandboxConfig, kinguin_sandbox
from sandboxes.nowpayments import NowPaymentsSandboxConfig, nowpayments_sandbox


@get("/healthz")
async def healthz() -> dict[str, str]:
    """The sandbox process is up."""
    return {"status": "ok"}


def create_sandbox_app(
    kinguin: KinguinSandboxConfig,
    nowpayments: NowPaymentsSandboxConfig,
    *,
    control_check: ControlCheck,
) -> Litestar:
    """Build an app serving ``/sandbox/kinguin``, ``/sandbox/nowpayments`` and ``/healthz``,
    whose controls (simulate, faults, release) need ``control_check`` to pass.

    Each call gets fresh in-memory sandbox state. Raises ``InvalidFaults`` (a ``ValueError``)
    when either config carries faults its sandbox cannot take.
    """
    callbacks = Callbacks()  # one client for both sandboxes' webhooks, closed at shutdown
    kinguin = dataclasses.replace(kinguin, callbacks=callbacks, control_check=control_check)
    nowpayments = dataclasses.replace(nowpayments, callbacks=callbacks, control_check=control_check)
    return Litestar(
        route_handlers=[
            kinguin_sandbox(kinguin),
            nowpayments_sandbox(nowpayments),
            kinguin_identity,
            healthz,
        ],
        openapi_config=OpenAPIConfig(title="BitLoot provider sandboxes", version="0.1.0"),
        plugins=[callbacks],
    )
