"""E-mail: the Resend adapter (production) and a local outbox (embedded default). Both
implement ``application.ports.Mailer``.

Errors: ``MailError`` — Resend refused or could not be reached (the actor retries it).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import httpx

from application.errors import MailerFailed

log = logging.getLogger(__name__)


class MailError(MailerFailed):
    """The e-mail could not be handed to Resend."""


class ResendMailer:
    """Sends through Resend's ``POST /emails`` with an ``Idempotency-Key`` (24 h window)."""

    def __init__(self, http: httpx.Client, sender: str) -> None:
        self._http = http
        self._sender = sender

    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:
        """Send; a repeat with the same key within 24 h is not sent again by Resend."""
        body = {"from": self._sender, "to": [to], "subject": subject, "text": text}
        try:
            answer = self._http.post(
                "/emails", json=body, headers={"Idempotency-Key": idempotency_key}
            )
        except httpx.HTTPError as failure:
            raise MailError(f"Resend unreachable: {failure!r}") from failure
        if not answer.is_success:
            raise MailError(f"Resend refused the e-mail: HTTP {answer.status_code}")
        message_id = answer.json().get("id")
        if not isinstance(message_id, str):
            raise MailError("Resend answered without a message id")
        return message_id


class OutboxMailer:
    """Writes each e-mail to a file under the outbox folder (one per idempotency key)."""

    def __init__(self, folder: Path, sender: str) -> None:
        self._folder = folder
        self._sender = sender

    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:
        """Write the message unless this key was written before; log where (not what)."""
        message_id = hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]
        path = self._folder / f"{message_id}.eml"
        if not path.exists():
            self._folder.mkdir(parents=True, exist_ok=True)
            path.write_text(f"From: {self._sender}\nTo: {to}\nSubject: {subject}\n\n{text}")
            path.chmod(0o600)
            log.info("e-mail %r for %s written to %s", subject, _masked(to), path)
        return message_id


def _masked(address: str) -> str:
    name, _, domain = address.partition("@")
    return f"{name[:1]}***@{domain}"
