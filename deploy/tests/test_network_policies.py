"""The NetworkPolicies, evaluated as the cluster would: who may open a connection to whom.

Pods are the rendered workloads plus those the operators make (MongoDB members, Kafka
brokers, labelled as the operators label them) and the ones outside the namespace that
matter (the ingress controller, Prometheus, DNS). A connection is allowed when the
source's egress and the destination's ingress both allow it (a pod no policy selects
is open in that direction), as NetworkPolicy defines."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

NAMESPACE = "sotay"
MONGO_PORT, KAFKA_PORT, REDIS_PORT, OTLP_PORT, DNS_PORT = 27017, 9092, 6379, 4318, 53


@dataclass
class Pod:
    name: str
    labels: dict[str, str]
    namespace: str = NAMESPACE
    ports: set[int] = field(default_factory=set)


def matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def peer_matches(peer: dict[str, Any], pod: Pod) -> bool:
    if "ipBlock" in peer:
        return False  # only the API server is reached by address, and it is no pod here
    ns_labels = {"kubernetes.io/metadata.name": pod.namespace}
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"], ns_labels):
            return False
    elif pod.namespace != NAMESPACE:
        return False
    return "podSelector" not in peer or matches(peer["podSelector"], pod.labels)


def rule_allows(rule: dict[str, Any], peers_key: str, other: Pod, port: int) -> bool:
    peers = rule.get(peers_key)
    if peers is not None and not any(peer_matches(p, other) for p in peers):
        return False
    ports = rule.get("ports")
    return ports is None or any(p.get("port") in (port, None) for p in ports)


class Cluster:
    def __init__(self, policies: list[dict[str, Any]]) -> None:
        self.policies = policies

    def _side_allows(self, pod: Pod, direction: str, other: Pod, port: int) -> bool:
        if pod.namespace != NAMESPACE:
            return True  # other namespaces' policies are not ours to judge
        selecting = [
            p
            for p in self.policies
            if direction in p["spec"].get("policyTypes", ["Ingress"])
            and matches(p["spec"]["podSelector"], pod.labels)
        ]
        if not selecting:
            return True
        key, peers = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        return any(
            rule_allows(rule, peers, other, port)
            for p in selecting
            for rule in p["spec"].get(key) or []
        )

    def allows(self, src: Pod, dst: Pod, port: int) -> bool:
        return self._side_allows(src, "Egress", dst, port) and self._side_allows(
            dst, "Ingress", src, port
        )


def strimzi_listener_policy(kafka: dict[str, Any]) -> dict[str, Any]:
    """The ingress policy Strimzi writes for the broker pods from the listeners' peers."""
    name = kafka["metadata"]["name"]
    rules = [
        {"ports": [{"port": listener["port"]}], "from": listener.get("networkPolicyPeers")}
        for listener in kafka["spec"]["kafka"]["listeners"]
    ]
    # Replication and KRaft among the cluster's own pods, and the operator's control ports.
    rules.append({"from": [{"podSelector": {"matchLabels": {"strimzi.io/cluster": name}}}]})
    return {
        "metadata": {"name": f"{name}-network-policy-kafka"},
        "spec": {
            "podSelector": {"matchLabels": {"strimzi.io/name": f"{name}-kafka"}},
            "policyTypes": ["Ingress"],
            "ingress": [{k: v for k, v in r.items() if v is not None} for r in rules],
        },
    }


@pytest.fixture
def world(manifests: Any, service_dirs: dict[str, Path]) -> tuple[Cluster, dict[str, Pod]]:
    pods: dict[str, Pod] = {}
    for w in manifests.workloads():
        template = w["spec"]["template"]
        ports = {
            p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])
        }
        pods[w["metadata"]["name"]] = Pod(
            w["metadata"]["name"], template["metadata"]["labels"], ports=ports
        )
    (mongo,) = manifests.of_kind("MongoDBCommunity")
    (kafka,) = manifests.of_kind("Kafka")
    cluster = kafka["metadata"]["name"]
    pods["mongodb"] = Pod(
        "mongodb", {"app": f"{mongo['metadata']['name']}-svc"}, ports={MONGO_PORT}
    )
    pods["kafka"] = Pod(
        "kafka",
        {
            "strimzi.io/cluster": cluster,
            "strimzi.io/kind": "Kafka",
            "strimzi.io/name": f"{cluster}-kafka",
            "strimzi.io/broker-role": "true",
        },
        ports={KAFKA_PORT},
    )
    pods["ingress-controller"] = Pod(
        "ingress-controller", {"app": "ingress-nginx"}, "ingress-nginx"
    )
    pods["prometheus"] = Pod("prometheus", {"app.kubernetes.io/name": "prometheus"}, "monitoring")
    pods["dns"] = Pod("dns", {"k8s-app": "kube-dns"}, "kube-system", ports={DNS_PORT})
    pods["elsewhere"] = Pod("elsewhere", {"app": "anything"}, "default")
    policies = [*manifests.of_kind("NetworkPolicy"), strimzi_listener_policy(kafka)]
    assert all(s in pods for s in service_dirs), "a service has no workload"
    return Cluster(policies), pods


def port_of(pods: dict[str, Pod], name: str) -> int:
    (port,) = pods[name].ports
    return port


def test_everything_is_denied_unless_opened(manifests: Any) -> None:
    default = manifests.get("NetworkPolicy", "default-deny")
    assert default["spec"]["podSelector"] == {}
    assert set(default["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_each_api_reaches_only_what_it_uses(
    world: tuple[Cluster, dict[str, Pod]], manifests: Any, service_dirs: dict[str, Path]
) -> None:
    cluster, pods = world
    apis = [s for s in service_dirs if pods[s].labels.get("app.kubernetes.io/component") == "api"]
    assert apis
    for api in apis:
        src = pods[api]
        for dst, port in (
            ("mongodb", MONGO_PORT),
            ("kafka", KAFKA_PORT),
            ("redis", REDIS_PORT),
            ("otel-collector", OTLP_PORT),
            ("dns", DNS_PORT),
        ):
            assert cluster.allows(src, pods[dst], port), f"{api} cannot reach {dst}"
        for other in service_dirs:
            if other == api:
                continue
            expected = other == "identity"  # its JWKS, to verify tokens
            got = cluster.allows(src, pods[other], port_of(pods, other))
            assert got == expected, f"{api} -> {other}: {'allowed' if got else 'denied'}"
        assert not cluster.allows(src, pods["tempo"], 4317), (
            f"{api} writes traces past the collector"
        )
        assert not cluster.allows(src, pods["elsewhere"], 443), f"{api} reaches outside"


def test_web_reaches_the_apis_and_redis_never_the_data(
    world: tuple[Cluster, dict[str, Pod]], service_dirs: dict[str, Path]
) -> None:
    cluster, pods = world
    web = pods["web"]
    for api in (s for s in service_dirs if s != "web"):
        assert cluster.allows(web, pods[api], port_of(pods, api)), f"web cannot reach {api}"
    assert cluster.allows(web, pods["redis"], REDIS_PORT)
    assert cluster.allows(web, pods["otel-collector"], OTLP_PORT)
    assert not cluster.allows(web, pods["mongodb"], MONGO_PORT)
    assert not cluster.allows(web, pods["kafka"], KAFKA_PORT)


def test_from_outside_only_the_front_doors_open(
    world: tuple[Cluster, dict[str, Pod]], service_dirs: dict[str, Path]
) -> None:
    cluster, pods = world
    ingress, prometheus, elsewhere = (
        pods["ingress-controller"],
        pods["prometheus"],
        pods["elsewhere"],
    )
    for service in service_dirs:
        port = port_of(pods, service)
        assert cluster.allows(ingress, pods[service], port), f"ingress cannot reach {service}"
        assert cluster.allows(prometheus, pods[service], port), (
            f"prometheus cannot scrape {service}"
        )
        assert not cluster.allows(elsewhere, pods[service], port), f"anyone reaches {service}"
    for data, port in (("mongodb", MONGO_PORT), ("kafka", KAFKA_PORT), ("redis", REDIS_PORT)):
        assert not cluster.allows(ingress, pods[data], port), f"ingress reaches {data}"
        assert not cluster.allows(elsewhere, pods[data], port), f"anyone reaches {data}"


def test_the_data_tier_talks_only_to_itself(world: tuple[Cluster, dict[str, Pod]]) -> None:
    cluster, pods = world
    assert cluster.allows(pods["mongodb"], pods["mongodb"], MONGO_PORT)
    assert cluster.allows(pods["kafka"], pods["kafka"], 9091)
    for data in ("mongodb", "redis", "kafka"):
        assert not cluster.allows(pods[data], pods["web"], 8000), data
        assert not cluster.allows(pods[data], pods["elsewhere"], 80), data
    assert cluster.allows(pods["otel-collector"], pods["tempo"], 4317)
    assert not cluster.allows(pods["redis"], pods["mongodb"], MONGO_PORT)
