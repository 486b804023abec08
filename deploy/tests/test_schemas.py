"""Every rendered object is valid for the cluster: built-in kinds against the Kubernetes
OpenAPI schemas (kubernetes-validate), custom resources against the CRDs the operators
publish (deploy/k8s/crds, see its README). Both strictly: an unknown field, which the API
server would drop or refuse, is an error here."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import yaml
from referencing import Registry, Resource

CRDS = Path(__file__).resolve().parents[1] / "k8s" / "crds"
# The oldest Kubernetes the operators' releases support, and the newest the schemas know.
KUBERNETES_VERSIONS = ["1.31.0", "1.37.0"]

# kubernetes-validate reads its schema files again on every call (a 4 MB definitions file
# among them); they never change, so read each once.
kubernetes_validate.utils.schema_contents = cache(kubernetes_validate.utils.schema_contents)


def strict(schema: Any) -> Any:
    """The structural schema as the API server applies it with strict field validation:
    an object lists its fields, unless it says it keeps unknown ones."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict schema, for every served version of every CRD kept."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = version["schema"]["openAPIV3Schema"]
                    found[(f"{group}/{version['name']}", kind)] = strict(schema)
    return found


def is_custom(doc: dict[str, Any]) -> bool:
    group = doc["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


def custom_resource_errors(doc: dict[str, Any]) -> list[str]:
    schema = crd_schemas().get((doc["apiVersion"], doc["kind"]))
    if schema is None:
        return [f"no CRD kept in deploy/k8s/crds serves {doc['apiVersion']} {doc['kind']}"]
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


def part_errors(value: Any, type_name: str) -> list[str]:
    """`value` against one Kubernetes type (e.g. affinity-v1), strictly, as in a pod."""
    base = f"kubernetes-json-schema/v{KUBERNETES_VERSIONS[-1]}-local-strict"
    schema = kubernetes_validate.utils.schema_contents(f"{base}/{type_name}.json", "")
    definitions = kubernetes_validate.utils.schema_contents(f"{base}/_definitions.json", "")
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(value)
    ]


def test_the_mongodb_pod_override_is_made_of_valid_kubernetes_parts(
    docs: list[dict[str, Any]],
) -> None:
    """The CRD leaves spec.statefulSet free-form: its parts are checked as what they become."""
    (mongo,) = (d for d in docs if d["kind"] == "MongoDBCommunity")
    spec = mongo["spec"]["statefulSet"]["spec"]
    pod = spec["template"]["spec"]
    errors = part_errors(pod["affinity"], "affinity-v1")
    for container in pod["containers"]:
        errors += part_errors(container["resources"], "resourcerequirements-v1")
    for claim in spec["volumeClaimTemplates"]:
        errors += part_errors(claim["spec"], "persistentvolumeclaimspec-v1")
    assert not errors, "\n".join(errors)
    bad: dict[str, Any] = {"podAntiAffinity": {"requiredDuringScheduling": []}}
    assert part_errors(bad, "affinity-v1")


def test_built_in_kinds_match_the_kubernetes_schemas(docs: list[dict[str, Any]]) -> None:
    errors = []
    for doc in docs:
        if is_custom(doc):
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {exc}")
            except kubernetes_validate.SchemaNotFoundError:
                errors.append(f"{doc['kind']}/{doc['metadata']['name']}: no schema on {version}")
    assert not errors, "\n".join(errors)


def test_custom_resources_match_their_crds(docs: list[dict[str, Any]]) -> None:
    errors = [
        f"{doc['kind']}/{doc['metadata']['name']}: {error}"
        for doc in docs
        if is_custom(doc)
        for error in custom_resource_errors(doc)
    ]
    assert not errors, "\n".join(errors)


def test_every_operator_kind_used_has_its_crd_kept(docs: list[dict[str, Any]]) -> None:
    used = {(d["apiVersion"], d["kind"]) for d in docs if is_custom(d)}
    assert used <= set(crd_schemas()), used - set(crd_schemas())
    # What the overlays are expected to use, so that a CRD file lost is noticed.
    assert {k for _, k in used} >= {
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "MongoDBCommunity",
        "PodMonitor",
        "PrometheusRule",
    }


def test_a_misspelt_field_is_refused_by_both_validators(docs: list[dict[str, Any]]) -> None:
    topic = copy.deepcopy(next(d for d in docs if d["kind"] == "KafkaTopic"))
    topic["spec"]["replica"] = 3
    assert any("replica" in e for e in custom_resource_errors(topic))
    topic = copy.deepcopy(next(d for d in docs if d["kind"] == "KafkaTopic"))
    topic["spec"]["partitions"] = "24"
    assert custom_resource_errors(topic)

    deployment = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)
