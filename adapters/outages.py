"""Telling an outage of the infrastructure from every other failure.

An outage — PostgreSQL restarting or stopped, a connection of ours cut, Redis or the key vault's
S3 server unreachable — is expected: the background loops, the actors and the HTTP layer log it
as one WARNING line that names what failed and when it is tried again, and carry on once the
service is back. Anything else is unexpected and keeps its traceback. This module is the one
place that knows which exceptions of psycopg, psycopg_pool, eventsourcing, redis, Dramatiq and
the key vault mean "unavailable".
"""

from __future__ import annotations

import logging

import psycopg
import psycopg_pool
import redis.exceptions
from dramatiq.errors import BrokerConnectionError
from eventsourcing import persistence

from adapters.vault import VaultUnavailable

DATABASE = "database"
REDIS = "Redis"
VAULT = "key vault"

# SQLSTATEs a server sends when it goes away or will not take the connection yet: connection
# exceptions (class 08), shutdown by an administrator (a restart) or a crash, "the database
# system is starting up", too many connections.
_SERVER_GONE = frozenset({"57P01", "57P02", "57P03", "53300"})


def unavailable(error: BaseException) -> str | None:
    """What is unavailable (``"database"``, ``"Redis"``, ``"key vault"``) when ``error`` is an
    outage — or a wrapper raised ``from`` one — else ``None``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        service = _service(current)
        if service is not None:
            return service
        current = current.__cause__
    return None


def outage(error: BaseException) -> tuple[str, str] | None:
    """What is unavailable and one line saying so, when ``error`` is an outage; else None."""
    service = unavailable(error)
    return None if service is None else (service, _line(service, error))


def outage_text(error: BaseException) -> str:
    """``"database unavailable (AdminShutdown: terminating connection …)"``: one line for a log
    message (call only for an outage)."""
    return _line(unavailable(error) or "service", error)


def _line(service: str, error: BaseException) -> str:
    return f"{service} unavailable ({one_line(error)})"


def log_failure(logger: logging.Logger, failure: BaseException, what: str, then: str) -> None:
    """Log a failure that was handled: ``"<what>, database unavailable (…); <then>"`` as one
    WARNING line for an outage, ``"<what>; <then>"`` at ERROR with the traceback for anything
    else (``then`` says what happens next, e.g. ``"retrying in 1 s"``)."""
    if unavailable(failure) is not None:
        logger.warning("%s, %s; %s", what, outage_text(failure), then, stacklevel=2)
    else:
        logger.error("%s; %s", what, then, exc_info=failure, stacklevel=2)


def one_line(error: BaseException) -> str:
    """The error's type and the first line of its text."""
    text = str(error).strip().splitlines()
    detail = text[0].strip() if text else ""
    return f"{type(error).__name__}: {detail[:200]}" if detail else type(error).__name__


# What each kind of error means is unavailable (None: not an outage); the first match wins,
# so the pool's own errors come before psycopg's OperationalError, which they subclass.
_KINDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str | None], ...] = (
    (psycopg_pool.PoolTimeout, DATABASE),  # no connection in time: the server is not answering
    ((psycopg_pool.PoolClosed, psycopg_pool.TooManyRequests), None),  # our pool: shut, overloaded
    (persistence.ConnectionUnavailableError, DATABASE),
    (redis.exceptions.AuthenticationError, None),  # a wrong password is a configuration error
    ((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError), REDIS),
    (BrokerConnectionError, REDIS),
    (VaultUnavailable, VAULT),
)


def _service(error: BaseException) -> str | None:
    for kind, service in _KINDS:
        if isinstance(error, kind):
            return service
    if isinstance(error, psycopg.OperationalError):
        # A lost or refused connection has no SQLSTATE; a cancelled statement, a lock timeout
        # or a full disk has one of its own and is not an outage.
        state = error.sqlstate
        if state is None or state.startswith("08") or state in _SERVER_GONE:
            return DATABASE
    return None


class OutagesAsWarnings(logging.Filter):
    """For loggers of libraries we cannot change (Dramatiq's worker): a record about an outage
    becomes one WARNING line — no traceback, no CRITICAL — and every other record is left as
    it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and unavailable(error) is not None:
            record.msg = f"{record.getMessage()}: {outage_text(error)}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            _as_warning(record)
        elif isinstance(record.args, tuple) and any(
            isinstance(a, BaseException) and unavailable(a) is not None for a in record.args
        ):
            _as_warning(record)
        return True


def _as_warning(record: logging.LogRecord) -> None:
    if record.levelno > logging.WARNING:
        record.levelno = logging.WARNING
        record.levelname = logging.getLevelName(logging.WARNING)
