"""Which providers are real, and the rule that keeps real money out of the sandboxes.

A sandbox payment provider lets whoever can reach it mark an invoice paid; a real supplier then
sells real keys for it. So the engine refuses to start with a real Kinguin unless payments go to
the real NOWPayments, however the sandbox is served:

- NOWPayments is real only at ``https://api.nowpayments.io`` (its production host); the mounted
  sandbox, a standalone ``bitloot sandbox``, NOWPayments' own sandbox and any other host are not.
- Kinguin is a sandbox when it is the mounted sandbox, or Kinguin's own sandbox host
  (``gateway.sandbox.kinguin.net``), or a host outside ``kinguin.net`` that identifies itself as
  a BitLoot sandbox at start-up (``sandboxes.identity``). Any other Kinguin is real:
  every other ``kinguin.net`` host at once, any other host when it does not identify itself
  (also when it cannot be reached: a probe that fails never makes a sandbox).

``load_settings`` applies the rule where the URLs alone decide; ``bitloot serve`` and ``bitloot
worker`` ask an unknown Kinguin host before they start (``supplier_must_identify``).
"""

from __future__ import annotations

from typing import Literal, Protocol
from urllib.parse import urlsplit

from sandboxes.identity import identifies_as_sandbox

NOWPAYMENTS_HOST = "api.nowpayments.io"
KINGUIN_SANDBOX_HOST = "gateway.sandbox.kinguin.net"
KINGUIN_DOMAIN = "kinguin.net"

SupplierKind = Literal["sandbox", "real", "unknown"]


class Providers(Protocol):
    """What the rule reads of the settings (``entrypoints.settings.Settings`` has it)."""

    @property
    def sandboxes(self) -> frozenset[str]:
        """The mounted sandboxes."""
        ...

    @property
    def kinguin_base_url(self) -> str | None:
        """``KINGUIN_BASE_URL`` (None: the mounted sandbox)."""
        ...

    @property
    def nowpayments_base_url(self) -> str | None:
        """``NOWPAYMENTS_BASE_URL`` (None: the mounted sandbox)."""
        ...

    @property
    def kinguin_url(self) -> str:
        """Where the Kinguin adapter sends its requests."""
        ...


def payments_are_real(nowpayments_base_url: str | None) -> bool:
    """Whether ``NOWPAYMENTS_BASE_URL`` is NOWPayments' production API (https, default port)."""
    if nowpayments_base_url is None:
        return False  # the mounted sandbox
    parts = urlsplit(nowpayments_base_url)
    return parts.scheme == "https" and parts.hostname == NOWPAYMENTS_HOST and parts.port is None


def supplier_kind(sandboxes: frozenset[str], kinguin_base_url: str | None) -> SupplierKind:
    """``sandbox`` (mounted, or Kinguin's sandbox host), ``real`` (any other Kinguin host) or
    ``unknown`` (another host: a sandbox only if it identifies itself as one)."""
    if "kinguin" in sandboxes or kinguin_base_url is None:
        return "sandbox"
    host = (urlsplit(kinguin_base_url).hostname or "").rstrip(".").lower()
    if host == KINGUIN_SANDBOX_HOST:
        return "sandbox"
    if host == KINGUIN_DOMAIN or host.endswith(f".{KINGUIN_DOMAIN}"):
        return "real"
    return "unknown"


def supplier_must_identify(settings: Providers) -> bool:
    """Whether start-up must ask ``KINGUIN_BASE_URL`` whether it is a BitLoot sandbox: only
    when payments are not real and the URL alone does not tell."""
    kind = supplier_kind(settings.sandboxes, settings.kinguin_base_url)
    return kind == "unknown" and not payments_are_real(settings.nowpayments_base_url)


def real_money_refusal(settings: Providers, *, supplier_identified: bool = False) -> str | None:
    """Why the engine must not start (a real Kinguin paid through anything but the real
    NOWPayments), or ``None``. ``supplier_identified``: an unknown Kinguin host answered as a
    BitLoot sandbox."""
    if payments_are_real(settings.nowpayments_base_url):
        return None
    kind = supplier_kind(settings.sandboxes, settings.kinguin_base_url)
    if kind == "sandbox" or (kind == "unknown" and supplier_identified):
        return None
    payments = settings.nowpayments_base_url or "unset: the mounted sandbox"
    why = "" if kind == "real" else " (it did not identify itself as a BitLoot sandbox)"
    return (
        f"refusing to pay a real Kinguin through payments that are not real: "
        f"KINGUIN_BASE_URL={settings.kinguin_base_url}{why} needs "
        f"NOWPAYMENTS_BASE_URL=https://{NOWPAYMENTS_HOST}/v1 (NOWPAYMENTS_BASE_URL is {payments}); "
        "or use a sandbox Kinguin: SANDBOXES=kinguin, a `bitloot sandbox`, or "
        f"https://{KINGUIN_SANDBOX_HOST}/esa/api"
    )


def start_up_refusal(settings: Providers, wait_s: float) -> str | None:
    """``real_money_refusal`` for a process about to start, asking an unknown Kinguin host
    whether it is a BitLoot sandbox (for up to ``wait_s``) when the rule needs to know."""
    if not supplier_must_identify(settings):
        return real_money_refusal(settings)
    identified = identifies_as_sandbox(settings.kinguin_url, wait_s)
    return real_money_refusal(settings, supplier_identified=identified)
