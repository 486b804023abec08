"""Schema compatibility at any depth: optional nested additions pass, the rest breaks."""

from sotay_events.compat import breaking_changes


def schema(figures: dict, required: list[str] | None = None) -> dict:  # type: ignore[type-arg]
    nested = {"type": "object", "properties": figures}
    if required:
        nested["required"] = required
    return {"properties": {"unit_id": {"type": "string"}, "figures": nested}}


OLD = schema({"present": {"type": "integer"}})


def test_a_nested_optional_field_added_is_compatible() -> None:
    new = schema({"present": {"type": "integer"}, "feedback_received": {"type": "integer"}})
    assert breaking_changes(OLD, new) == []


def test_a_nested_field_removed_retyped_or_required_breaks() -> None:
    assert breaking_changes(OLD, schema({}))
    assert breaking_changes(OLD, schema({"present": {"type": "string"}}))
    required = schema({"present": {"type": "integer"}, "x": {"type": "integer"}}, ["x"])
    assert breaking_changes(OLD, required)


def test_items_of_a_list_follow_the_same_rule() -> None:
    old = {"properties": {"rows": {"type": "array", "items": OLD["properties"]["figures"]}}}
    grown = schema({"present": {"type": "integer"}, "more": {"type": "number"}})
    new = {"properties": {"rows": {"type": "array", "items": grown["properties"]["figures"]}}}
    assert breaking_changes(old, new) == []
    shrunk = {
        "properties": {"rows": {"type": "array", "items": schema({})["properties"]["figures"]}}
    }
    assert breaking_changes(old, shrunk)
