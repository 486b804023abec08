"""The committed registry of event schemas: one JSON Schema file per type and version.

`python -m sotay_events.schema_registry write` regenerates it from the code;
`check` lists where the code and the registry disagree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sotay_events.catalogue import CATALOGUE, DomainEvent, EventCatalogue
from sotay_events.envelope import EventEnvelope

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "registry"


def schema_of(model: type[DomainEvent]) -> dict[str, Any]:
    schema = model.model_json_schema()
    schema["x-event-type"] = model.event_type
    schema["x-schema-version"] = model.schema_version
    schema["x-aggregate-type"] = model.aggregate_type
    schema["x-topic"] = model.topic
    return schema


def expected_files(catalogue: EventCatalogue = CATALOGUE) -> dict[str, dict[str, Any]]:
    files = {f"{m.event_type}/v{m.schema_version}.json": schema_of(m) for m in catalogue.models()}
    files["_envelope.json"] = EventEnvelope.model_json_schema()
    return files


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write(directory: Path = DEFAULT_DIR) -> None:
    for name, schema in expected_files().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema), encoding="utf-8")


def load(directory: Path = DEFAULT_DIR) -> dict[str, dict[str, Any]]:
    return {
        str(p.relative_to(directory)): json.loads(p.read_text(encoding="utf-8"))
        for p in sorted(directory.rglob("*.json"))
    }


def differences(directory: Path = DEFAULT_DIR) -> list[str]:
    committed = load(directory)
    expected = expected_files()
    problems = []
    for name in sorted(set(committed) | set(expected)):
        if name not in expected:
            problems.append(f"{name}: in the registry but no longer in the code")
        elif name not in committed:
            problems.append(f"{name}: in the code but not in the registry")
        elif committed[name] != expected[name]:
            problems.append(f"{name}: the code's schema differs from the registry's")
    return problems


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "write":
        write()
        print(f"registry written to {DEFAULT_DIR}")
        return 0
    problems = differences()
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
