"""Faults the built-in sandboxes inject on demand (DESIGN §6, "Sandboxes").

One frozen ``Faults`` value describes them all::

    {"error_rate": 0..1, "rate_limit_rate": 0..1, "latency_ms": int >= 0, "timeout_rate": 0..1,
     "duplicate_webhooks": bool, "reorder_webhooks": bool, "drop_webhook_rate": 0..1,
     "out_of_stock": [product ids], "duplicate_external_id": bool, "price_jump": percent >= 0,
     "balance": EUR >= 0 | null, "product_updates": bool}

Every field defaults to "no fault", so ``{}`` clears them. The Kinguin sandbox takes all of them;
the NOWPayments sandbox takes all but the Kinguin-only ``out_of_stock``, ``duplicate_external_id``,
``price_jump``, ``balance`` and ``product_updates`` (naming one of those is an error there, not a
silent no-op). ``price_jump`` raises every offer's price while set; ``balance`` is a one-off
command rather than a lasting fault: a set carrying it sets the sandbox balance to that value
(clearing the faults leaves the balance as it is); ``product_updates`` makes the sandbox send
``product.update`` webhooks. ``FaultSwitch`` tells an optional listener about every change, so a
sandbox can act on such fields.

Faults are set at start-up (``faults_from_env``: ``KINGUIN_SANDBOX_FAULTS`` /
``NOWPAYMENTS_SANDBOX_FAULTS`` hold the same JSON) or at run time through each sandbox's
``/faults`` control route. ``FaultSwitch`` holds one sandbox's current set and rolls the dice with
an injectable ``random.Random``: a rate of 0 never fires and 1 always fires without drawing a
number, so only rates strictly between 0 and 1 consume randomness.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal

import msgspec

logger = logging.getLogger(__name__)

SandboxName = Literal["kinguin", "nowpayments"]
ApiFault = Literal["timeout", "rate_limit", "error"]

Rate = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
ProductId = Annotated[str, msgspec.Meta(min_length=1)]

DEFAULT_TIMEOUT_S: Final = 15.0
"""How long a ``timeout_rate`` fault hangs: longer than a client's usual 10 s timeout."""

ENV_VARIABLES: Final[Mapping[SandboxName, str]] = {
    "kinguin": "KINGUIN_SANDBOX_FAULTS",
    "nowpayments": "NOWPAYMENTS_SANDBOX_FAULTS",
}
KINGUIN_ONLY_FIELDS: Final = frozenset(
    {"out_of_stock", "duplicate_external_id", "price_jump", "balance", "product_updates"}
)
_SANDBOX_TITLES: Final[Mapping[SandboxName, str]] = {
    "kinguin": "Kinguin",
    "nowpayments": "NOWPayments",
}


class Faults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The faults one sandbox injects; every default means "behave"."""

    error_rate: Rate = 0.0
    rate_limit_rate: Rate = 0.0
    latency_ms: Annotated[int, msgspec.Meta(ge=0)] = 0
    timeout_rate: Rate = 0.0
    duplicate_webhooks: bool = False
    reorder_webhooks: bool = False
    drop_webhook_rate: Rate = 0.0
    out_of_stock: tuple[ProductId, ...] = ()
    duplicate_external_id: bool = False
    price_jump: Annotated[float, msgspec.Meta(ge=0.0)] = 0.0
    balance: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    product_updates: bool = False


FaultListener = Callable[[Faults, Faults], None]
"""Called with the previous and the new faults after each change of a ``FaultSwitch``."""

NO_FAULTS: Final = Faults()


class InvalidFaults(ValueError):
    """A faults document that is not JSON, names an unknown or inapplicable field, or is out of
    range."""


def applicable_fields(sandbox: SandboxName) -> tuple[str, ...]:
    """The ``Faults`` fields ``sandbox`` takes, in declaration order."""
    fields = Faults.__struct_fields__
    if sandbox == "kinguin":
        return fields
    return tuple(name for name in fields if name not in KINGUIN_ONLY_FIELDS)


def parse_faults(raw: bytes | str, *, sandbox: SandboxName = "kinguin") -> Faults:
    """Decode a faults JSON object for ``sandbox``; raise ``InvalidFaults`` saying what is wrong."""
    try:
        data: Any = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidFaults(f"faults are not valid JSON: {exc}") from exc
    if isinstance(data, dict):
        _refuse_inapplicable(data.keys(), sandbox)
    try:
        return msgspec.convert(data, Faults)
    except msgspec.ValidationError as exc:
        raise InvalidFaults(f"invalid faults: {exc}") from exc


def validate_faults(faults: Faults, sandbox: SandboxName) -> Faults:
    """Return ``faults`` if every value is in range and ``sandbox`` can honour every fault set;
    else raise ``InvalidFaults``. (Building a ``Faults`` in Python checks no constraint.)"""
    set_fields = [
        name
        for name in Faults.__struct_fields__
        if getattr(faults, name) != getattr(NO_FAULTS, name)
    ]
    _refuse_inapplicable(set_fields, sandbox)
    try:
        return msgspec.convert(msgspec.to_builtins(faults), Faults)
    except msgspec.ValidationError as exc:
        raise InvalidFaults(f"invalid faults: {exc}") from exc


def faults_view(faults: Faults, sandbox: SandboxName) -> dict[str, Any]:
    """The JSON-ready faults of ``sandbox``: every field it takes, set or not."""
    everything: dict[str, Any] = msgspec.to_builtins(faults)
    return {name: everything[name] for name in applicable_fields(sandbox)}


def faults_from_env(environ: Mapping[str, str], name: SandboxName) -> Faults:
    """Read the start-up faults of sandbox ``name`` (``"kinguin"`` or ``"nowpayments"``) from
    ``KINGUIN_SANDBOX_FAULTS`` / ``NOWPAYMENTS_SANDBOX_FAULTS``; unset or blank means none.

    A malformed value raises ``InvalidFaults`` (a ``ValueError``) naming the variable.
    """
    variable = ENV_VARIABLES.get(name)
    if variable is None:
        raise ValueError(f"unknown sandbox {name!r}: expected one of {sorted(ENV_VARIABLES)}")
    raw = environ.get(variable, "").strip()
    if not raw:
        return NO_FAULTS
    try:
        return parse_faults(raw, sandbox=name)
    except InvalidFaults as exc:
        raise InvalidFaults(f"{variable}: {exc}") from exc


def _refuse_inapplicable(names: Any, sandbox: SandboxName) -> None:
    if sandbox == "kinguin":
        return
    for name in names:
        if name in KINGUIN_ONLY_FIELDS:
            title = _SANDBOX_TITLES[sandbox]
            raise InvalidFaults(f"fault `{name}` does not apply to the {title} sandbox")


class FaultDice:
    """Decides whether a fault with a given rate fires, with an injectable ``random.Random``."""

    def __init__(self, rng: random.Random | None = None) -> None:
        # Not cryptography: a seeded generator is what makes faulty runs reproducible.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``; 0 and 1 are certain and draw no number."""
        if rate <= 0.0:
            return False
        if rate >= 1.0:
            return True
        return self._rng.random() < rate


def decide_api_fault(faults: Faults, dice: FaultDice) -> ApiFault | None:
    """Which fault, if any, an API request suffers: timeout, else rate limit, else error."""
    if dice.roll(faults.timeout_rate):
        return "timeout"
    if dice.roll(faults.rate_limit_rate):
        return "rate_limit"
    if dice.roll(faults.error_rate):
        return "error"
    return None


class FaultSwitch:
    """The current faults of one sandbox instance and the dice that decide them.

    ``on_change``, if given, is called with the previous and the new set after every ``replace``
    (not for the start-up set), so the sandbox can act on value-like faults such as ``balance``.
    """

    def __init__(
        self,
        sandbox: SandboxName,
        faults: Faults = NO_FAULTS,
        rng: random.Random | None = None,
        on_change: FaultListener | None = None,
    ) -> None:
        self.sandbox: SandboxName = sandbox
        self._faults = validate_faults(faults, sandbox)
        self._dice = FaultDice(rng)
        self._on_change = on_change

    @property
    def current(self) -> Faults:
        """The faults in force now."""
        return self._faults

    def replace(self, raw: bytes | str) -> Faults:
        """Parse ``raw`` and make it the whole new set (``{}`` clears); ``InvalidFaults`` if bad."""
        previous, self._faults = self._faults, parse_faults(raw, sandbox=self.sandbox)
        logger.info("%s sandbox: faults set to %s", self.sandbox, msgspec.json.encode(self._faults))
        if self._on_change is not None:
            self._on_change(previous, self._faults)
        return self._faults

    def view(self) -> dict[str, Any]:
        """The current faults as JSON-ready data, every applicable field included."""
        return faults_view(self._faults, self.sandbox)

    async def before_api_call(self, timeout_s: float) -> ApiFault | None:
        """Wait ``latency_ms``, decide the request's fault, and hang ``timeout_s`` on a timeout."""
        faults = self._faults
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        fault = decide_api_fault(faults, self._dice)
        if fault == "timeout":
            await asyncio.sleep(timeout_s)
        return fault

    def drop_webhook(self) -> bool:
        """Roll ``drop_webhook_rate``: true when this webhook must not be sent."""
        return self._dice.roll(self._faults.drop_webhook_rate)

    def webhook_copies(self) -> int:
        """How many times to send each webhook: 2 with ``duplicate_webhooks``, else 1."""
        return 2 if self._faults.duplicate_webhooks else 1
