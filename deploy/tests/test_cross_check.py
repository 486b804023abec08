"""The manifests read against the code: every topic, every setting, every service and every
metric the code has finds its place in each overlay, and nothing there names what the
code does not have."""

from __future__ import annotations

import importlib
import os
import re
import sys
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import promql_parser
import pytest
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from sotay_events.topics import ALL_TOPICS, PLATFORM_TOPICS
from sotay_platform.settings import AuthSettings, ServiceSettings

README = Path(__file__).resolve().parents[1] / "k8s" / "README.md"
IMAGE_REGISTRY = "ghcr.io/sotay"

# Settings a service reads that its manifest leaves to the code's default, on purpose.
# ("*" for every service.) A setting missing from both the manifests and this list fails.
ARGON2 = "OWASP's argon2id cost (m=19 MiB, t=2, p=1), as in the code; only tests lower it"
DEFAULTED = {
    ("identity", "SOTAY_ARGON2_TIME_COST"): ARGON2,
    ("identity", "SOTAY_ARGON2_MEMORY_KIB"): ARGON2,
    ("identity", "SOTAY_ARGON2_PARALLELISM"): ARGON2,
    (
        "reporting",
        "SOTAY_REPORT_CLOCK_AHEAD_DAYS",
    ): "0 in every cluster; only browser tests move it",
}
# Environment variables that are no setting but serve the manifest itself.
HELPER_ENV = {
    "SOTAY_REDIS_PASSWORD": "interpolated into SOTAY_REDIS_URL as $(SOTAY_REDIS_PASSWORD)"
}
# Secrets the overlays reference but never contain: made once per cluster by an SRE
# (README.md, "Secrets"). The dev overlay generates them with dev-only values.
PROVIDED_SECRETS = {
    "redis-auth",
    "identity-secrets",
    "identity-signing-keys",
    "meetings-secrets",
    "sotay-tls",
}
# Metrics the alert rules read that another exporter writes.
EXTERNAL_METRICS = {
    "kafka_topic_partition_current_offset": "Strimzi's Kafka exporter",
    "kafka_topic_partition_oldest_offset": "Strimzi's Kafka exporter",
    "kafka_consumergroup_current_offset": "Strimzi's Kafka exporter",
}


# --- reading the code -------------------------------------------------------------------


def settings_classes(service_dir: Path) -> list[type[BaseSettings]]:
    """The pydantic-settings classes the service reads: its settings module's own, and
    the shared AuthSettings when it runs on the platform runtime."""
    found = sorted((service_dir / "src").glob("*/settings.py"))
    assert found, f"{service_dir.name} has no src/<package>/settings.py"
    package = found[0].parent.name
    sys.path.insert(0, str(service_dir / "src"))
    try:
        module = importlib.import_module(f"{package}.settings")
    finally:
        sys.path.remove(str(service_dir / "src"))
    classes = [
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, BaseSettings) and c.__module__ == module.__name__
    ]
    assert classes, f"{package}.settings defines no settings class"
    if any(issubclass(c, ServiceSettings) for c in classes):
        classes.append(AuthSettings)
    return classes


def env_names(cls: type[BaseSettings], field: str) -> set[str]:
    info = cls.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return {c.upper() for c in alias.choices if isinstance(c, str)}
    if isinstance(alias, str):
        return {alias.upper()}
    return {(str(cls.model_config.get("env_prefix", "")) + field).upper()}


def settings_read(service_dir: Path) -> dict[str, set[str]]:
    """Each setting (class.field) the service reads -> the variables that can set it."""
    return {
        f"{cls.__name__}.{field}": env_names(cls, field)
        for cls in settings_classes(service_dir)
        for field in cls.model_fields
    }


def pyproject(service_dir: Path) -> dict[str, Any]:
    return tomllib.loads((service_dir / "pyproject.toml").read_text())


def is_api(service_dir: Path) -> bool:
    return any(issubclass(c, ServiceSettings) for c in settings_classes(service_dir))


# --- reading the manifests --------------------------------------------------------------


def main_container(manifests: Any, name: str) -> dict[str, Any]:
    deployment = manifests.get("Deployment", name)
    assert deployment, f"no Deployment {name}"
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def manifest_env(manifests: Any, container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom first, then env,
    $(VAR) expanded; a value from a Secret stands as a placeholder."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            assert manifests.get("ConfigMap", name), f"envFrom names a missing ConfigMap {name}"
            env.update(manifests.config_map_data(name))
        else:
            pytest.fail(f"{container['name']}: secrets are named key by key, not with envFrom")
    for var in container.get("env", []):
        value = var.get("value", "") if "valueFrom" not in var else f"secret-{var['name'].lower()}"
        env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), value)
        # The kubelet expands only variables defined above; a patch that reorders the
        # list would leave the password out of the URL.
        assert "$(" not in env[var["name"]], f"{var['name']} refers to a variable not above it"
    return env


def test_every_topic_is_declared_replicated_and_nothing_else(manifests: Any) -> None:
    topics = {t["metadata"]["name"]: t["spec"] for t in manifests.of_kind("KafkaTopic")}
    assert set(topics) == set(ALL_TOPICS), set(topics) ^ set(ALL_TOPICS)
    for name, spec in topics.items():
        assert spec["replicas"] == 3, name
        assert str(spec["config"]["min.insync.replicas"]) == "2", name
        assert spec.get("topicName", name) == name


def test_the_cluster_creates_no_topic_of_its_own(manifests: Any) -> None:
    (kafka,) = manifests.of_kind("Kafka")
    config = kafka["spec"]["kafka"]["config"]
    assert config["auto.create.topics.enable"] is False
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    brokers = sum(
        p["spec"]["replicas"]
        for p in manifests.of_kind("KafkaNodePool")
        if "broker" in p["spec"]["roles"]
    )
    assert brokers >= 3, "replication 3 needs three brokers"
    assert "topicOperator" in kafka["spec"]["entityOperator"]


def test_partitions_are_sized_for_the_replicas(manifests: Any) -> None:
    """A consumer group spreads over at most as many replicas as the topic has partitions."""
    partitions = {
        t["metadata"]["name"]: t["spec"]["partitions"] for t in manifests.of_kind("KafkaTopic")
    }
    most_replicas = max(
        h["spec"]["maxReplicas"] for h in manifests.of_kind("HorizontalPodAutoscaler")
    )
    for topic in PLATFORM_TOPICS:
        assert partitions[topic] >= most_replicas, (topic, partitions[topic], most_replicas)
    configured = int(manifests.config_map_data("sotay-config")["SOTAY_KAFKA_PARTITIONS"])
    assert configured in {partitions[t] for t in PLATFORM_TOPICS}


def test_every_setting_is_set_or_deliberately_defaulted(
    manifests: Any, service_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    problems = []
    used_defaults = set()
    for service, service_dir in service_dirs.items():
        env = manifest_env(manifests, main_container(manifests, service))
        readable: set[str] = set()
        for setting, names in settings_read(service_dir).items():
            readable |= names
            if names & set(env):
                continue
            allowed = {(service, n) for n in names} | {("*", n) for n in names}
            if allowed & set(DEFAULTED):
                used_defaults |= allowed & set(DEFAULTED)
                continue
            problems.append(f"{service}: {setting} ({' or '.join(sorted(names))}) is not set")
        for name in env:
            if name.startswith("SOTAY_") and name not in readable and name not in HELPER_ENV:
                problems.append(f"{service}: {name} is set but no setting reads it")
        # The values must parse as the code expects (a number, a JSON list...).
        for name in [n for n in os.environ if n.startswith("SOTAY_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for cls in settings_classes(service_dir):
            try:
                cls()
            except ValueError as exc:
                problems.append(f"{service}: {cls.__name__} refuses the manifest's values: {exc}")
    assert not problems, "\n".join(problems)
    stale = set(DEFAULTED) - used_defaults
    assert not stale, f"allow-listed settings no service reads any more: {stale}"


def test_every_service_has_its_place(manifests: Any, service_dirs: dict[str, Path]) -> None:
    rules = {
        (r["http"]["paths"][0]["backend"]["service"]["name"])
        for i in manifests.of_kind("Ingress")
        for r in i["spec"]["rules"]
    }
    for service, service_dir in service_dirs.items():
        project = pyproject(service_dir)
        port = project["tool"]["sotay"]["port"]
        image = f"{IMAGE_REGISTRY}/{service}:{project['project']['version']}"
        deployment = manifests.get("Deployment", service)
        assert deployment, f"{service}: no Deployment"
        pod = deployment["spec"]["template"]
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            assert container["image"] == image, (service, container["image"], image)
        assert main_container(manifests, service)["ports"][0]["containerPort"] == port
        svc = manifests.get("Service", service)
        assert svc and svc["spec"]["ports"][0]["port"] == port, f"{service}: Service port"
        assert selects(svc["spec"]["selector"], pod["metadata"]["labels"])
        policy = manifests.get("NetworkPolicy", service)
        assert policy, f"{service}: no NetworkPolicy"
        assert selects(policy["spec"]["podSelector"]["matchLabels"], pod["metadata"]["labels"])
        assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        pdb = manifests.get("PodDisruptionBudget", service)
        assert pdb and selects(pdb["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
        assert manifests.get("HorizontalPodAutoscaler", service), f"{service}: no autoscaler"
        # The autoscaler owns the count; a count here would be reset by every apply.
        assert "replicas" not in deployment["spec"], f"{service}: replicas beside its autoscaler"
        assert service in rules, f"{service}: not reachable through the Ingress"
        assert any(
            scraped(m["spec"]["selector"], pod["metadata"]["labels"])
            for m in manifests.of_kind("PodMonitor")
            if any(e["port"] == "http" for e in m["spec"]["podMetricsEndpoints"])
        ), f"{service}: Prometheus does not scrape it"


def scraped(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A PodMonitor's selector (matchLabels, and matchExpressions with In) against pod labels."""
    if not selects(selector.get("matchLabels", {}), labels) and selector.get("matchLabels"):
        return False
    return all(
        e["operator"] == "In" and labels.get(e["key"]) in e["values"]
        for e in selector.get("matchExpressions", [])
    ) and bool(selector)


def test_each_service_touches_only_its_own_database(
    manifests: Any, service_dirs: dict[str, Path]
) -> None:
    (mongo,) = manifests.of_kind("MongoDBCommunity")
    assert mongo["spec"]["security"]["authentication"]["modes"] == ["SCRAM"]
    users = {u["name"]: u for u in mongo["spec"]["users"]}
    apis = {s for s, d in service_dirs.items() if is_api(d)}
    assert set(users) == apis, set(users) ^ apis
    for service in apis:
        container = main_container(manifests, service)
        env = manifest_env(manifests, container)
        database = env["SOTAY_DATABASE"]
        assert users[service]["roles"] == [{"name": "readWrite", "db": database}], service
        url = next(v for v in container["env"] if v["name"] == "SOTAY_MONGO_URL")
        assert url["valueFrom"]["secretKeyRef"] == {
            "name": users[service]["connectionStringSecretName"],
            "key": "connectionString.standard",
        }
    databases = [r["db"] for u in users.values() for r in u["roles"]]
    assert len(databases) == len(set(databases)), "two services share a database"


def test_web_has_no_database_and_no_broker(manifests: Any, service_dirs: dict[str, Path]) -> None:
    for service, service_dir in service_dirs.items():
        if is_api(service_dir):
            continue
        env = manifest_env(manifests, main_container(manifests, service))
        assert not {"SOTAY_MONGO_URL", "SOTAY_KAFKA_BOOTSTRAP"} & set(env), service
        labels = manifests.get("Deployment", service)["spec"]["template"]["metadata"]["labels"]
        assert "sotay.vn/kafka-client" not in labels


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# --- hardening --------------------------------------------------------------------------


def pod_templates(manifests: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(w["metadata"]["name"], w["spec"]["template"]) for w in manifests.workloads()]


def test_every_pod_is_non_root_read_only_and_bounded(manifests: Any) -> None:
    problems = []
    for name, pod in pod_templates(manifests):
        spec = pod["spec"]
        security = spec.get("securityContext", {})
        if security.get("runAsNonRoot") is not True:
            problems.append(f"{name}: runAsNonRoot")
        if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccompProfile")
        empty_dirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name}/{c['name']}"
            ctx = c.get("securityContext", {})
            if ctx.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation")
            if ctx.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities not dropped")
            tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            if not tmp or tmp[0]["name"] not in empty_dirs:
                problems.append(f"{where}: no emptyDir at /tmp")
            resources = c.get("resources", {})
            if not {"cpu", "memory"} <= set(resources.get("requests", {})):
                problems.append(f"{where}: requests")
            if "memory" not in resources.get("limits", {}):
                problems.append(f"{where}: memory limit")
            if not pinned(c["image"]):
                problems.append(f"{where}: image {c['image']} is not pinned to a version")
        for c in spec["containers"]:
            for probe in ("readinessProbe", "livenessProbe"):
                if probe not in c:
                    problems.append(f"{name}/{c['name']}: no {probe}")
    assert not problems, "\n".join(problems)


def pinned(image: str) -> bool:
    tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
    return bool(re.fullmatch(r"v?\d+(\.\d+)+(-[\w.]+)?", tag))


def test_services_answer_their_health_probes(manifests: Any, service_dirs: dict[str, Path]) -> None:
    for service in service_dirs:
        container = main_container(manifests, service)
        ports = {p.get("name"): p["containerPort"] for p in container["ports"]}
        for probe, path in (("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, (service, probe)
            assert ports.get(get["port"], get["port"]) == container["ports"][0]["containerPort"]


def test_the_data_tier_is_spread_bounded_and_budgeted(manifests: Any, overlay: str) -> None:
    kind_of_rule = (
        "preferredDuringSchedulingIgnoredDuringExecution"
        if overlay == "dev"
        else "requiredDuringSchedulingIgnoredDuringExecution"
    )
    for pool in manifests.of_kind("KafkaNodePool"):
        spec = pool["spec"]
        assert {"cpu", "memory"} <= set(spec["resources"]["requests"]), pool["metadata"]["name"]
        assert kind_of_rule in spec["template"]["pod"]["affinity"]["podAntiAffinity"]
    (mongo,) = manifests.of_kind("MongoDBCommunity")
    pod = mongo["spec"]["statefulSet"]["spec"]["template"]["spec"]
    assert kind_of_rule in pod["affinity"]["podAntiAffinity"]
    assert {c["name"] for c in pod["containers"]} == {"mongod", "mongodb-agent"}
    for c in pod["containers"]:
        assert "memory" in c["resources"]["limits"], c["name"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", mongo["spec"]["version"])
    assert mongo["spec"]["members"] >= 3 and mongo["spec"]["members"] % 2 == 1
    budget = manifests.get("PodDisruptionBudget", "sotay-mongodb")
    assert budget["spec"]["selector"]["matchLabels"] == {"app": f"{mongo['metadata']['name']}-svc"}
    assert budget["spec"]["maxUnavailable"] == 1
    (kafka,) = manifests.of_kind("Kafka")
    assert re.fullmatch(r"\d+\.\d+\.\d+", kafka["spec"]["kafka"]["version"])
    assert kafka["spec"]["kafka"]["template"]["podDisruptionBudget"]["maxUnavailable"] == 1


# --- secrets ----------------------------------------------------------------------------


def referenced_secrets(manifests: Any) -> set[str]:
    names = set()
    for _, pod in pod_templates(manifests):
        spec = pod["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            for var in c.get("env", []):
                if "secretKeyRef" in var.get("valueFrom", {}):
                    names.add(var["valueFrom"]["secretKeyRef"]["name"])
        names |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    for ingress in manifests.of_kind("Ingress"):
        names |= {t["secretName"] for t in ingress["spec"].get("tls", [])}
    for mongo in manifests.of_kind("MongoDBCommunity"):
        names |= {u["passwordSecretRef"]["name"] for u in mongo["spec"]["users"]}
    return names


def operator_made_secrets(manifests: Any) -> set[str]:
    return {
        u[key]
        for mongo in manifests.of_kind("MongoDBCommunity")
        for u in mongo["spec"]["users"]
        for key in ("connectionStringSecretName", "scramCredentialsSecretName")
    }


def test_secrets_are_provided_never_committed(manifests: Any, overlay: str) -> None:
    rendered = {s["metadata"]["name"] for s in manifests.of_kind("Secret")}
    needed = referenced_secrets(manifests) - operator_made_secrets(manifests)
    mongo_passwords = {n for n in needed if re.fullmatch(r"sotay-mongodb-[\w-]+-password", n)}
    if overlay == "dev":
        assert needed <= rendered, f"dev secrets not generated: {needed - rendered}"
        for secret in manifests.of_kind("Secret"):
            values = secret.get("data", {}) | secret.get("stringData", {})
            assert values, secret["metadata"]["name"]
    else:
        assert not rendered, f"{overlay} must not carry secrets: {rendered}"
        assert needed - mongo_passwords <= PROVIDED_SECRETS, needed - PROVIDED_SECRETS
    readme = README.read_text()
    for name in (needed - mongo_passwords) | {"sotay-mongodb-<service>-password"}:
        if name in PROVIDED_SECRETS or name.startswith("sotay-mongodb-<"):
            assert name in readme, f"README.md does not say how to provide {name}"


# --- metrics and alerts -----------------------------------------------------------------


@pytest.fixture(scope="module")
def exported_metrics() -> set[str]:
    """What a service's /metrics shows, by the platform's own code: the runtime's gauges
    observed on a stand-in with one backlog, one projection and one partition."""
    from prometheus_client import REGISTRY, generate_latest

    from sotay_platform.runtime import ServiceRuntime
    from sotay_platform.telemetry import setup_metrics

    setup_metrics("deploy-check")
    runner = SimpleNamespace(
        projection=SimpleNamespace(name="p"), offset_lag={"t:0": 5}, last_lag_seconds=1.5
    )
    stand_in = SimpleNamespace(
        settings=SimpleNamespace(service_name="deploy-check"),
        relay=SimpleNamespace(backlog=3),
        runners=[runner],
    )
    ServiceRuntime._observe_metrics(stand_in)
    text = generate_latest(REGISTRY).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()}


def alert_rules(manifests: Any) -> list[dict[str, Any]]:
    return [
        rule
        for pr in manifests.of_kind("PrometheusRule")
        for group in pr["spec"]["groups"]
        for rule in group["rules"]
    ]


def metrics_read(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a syntax error raises)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name or node.prettify())
        elif isinstance(node, promql_parser.MatrixSelector):
            walk(node.vector_selector)
        elif isinstance(node, promql_parser.BinaryExpr):
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql_parser.Call):
            for arg in node.args:
                walk(arg)
        elif isinstance(node, promql_parser.AggregateExpr):
            walk(node.expr)
            if node.param is not None:
                walk(node.param)
        elif isinstance(
            node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)
        ):
            walk(node.expr)

    walk(promql_parser.parse(expr))
    return names


def test_alert_rules_read_metrics_that_exist(manifests: Any, exported_metrics: set[str]) -> None:
    rules = alert_rules(manifests)
    recorded = {r["record"] for r in rules if "record" in r}
    read = {name for rule in rules for name in metrics_read(rule["expr"])}
    unknown = read - recorded - exported_metrics - set(EXTERNAL_METRICS)
    assert not unknown, f"rules read metrics nobody exports: {unknown}"
    # The four things to be alerted on: outbox, consumer lag, projection lag, dead letters.
    for metric in (
        "sotay_outbox_backlog",
        "sotay_consumer_lag",
        "sotay_projection_lag_last_seconds",
    ):
        assert metric in read and metric in exported_metrics, metric
    assert any(".dlq" in r["expr"] and "alert" in r for r in rules)
    assert recorded <= read, f"recorded but never read: {recorded - read}"


def test_a_metric_misnamed_in_a_rule_is_seen() -> None:
    assert metrics_read("max by (s) (sotay_projection_lag_last) > 1") == {
        "sotay_projection_lag_last"
    }
    with pytest.raises(ValueError):
        metrics_read("sum by (topic (x")


def test_every_alert_has_its_runbook(manifests: Any) -> None:
    readme = README.read_text()
    for rule in alert_rules(manifests):
        if "alert" in rule:
            anchor = rule["annotations"]["runbook"].rpartition("#")[2]
            assert anchor == rule["alert"].lower()
            assert f"### {rule['alert']}" in readme, f"README.md has no runbook for {rule['alert']}"
