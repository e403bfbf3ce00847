"""Tracing with OpenTelemetry: off unless an OTLP endpoint is configured, then one trace follows
an order's work from the request that caused it, through the event log and the actors, to
Kinguin, the key vault and the database.

- HTTP requests are spans of Litestar's OpenTelemetry plugin (``entrypoints/http/app.py``);
  httpx (Kinguin, NOWPayments, Resend), psycopg (the store and the read models) and aiobotocore
  (the S3 vault) are traced by their instrumentations.
- Across the event log: an event appended inside a span records that span's W3C
  ``traceparent`` beside its fields (``"_trace"``, ignored when the event is decoded), and the
  process manager handles the event inside a span continuing that trace (``continued``).
- Across Dramatiq: ``TraceMessages`` puts the sender's ``traceparent`` into the message's
  options and runs the actor inside a span continuing it.

With tracing off, OpenTelemetry's API is a no-op: no span is valid, so nothing is recorded and
nothing is exported. With it on, every span goes through ``RedactingExporter`` on its way out: no
credential in a URL (``?token=``, a link's ``sig``) nor anything shaped like a JWT reaches the
trace backend, whichever attribute carries it (``http.url``, ``http.target``, ``url.full``,
``url.query``, a captured header, an exception's message).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dramatiq
from opentelemetry import context, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from typing_extensions import override

from adapters.redaction import redact_credentials

log = logging.getLogger(__name__)

TRACE_FIELD = b'"_trace":'
_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER = "bitloot"


class Tracing:
    """The process's tracer provider, exporting to an OTLP/HTTP collector, and the libraries'
    instrumentations; ``close`` flushes what is pending."""

    def __init__(self, endpoint: str, service_name: str) -> None:
        # Imported here: the exporter and the instrumentations take a fifth of a second to
        # import, which every process without tracing (and every CLI command) would pay.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )
        from opentelemetry.instrumentation.botocore import (  # noqa: PLC0415
            AiobotocoreInstrumentor,
        )
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor  # noqa: PLC0415
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor  # noqa: PLC0415

        resource = Resource.create({SERVICE_NAME: service_name})
        self.provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
        self.provider.add_span_processor(BatchSpanProcessor(RedactingExporter(exporter)))
        trace.set_tracer_provider(self.provider)
        HTTPXClientInstrumentor().instrument(tracer_provider=self.provider)
        PsycopgInstrumentor().instrument(tracer_provider=self.provider, skip_dep_check=True)
        AiobotocoreInstrumentor().instrument(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider, skip_dep_check=True
        )
        log.info("tracing on: spans go to %s", endpoint)

    def close(self) -> None:
        """Export what is pending, then stop."""
        self.provider.shutdown()


class RedactingExporter(SpanExporter):
    """Hands spans to another exporter with credentials taken out of their names, attributes
    and events' attributes (``adapters.redaction``). At export, not at the start of a span, so
    that an attribute set at any time is covered; a span with nothing to hide goes as it is."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    @override
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export the spans, redacted."""
        return self._inner.export([redacted_span(span) for span in spans])

    @override
    def shutdown(self) -> None:
        """Shut the inner exporter down."""
        self._inner.shutdown()

    @override
    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the inner exporter."""
        return self._inner.force_flush(timeout_millis)


def redacted_span(span: ReadableSpan) -> ReadableSpan:
    """The span with no credential in its name, attributes or events (itself if it had none)."""
    name = redact_credentials(span.name)
    attributes = _redacted(span.attributes)
    events = [_redacted_event(event) for event in span.events]
    if (
        name == span.name
        and attributes == span.attributes
        and all(a is b for a, b in zip(events, span.events, strict=True))
    ):
        return span
    return ReadableSpan(
        name=name, context=span.context, parent=span.parent, resource=span.resource,
        attributes=attributes, events=events, links=span.links, kind=span.kind,
        status=span.status, start_time=span.start_time, end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )  # fmt: skip


def _redacted_event(event: Event) -> Event:
    """The event with its attributes redacted (itself if nothing was)."""
    attributes = _redacted(event.attributes)
    if attributes == event.attributes:
        return event
    return Event(event.name, attributes, event.timestamp)


def _redacted(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Attributes with every string (and every string in a sequence) redacted."""
    if attributes is None:
        return None
    return {key: _redacted_value(value) for key, value in attributes.items()}


def _redacted_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_credentials(value)
    if isinstance(value, tuple | list):
        return type(value)(redact_credentials(v) if isinstance(v, str) else v for v in value)
    return value


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, when there is a recording one."""
    span = trace.get_current_span()
    if not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def with_trace(state: bytes) -> bytes:
    """A stored event's JSON object, with the current ``traceparent`` when there is one."""
    parent = traceparent()
    if parent is None or not state.endswith(b"}") or state == b"{}":
        return state
    return b'%s,%s"%s"}' % (state[:-1], TRACE_FIELD, parent.encode())


def trace_of(state: bytes) -> str | None:
    """The ``traceparent`` a stored event was appended under, if any."""
    start = state.rfind(TRACE_FIELD)
    if start < 0:
        return None
    value = state[start + len(TRACE_FIELD) :].strip(b" }")
    return value.strip(b'"').decode("ascii", "replace") or None


@contextlib.contextmanager
def continued(parent: str | None, name: str, kind: SpanKind = SpanKind.CONSUMER) -> Iterator[None]:
    """Run the block in a span continuing ``parent`` (a ``traceparent``); with no parent and
    no current span, just run it."""
    if parent is None and not trace.get_current_span().get_span_context().is_valid:
        yield
        return
    parent_context = _PROPAGATOR.extract({"traceparent": parent}) if parent else None
    tracer = trace.get_tracer(_TRACER)
    with tracer.start_as_current_span(name, context=parent_context, kind=kind):
        yield


class TraceMessages(dramatiq.Middleware):
    """Carries the sender's trace in each message (``options["traceparent"]``), and runs the
    actor inside a span continuing it."""

    def __init__(self) -> None:
        self._running: dict[str, tuple[trace.Span, object]] = {}

    @override
    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int) -> None:
        """Record the sender's trace."""
        parent = traceparent()
        if parent is not None:
            message.options["traceparent"] = parent

    @override
    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """Open the actor's span, continuing the sender's trace."""
        parent = message.options.get("traceparent")
        if not isinstance(parent, str):
            return
        tracer = trace.get_tracer(_TRACER)
        span = tracer.start_span(
            message.actor_name, context=_PROPAGATOR.extract({"traceparent": parent}),
            kind=SpanKind.CONSUMER, attributes={"messaging.message.id": message.message_id},
        )  # fmt: skip
        token = context.attach(trace.set_span_in_context(span))
        self._running[message.message_id] = (span, token)

    @override
    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Close the actor's span (an error status when it raised)."""
        running = self._running.pop(message.message_id, None)
        if running is None:
            return
        span, token = running
        if exception is not None:
            span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
        span.end()
        context.detach(token)  # type: ignore[arg-type]

    @override
    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        """A skipped message ran nothing."""
        self.after_process_message(broker, message)
