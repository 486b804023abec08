"""Tracing, metrics and structured logs, set up once per process.

Spans go to an OTLP collector when OTEL_EXPORTER_OTLP_ENDPOINT is set, else to
OTLP JSON lines in SOTAY_TRACE_FILE when that is set (`make run` writes
.stack/traces.jsonl; `python -m sotay_platform.trace TRACE_ID` prints one
request's path from it). Every HTTP response names its trace in `X-Trace-Id`.
Logs are JSON lines carrying the current trace and span ids, at SOTAY_LOG_LEVEL.
Neither ever carries a request body or a credential: personal data stays out
of both, and query parameters that may hold one are redacted from spans.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

_configured = False
_metrics_configured = False


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        span = trace.get_current_span().get_span_context()
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
            line["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def quiet_personal_data_loggers() -> None:
    """PyMongo logs whole commands (documents with citizen IDs and phones) at DEBUG: never that."""
    for name in ("pymongo", "pymongo.command", "pymongo.connection", "pymongo.serverSelection"):
        logging.getLogger(name).setLevel(logging.INFO)


def setup_logging(level: str = "INFO") -> None:
    """JSON lines on stderr at `level` (SOTAY_LOG_LEVEL); idempotent, and other handlers stay."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonLogFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLogFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_personal_data_loggers()


def setup_tracing(
    service_name: str, extra_processor: SpanProcessor | None = None
) -> TracerProvider:
    """Install the process's tracer provider once; later calls only add a processor."""
    global _configured
    provider = trace.get_tracer_provider()
    if not _configured:
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif os.environ.get("SOTAY_TRACE_FILE"):
            from opentelemetry.exporter.otlp.json.file import FileSpanExporter

            exporter = FileSpanExporter(os.environ["SOTAY_TRACE_FILE"])
            provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
        trace.set_tracer_provider(provider)
        # Statements are not captured: a filter may hold a citizen ID or a phone number.
        PymongoInstrumentor().instrument(capture_statement=False)
        RedisInstrumentor().instrument()
        _configured = True
    assert isinstance(provider, TracerProvider)
    if extra_processor is not None:
        provider.add_span_processor(extra_processor)
    return provider


def setup_metrics(service_name: str) -> None:
    """OpenTelemetry metrics, read by Prometheus from each service's /metrics."""
    global _metrics_configured
    if _metrics_configured:
        return
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider

    provider = MeterProvider(
        resource=Resource.create({"service.name": service_name}),
        metric_readers=[PrometheusMetricReader()],
    )
    metrics.set_meter_provider(provider)
    _metrics_configured = True


SENSITIVE_QUERY = frozenset(
    {"token", "access_token", "refresh_token", "password", "citizen_id", "phone", "code"}
)
URL_ATTRIBUTES = ("http.url", "url.full", "http.target", "url.query")


def redact_query(value: str) -> str:
    """A URL or query string with every sensitive parameter's value replaced."""
    from urllib.parse import parse_qsl, urlencode

    base, sep, query = value.rpartition("?") if "?" in value else ("", "", value)
    if "=" not in query:
        return value
    pairs = [
        (k, "REDACTED" if k.lower() in SENSITIVE_QUERY else v)
        for k, v in parse_qsl(query, keep_blank_values=True)
    ]
    return f"{base}{sep}{urlencode(pairs)}"


def _scrub_request_span(span: trace.Span, scope: dict[str, Any]) -> None:
    if not span.is_recording() or not scope.get("query_string"):
        return
    attributes = getattr(span, "attributes", None) or {}
    for name in URL_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str):
            span.set_attribute(name, redact_query(value))


class TraceIdHeader:
    """Every response says which trace it belongs to, so an SRE can follow it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_trace(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                context = trace.get_current_span().get_span_context()
                if context.is_valid:
                    headers = list(message.get("headers", []))
                    headers.append((b"x-trace-id", format(context.trace_id, "032x").encode()))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_trace)


def instrument_app(app: FastAPI) -> None:
    from prometheus_client import make_asgi_app

    # Added before instrumenting, so it runs inside the request's span.
    app.add_middleware(TraceIdHeader)
    # No span for each ASGI receive and send: a request is one span, not three.
    FastAPIInstrumentor.instrument_app(
        app,
        excluded_urls="health,metrics",
        server_request_hook=_scrub_request_span,
        exclude_spans=["receive", "send"],
    )
    app.mount("/metrics", make_asgi_app())
