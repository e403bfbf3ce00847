#!/usr/bin/env python3
"""Write a new ``.env`` for ``docker compose up``: ``.env.example`` with a fresh random value for
every secret, and the shop's public address.

    python3 scripts/new-env.py                                  # http://localhost:8000
    python3 scripts/new-env.py --public-base-url https://shop.example.com

Standard library only: it runs before anything is installed or built. It never overwrites an
existing file. Keep a copy of the result off the machine (docs/operations.md#secrets): without
KEY_ENCRYPTION_KEY no sold key can be opened again.
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _token() -> str:
    return secrets.token_urlsafe(48)


def _key32() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _access_key_id() -> str:
    return "BL" + secrets.token_hex(9).upper()


# Every secret compose.yaml passes on, and how a fresh one is made. The provider keys are the
# sandboxes' while the built-in ones run; put the real ones in their place for real traffic.
FRESH: dict[str, Callable[[], str]] = {
    "JWT_SECRET": _token,
    "KEY_ENCRYPTION_KEY": _key32,  # AES-256: 32 bytes, base64
    "AUDIT_SIGNING_KEY": _key32,  # an Ed25519 seed: 32 bytes, base64
    "KINGUIN_API_KEY": _token,
    "KINGUIN_WEBHOOK_SECRET": _token,
    "NOWPAYMENTS_API_KEY": _token,
    "NOWPAYMENTS_IPN_SECRET": _token,
    "NOWPAYMENTS_SANDBOX_IPN_SECRET": _token,
    "POSTGRES_PASSWORD": _token,
    "S3_ACCESS_KEY_ID": _access_key_id,
    "S3_SECRET_ACCESS_KEY": _token,
}


def filled(example: str, public_base_url: str) -> str:
    """``example`` with each empty secret given a fresh value and PUBLIC_BASE_URL set."""
    values = {name: make() for name, make in FRESH.items()}
    values["PUBLIC_BASE_URL"] = public_base_url
    lines = []
    for line in example.splitlines():
        name, sep, value = line.partition("=")
        fill = sep and not line.startswith("#") and not value and name in values
        lines.append(f"{name}={values[name]}" if fill else line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--public-base-url", default="http://localhost:8000",
                        help="the shop's address as customers reach it")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / ".env")
    parser.add_argument("--example", type=Path, default=ROOT / ".env.example")
    args = parser.parse_args(argv)
    text = filled(args.example.read_text(), args.public_base_url.rstrip("/"))
    try:
        descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        sys.stderr.write(f"{args.out} exists; move it away first (it may hold the master key)\n")
        return 2
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    sys.stdout.write(f"wrote {args.out} (mode 600) with fresh secrets; keep a copy elsewhere\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
