"""Tracing, on both wirings, into a real OTLP/HTTP receiver: one trace follows a paid order from
the IPN through the event log and the actors to Kinguin (and, with S3, the key vault and
PostgreSQL); no token sent in a URL reaches the receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from websockets.sync.client import connect

from tests.e2e.conftest import RunningEngine, pay_in_full
from tests.e2e.test_pipeline import ORDER, await_status, place_and_pay
from tests.support import free_port

IPN_PATH = "/webhooks/nowpayments/ipn"
SERVER, CLIENT = 2, 3  # the protocol's SpanKind numbers


@dataclass(frozen=True)
class Span:
    trace_id: str
    name: str
    kind: int
    service: str
    attributes: dict[str, Any]


class Receiver:
    """An OTLP/HTTP trace receiver: what the engine's exporters sent, span by span."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.bodies: list[bytes] = []  # as received, to search for what must not be there
        self.port = free_port()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(body)
                receiver.take(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def take(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            service = next(
                (a.value.string_value for a in resource_spans.resource.attributes
                 if a.key == "service.name"), "",
            )  # fmt: skip
            for scope_spans in resource_spans.scope_spans:
                with self._lock:
                    self.spans += [
                        Span(s.trace_id.hex(), s.name, s.kind, service, _attributes(s.attributes))
                        for s in scope_spans.spans
                    ]

    def traces(self) -> dict[str, list[Span]]:
        with self._lock:
            spans = list(self.spans)
        by_trace: dict[str, list[Span]] = {}
        for span in spans:
            by_trace.setdefault(span.trace_id, []).append(span)
        return by_trace

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _attributes(pairs: Any) -> dict[str, Any]:
    return {a.key: getattr(a.value, a.value.WhichOneof("value") or "string_value") for a in pairs}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def engine_settings(receiver: Receiver) -> dict[str, str]:
    """Spans to the receiver, exported every 200 ms; access lines on (they are off by default)."""
    return {
        "ACCESS_LOG": "on",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": "bitloot-test",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def test_one_trace_from_the_ipn_through_the_actors_to_kinguin(
    engine: RunningEngine, receiver: Receiver
) -> None:
    with engine.client("tess") as tess:
        order, payment = place_and_pay(tess)
        simulated = pay_in_full(tess, payment)
        assert simulated.status_code == 200, simulated.text
        assert await_status(tess, order["id"])[-1] == "fulfilled"

    wanted = WANTED + (DISTRIBUTED if engine.wiring == "postgresql+redis" else ())
    deadline = time.monotonic() + 20
    while True:
        seen = {trace_id: _found(spans) for trace_id, spans in receiver.traces().items()}
        ipn_traces = [found for found in seen.values() if "the IPN's request" in found]
        if any(set(wanted) <= found for found in ipn_traces):
            break
        if time.monotonic() > deadline:
            missing = [sorted(set(wanted) - found) for found in ipn_traces]
            raise AssertionError(f"no trace has all of {wanted}; missing: {missing}")
        time.sleep(0.2)


@pytest.mark.parametrize("engine", ["sqlite+in-process"], indirect=True)
def test_no_token_in_a_url_reaches_the_traces_or_the_access_log(
    engine: RunningEngine, receiver: Receiver
) -> None:
    """A request and a websocket with ``?token=<JWT>`` are traced (and logged) with
    ``token=[redacted]``; neither the JWT nor its signature is in anything exported or logged."""
    token = engine.token("tess")
    with engine.client("tess") as tess:
        order_id = tess.post("/orders", json=ORDER).json()["id"]
        assert tess.get(f"/orders/{order_id}", params={"token": token}).status_code == 200
    ws = f"{engine.url.replace('http://', 'ws://')}/ws/orders/{order_id}?token={token}"
    with connect(ws) as socket:
        socket.recv(timeout=5)
    deadline = time.monotonic() + 20
    while not _redacted_urls(receiver, order_id) >= {"http", "websocket"}:
        assert time.monotonic() < deadline, "the requests' spans never arrived"
        time.sleep(0.2)
    for secret in (token, token.split(".")[2]):
        assert not any(secret.encode() in body for body in receiver.bodies)
        assert secret.encode() not in engine.logged()
    assert f"/orders/{order_id}?token=[redacted]".encode() in engine.logged()


def _redacted_urls(receiver: Receiver, order_id: str) -> set[str]:
    """Which of the request (``http``) and the websocket reached the receiver as a server span
    whose URL names the order and shows its token redacted."""
    found: set[str] = set()
    for spans in receiver.traces().values():
        for span in spans:
            values = [str(v) for v in span.attributes.values()]
            if span.kind == SERVER and any(
                order_id in v and "token=[redacted]" in v for v in values
            ):
                found.add("websocket" if any("/ws/" in v for v in values) else "http")
    return found


WANTED = (
    "the IPN's request",
    "the process manager handling OrderPaid",
    "the reserve actor",
    "the purchase at Kinguin",
    "the deliver actor",
)
DISTRIBUTED = ("a PostgreSQL statement", "the key vault (S3)")


def _found(spans: list[Span]) -> set[str]:
    """What a trace's spans show, in the words of ``WANTED``."""
    checks: dict[str, Callable[[Span], bool]] = {
        "the IPN's request": lambda s: s.kind == SERVER and IPN_PATH in s.name,
        "the process manager handling OrderPaid": lambda s: s.name == "process_manager OrderPaid",
        "the reserve actor": lambda s: s.name == "reserve",
        "the purchase at Kinguin": lambda s: (
            s.kind == CLIENT and _url(s).endswith("/sandbox/kinguin/v2/order")
        ),
        "the deliver actor": lambda s: s.name == "deliver",
        "a PostgreSQL statement": lambda s: s.attributes.get("db.system") == "postgresql",
        "the key vault (S3)": lambda s: s.attributes.get("rpc.service") == "S3",
    }
    assert {s.service for s in spans} == {"bitloot-test"}
    return {what for what, check in checks.items() if any(check(s) for s in spans)}


def _url(span: Span) -> str:
    return str(span.attributes.get("url.full") or span.attributes.get("http.url") or "")
