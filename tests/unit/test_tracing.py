"""Traces across the event log: an event appended inside a span keeps the span's
``traceparent`` beside its fields, still decodes into its struct, and is handled in a span of the
same trace; outside any span (tracing off) the stored bytes are the event's alone."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import msgspec
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from adapters.eventstore import MsgspecMapper
from adapters.tracing import continued, trace_of, traceparent, with_trace
from domain.events import OrderPaid

EVENT = OrderPaid(
    originator_id=uuid4(), originator_version=3, timestamp=datetime(2026, 12, 5, tzinfo=UTC),
    payment_id="5077125051",
)  # fmt: skip


def test_outside_a_span_nothing_is_added() -> None:
    state = MsgspecMapper().to_stored_event(EVENT).state
    assert state == msgspec.json.encode(EVENT)
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
