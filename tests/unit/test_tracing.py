"""Traces across the event log: an event appended inside a span keeps the span's
``traceparent`` beside its fields, still decodes into its struct, and is handled in a span of the
same trace; outside any span (tracing off) the stored bytes are the event's alone."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import msgspec
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.eventstore import MsgspecMapper
from adapters.tracing import RedactingExporter, continued, trace_of, traceparent, with_trace
from domain.events import OrderPaid

EVENT = OrderPaid(
    originator_id=uuid4(), originator_version=3, timestamp=datetime(2026, 12, 5, tzinfo=UTC),
    payment_id="5077125051",
)  # fmt: skip


def test_outside_a_span_only_the_salt_is_added() -> None:
    """Without a span the stored bytes are the event's fields and its random salt, no trace."""
    state = MsgspecMapper().to_stored_event(EVENT).state
    fields, _, salt = state.rpartition(b',"_salt":')
    assert fields + b"}" == msgspec.json.encode(EVENT)
    assert len(salt.strip(b'"}')) >= 22
    assert traceparent() is None
    assert trace_of(state) is None


def test_inside_a_span_the_event_keeps_its_trace_and_still_decodes() -> None:
    tracer = TracerProvider().get_tracer("test")
    mapper = MsgspecMapper()
    with tracer.start_as_current_span("ipn") as span:
        stored = mapper.to_stored_event(EVENT)
        parent = traceparent()
    assert parent is not None
    version, trace_id, span_id, _flags = parent.split("-")
    assert (version, trace_id) == ("00", f"{span.get_span_context().trace_id:032x}")
    assert span_id == f"{span.get_span_context().span_id:016x}"
    assert trace_of(stored.state) == parent
    assert mapper.to_domain_event(stored) == EVENT
    assert with_trace(b"{}") == b"{}"


def test_the_handler_runs_in_the_same_trace() -> None:
    """(This process has no tracer provider: the handler's context is the parent's own.)"""
    with TracerProvider().get_tracer("test").start_as_current_span("ipn") as span:
        parent = traceparent()
    assert trace.get_current_span().get_span_context().is_valid is False
    with continued(parent, "process_manager OrderPaid"):
        handled = trace.get_current_span().get_span_context()
    assert handled.trace_id == span.get_span_context().trace_id
    with continued(None, "nothing to continue"):
        assert trace.get_current_span().get_span_context().is_valid is False


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJraW0ifQ.c2lnbmF0dXJl"


def test_exported_spans_carry_no_token() -> None:
    """URL attributes set at the start or later, a captured header and an exception event
    reach the exporter with ``token=[redacted]`` and no JWT; other spans go as they are."""
    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RedactingExporter(exported)))
    tracer = provider.get_tracer("test")
    url = f"http://shop/ws/admin?token={JWT}&x=1"
    attributes: dict[str, str | int] = {
        "http.url": url, "http.target": f"/ws/admin?token={JWT}&x=1", "url.query": f"token={JWT}",
        "http.status_code": 101,
    }  # fmt: skip
    with tracer.start_as_current_span("GET /ws/admin", attributes=attributes) as span:
        span.set_attribute("url.full", url)
        span.set_attribute("http.request.header.sec_websocket_protocol", ("bearer", JWT))
        span.add_event("exception", {"exception.message": f"refused {url}"})
    with tracer.start_as_current_span("plain", attributes={"http.target": "/healthz"}):
        pass
    redacted, plain = exported.get_finished_spans()
    assert JWT not in repr(redacted.to_json())
    assert redacted.attributes is not None
    assert redacted.attributes["http.url"] == "http://shop/ws/admin?token=[redacted]&x=1"
    assert redacted.attributes["url.query"] == "token=[redacted]"
    assert redacted.attributes["http.status_code"] == 101
    assert redacted.attributes["http.request.header.sec_websocket_protocol"] == (
        "bearer", "[redacted]",
    )  # fmt: skip
    assert redacted.events[0].attributes == {
        "exception.message": "refused http://shop/ws/admin?token=[redacted]&x=1"
    }
    assert redacted.context == span.get_span_context()
    assert plain.attributes == {"http.target": "/healthz"}
