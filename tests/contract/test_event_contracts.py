"""Each event's registered schema versions hold their promise to consumers.

- The registry committed in libs/events/registry equals what the code says.
- A committed version's schema only ever changes compatibly (checked across the
  file's whole git history): removing, retyping or requiring a field is a new
  version with an upcaster, never an edit.
- A newer version that breaks the previous one has an upcaster, and a payload of
  every registered version decodes into the latest model.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sotay_events.catalogue import CATALOGUE
from sotay_events.compat import breaking_changes, sample_payload
from sotay_events.schema_registry import DEFAULT_DIR, differences, load, schema_of

REPO = Path(__file__).resolve().parents[2]
REGISTERED = {
    name: schema for name, schema in load(DEFAULT_DIR).items() if not name.startswith("_")
}


def test_registry_matches_the_code() -> None:
    problems = differences()
    assert not problems, "run `make registry` and commit it:\n" + "\n".join(problems)


def _history(path: Path) -> list[dict]:
    """Every committed content of a registry file, oldest first."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    relative = path.relative_to(REPO).as_posix()
    commits = subprocess.run(
        ["git", "log", "--reverse", "--format=%H", "--", relative],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    contents = []
    for commit in commits:
        shown = subprocess.run(
            ["git", "show", f"{commit}:{relative}"], cwd=REPO, capture_output=True, text=True
        )
        if shown.returncode == 0:
            contents.append(json.loads(shown.stdout))
    return contents


@pytest.mark.parametrize("name", sorted(REGISTERED))
def test_a_registered_version_only_changes_compatibly(name: str) -> None:
    history = [*_history(DEFAULT_DIR / name), REGISTERED[name]]
    for older, newer in itertools.pairwise(history):
        problems = breaking_changes(older, newer)
        assert not problems, (
            f"{name} changed in a way that breaks its consumers: {problems}. "
            "Add a new schema version with an upcaster instead."
        )


@pytest.mark.parametrize("event_type", CATALOGUE.event_types())
def test_every_version_decodes_into_the_latest_model(event_type: str) -> None:
    latest = CATALOGUE.latest_version(event_type)
    for version in range(1, latest + 1):
        model = CATALOGUE.model(event_type, version)
        payload = model.model_validate(sample_payload(schema_of(model))).model_dump(mode="json")
        decoded = CATALOGUE.decode(event_type, version, payload)
        assert type(decoded) is CATALOGUE.model(event_type)
        if version < latest:
            following = CATALOGUE.model(event_type, version + 1)
            if breaking_changes(schema_of(model), schema_of(following)):
                assert CATALOGUE.has_upcaster(event_type, version)


def test_the_compatibility_rule_itself() -> None:
    old = {"properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"]}
    added_optional = {**old, "properties": {**old["properties"], "c": {"type": "string"}}}
    assert breaking_changes(old, added_optional) == []
    removed = {"properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert breaking_changes(old, removed) == ["field 'b' removed"]
    retyped = {
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a"],
    }
    assert "retyped" in breaking_changes(old, retyped)[0]
    required = {**old, "required": ["a", "b"]}
    assert breaking_changes(old, required) == ["field 'b' is now required"]


def test_the_upcast_example_breaks_without_its_upcaster() -> None:
    v1 = schema_of(CATALOGUE.model("UnitCreated", 1))
    v2 = schema_of(CATALOGUE.model("UnitCreated", 2))
    assert breaking_changes(v1, v2)
    assert CATALOGUE.has_upcaster("UnitCreated", 1)
