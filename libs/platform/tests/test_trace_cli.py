"""The trace printer reads what the OTLP JSON file exporter writes."""

from pathlib import Path

from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from sotay_platform.telemetry import redact_query
from sotay_platform.trace import main, render, spans_of, tree


def test_one_trace_prints_as_a_tree_across_services(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "traces.jsonl"
    for service in ("meetings", "reporting"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        exporter = FileSpanExporter(path)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        if service == "meetings":
            with tracer.start_as_current_span("POST /meetings") as request:
                with tracer.start_as_current_span("eventstore.commit"):
                    pass
            parent = request.get_span_context()
        else:
            from opentelemetry import trace

            context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
            with tracer.start_as_current_span("projection.usage", context=context):
                pass
        provider.shutdown()
    trace_id = format(parent.trace_id, "032x")
    lines = path.read_text().splitlines()
    rendered = render(tree(spans_of(lines, trace_id)))
    assert rendered[0].startswith("POST /meetings  [meetings]")
    assert any(line.startswith("  eventstore.commit  [meetings]") for line in rendered)
    assert any(line.startswith("  projection.usage  [reporting]") for line in rendered)
    assert main([trace_id, "--file", str(path)]) == 0
    assert "projection.usage" in capsys.readouterr().out
    assert main(["0" * 32, "--file", str(path)]) == 1


def test_credentials_in_a_query_are_redacted() -> None:
    assert redact_query("http://x/dashboard/QNG?token=abc&month=2026-11") == (
        "http://x/dashboard/QNG?token=REDACTED&month=2026-11"
    )
    assert redact_query("month=2026-11") == "month=2026-11"
