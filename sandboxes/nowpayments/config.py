"""The NOWPayments sandbox's settings, its rates and the statuses it knows."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import msgspec

from sandboxes.callbacks import Callbacks
from sandboxes.control import (
    ControlCheck,
)
from sandboxes.faults import (
    DEFAULT_TIMEOUT_S,
    NO_FAULTS,
    Faults,
)

PaymentStatus = Literal[
    "waiting",
    "confirming",
    "confirmed",
    "sending",
    "partially_paid",
    "finished",
    "failed",
    "refunded",
    "expired",
]

IPN_TIMEOUT_S = 5.0
DEFAULT_PAY_CURRENCY = "btc"
# Fixed sandbox rates (fiat units per coin): enough to make pay_amount look plausible.
RATES = {"btc": 65_000.0, "eth": 3_200.0, "ltc": 85.0, "trx": 0.12, "xmr": 160.0}
SERVICE_FEE_RATE = 0.005
FULLY_PAID: frozenset[str] = frozenset(
    {"confirming", "confirmed", "sending", "finished", "refunded"}
)
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
MISSING_FIELD = re.compile(r"missing required field `(?P<name>[^`]+)`")
StructT = TypeVar("StructT", bound=msgspec.Struct)


@dataclass(frozen=True)
class NowPaymentsSandboxConfig:
    """Settings of one NOWPayments sandbox instance.

    ``faults`` are in force from start-up (see ``faults_from_env``; Kinguin-only faults are
    refused); ``timeout_s`` is how long a ``timeout_rate`` fault hangs before its 504; ``rng``
    decides fractional fault rates (inject a seeded one for reproducible runs).
    """

    api_key: str
    ipn_secret: str
    public_base_url: str
    faults: Faults = NO_FAULTS
    timeout_s: float = DEFAULT_TIMEOUT_S
    callbacks: Callbacks = field(
        default_factory=lambda: Callbacks(keep_connections=False), compare=False, repr=False
    )
    """How IPNs go out: the app's one long-lived client (a client per call by default)."""
    rng: random.Random | None = field(default=None, compare=False, repr=False)
    control_check: ControlCheck | None = field(default=None, compare=False, repr=False)
    """Who may simulate payments and set faults; None: anyone (standalone and test sandboxes)."""
    state_dir: Path | None = None
    """Where the sandbox journals its invoices and payments across restarts; None: memory only."""
