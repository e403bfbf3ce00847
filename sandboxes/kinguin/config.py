"""The Kinguin sandbox's settings and the limits it enforces."""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sandboxes.callbacks import Callbacks
from sandboxes.control import (
    ControlCheck,
)
from sandboxes.faults import (
    DEFAULT_TIMEOUT_S,
    NO_FAULTS,
    Faults,
)

MAX_QTY_PER_PRODUCT = 9
MAX_PRODUCTS_PER_ORDER = 10
DEFAULT_PAGE_LIMIT = 25
MAX_PAGE_LIMIT = 100
DEFAULT_BALANCE_EUR = 1_000_000.0
RETURN_WINDOW = timedelta(hours=24)

ALNUM = string.ascii_uppercase + string.digits
ORDER_ID_LENGTH = 11
STORE_ID = 1
STORE_EMAIL = "sandbox-store@example.com"
WEBHOOK_TIMEOUT_S = 5.0
# Kinguin retries failed webhooks "several times" without a documented schedule; a short one
# keeps the sandbox realistic without stalling a test run.
WEBHOOK_RETRY_DELAYS_S = (0.5, 2.0)
# A pre-order also completes when the clock passes its release date: check that this often.
RELEASE_POLL_S = 1.0
MSGSPEC_PATH = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
KINGUIN_ID = re.compile(r"^[0-9]{1,18}$")
# ``updatedAt`` has millisecond precision, and ``completed`` must read later than ``processing``.
EVENT_TICK = timedelta(milliseconds=1)
CENT = 1e-9


@dataclass(frozen=True)
class KinguinSandboxConfig:
    """Settings of one Kinguin sandbox instance.

    ``faults`` are in force from start-up (see ``faults_from_env``); ``timeout_s`` is how long a
    ``timeout_rate`` fault hangs before its 504; ``rng`` decides fractional fault rates (inject a
    seeded one for reproducible runs). ``extra_products`` adds that many generated products to the
    catalog (benchmarks); ``initial_balance`` is the starting balance in EUR (a ``balance`` fault
    overrides it); ``clock`` tells the sandbox's "now" (aware UTC; inject one to test time rules).
    """

    api_key: str
    webhook_secret: str
    webhook_url: str
    delay_s: float
    faults: Faults = NO_FAULTS
    timeout_s: float = DEFAULT_TIMEOUT_S
    callbacks: Callbacks = field(
        default_factory=lambda: Callbacks(keep_connections=False), compare=False, repr=False
    )
    """How webhooks go out: the app's one long-lived client (a client per call by default)."""
    rng: random.Random | None = field(default=None, compare=False, repr=False)
    extra_products: int = 0
    initial_balance: float = DEFAULT_BALANCE_EUR
    clock: Callable[[], datetime] | None = field(default=None, compare=False, repr=False)
    control_check: ControlCheck | None = field(default=None, compare=False, repr=False)
    """Who may use the control routes; None: anyone (standalone and test sandboxes)."""
    state_dir: Path | None = None
    """Where the sandbox journals its state across restarts; None: memory only."""
