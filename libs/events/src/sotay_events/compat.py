"""What makes one JSON Schema of an event safe for the consumers of another.

A consumer written against `old` keeps working with payloads valid under `new`
when `new` removes no field, changes no field's type, and requires nothing that
`old` did not, at any depth: a nested object may gain optional fields (event
models ignore what they do not know), never lose or retype one. Anything else
must be a new schema version with an upcaster.
"""

from __future__ import annotations

import json
from typing import Any

Schema = dict[str, Any]


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = defs.get(node["$ref"].split("/")[-1], {})
    return node


def _shape(node: Any, defs: dict[str, Any]) -> Any:
    """A field's type, without titles, descriptions, defaults and examples."""
    node = _resolve(node, defs)
    if isinstance(node, dict):
        return {
            k: _shape(v, defs)
            for k, v in sorted(node.items())
            if k not in ("title", "description", "default", "examples")
        }
    if isinstance(node, list):
        return [_shape(v, defs) for v in node]
    return node


def _compatible(old: Any, new: Any) -> bool:
    """`new` accepts nothing an `old` consumer would misread (both already shaped)."""
    if old == new:
        return True
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return False
    if "properties" in old and "properties" in new:
        rest = ("properties", "required")
        if {k: v for k, v in old.items() if k not in rest} != {
            k: v for k, v in new.items() if k not in rest
        }:
            return False
        old_props, new_props = old["properties"], new["properties"]
        return all(
            k in new_props and _compatible(v, new_props[k]) for k, v in old_props.items()
        ) and set(new.get("required", [])) <= set(old.get("required", []))
    if "items" in old and "items" in new:
        same_rest = {k: v for k, v in old.items() if k != "items"} == {
            k: v for k, v in new.items() if k != "items"
        }
        return same_rest and _compatible(old["items"], new["items"])
    return False


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
    problems = []
    for name, spec in old_props.items():
        if name not in new_props:
            problems.append(f"field '{name}' removed")
            continue
        old_shape, new_shape = _shape(spec, old_defs), _shape(new_props[name], new_defs)
        if not _compatible(old_shape, new_shape):
            before = json.dumps(old_shape, ensure_ascii=False)
            after = json.dumps(new_shape, ensure_ascii=False)
            problems.append(f"field '{name}' retyped: {before} -> {after}")
    for name in set(new.get("required", [])) - set(old.get("required", [])):
        problems.append(f"field '{name}' is now required")
    return problems


def sample_payload(schema: Schema) -> dict[str, Any]:
    """A payload valid under `schema`, every field filled: the oldest producer's message."""
    defs = schema.get("$defs", {})
    return {name: _sample(spec, defs) for name, spec in schema.get("properties", {}).items()}


def _sample(node: Any, defs: dict[str, Any]) -> Any:
    node = _resolve(node, defs)
    if node.get("examples"):
        return node["examples"][0]
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return node["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in node:
            options = [o for o in node[key] if _resolve(o, defs).get("type") != "null"]
            return _sample(options[0] if options else node[key][0], defs)
    kind = node.get("type")
    if kind == "string":
        return {"date": "2026-06-01", "date-time": "2026-06-01T08:00:00Z"}.get(
            node.get("format", ""), "mẫu"
        )
    if kind in ("integer", "number"):
        return max(1, node.get("minimum", 1), node.get("exclusiveMinimum", 0) + 1)
    if kind == "boolean":
        return True
    if kind == "array":
        return [_sample(node.get("items", {"type": "string"}), defs)]
    if kind == "object":
        return {name: _sample(spec, defs) for name, spec in node.get("properties", {}).items()}
    return None
