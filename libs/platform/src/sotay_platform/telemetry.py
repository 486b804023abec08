"""Tracing, metrics and structured logs, set up once per process.

Spans go to an OTLP collector when OTEL_EXPORTER_OTLP_ENDPOINT is set. Logs are
JSON lines carrying the current trace and span ids. Neither ever carries a
request body: personal data stays out of both.
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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
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


def instrument_app(app: FastAPI) -> None:
    from prometheus_client import make_asgi_app

    FastAPIInstrumentor.instrument_app(app, excluded_urls="health,metrics")
    app.mount("/metrics", make_asgi_app())
